"""Hold every connection slot of a MariaDB so new clients get error 1040 (Too many connections).

Run as `python -m monha.lab.holder SOCKET READY_FILE` by the too-many-connections fault. It
lowers max_connections to its minimum and itself holds one connection more than that: users
with SUPER / CONNECTION ADMIN (the monitoring user) get one slot beyond max_connections, so
taking that slot too makes the monitoring user really see 1040. The holder then sleeps until
SIGTERM, when it restores max_connections over a connection it still holds (other clients
such as zabbix_server would grab freed slots at once, so restoring from a new connection
could itself get 1040).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import pymysql

from monha.lab.names import USERS

TOO_MANY_CONNECTIONS = 1040
MAX_HELD = 64


def _connect(socket: str) -> pymysql.connections.Connection:
    return pymysql.connect(unix_socket=socket, user="mha", password=USERS["mha"], connect_timeout=3)


def _value(conn: pymysql.connections.Connection, query: str) -> int:
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    return int(row[0]) if row else 0


def hold(socket: str) -> tuple[pymysql.connections.Connection, int, int]:
    """Take every slot; return the first connection, the old max_connections, slots held.

    MariaDB raises a max_connections below its minimum (10) to that minimum, so the lowest
    limit is read back first; enough connections to fill it, plus the extra SUPER slot, are
    opened while the old limit still admits them. Other clients (zabbix_server) may come and
    go: the holder alone keeps the server full.
    """
    first = _connect(socket)
    old = _value(first, "SELECT @@global.max_connections")
    with first.cursor() as cur:
        cur.execute("SET GLOBAL max_connections = 1")
        floor = _value(first, "SELECT @@global.max_connections")
        cur.execute(f"SET GLOBAL max_connections = {old}")
    held: list[object] = [first]
    while len(held) < floor + 1:
        held.append(_connect(socket))
    with first.cursor() as cur:
        cur.execute(f"SET GLOBAL max_connections = {floor}")
    while len(held) < MAX_HELD:  # normally refused at once: the holder fills every slot
        try:
            held.append(_connect(socket))
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == TOO_MANY_CONNECTIONS:
                break
            raise
    _HELD.extend(held)  # the connections stay open as long as this process lives
    return first, old, len(held)


_HELD: list[object] = []


def main(argv: list[str]) -> int:
    socket, ready = argv[0], Path(argv[1])
    taken: dict[str, object] = {}

    def restore(_signum: int, _frame: FrameType | None) -> None:
        if taken:
            with taken["first"].cursor() as cur:  # type: ignore[attr-defined]
                cur.execute(f"SET GLOBAL max_connections = {taken['old']}")
        sys.exit(0)

    signal.signal(signal.SIGTERM, restore)
    first, old, count = hold(socket)
    taken.update(first=first, old=old)
    ready.write_text(f"held={count} old_max_connections={old}\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
