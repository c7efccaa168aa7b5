"""Server flavours and the statements each one needs; parsing of replica status rows.

Job: turn a `SELECT VERSION(), @@version_comment` reply into a `Dialect` that names the right
statement for every replication operation monha performs (MariaDB 10.x/11.x, MySQL 5.7/8.0/8.4),
and turn a SHOW SLAVE/REPLICA STATUS row into `model.ReplicaStatus`.

Must not: do I/O, read the clock, or log. Statements that carry values (CHANGE ... TO) are
returned with `%s` placeholders and a separate parameter tuple, so a password never appears in
a statement string and can never reach a log line or an error message through it.

Version facts this module relies on (from the MySQL and MariaDB manuals):
- MySQL 8.0.22 added SHOW REPLICA STATUS / START|STOP|RESET REPLICA (with Source_*/Replica_*
  column names); 8.0.23 added CHANGE REPLICATION SOURCE TO; 8.2.0 added SHOW BINARY LOG STATUS;
  8.4 removed the SLAVE/MASTER forms (SHOW SLAVE STATUS, CHANGE MASTER TO, SHOW MASTER STATUS).
  super_read_only exists from 5.7.8. WAIT_FOR_EXECUTED_GTID_SET from 5.7.5.
- MariaDB keeps the Master_*/Slave_* column names even for SHOW REPLICA STATUS; it has
  CHANGE MASTER TO only. SHOW ALL SLAVES STATUS adds Slave_received_heartbeats and
  Slave_heartbeat_period. From 10.5.2, read_only is bypassed by the READ_ONLY ADMIN privilege
  (which ALL PRIVILEGES includes; from 10.11.0 SUPER no longer implies it, MDEV-29596). There is
  no super_read_only: until 12.0 nothing stops a READ_ONLY ADMIN user from writing while
  read_only=ON. 12.0 (MDEV-36425) made read_only an enum whose NO_LOCK_NO_ADMIN value also
  blocks those users; monha uses it where it exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from monha.model import BinlogCoordinates, ReplicaStatus


class DialectError(ValueError):
    """A server reply that this module cannot interpret. The message names the column."""


class Flavor(StrEnum):
    MARIADB = "mariadb"
    MYSQL = "mysql"


Version = tuple[int, int, int]

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# Reconnection attempts of a MySQL replica's IO thread: a day at the 1 s connect retry.
RETRY_COUNT = 86400


@dataclass(frozen=True, slots=True)
class Dialect:
    """The statements one server flavour/version understands.

    Every statement is a single statement (no `;` chains): the client library is not asked to
    allow multi-statements, and a failure then names exactly which statement failed.
    """

    flavor: Flavor
    version: Version
    version_string: str = ""

    @property
    def is_mariadb(self) -> bool:
        return self.flavor is Flavor.MARIADB

    def _mysql_at_least(self, *v: int) -> bool:
        return self.flavor is Flavor.MYSQL and self.version >= _pad(v)

    def _mariadb_at_least(self, *v: int) -> bool:
        return self.flavor is Flavor.MARIADB and self.version >= _pad(v)

    @property
    def uses_replica_terms(self) -> bool:
        """True when the server has SHOW REPLICA STATUS / STOP REPLICA etc."""
        return self._mysql_at_least(8, 0, 22) or self._mariadb_at_least(10, 5, 1)

    # --- replica status -------------------------------------------------------------------

    @property
    def replica_status_sql(self) -> str:
        # MariaDB: the ALL form is the one that reports heartbeat counters and period; the
        # caller picks the default (unnamed) connection out of it with `pick_default_row`.
        if self.is_mariadb:
            return "SHOW ALL SLAVES STATUS"
        return "SHOW REPLICA STATUS" if self.uses_replica_terms else "SHOW SLAVE STATUS"

    @property
    def heartbeat_period_sql(self) -> str | None:
        """Where the heartbeat period is when the status row has none (MySQL; MariaDB: None).

        No row means performance_schema is off: the period is then unknown.
        """
        if self.is_mariadb:
            return None
        return (
            "SELECT HEARTBEAT_INTERVAL FROM performance_schema.replication_connection_configuration"
            " WHERE CHANNEL_NAME = ''"
        )

    @property
    def applier_threads_sql(self) -> str | None:
        """(connection id, state) of each applier thread of the default channel: the SQL
        thread or coordinator and its workers (MySQL; None on MariaDB, where monha does not
        end an applier). Joined on the channel so that no other channel's thread is named."""
        if self.is_mariadb:
            return None
        return (
            "SELECT t.PROCESSLIST_ID, t.PROCESSLIST_STATE FROM performance_schema.threads t"
            " JOIN performance_schema.replication_applier_status_by_coordinator c"
            " ON c.THREAD_ID = t.THREAD_ID WHERE c.CHANNEL_NAME = ''"
            " UNION ALL"
            " SELECT t.PROCESSLIST_ID, t.PROCESSLIST_STATE FROM performance_schema.threads t"
            " JOIN performance_schema.replication_applier_status_by_worker w"
            " ON w.THREAD_ID = t.THREAD_ID WHERE w.CHANNEL_NAME = ''"
        )

    @property
    def stop_replica_sql(self) -> str:
        return "STOP REPLICA" if self.uses_replica_terms else "STOP SLAVE"

    @property
    def start_replica_sql(self) -> str:
        return "START REPLICA" if self.uses_replica_terms else "START SLAVE"

    @property
    def net_timeout_variable(self) -> str:
        """MySQL 8.0.26 renamed slave_net_timeout; MariaDB kept the old name."""
        return "replica_net_timeout" if self._mysql_at_least(8, 0, 26) else "slave_net_timeout"

    @property
    def reset_replica_all_sql(self) -> str:
        return "RESET REPLICA ALL" if self.uses_replica_terms else "RESET SLAVE ALL"

    # --- binary log position --------------------------------------------------------------

    @property
    def binlog_status_sql(self) -> str:
        if self._mysql_at_least(8, 2, 0):
            return "SHOW BINARY LOG STATUS"
        if self._mariadb_at_least(10, 5, 2):
            return "SHOW BINLOG STATUS"
        return "SHOW MASTER STATUS"

    @property
    def gtid_executed_sql(self) -> str:
        """Everything this server has in its own binary log (what it would serve to a replica)."""
        return (
            "SELECT @@GLOBAL.gtid_binlog_pos"
            if self.is_mariadb
            else "SELECT @@GLOBAL.gtid_executed"
        )

    @property
    def gtid_applied_sql(self) -> str:
        """What this server has applied as a replica (MariaDB) / executed at all (MySQL)."""
        return (
            "SELECT @@GLOBAL.gtid_slave_pos" if self.is_mariadb else "SELECT @@GLOBAL.gtid_executed"
        )

    @property
    def gtid_current_sql(self) -> str:
        """Binlog and replica positions merged (MariaDB gtid_current_pos); MySQL: gtid_executed."""
        return (
            "SELECT @@GLOBAL.gtid_current_pos"
            if self.is_mariadb
            else "SELECT @@GLOBAL.gtid_executed"
        )

    @property
    def gtid_enabled_sql(self) -> str | None:
        """A query returning a truthy first column when GTID auto-positioning can be used.

        MariaDB always has GTIDs (None: nothing to ask). MySQL only with gtid_mode=ON.
        """
        return None if self.is_mariadb else "SELECT @@GLOBAL.gtid_mode = 'ON'"

    # --- waiting for the applier ----------------------------------------------------------

    def wait_gtid_sql(self) -> str:
        """Wait until the given GTID set/position is applied; params: (gtid, timeout_s).

        Result 0 = reached; MariaDB returns -1 and MySQL 1 on timeout; NULL on error.
        """
        if self.is_mariadb:
            return "SELECT MASTER_GTID_WAIT(%s, %s)"
        return "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"

    def wait_position_sql(self) -> str:
        """Wait for the applier to reach (file, pos); params: (file, pos, timeout_s)."""
        if self._mysql_at_least(8, 0, 26):
            return "SELECT SOURCE_POS_WAIT(%s, %s, %s)"
        return "SELECT MASTER_POS_WAIT(%s, %s, %s)"

    # --- read_only ------------------------------------------------------------------------

    @property
    def has_super_read_only(self) -> bool:
        return self._mysql_at_least(5, 7, 8)

    @property
    def read_only_sql(self) -> str:
        """A query whose first column is true when writes by ordinary users are refused."""
        return "SELECT @@GLOBAL.read_only"

    @property
    def read_only_blocks_admins(self) -> bool:
        """True when `set_read_only_sql(True)` also stops users who hold the bypass privilege.

        False for MariaDB before 12.0: an ALL PRIVILEGES user (READ_ONLY ADMIN) can still
        write, so a fence must not rely on read_only alone there (stop the service as well).
        """
        return self.has_super_read_only or self._mariadb_at_least(12, 0, 0)

    def set_read_only_sql(self, on: bool) -> tuple[str, ...]:
        """Statements, in order, that turn read-only on (the strongest form) or fully off."""
        if self.has_super_read_only:
            # super_read_only=ON implies read_only=ON, and read_only=OFF clears super_read_only;
            # both are still spelled out so the order never depends on that coupling.
            if on:
                return ("SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON")
            return ("SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF")
        if on and self._mariadb_at_least(12, 0, 0):
            return ("SET GLOBAL read_only = NO_LOCK_NO_ADMIN",)
        return (f"SET GLOBAL read_only = {'ON' if on else 'OFF'}",)

    # --- change source --------------------------------------------------------------------

    def change_source_sql(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        heartbeat_period_s: float,
        coordinates: BinlogCoordinates | None = None,
        use_gtid: bool = False,
        connect_retry_s: int = 1,
        ssl: bool | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        """CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO, as (statement, params).

        Exactly one starting point: `use_gtid` (MariaDB MASTER_USE_GTID=slave_pos, MySQL
        SOURCE_AUTO_POSITION=1 — MySQL needs gtid_mode=ON) or file/position `coordinates`.
        `connect_retry_s` defaults to 1: after a quick restart of the primary the IO thread
        otherwise waits the default 60 s before reconnecting. `ssl` sets MASTER/SOURCE_SSL
        (None leaves the server's setting).

        MySQL 8.0.4+ also gets GET_SOURCE_PUBLIC_KEY=1: with caching_sha2_password (the
        default there) and no TLS, the IO thread's login fails with error 2061 whenever the
        source's authentication cache is cold (after its restart or FLUSH PRIVILEGES) — which
        is exactly when rejoin and switchover run.
        """
        if use_gtid == (coordinates is not None):
            raise ValueError("change_source needs exactly one of use_gtid or coordinates")
        _check_heartbeat(heartbeat_period_s)
        if not 1 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        if connect_retry_s < 1:
            raise ValueError(f"connect_retry_s must be >= 1 (got {connect_retry_s})")
        new_syntax = self._mysql_at_least(8, 0, 23)
        k = "SOURCE" if new_syntax else "MASTER"
        # The heartbeat period is formatted here (not passed as a parameter) so it never turns
        # into a quoted string or an exponent; it was range-checked above.
        parts = [
            f"{k}_HOST = %s",
            f"{k}_PORT = %s",
            f"{k}_USER = %s",
            f"{k}_PASSWORD = %s",
            f"{k}_CONNECT_RETRY = %s",
            f"{k}_HEARTBEAT_PERIOD = {heartbeat_period_s:.3f}",
        ]
        params: list[Any] = [host, int(port), user, password, int(connect_retry_s)]
        if use_gtid:
            parts.append(
                "MASTER_USE_GTID = slave_pos" if self.is_mariadb else f"{k}_AUTO_POSITION = 1"
            )
        else:
            assert coordinates is not None
            if not coordinates.file or coordinates.position < 4:
                raise ValueError(
                    f"unusable binlog coordinates: {coordinates.file!r}:{coordinates.position}"
                )
            parts += [f"{k}_LOG_FILE = %s", f"{k}_LOG_POS = %s"]
            params += [coordinates.file, int(coordinates.position)]
            if self.is_mariadb:
                # Explicit file/position on MariaDB means "not by GTID".
                parts.append("MASTER_USE_GTID = no")
            elif self._mysql_at_least(5, 6, 5):
                parts.append(f"{k}_AUTO_POSITION = 0")
        if not self.is_mariadb:
            # The IO thread gives up after this many reconnection attempts (MySQL 9.7 stops
            # after 10): a primary away for longer would leave replication stopped for good.
            # MariaDB's counterpart is the server option master_retry_count (default 86400).
            parts.append(f"{k}_RETRY_COUNT = {RETRY_COUNT}")
        if ssl is not None:
            parts.append(f"{k}_SSL = {int(ssl)}")
        if self._mysql_at_least(8, 0, 4):
            parts.append(f"GET_{k}_PUBLIC_KEY = 1")
        verb = "CHANGE REPLICATION SOURCE TO" if new_syntax else "CHANGE MASTER TO"
        return f"{verb} " + ", ".join(parts), tuple(params)

    def set_heartbeat_sql(self, heartbeat_period_s: float) -> str:
        """Change only the heartbeat period (replica threads must be stopped)."""
        _check_heartbeat(heartbeat_period_s)
        if self._mysql_at_least(8, 0, 23):
            return (
                f"CHANGE REPLICATION SOURCE TO SOURCE_HEARTBEAT_PERIOD = {heartbeat_period_s:.3f}"
            )
        return f"CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {heartbeat_period_s:.3f}"


def _pad(v: Sequence[int]) -> Version:
    t = (*v, 0, 0, 0)
    return (t[0], t[1], t[2])


def _check_heartbeat(period_s: float) -> None:
    # Both servers accept 0 (disabled) .. 4294967 seconds; resolution is milliseconds.
    if not 0 <= period_s <= 4294967:
        raise ValueError(f"heartbeat_period_s out of range 0..4294967 (got {period_s})")


_TOOL_VER3 = re.compile(r"\b(?:Ver|Distrib) (\d+)\.(\d+)\.(\d+)")
# Client tools that `tool_flavor` can judge (by the program's base name).
CLIENT_TOOLS = frozenset({"mysql", "mariadb", "mysqlbinlog", "mariadb-binlog"})


def tool_flavor(help_head: str) -> Flavor | None:
    """Whose client tool printed this (the first lines of its `--help`: the version line and
    the copyright). MariaDB's name MariaDB in one or the other ("Oracle, MariaDB Corporation
    Ab and others"); Oracle's say "Oracle and/or its affiliates", or carry a server version
    (mysql 5.7: "Distrib 5.7.44"; 8.0 and later: "Ver 8.0.36"). mysqlbinlog 5.7 and
    mariadb-binlog both print "Ver 3.x": the version line alone cannot tell. None: unknown."""
    text = help_head.lower()
    if "mariadb" in text:
        return Flavor.MARIADB
    if "oracle and/or its affiliates" in text:
        return Flavor.MYSQL
    m = _TOOL_VER3.search(help_head)
    if m is not None and int(m.group(1)) in (5, 8, 9):
        return Flavor.MYSQL
    return None


def version_tuple(version: str) -> Version | None:
    """(major, minor, patch) from a VERSION() string; None when it has none."""
    m = _VERSION_RE.search(version)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def detect(version: str, version_comment: str = "") -> Dialect:
    """Build the Dialect from `SELECT VERSION()` and `@@version_comment`.

    MariaDB names itself in VERSION() ("10.11.6-MariaDB-0+deb12u1-log"); some builds and the
    wire handshake prefix "5.5.5-", which is skipped. Everything else (Percona, Oracle) is MySQL.
    """
    text = version.strip()
    is_maria = "mariadb" in text.lower() or "mariadb" in version_comment.lower()
    if is_maria and text.startswith("5.5.5-"):
        text = text[len("5.5.5-") :]
    m = _VERSION_RE.match(text)
    if m is None:
        raise DialectError(f"VERSION(): cannot read a version number from {version!r}")
    v = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if not is_maria and v[0] not in (5, 8, 9):
        raise DialectError(f"VERSION(): unknown MySQL series {version!r}")
    return Dialect(Flavor.MARIADB if is_maria else Flavor.MYSQL, v, version.strip())


# --- replica status parsing -------------------------------------------------------------------

# Each field: the column names that carry it, new spelling first. Lookups ignore case: the
# MariaDB manual itself prints both Master_host and Master_Host.
_COLS: dict[str, tuple[str, ...]] = {
    "io_running": ("Replica_IO_Running", "Slave_IO_Running"),
    "sql_running": ("Replica_SQL_Running", "Slave_SQL_Running"),
    "sql_state": ("Replica_SQL_Running_State", "Slave_SQL_Running_State"),
    "host": ("Source_Host", "Master_Host"),
    "port": ("Source_Port", "Master_Port"),
    "read_file": ("Source_Log_File", "Master_Log_File"),
    "read_pos": ("Read_Source_Log_Pos", "Read_Master_Log_Pos"),
    "exec_file": ("Relay_Source_Log_File", "Relay_Master_Log_File"),
    "exec_pos": ("Exec_Source_Log_Pos", "Exec_Master_Log_Pos"),
    "io_errno": ("Last_IO_Errno",),
    "io_error": ("Last_IO_Error",),
    "sql_errno": ("Last_SQL_Errno",),
    "sql_error": ("Last_SQL_Error",),
    "behind": ("Seconds_Behind_Source", "Seconds_Behind_Master"),
    "gtid_io": ("Gtid_IO_Pos", "Retrieved_Gtid_Set"),
    "gtid_exec": ("Gtid_Slave_Pos", "Executed_Gtid_Set"),
    "heartbeat_period": ("Slave_heartbeat_period", "Replica_heartbeat_period"),
    "heartbeats": ("Slave_received_heartbeats", "Replica_received_heartbeats"),
}
_REQUIRED = ("io_running", "sql_running", "host", "read_file", "read_pos", "exec_file", "exec_pos")


class _Row:
    """Case-insensitive access to one status row, with errors that name the column."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = {str(k).lower(): (k, v) for k, v in row.items()}

    def get(self, field: str, *, required: bool = False) -> tuple[str, Any] | None:
        for name in _COLS[field]:
            hit = self._row.get(name.lower())
            if hit is not None:
                k, v = hit
                return k, (v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else v)
        if required:
            raise DialectError(f"replica status: missing column {' / '.join(_COLS[field])}")
        return None

    def text(self, field: str, *, required: bool = False) -> str:
        hit = self.get(field, required=required)
        return "" if hit is None or hit[1] is None else str(hit[1]).strip()

    def integer(self, field: str, *, required: bool = False) -> int | None:
        hit = self.get(field, required=required)
        if hit is None or hit[1] is None or hit[1] == "":
            if required:
                name = hit[0] if hit else _COLS[field][0]
                raise DialectError(f"replica status: column {name} is empty")
            return None
        name, v = hit
        if isinstance(v, bool):
            raise DialectError(f"replica status: column {name} is not a number: {v!r}")
        try:
            n = int(str(v).strip())
        except ValueError:
            raise DialectError(f"replica status: column {name} is not a number: {v!r}") from None
        if n < 0:
            raise DialectError(f"replica status: column {name} is negative: {v!r}")
        return n

    def number(self, field: str) -> float | None:
        hit = self.get(field)
        if hit is None or hit[1] is None or hit[1] == "":
            return None
        name, v = hit
        try:
            return float(str(v).strip())
        except ValueError:
            raise DialectError(f"replica status: column {name} is not a number: {v!r}") from None


def pick_default_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row of the default (unnamed) replication connection/channel, or None.

    monha manages exactly one replication stream. A server with only named connections or
    channels is reported as not configured rather than guessing which one is "the" primary.
    """
    for row in rows:
        lowered = {str(k).lower(): v for k, v in row.items()}
        name = lowered.get("connection_name", lowered.get("channel_name", ""))
        if isinstance(name, bytes | bytearray):
            name = name.decode("utf-8", "replace")
        if not name:
            return row
    return None


def parse_replica_status(row: Mapping[str, Any] | None) -> ReplicaStatus:
    """Turn one SHOW SLAVE/REPLICA STATUS row into a ReplicaStatus.

    None or an empty row means the server has no replication configured. A row that lacks a
    required column, or carries a non-numeric position, raises DialectError naming the column.
    """
    if not row:
        return ReplicaStatus(configured=False)
    r = _Row(row)
    for field in _REQUIRED:
        r.get(field, required=True)
    gtid_io = _squash(r.text("gtid_io"))
    gtid_exec = _squash(r.text("gtid_exec"))
    read_pos = r.integer("read_pos", required=True)
    exec_pos = r.integer("exec_pos", required=True)
    assert read_pos is not None and exec_pos is not None
    return ReplicaStatus(
        configured=True,
        io_running=r.text("io_running"),
        sql_running=r.text("sql_running"),
        sql_state=r.text("sql_state"),
        source_host=r.text("host"),
        source_port=r.integer("port"),
        last_io_errno=r.integer("io_errno") or 0,
        last_io_error=r.text("io_error"),
        last_sql_errno=r.integer("sql_errno") or 0,
        last_sql_error=r.text("sql_error"),
        seconds_behind=r.integer("behind"),
        read_position=BinlogCoordinates(r.text("read_file"), read_pos, gtid_io),
        exec_position=BinlogCoordinates(r.text("exec_file"), exec_pos, gtid_exec),
        gtid_io_pos=gtid_io,
        gtid_slave_pos=gtid_exec,
        heartbeat_period_s=r.number("heartbeat_period"),
    )


def received_heartbeats(row: Mapping[str, Any] | None) -> int | None:
    """Slave_received_heartbeats from a SHOW ALL SLAVES STATUS row (MariaDB), if present."""
    return _Row(row).integer("heartbeats") if row else None


def _squash(gtid_set: str) -> str:
    # MySQL prints long GTID sets over several lines ("uuid:1-5,\nuuid2:1-3").
    return "".join(gtid_set.split())


def parse_binlog_status(row: Mapping[str, Any] | None, gtid: str = "") -> BinlogCoordinates:
    """SHOW MASTER/BINLOG/BINARY LOG STATUS row -> coordinates.

    An empty reply means binary logging is off: file "" and position 0, so the caller can tell
    that failback by file/position is impossible from this server.
    """
    if not row:
        return BinlogCoordinates("", 0, gtid)
    lowered = {str(k).lower(): v for k, v in row.items()}
    if "file" not in lowered or "position" not in lowered:
        raise DialectError("binlog status: missing column File / Position")
    file = lowered["file"]
    try:
        file = file.decode() if isinstance(file, bytes | bytearray) else str(file or "")
    except UnicodeDecodeError:
        raise DialectError(f"binlog status: column File is not text: {file!r}") from None
    pos = lowered["position"]
    try:
        position = int(str(pos).strip())
    except ValueError:
        raise DialectError(f"binlog status: column Position is not a number: {pos!r}") from None
    # MySQL returns the executed GTID set in the same row; prefer the caller's when given.
    if not gtid:
        gtid = _squash(str(lowered.get("executed_gtid_set") or ""))
    return BinlogCoordinates(file, position, gtid)


def parse_bool_variable(value: Any, name: str) -> bool:
    """A boolean server variable as returned by SELECT @@x: 0/1, "ON"/"OFF", or an enum.

    MariaDB 12's read_only enum returns OFF/ON/NO_LOCK/NO_LOCK_NO_ADMIN; anything but OFF is on.
    """
    if isinstance(value, bytes | bytearray):
        value = value.decode(errors="replace")  # not UTF-8: refused below as not a boolean
    if isinstance(value, int):
        return value != 0
    s = str(value).strip().upper()
    if s in ("0", "OFF", "FALSE"):
        return False
    if s in ("1", "ON", "TRUE", "NO_LOCK", "NO_LOCK_NO_ADMIN"):
        return True
    raise DialectError(f"{name}: not a boolean: {value!r}")


# --- "heard from the primary", from successive samples ------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactSample:
    """One reading of the replica's connection counters, stamped with the caller's clock."""

    at: float
    heartbeats: int | None  # received-heartbeats counter; None where the server has none
    read_file: str  # the IO thread's read position in the primary's binary log
    read_pos: int
    io_running: str


@dataclass(frozen=True, slots=True)
class Contact:
    """The last sample and when the replica was last seen to have received something."""

    last: ContactSample
    heard_at: float  # the sample at which the last receipt was seen, or the first sample
    samples: int


def update_contact(previous: Contact | None, sample: ContactSample) -> Contact:
    """Fold a new sample into the contact record.

    The replica heard from its primary between two samples when the heartbeat counter went up,
    or when its read position moved while the IO thread runs (events, which replace heartbeats
    while the primary is busy). A counter that went down was reset (CHANGE MASTER, RESET,
    restart): that is not evidence of contact, only a new baseline. A sample whose clock went
    backwards also starts over.

    Safety: `heard_at` is the time of the sample that showed the receipt, which is at or after
    the real receipt, so the silence derived from it is a lower bound — it can only make the
    primary look more recently heard from, never less (never a reason to promote early).
    """
    if previous is None or sample.at < previous.last.at:
        return Contact(sample, sample.at, 1)
    p = previous.last
    beat = (
        sample.heartbeats is not None
        and p.heartbeats is not None
        and sample.heartbeats > p.heartbeats
    )
    moved = sample.io_running == "Yes" and (sample.read_file, sample.read_pos) != (
        p.read_file,
        p.read_pos,
    )
    return Contact(
        sample, sample.at if (beat or moved) else previous.heard_at, previous.samples + 1
    )


def seconds_since_heard(contact: Contact | None, now: float) -> float | None:
    """Lower bound of the replica's silence at `now`; None until two samples were taken.

    With one sample nothing is known yet. With more, the replica has heard nothing since
    `heard_at` (or at least since the first sample), so `now - heard_at` is a safe lower bound.
    """
    if contact is None or contact.samples < 2:
        return None
    return max(0.0, now - contact.heard_at)
