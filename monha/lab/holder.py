"""Hold every connection slot of a MariaDB so new clients get error 1040 (Too many connections).

Run as `python -m monha.lab.holder SOCKET READY_FILE` by the too-many-connections fault. The
first connection lowers max_connections to 1; then connections are opened until the server
refuses one. Users with SUPER / CONNECTION ADMIN (the monitoring user) get one slot beyond
max_connections: holding connections until a SUPER user is refused also takes that slot, so
the monitoring user really sees 1040. The holder then sleeps until it is killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pymysql

from monha.lab.names import USERS

TOO_MANY_CONNECTIONS = 1040
MAX_HELD = 64


def _connect(socket: str) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(unix_socket=socket, user="mha", password=USERS["mha"], connect_timeout=3)


def hold(socket: str, ready: Path) -> list[object]:
    held: list[object] = []
    first = _connect(socket)
    with first.cursor() as cur:
        cur.execute("SET GLOBAL max_connections = 1")
    held.append(first)
    refused = False
    while len(held) < MAX_HELD:
        try:
            held.append(_connect(socket))
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == TOO_MANY_CONNECTIONS:
                refused = True
                break
            raise
    ready.write_text(f"held={len(held)} refused={refused}\n")
    return held


def main(argv: list[str]) -> int:
    socket, ready = argv[0], Path(argv[1])
    held = hold(socket, ready)
    while held:  # keep references: the connections stay open until we are killed
        time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
