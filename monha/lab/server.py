"""Which database server a lab runs, and the one interface both implement.

`monha-lab up --server mariadb|mysql` records the choice in the lab's state file; every later
command (faults, status, `lab.sql`) asks `for_name(state.server)` for the module that speaks to
that server: `monha.lab.mariadb` (the host's MariaDB) or `monha.lab.mysql_server` (Oracle MySQL
chrooted into its cached tree). Both modules satisfy `Server`; mypy checks that they do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from monha.lab import mariadb, mysql_server
from monha.lab.names import LabPaths

SERVERS: tuple[str, ...] = ("mariadb", "mysql")
DEFAULT_SERVER = "mariadb"


class Server(Protocol):
    NAME: str
    DAEMON: str
    DISPLAY: str
    BINLOG_STATUS_SQL: str
    GTID_EXECUTED_SQL: str

    def client_argv(self, socket: Path, *extra: str) -> list[str]: ...

    def sql(
        self, socket: Path, statement: str, *, timeout: float = ..., database: str = ...
    ) -> str: ...

    def query_vertical(
        self, socket: Path, statement: str, *, timeout: float = ...
    ) -> dict[str, str]: ...

    def wait_ready(self, socket: Path, pid: int | None, timeout: float = ...) -> None: ...

    def ensure_template(self, log: Callable[[str], None] = ...) -> tuple[Path, bool]: ...

    def install_node(
        self, paths: LabPaths, node: str, template: Path, *, semi_sync: bool = ...
    ) -> None: ...

    def write_wrappers(self, paths: LabPaths, node: str) -> None: ...

    def server_argv(self, paths: LabPaths, node: str, *, supervised: bool) -> list[str]: ...

    def before_start(self, paths: LabPaths, node: str) -> None: ...

    def server_pid(self, paths: LabPaths, node: str) -> int | None: ...

    def start_replication(
        self, paths: LabPaths, replica: str, primary: str, heartbeat_period_s: float | None = ...
    ) -> None: ...

    def replica_status(self, socket: Path, timeout: float = ...) -> dict[str, str]: ...

    def replica_view(self, socket: Path, timeout: float = ...) -> dict[str, str]: ...

    def wait_replicating(
        self, paths: LabPaths, replica: str, timeout: float = ...
    ) -> dict[str, str]: ...


def for_name(name: str) -> Server:
    """The module for `name` ("mariadb" or "mysql"); ValueError for anything else."""
    if name == "mysql":
        return mysql_server
    if name == "mariadb":
        return mariadb
    raise ValueError(f"unknown server {name!r}: use one of {', '.join(SERVERS)}")
