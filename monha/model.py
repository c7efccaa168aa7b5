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
    # The journal exists but cannot be replayed (unreadable, or not a plan this monha can
    # run): nothing runs automatically until an operator looks at it (status says how).
    BLOCKED = "blocked"


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
    # For a witness probe (name "witness", target = the witness's name): whether the witness
    # itself reached the primary's MySQL (issue 8's secondary check). None when the witness was
    # not asked (an ICMP-only witness) or could not tell. Unused by other probes.
    sees_primary: bool | None = None
    # For a witness probe: whether the witness answered ICMP (for one asked over SSH, whatever
    # its check said): a primary hearing it may be seen by it too (split_brain.heard_at).
    reached: bool = False

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
    sql_state: str = ""  # Slave_SQL_Running_State: what the SQL thread is doing
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
    def sql_idle(self) -> bool:
        """The SQL thread has consumed its whole relay log and waits for more."""
        return "has read all relay log" in self.sql_state

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
    # The primary's MySQL checked from the primary itself, over SSH (a ping to 127.0.0.1):
    # tells a dead or hung mysqld from a lossy network between the nodes. None: not run.
    primary_local_mysql: ProbeResult | None = None
    flag_present: bool = False
    # A failover was started and not finished (read from the journal). "Finished" means its
    # write_flag step is recorded done: a flag on disk with the journal still open must not
    # look like an unfinished failover once the operator clears the flag.
    journal_open: bool = False
    # The open plan already changed a node (a fence, salvage or promote step recorded done):
    # from then on only finishing it leads back to one primary, whatever the peer does.
    plan_committed: bool = False
    # When the open plan last ran or will run (journal.last_active_at; None: no open plan).
    plan_active_at: float | None = None
    # The open plan waits for the old primary's step-down (an await_peer_step_down step).
    plan_waits: bool = False
    # Non-empty when the journal exists but cannot be replayed: what is wrong, naming the file.
    journal_problem: str = ""
    # The primary's own binary log end, read from it this tick (None: it did not answer).
    # The last one known before a fault bounds what a failover may lose.
    primary_position: BinlogCoordinates | None = None


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


# --- The core's vocabulary: events, decisions and plans. --------------------------------------
# These live here rather than in fsm/plan so that the executor, journal, metrics and control API
# can name them without importing the core's logic.


class Event(StrEnum):
    """What one tick's observation means, as `fsm.classify` sums it up. A closed set: every
    (State, Event) pair has exactly one row in the transition table."""

    FLAG_PRESENT = "flag_present"  # the completion flag exists: no automatic failover
    FAILOVER_UNFINISHED = "failover_unfinished"  # the journal shows a failover not finished
    PRIMARY_OK = "primary_ok"  # the primary's MySQL answered
    PRIMARY_ALIVE_ERROR = "primary_alive_error"  # it refused us in a way that proves it is alive
    PRIMARY_ALIVE_LOCALLY = "primary_alive_locally"  # no answer to us, but it answers on its host
    PRIMARY_FAILED = "primary_failed"  # its MySQL probe failed, fewer times than the threshold
    PRIMARY_LOST = "primary_lost"  # threshold reached and every failover condition holds
    HOLD_ISOLATED = "hold_isolated"  # threshold reached, but no witness answered this node
    HOLD_PARTITION = "hold_partition"  # threshold reached, but a witness still sees the primary
    HOLD_REPLICA_CONNECTED = "hold_replica_connected"  # the replica still hears the primary
    HOLD_EVIDENCE_MISSING = "hold_evidence_missing"  # some evidence needed to decide is missing
    # threshold reached, but the replica is stale or broken: its SQL thread stopped or failed,
    # its IO thread was failing before the fault, or it lagged more than probe.max_lag_s
    HOLD_REPLICA_STALE = "hold_replica_stale"
    # threshold reached, but nothing can fence the primary (SSH does not reach it, no fence
    # command) and a witness that answered cannot tell whether it still reaches the primary:
    # the primary may hear that witness and never step down by itself
    HOLD_UNFENCEABLE = "hold_unfenceable"
    # An open plan stopped at a failed step; its next attempt is not due yet (back-off).
    PLAN_RETRY_WAIT = "plan_retry_wait"
    # An open plan that changed nothing yet, while the primary answers again or a hold rule
    # now applies: the plan is closed as abandoned, monitoring goes on.
    PLAN_ABANDONED = "plan_abandoned"
    # An open plan that changed nothing yet and can no longer run as journaled (the old
    # primary's host is down: its SSH fence cannot run): closed, and decided afresh.
    PLAN_SUPERSEDED = "plan_superseded"
    JOURNAL_UNREADABLE = "journal_unreadable"  # the journal exists but cannot be replayed


class ReasonCode(StrEnum):
    """A bounded code for every decision: safe as a metric label, unlike the reason sentence."""

    PRIMARY_OK = "primary_ok"
    PRIMARY_ALIVE_ERROR = "primary_alive_error"
    PRIMARY_ALIVE_LOCALLY = "primary_alive_locally"
    PRIMARY_RECOVERED = "primary_recovered"
    PRIMARY_FAILING = "primary_failing"
    FAILOVER_STARTED = "failover_started"
    FAILOVER_RESUMED = "failover_resumed"
    FAILOVER_IN_PROGRESS = "failover_in_progress"
    FAILOVER_DONE = "failover_done"
    FLAG_BLOCKS = "flag_blocks"
    FLAG_CLEARED = "flag_cleared"
    JOURNAL_AFTER_FLAG = "journal_after_flag"
    HOLD_ISOLATED = "hold_isolated"
    HOLD_PARTITION = "hold_partition"
    HOLD_REPLICA_CONNECTED = "hold_replica_connected"
    HOLD_EVIDENCE_MISSING = "hold_evidence_missing"
    HOLD_REPLICA_STALE = "hold_replica_stale"
    HOLD_UNFENCEABLE = "hold_unfenceable"
    FAILOVER_RETRY_WAIT = "failover_retry_wait"
    FAILOVER_ABANDONED = "failover_abandoned"
    FAILOVER_SUPERSEDED = "failover_superseded"
    JOURNAL_UNREADABLE = "journal_unreadable"


