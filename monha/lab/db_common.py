"""What the lab's two server modules (monha.lab.mariadb, monha.lab.mysql_server) do alike:
read a client's vertical output, wait for a server to answer, build a cached template once,
and wait for a replica to catch up. Each module passes what differs (names, commands)."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from monha.lab.names import CACHE_ROOT
from monha.lab.proc import CommandError, is_alive

# The neutral names of `replica_view`, shared by status, faults and tests.
VIEW_FIELDS: tuple[str, ...] = (
    "source_host",
    "io_running",
    "sql_running",
    "seconds_behind",
    "last_io_error",
    "last_sql_error",
    "last_sql_errno",
    "skip_counter",
    "gtid_position",
    "source_log_file",
    "read_source_log_pos",
)


def first_row(vertical: str) -> dict[str, str]:
    """The first row of a client's vertical output (`*** 1. row ***`, then `name: value`)."""
    row: dict[str, str] = {}
    for line in vertical.splitlines():
        if line.startswith("****"):
            if row:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            row[key.strip()] = value.strip()
    return row


def wait_ready(
    ready: Callable[[], bool], socket: Path, pid: int | None, timeout: float, daemon: str, name: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket.exists() and ready():
            return
        if pid is not None and not is_alive(pid):
            raise CommandError(f"{daemon} (pid {pid}) exited before it was ready")
        time.sleep(0.1)
    raise CommandError(f"{name} on {socket} not ready after {timeout} s")


def cached_template(
    final: Path, lock_name: str, build: Callable[[Path], None], announce: Callable[[], None]
) -> tuple[Path, bool]:
    """`final`/data, built by `build(final)` under a machine-wide lock if no lab built it
    yet; returns (datadir, built_now)."""
    if (final / "data").is_dir():
        return final / "data", False
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / lock_name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if (final / "data").is_dir():  # another lab built it while we waited
            return final / "data", False
        announce()
        build(final)
    return final / "data", True


def view_of(status: Mapping[str, str], columns: Mapping[str, str]) -> dict[str, str]:
    """A replica status row under the neutral names (`columns`: neutral name -> column)."""
    if not status:
        return {}
    defaults = {"seconds_behind": "NULL"}
    return {k: status.get(columns[k], defaults.get(k, "")) for k in VIEW_FIELDS}


def wait_replicating(
    view: Callable[[], dict[str, str]], replica: str, timeout: float
) -> dict[str, str]:
    """Until the replica runs both threads and is 0 s behind; CommandError after `timeout`."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(CommandError):
            seen = view()
            if (seen.get("io_running"), seen.get("sql_running"), seen.get("seconds_behind")) == (
                "Yes",
                "Yes",
                "0",
            ):
                return seen
        time.sleep(0.1)
    raise CommandError(f"replication on {replica} not running after {timeout} s: {seen}")
