"""Hold every connection slot of a MariaDB so new clients get error 1040 (Too many connections).

Run as `python -m monha.lab.holder SOCKET READY_FILE` by the too-many-connections fault. The
first connection lowers max_connections to 1; then connections are opened until the server
refuses one. Users with SUPER / CONNECTION ADMIN (the monitoring user) get one slot beyond
max_connections: holding connections until a SUPER user is refused also takes that slot, so
the monitoring user really sees 1040. The holder then sleeps until SIGTERM, when it restores
max_connections over a connection it still holds (other clients such as zabbix_server would
grab freed slots at once, so restoring from a new connection could itself get 1040).
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


def hold(socket: str) -> tuple[pymysql.connections.Connection, int, int]:
    """Take every slot; return the first connection, the old max_connections, slots held."""
    held: list[object] = []
    first = _connect(socket)
    with first.cursor() as cur:
        cur.execute("SELECT @@global.max_connections")
        row = cur.fetchone()
        old = int(row[0]) if row else 151
        cur.execute("SET GLOBAL max_connections = 1")
    held.append(first)
    while len(held) < MAX_HELD:
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