class PlanKind(StrEnum):
    """What a transition's plan is for. RESUME carries no steps: the executor replays the plan
    the journal holds, exactly as it was decided, skipping what it records as done. ABANDON
    closes the journal's plan without running anything."""

    NONE = "none"
    FAILOVER = "failover"
    RESUME = "resume"
    ABANDON = "abandon"
    SWITCHOVER = "switchover"  # planned, started by an operator; journaled, never flagged


class StepKind(StrEnum):
    """One action of a failover or switchover plan. `Step.node` says where it runs."""

    VIP_DOWN = "vip_down"  # remove the VIP from the node (absent already = success)
    STOP_SERVICE = "stop_service"  # run a cold-standby service's stop command
    FENCE_MYSQL = "fence_mysql"  # read_only on; if MySQL does not answer, stop its service
    FENCE_COMMAND = "fence_command"  # run the configured fence command (e.g. IPMI power-off)
    SET_READ_ONLY = "set_read_only"  # planned: read_only on, and wait until writes stopped
    CATCH_UP = "catch_up"  # wait (bounded) until the replica applied everything it received
    # copy the binlog events the replica never received from the old primary (over SSH) and
    # apply them here, before promoting (issue 4)
    SALVAGE_BINLOG = "salvage_binlog"
    PROMOTE = "promote"  # stop replication, reset replica settings, read_only off, record coords
    VIP_UP = "vip_up"  # add the VIP with its label, then gratuitous ARP
    START_SERVICE = "start_service"  # run a cold-standby service's start command
    RESTART_AGENT = "restart_agent"  # run an agent's restart command
    CHECK_HOT = "check_hot"  # HTTP check of a hot-standby service through the VIP
    MAKE_REPLICA = "make_replica"  # planned: point the old primary at the new one
    WRITE_FLAG = "write_flag"  # write the completion flag atomically (last step of a failover)
    # wait until an old primary that SSH could not reach has stepped down by itself for
    # isolation (failover.isolation_fence_s, counted from when it was last heard, plus slack)
    AWAIT_PEER_STEP_DOWN = "await_peer_step_down"


class OnFailure(StrEnum):
    """What the executor does when a step fails: stop the plan there, or record and go on."""

    STOP = "stop"
    CONTINUE = "continue"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a plan: data only; the executor runs it.

    `node` is the node the step runs on: the local node runs it as a local command, the other
    node is reached over SSH. (A fence command runs on the new primary and names the old primary
    in `args["target"]`.) `argv` is the command for command steps; `args` holds small string
    parameters (a service name, the VIP, a URL). `key` is stable across rebuilds of the same
    plan, so a journal can tell which steps of a resumed plan already ran.
    """

    kind: StepKind
    node: str
    timeout_s: float
    on_failure: OnFailure = OnFailure.STOP
    args: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()

    def arg(self, key: str, default: str = "") -> str:
        for k, v in self.args:
            if k == key:
                return v
        return default

    @property
    def key(self) -> str:
        name = self.arg("name")
        return f"{self.kind}@{self.node}" + (f":{name}" if name else "")


@dataclass(frozen=True, slots=True)
class MonitorState:
    """The monitor's state plus what must live across ticks. Returned, never mutated.

    `consecutive_failures` counts failed MySQL probes of the primary in a row;
    `first_failure_at` is the observation time of the first of them (None when the count is 0);
    `since` is when the state was entered; `failover_started_at` is when the current failover's
    plan was emitted (None outside failing_over/done_flagged). `plan_attempts` counts runs of
    the open plan that stopped at a failed step; `next_attempt_at` is when the next may start
    (the back-off of `fsm.plan_stopped`).
    """

    state: State = State.HEALTHY
    consecutive_failures: int = 0
    first_failure_at: float | None = None
    since: float | None = None
    failover_started_at: float | None = None
    plan_attempts: int = 0
    next_attempt_at: float | None = None
    # What the last ticks said before a fault, kept for the failover's own checks:
    # ICMP probes of the primary lost in a row ("host down" needs several); the replica's lag
    # and since when its IO thread has failed, both as last seen while the primary answered
    # (the stale-replica guard); the primary's last known binlog position (the loss bound).
    icmp_losses: int = 0
    lag_s: float | None = None
    io_failing_since: float | None = None
    primary_position: BinlogCoordinates | None = None
    # When anything of the primary's host (MySQL, ICMP, SSH) last answered, or a witness saw
    # it, or this node could not tell (it heard no witness either, or did not tick): an
    # isolated primary's own silence began no earlier, and its self-fencing counts from it.
    primary_heard_at: float | None = None
    observed_at: float | None = None  # the last tick's time (a gap: this node was away)


@dataclass(frozen=True, slots=True)
class Decision:
    """What `fsm.decide` returns for one tick: the next state, a plan (empty unless a failover
    starts or resumes), a bounded reason code and a sentence naming the evidence."""

    state: MonitorState
    plan: tuple[Step, ...]
    reason_code: ReasonCode
    reason: str
    event: Event
    plan_kind: PlanKind = PlanKind.NONE
