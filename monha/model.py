"""The shared vocabulary: enums and frozen values passed between the shell and the core.

Nothing here does I/O, reads the clock or knows about asyncio; every other module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """The monitor's states. Values are lower-case: they become log fields and a metric."""

    HEALTHY = "healthy"
    SUSPECT = "suspect"
    FAILING_OVER = "failing_over"
    DONE_FLAGGED = "done_flagged"


class ProbeStatus(StrEnum):
    """How one probe ended."""

    OK = "ok"  # the target answered as expected
    ALIVE_ERROR = "alive_error"  # the server refused us in a way that proves it is alive
    FAILED = "failed"  # no answer, connection refused, host unreachable, wrong reply
    TIMEOUT = "timeout"  # no answer within the probe's timeout
    SKIPPED = "skipped"  # not run this tick (not configured, or not applicable)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome. `target` names what was probed (a node name or an address)."""

    name: str  # "mysql", "icmp", "ssh", "witness_icmp", ...
    target: str
    status: ProbeStatus
    latency_s: float | None = None
    detail: str = ""
    error_code: int | None = None  # a MySQL error number, where there was one

    @property
    def answered(self) -> bool:
        """True when the target proved to be alive (an OK or an alive-proving error)."""
        return self.status in (ProbeStatus.OK, ProbeStatus.ALIVE_ERROR)


@dataclass(frozen=True, slots=True)
class BinlogCoordinates:
    """A position in a binary log, with the GTID position where the server has one."""

    file: str
    position: int
    gtid: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """The local replica's own view of its primary, read from SHOW SLAVE/REPLICA STATUS.

    `None` fields mean the server did not report them. `configured` is False when the server
    has no replication set up at all (it is not a replica).
    """

    configured: bool
    io_running: str = ""  # "Yes", "No", "Connecting"
    sql_running: str = ""  # "Yes", "No"
    source_host: str = ""
    source_port: int | None = None
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    seconds_behind: int | None = None
    # Where the IO thread has read up to in the primary's binary log, and where the SQL
    # thread has applied up to (in the primary's coordinates).
    read_position: BinlogCoordinates | None = None
    exec_position: BinlogCoordinates | None = None
    gtid_io_pos: str = ""
    gtid_slave_pos: str = ""
    heartbeat_period_s: float | None = None

    @property
    def io_ok(self) -> bool:
        return self.io_running == "Yes"

    @property
    def caught_up(self) -> bool:
        """True when the SQL thread has applied everything the IO thread received."""
        return (
            self.read_position is not None
            and self.exec_position is not None
            and self.read_position.file == self.exec_position.file
            and self.read_position.position == self.exec_position.position
        )


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What the local replica knows of the primary, gathered in one tick.

    `heard_from_primary_s_ago` is how long ago the replica last received anything (an event or
    a heartbeat) from the primary; None when unknown.
    """

    probe: ProbeResult
    status: ReplicaStatus | None = None
    heard_from_primary_s_ago: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one tick saw. The clock is read once, by the shell, and stored in `at`."""

    at: float  # wall-clock seconds since the epoch, read once per tick
    primary: str  # the node name believed to be the primary
    replica: str  # this node (the standby)
    primary_mysql: ProbeResult
    primary_icmp: ProbeResult
    primary_ssh: ProbeResult
    replica_view: ReplicaView
    witnesses: tuple[ProbeResult, ...] = ()
    flag_present: bool = False
    journal_open: bool = False  # a failover was started and not finished (read from the journal)


@dataclass(frozen=True, slots=True)
class StepResult:
    """How one step of a plan ended, as recorded in the journal and the flag."""

    step: str
    node: str
    ok: bool
    started_at: float
    duration_s: float
    detail: str = ""
    skipped: bool = False
    data: dict[str, str] = field(default_factory=dict)
