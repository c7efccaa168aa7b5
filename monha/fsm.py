"""The monitor's state machine: classify a tick's observation, look the transition up, decide.

Job: `decide(state, observation, policy) -> Decision` — the next `MonitorState`, a plan (empty
unless a failover starts or resumes), a bounded reason code and a sentence naming the evidence.
Transitions are the TABLE below, one row per (state, event) pair, including the "stay, because"
rows, so a test can walk every pair and docs/state-machine.md can be rendered from it.

Must not: do I/O, read the clock, sleep, retry or log (import-linter forbids asyncio, os, time,
...). A retry is the next tick; the time of a tick is `Observation.at`, read by the shell.

The failover rule (issue 3, issue 8). After the completion flag (it always blocks) and an
unfinished journal (it is resumed), the primary's MySQL probe decides: OK or an alive-proving
error resets everything. Otherwise, once it failed `failures_before_failover` times in a row,
fail over only if ALL of:
1. no configured witness that answered still sees the primary's MySQL (else: a partition between
   the nodes, hold, naming the witness);
2. at least one witness answered this node (else this node may be the isolated one: hold), unless
   `witness_silent = "fence"`, where the failover runs only through a fence command that must
   succeed before anything is promoted;
3. this node's own MySQL answered and is a replica (else we cannot see the evidence, nor promote);
4. with witnesses: the replica lost the primary (IO thread not running, or silent for longer than
   `replica_silence_s`). Whether its host is down (`host_down_icmp_losses` ICMP probes lost in
   a row, and SSH failed) shapes the plan (no fencing over SSH) but never outweighs a replica
   that still hears the primary: on a lossy link this node's probes fail while the primary
   serves, and only the replica's stream says whether it still sends;
   without witnesses (no third vantage point; a safe rule of our own): the replica lost the
   primary AND either its host does not answer ICMP or SSH reaches it, so that fencing over SSH
   (which stops the plan if the VIP cannot be removed) keeps two primaries from serving clients.
   A primary that answers ICMP but not SSH (hung) is not failed over without a witness.
5. the replica is not stale (`stale_replica`): its SQL thread runs without error, and, as last
   seen while the primary answered, its IO thread had not been failing and its lag was not
   above `max_lag_s`. A stale replica is promoted only by an operator (`failover --force`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from monha.config import Config
from monha.model import (
    Decision,
    Event,
    MonitorState,
    Observation,
    PlanKind,
    ProbeResult,
    ProbeStatus,
    ReasonCode,
    ReplicaStatus,
    State,
    Step,
)
from monha.plan import PLAN_STALE_S, PlanInputs, build_failover_plan


@dataclass(frozen=True, slots=True)
class Policy:
    """The decision's knobs and what a plan needs, as plain values (see `from_config`)."""

    plan: PlanInputs
    failures_before_failover: int = 3
    replica_silence_s: float = 3.0
    witnesses: tuple[str, ...] = ()  # configured witness names; their results are obs.witnesses
    witness_silent: Literal["hold", "fence"] = "hold"
    # The witnesses the primary's isolation clock counts (Config.heard_witnesses): only
    # they can keep an unreachable primary serving, so only they can hold as unfenceable.
    heard_witnesses: tuple[str, ...] = ()
    max_lag_s: float = 60.0
    host_down_icmp_losses: int = 3
    interval_s: float = 1.0

    @classmethod
    def from_config(cls, cfg: Config) -> Policy:
        return cls(
            plan=PlanInputs.from_config(cfg),
            failures_before_failover=cfg.probe.failures_before_failover,
            replica_silence_s=cfg.probe.replica_silence_s,
            witnesses=tuple(w.name for w in cfg.witness),
            witness_silent=cfg.failover.witness_silent,
            heard_witnesses=cfg.heard_witnesses(),
            max_lag_s=cfg.probe.max_lag_s,
            host_down_icmp_losses=cfg.probe.host_down_icmp_losses,
            interval_s=cfg.probe.interval_s,
        )


# --- The transition table. -------------------------------------------------------------------

H, S, F, D, B = (
    State.HEALTHY,
    State.SUSPECT,
    State.FAILING_OVER,
    State.DONE_FLAGGED,
    State.BLOCKED,
)
E, R, P = Event, ReasonCode, PlanKind


@dataclass(frozen=True, slots=True)
class Row:
    source: State
    event: Event
    target: State
    plan: PlanKind
    code: ReasonCode
    comment: str  # the second half of the reason sentence: what we do, and why


_FLAG = "it blocks automatic failover until an operator clears it"
_HOLDS = (
    (E.HOLD_ISOLATED, R.HOLD_ISOLATED, "holding: this node may be the isolated one"),
    (E.HOLD_PARTITION, R.HOLD_PARTITION, "holding: a partition between the nodes is not a death"),
    (E.HOLD_REPLICA_CONNECTED, R.HOLD_REPLICA_CONNECTED, "holding: the primary is not lost"),
    (E.HOLD_EVIDENCE_MISSING, R.HOLD_EVIDENCE_MISSING, "holding: no promotion without it"),
    (
        E.HOLD_REPLICA_STALE,
        R.HOLD_REPLICA_STALE,
        "holding: a stale replica is not promoted automatically "
        "(`monha-ctl failover --force` promotes it and says what it had not applied)",
    ),
    (
        E.HOLD_UNFENCEABLE,
        R.HOLD_UNFENCEABLE,
        "holding: a primary nothing fences may still serve (configure a fence command, or "
        "witnesses with ssh_user that check its MySQL)",
    ),
)
_CLEARED = "stay no longer: the completion flag was cleared, monitoring starts again from healthy"
_BLOCKED = (
    "blocked: nothing runs automatically until an operator resolves the journal "
    "(`monha-ctl journal show`, then `monha-ctl journal discard`)"
)
_AFTER_FLAG = (
    "stay, because a failover already finished in this flag cycle: an operator must look "
    "at the journal before anything runs automatically"
)
# A journal's plan is never run by a table row's own plan: RESUME replays it as journaled.
_JOURNAL_EVENTS = (
    E.FAILOVER_UNFINISHED,
    E.PLAN_RETRY_WAIT,
    E.PLAN_ABANDONED,
    E.PLAN_SUPERSEDED,
)


def _watching(source: State) -> list[Row]:
    """Rows shared by the states that watch the primary: healthy and suspect, and failing_over
    or blocked once their journal is gone (closed, or discarded by an operator)."""
    retrying = source is F
    return [
        Row(source, E.FLAG_PRESENT, D, P.NONE, R.FLAG_BLOCKS, _FLAG),
        Row(
            source,
            E.FAILOVER_UNFINISHED,
            F,
            P.RESUME,
            R.FAILOVER_RESUMED,
            "retrying it: the journal's plan is replayed as decided, skipping the steps it "
            "records as done"
            if retrying
            else "resuming it: the journal's plan is replayed as decided, skipping the steps "
            "it records as done",
        ),
        Row(
            source,
            E.PLAN_RETRY_WAIT,
            F,
            P.NONE,
            R.FAILOVER_RETRY_WAIT,
            "waiting for the next attempt (back-off); `monha-ctl failover --force` retries now",
        ),
        Row(
            source,
            E.PLAN_ABANDONED,
            H,
            P.ABANDON,
            R.FAILOVER_ABANDONED,
            "closing the plan unfinished (it changed no node); monitoring goes on",
        ),
        Row(
            source,
            E.PLAN_SUPERSEDED,
            S,
            P.ABANDON,
            R.FAILOVER_SUPERSEDED,
            "closing the plan unfinished (it changed no node); the next tick decides afresh",
        ),
        Row(
            source,
            E.JOURNAL_UNREADABLE,
            B,
            P.NONE,
            R.JOURNAL_UNREADABLE,
            "stay, because " + _BLOCKED[9:] if source is B else _BLOCKED,
        ),
        Row(
            source,
            E.PRIMARY_OK,
            H,
            P.NONE,
            R.PRIMARY_OK if source is H else R.PRIMARY_RECOVERED,
            "all is well" if source is H else "the primary recovered",
        ),
        Row(source, E.PRIMARY_ALIVE_ERROR, H, P.NONE, R.PRIMARY_ALIVE_ERROR, "no failover"),
        Row(
            source,
            E.PRIMARY_ALIVE_LOCALLY,
            H,
            P.NONE,
            R.PRIMARY_ALIVE_LOCALLY,
            "no failover: the fault lies between the nodes, not in MySQL",
        ),
        Row(source, E.PRIMARY_FAILED, S, P.NONE, R.PRIMARY_FAILING, "suspect, not failing over"),
        Row(source, E.PRIMARY_LOST, F, P.FAILOVER, R.FAILOVER_STARTED, "failing over"),
        *(Row(source, ev, S, P.NONE, code, text) for ev, code, text in _HOLDS),
    ]


def _failing_over() -> list[Row]:
    rows = _watching(F)
    done = Row(F, E.FLAG_PRESENT, D, P.NONE, R.FAILOVER_DONE, "the failover is done and " + _FLAG)
    return [done if r.event is E.FLAG_PRESENT else r for r in rows]


TABLE: tuple[Row, ...] = (
    *_watching(H),
    *_watching(S),
    *_failing_over(),
    Row(D, E.FLAG_PRESENT, D, P.NONE, R.FLAG_BLOCKS, "stay, because " + _FLAG),
    *(Row(D, ev, D, P.NONE, R.JOURNAL_AFTER_FLAG, _AFTER_FLAG) for ev in _JOURNAL_EVENTS),
    Row(D, E.JOURNAL_UNREADABLE, B, P.NONE, R.JOURNAL_UNREADABLE, _BLOCKED),
    *(
        Row(D, ev, H, P.NONE, R.FLAG_CLEARED, _CLEARED)
        for ev in Event
        if ev not in (E.FLAG_PRESENT, E.JOURNAL_UNREADABLE, *_JOURNAL_EVENTS)
    ),
    *_watching(B),
)

_BY_PAIR: dict[tuple[State, Event], Row] = {(r.source, r.event): r for r in TABLE}


def row_for(state: State, event: Event) -> Row:
    return _BY_PAIR[(state, event)]


# --- Classification. -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assessment:
    """An event with the evidence behind it. `host_down` and `fence_required` feed the plan."""

    event: Event
    evidence: str
    failures: int
    host_down: bool = False
    fence_required: bool = False
    icmp_losses: int = 0  # the primary's ICMP probes lost in a row, counting this tick's


def _down(probe: ProbeResult) -> bool:
    # SKIPPED is not evidence of anything; only a probe that ran and got no answer is.
    return probe.status in (ProbeStatus.FAILED, ProbeStatus.TIMEOUT)


def _said(probe: ProbeResult) -> str:
    return f"{probe.status}: {probe.detail}" if probe.detail else str(probe.status)


def _alive_locally(obs: Observation) -> bool:
    local = obs.primary_local_mysql
    return local is not None and local.status is ProbeStatus.OK


def failures_after(prior: int, obs: Observation) -> int:
    """Consecutive failed MySQL probes of the primary, counting this tick's. A tick in which
    the primary's MySQL answered on its own host (over SSH) is no failure: it resets."""
    if obs.primary_mysql.answered or _alive_locally(obs):
        return 0
    return prior + 1 if _down(obs.primary_mysql) else prior


# What a fresh look says about the primary that makes an open plan pointless, while that plan
# changed no node yet: it answers, a witness still sees it, or a hold rule now applies.
_PLAN_MOOT = frozenset(
    {
        E.PRIMARY_OK,
        E.PRIMARY_ALIVE_ERROR,
        E.PRIMARY_ALIVE_LOCALLY,
        E.HOLD_ISOLATED,
        E.HOLD_PARTITION,
        E.HOLD_REPLICA_CONNECTED,
        E.HOLD_REPLICA_STALE,
        E.HOLD_UNFENCEABLE,
    }
)


def assess(
    obs: Observation,
    policy: Policy,
    prior_failures: int = 0,
    *,
    next_attempt_at: float | None = None,
    history: MonitorState | None = None,
) -> Assessment:
    """The event this observation amounts to, with its evidence in words.

    `prior_failures` is the count of consecutive failed MySQL probes before this tick (kept in
    MonitorState); the threshold depends on it, the observation alone cannot say.
    `next_attempt_at` is when a stopped plan may be retried (MonitorState's back-off).
    `history` is the state before this tick, for what earlier ticks saw (ICMP losses in a row,
    the replica's health before the fault).

    An open plan in the journal is judged with a fresh look at the primary (the evidence is
    re-checked before every attempt): once it changed a node (`plan_committed`), only finishing
    it restores a primary, so it is resumed whenever its attempt is due; before that, it is
    resumed only when the fresh look still fails the primary over, abandoned when the primary
    answers again or a hold rule applies, and otherwise waits for the evidence.
    """
    n = failures_after(prior_failures, obs)
    before = history or MonitorState()
    losses = before.icmp_losses + 1 if _down(obs.primary_icmp) else 0

    def event(ev: Event, text: str) -> Assessment:
        return Assessment(ev, text, n, icmp_losses=losses)

    if obs.flag_present:
        return event(E.FLAG_PRESENT, f"completion flag present ({policy.plan.flag_file or '?'})")
    known = {name for name, _ in policy.plan.interfaces}
    if obs.primary == obs.replica or not {obs.primary, obs.replica} <= known:
        return event(
            E.HOLD_EVIDENCE_MISSING,
            f"the observation's roles (primary {obs.primary}, replica {obs.replica}) are not "
            f"the two configured nodes {', '.join(sorted(known))}",
        )
    if obs.journal_problem:
        return event(E.JOURNAL_UNREADABLE, obs.journal_problem)
    fresh = _assess_primary(obs, policy, n, before, losses)
    if not obs.journal_open:
        return fresh
    due = next_attempt_at is None or obs.at >= next_attempt_at
    local = obs.replica_view.status
    # This node no longer replicates: a promote ran (perhaps cut off before it was recorded).
    promoted_unrecorded = local is not None and not local.configured
    if obs.plan_committed or promoted_unrecorded:
        if due:
            return event(
                E.FAILOVER_UNFINISHED,
                "the journal holds a failover plan that already changed a node and did not finish",
            )
        return event(E.PLAN_RETRY_WAIT, f"the journal's failover plan stopped; {fresh.evidence}")
    if fresh.event in _PLAN_MOOT:
        return event(
            E.PLAN_ABANDONED,
            f"the journal holds a failover plan that changed no node yet, and now {fresh.evidence}",
        )
    if obs.plan_waits and before.observed_at is None:
        # This daemon just started: whatever it missed of the old primary while it was down,
        # the plan's wait for its step-down did not look at (it may be serving again).
        return event(
            E.PLAN_SUPERSEDED,
            f"the journal holds a failover plan that changed no node yet and waits for "
            f"{obs.primary}'s step-down, and this daemon just started; now {fresh.evidence}: "
            "deciding afresh, with the wait in full",
        )
    if obs.plan_active_at is not None and obs.at - obs.plan_active_at > PLAN_STALE_S:
        # Not run for so long (this daemon was stopped, or the plan waited for evidence): the
        # old primary's guard may have come back since, so its wait is no longer a promise.
        return event(
            E.PLAN_SUPERSEDED,
            f"the journal holds a failover plan that changed no node yet and has not run for "
            f"{obs.at - obs.plan_active_at:.0f} s; now {fresh.evidence}: deciding afresh",
        )
    if fresh.event is E.PRIMARY_LOST and fresh.host_down:
        # Its steps on the old primary (fencing over SSH) can never run on a dead host, and a
        # STOP among them would block the failover for good; nothing was changed yet, so a
        # fresh decision (the next tick, with the failure count kept) is no weaker.
        return event(
            E.PLAN_SUPERSEDED,
            f"the journal holds a failover plan that changed no node yet, and now "
            f"{fresh.evidence}: deciding afresh",
        )
    if fresh.event is E.PRIMARY_LOST and due:
        return event(
            E.FAILOVER_UNFINISHED,
            f"the journal holds a failover plan that did not finish, and still {fresh.evidence}",
        )
    return event(
        E.PLAN_RETRY_WAIT,
        f"the journal holds a failover plan that changed no node yet; re-checking the "
        f"evidence before running it: {fresh.evidence}",
    )


def _assess_primary(
    obs: Observation, policy: Policy, n: int, before: MonitorState, losses: int
) -> Assessment:
    """What the probes say of the primary, the journal aside (see `assess`)."""
    primary, m = obs.primary, obs.primary_mysql

    def event(ev: Event, text: str, **kw: bool) -> Assessment:
        return Assessment(ev, text, n, icmp_losses=losses, **kw)

    if m.status is ProbeStatus.OK:
        return event(E.PRIMARY_OK, f"{primary}'s MySQL answered")
    if m.status is ProbeStatus.ALIVE_ERROR:
        return event(
            E.PRIMARY_ALIVE_ERROR,
            f"{primary}'s MySQL refused us with error {m.error_code} ({m.detail or 'no detail'}), "
            "which proves it is alive",
        )
    if not _down(m):
        return event(E.HOLD_EVIDENCE_MISSING, f"{primary}'s MySQL was not probed this tick")
    if _alive_locally(obs):
        return event(
            E.PRIMARY_ALIVE_LOCALLY,
            f"{primary}'s MySQL did not answer us ({_said(m)}) but answers on {primary} itself "
            "(checked over SSH)",
        )
    head = f"{primary}'s MySQL failed {n} consecutive probe(s) ({_said(m)})"
    if n < policy.failures_before_failover:
        return event(E.PRIMARY_FAILED, f"{head}, fewer than {policy.failures_before_failover}")

    results = [w for w in obs.witnesses if w.target in policy.witnesses]
    seeing = sorted(w.target for w in results if w.answered and w.sees_primary is True)
    answering = sorted(w.target for w in results if w.answered)
    fence_required = False
    if seeing:
        return event(
            E.HOLD_PARTITION,
            f"{head}, but witness {', '.join(seeing)} still reaches its MySQL: "
            "a partition between the nodes",
        )
    if policy.witnesses and not answering:
        silent = ", ".join(f"{w.target} ({_said(w)})" for w in results) or "no result"
        if policy.witness_silent != "fence" or not policy.plan.fence_argv:
            return event(E.HOLD_ISOLATED, f"{head}, but no witness answered this node: {silent}")
        fence_required = True
        answering = [f"none ({silent}); the fence command must succeed first"]

    rv = obs.replica_view
    status = rv.status
    if rv.probe.status is not ProbeStatus.OK or status is None:
        return event(
            E.HOLD_EVIDENCE_MISSING,
            f"{head}, but this node's own MySQL did not report its replica status "
            f"({_said(rv.probe)}): cannot confirm the replica lost the primary",
        )
    if not status.configured:
        return event(
            E.HOLD_EVIDENCE_MISSING,
            f"{head}, but this node's MySQL is not a replica: nothing to confirm or promote",
        )

    silent_s = rv.heard_from_primary_s_ago
    lost_why = []
    if not status.io_ok:
        lost_why.append(f"IO thread {status.io_running or 'unknown'}")
    if silent_s is not None and silent_s > policy.replica_silence_s:
        lost_why.append(f"silent for {silent_s:g} s")
    lost = bool(lost_why)
    # One lost ping on a lossy link is not a dead host: several in a row, and SSH failing.
    icmp_down = losses >= policy.host_down_icmp_losses
    ssh_ok = obs.primary_ssh.status is ProbeStatus.OK
    host_down = icmp_down and _down(obs.primary_ssh)
    if lost:
        replica = f"the replica lost it ({', '.join(lost_why)})"
    elif silent_s is None:
        replica = "the replica's IO thread runs (how long it went unheard is not known yet)"
    else:
        replica = "the replica still hears it"

    icmp = _said(obs.primary_icmp) + (f", {losses} lost in a row" if losses else "")
    host = (
        f"ICMP {icmp}, SSH {_said(obs.primary_ssh)}"
        if not host_down
        else f"its host is down ({losses} ICMP probes lost in a row, and SSH failed)"
    )
    stale = stale_replica(status, before, obs.at, policy.max_lag_s)
    if policy.witnesses:
        if not lost:
            return event(E.HOLD_REPLICA_CONNECTED, f"{head}, but {replica} ({host})")
        if stale:
            return event(E.HOLD_REPLICA_STALE, f"{head}, but {obs.replica} is stale: {stale}")
        unsure = _unsure(results, policy)
        if unsure and not ssh_ok and not policy.plan.fence_argv:
            # Only its own step-down would fence it, and it steps down only when it hears no
            # witness: one that answers us and cannot check it may well answer it too.
            return event(
                E.HOLD_UNFENCEABLE,
                f"{head}; {replica}; but nothing fences it (SSH {_said(obs.primary_ssh)}, no "
                f"fence command) and witness {', '.join(unsure)} cannot tell whether it still "
                f"serves ({host})",
            )
        said = "; ".join(f"{w.target}: {w.detail}" for w in results if w.answered and w.detail)
        where = f"witness {', '.join(answering)} answered and none sees it" + (
            f" ({said})" if said else ""
        )
        return event(
            E.PRIMARY_LOST,
            f"{head}; {where}; {replica}; {host}",
            host_down=host_down,
            fence_required=fence_required,
        )
    if not lost:
        return event(E.HOLD_REPLICA_CONNECTED, f"{head}, but {replica} (no witness configured)")
    if stale:
        return event(E.HOLD_REPLICA_STALE, f"{head}, but {obs.replica} is stale: {stale}")
    if not (icmp_down or ssh_ok):
        return event(
            E.HOLD_EVIDENCE_MISSING,
            f"{head} and {replica}, but with no witness configured its host must be down by ICMP "
            f"or reachable by SSH for fencing ({host})",
        )
    return event(
        E.PRIMARY_LOST,
        f"{head}; {replica}; {host}; no witness configured",
        host_down=host_down,
    )


def stale_replica(status: ReplicaStatus, before: MonitorState, at: float, max_lag_s: float) -> str:
    """Why this replica must not be promoted automatically, in words; "" when it may be.

    Its SQL thread stopped or failed (nothing received since is applied: days of history may
    be missing); its IO thread failing, or its lag, as last seen while the primary still
    answered (once the primary is gone the replica's own figures say nothing), for longer
    than `max_lag_s`.
    """
    why = []
    if status.sql_running != "Yes":
        why.append(f"its SQL thread is {status.sql_running or 'not running'}")
    if status.last_sql_errno:
        text = f" ({status.last_sql_error[:200]})" if status.last_sql_error else ""
        why.append(f"its SQL thread failed with error {status.last_sql_errno}{text}")
    fault_at = before.first_failure_at if before.first_failure_at is not None else at
    failing = before.io_failing_since
    if failing is not None and fault_at - failing > max_lag_s:
        why.append(
            f"its IO thread had been failing for {fault_at - failing:.0f} s before the fault "
            f"(probe.max_lag_s = {max_lag_s:g})"
        )
    if before.lag_s is not None and before.lag_s > max_lag_s:
        why.append(
            f"it lagged {before.lag_s:g} s behind before the fault (probe.max_lag_s = "
            f"{max_lag_s:g})"
        )
    return "; ".join(why)


def _history(state: MonitorState, obs: Observation, losses: int, policy: Policy) -> MonitorState:
    """What this tick adds to what later ticks must remember (see MonitorState)."""
    rv = obs.replica_view.status
    lag, failing = state.lag_s, state.io_failing_since
    if obs.primary_mysql.answered and rv is not None and rv.configured:
        # Only while the primary answers: a fault's own effects must not count as staleness.
        lag = None if rv.seconds_behind is None else float(rv.seconds_behind)
        failing = None if rv.io_ok else (failing if failing is not None else obs.at)
    return replace(
        state,
        icmp_losses=losses,
        lag_s=lag,
        io_failing_since=failing,
        primary_position=obs.primary_position or state.primary_position,
        primary_heard_at=obs.at if _maybe_heard(state, obs, policy) else state.primary_heard_at,
        observed_at=obs.at,
    )


# A longer gap between two ticks than this many intervals: this node was away (frozen, a
# stalled loop). Shorter ones are covered by the intervals the step-down wait adds.
AWAY_INTERVALS = 2.5


def _maybe_heard(state: MonitorState, obs: Observation, policy: Policy) -> bool:
    """Whether the primary may have been heard by someone this tick: the failover's wait for
    an isolated primary to step down counts from the last such tick (see `heard_why`), or a
    tick after this node was away."""
    if obs.primary_icmp.status is ProbeStatus.OK or heard_why(obs, policy) is not None:
        return True
    last = state.observed_at
    return last is not None and obs.at - last > AWAY_INTERVALS * policy.interval_s


def heard_why(obs: Observation, policy: Policy) -> str | None:
    """Why, in `obs`, the primary may have been heard by someone, in a way that would have
    held the failover's decision (None: nothing of that). Its MySQL or its SSH answered this
    node; a witness sees it (the primary may hear that witness too, and its isolation clock
    restarts); or this node can tell nothing: it heard no witness either. A failover's wait
    for its step-down ends the plan unrun on any of these. (An ICMP answer alone does not:
    a frozen host's kernel answers ping, and the decision allowed it.)"""
    p = obs.primary
    if obs.primary_mysql.answered:
        return f"{p}'s MySQL answered ({_said(obs.primary_mysql)})"
    if obs.primary_ssh.status is ProbeStatus.OK:
        return f"SSH reached {p}"
    seeing = sorted(w.target for w in obs.witnesses if w.sees_primary is True)
    if seeing:
        return f"witness {', '.join(seeing)} reaches {p}'s MySQL"
    if policy.witnesses and not any(w.answered for w in obs.witnesses):
        return "no witness answered this node: it may be the isolated one"
    unsure = _unsure(obs.witnesses, policy)
    if unsure and not policy.plan.fence_argv:  # with a fence command, the fence protects
        return f"witness {', '.join(unsure)} answers and cannot tell whether it sees {p}"
    return None


def _unsure(witnesses: tuple[ProbeResult, ...] | list[ProbeResult], policy: Policy) -> list[str]:
    """The counted witnesses (Policy.heard_witnesses) that answered, ICMP or their check, and
    cannot say they do not see the primary: the primary may hear them too, and its isolation
    clock restarts on them."""
    counted = policy.heard_witnesses or policy.witnesses
    return sorted(
        w.target
        for w in witnesses
        if w.target in counted and (w.answered or w.reached) and w.sees_primary is not False
    )


def plan_heard_again(state: MonitorState, at: float) -> MonitorState:
    """The state after a plan's wait heard the old primary again at `at` and closed the plan
    unrun: suspect, the failure count kept (the next tick decides afresh), the wait for the
    step-down counted from then."""
    return replace(
        state, state=S, primary_heard_at=at, plan_attempts=0, next_attempt_at=None, since=at
    )


# --- Decision. -------------------------------------------------------------------------------


def _plan(
    row: Row, a: Assessment, obs: Observation, policy: Policy, heard_at: float | None
) -> tuple[Step, ...]:
    # RESUME and ABANDON carry no steps: the executor replays or closes the journal's plan.
    if row.plan is not P.FAILOVER:
        return ()
    return build_failover_plan(
        policy.plan,
        obs.primary,
        obs.replica,
        ssh_reachable=obs.primary_ssh.status is ProbeStatus.OK,
        host_down=a.host_down,
        fence_required=a.fence_required,
        # Never heard (a daemon started on a dead primary): its silence began before now.
        primary_heard_at=heard_at if heard_at is not None else obs.at,
    )


# After a plan stopped at a failed step: wait this long before attempt n+1 (the last value
# repeats). Hammering a failing step every tick helps nobody; giving up leaves no primary.
RETRY_BACKOFF_S = (5.0, 10.0, 20.0, 60.0)


def plan_stopped(state: MonitorState, at: float) -> MonitorState:
    """The state after the plan stopped at a failed step at time `at`: one more attempt
    counted, the next one due after the back-off. The journal stays open."""
    attempts = state.plan_attempts + 1
    wait = RETRY_BACKOFF_S[min(attempts, len(RETRY_BACKOFF_S)) - 1]
    return replace(state, plan_attempts=attempts, next_attempt_at=at + wait)


def decide(state: MonitorState, obs: Observation, policy: Policy) -> Decision:
    """One tick: the next state, the plan (if any), and why. Pure: same inputs, same output."""
    a = assess(
        obs,
        policy,
        state.consecutive_failures,
        next_attempt_at=state.next_attempt_at,
        history=state,
    )
    row = row_for(state.state, a.event)
    after = _history(state, obs, a.icmp_losses, policy)
    stale = obs.plan_active_at is not None and obs.at - obs.plan_active_at > PLAN_STALE_S
    restarted = obs.plan_waits and state.observed_at is None
    if a.event is E.PLAN_SUPERSEDED and (stale or restarted):
        # The old primary may have come back into service since (its guard no longer waits
        # for a stale plan): the fresh plan waits for its step-down in full again.
        after = replace(after, primary_heard_at=obs.at)
    plan = _plan(row, a, obs, policy, after.primary_heard_at)
    # An abandoned plan keeps the count: a primary still dead fails over on the next tick.
    counting = (row.target in (S, F) or row.plan is P.ABANDON) and a.failures > 0
    first = None
    if counting:
        ongoing = state.consecutive_failures > 0 and state.first_failure_at is not None
        first = state.first_failure_at if ongoing else obs.at
    runs = row.plan in (P.FAILOVER, P.RESUME)
    started = obs.at if row.plan is P.FAILOVER else state.failover_started_at
    if row.plan is P.RESUME and started is None:
        started = obs.at
    # The back-off lives while the open plan does: a new plan, or leaving failing_over, resets it.
    keep_retry = row.target is F and row.plan is not P.FAILOVER
    nxt = replace(
        after,
        state=row.target,
        consecutive_failures=a.failures if counting else 0,
        first_failure_at=first,
        since=state.since if row.target is state.state and state.since is not None else obs.at,
        failover_started_at=started if row.target in (F, D) else None,
        plan_attempts=state.plan_attempts if keep_retry else 0,
        next_attempt_at=state.next_attempt_at if keep_retry and not runs else None,
    )
    return Decision(
        state=nxt,
        plan=plan,
        reason_code=row.code,
        reason=f"{a.evidence}; {row.comment}",
        event=a.event,
        plan_kind=row.plan,
    )


# --- Rendering. ------------------------------------------------------------------------------


def mermaid() -> str:
    """The transition table as a Mermaid state diagram: one edge per (from, to) pair, labelled
    with its events; an event that carries a plan is written `event / plan`."""
    edges: dict[tuple[State, State], list[str]] = {}
    for r in TABLE:
        label = r.event.value + (f" / {r.plan.value}" if r.plan is not P.NONE else "")
        edges.setdefault((r.source, r.target), []).append(label)
    lines = ["stateDiagram-v2", f"    [*] --> {H.value}"]
    for (src, dst), labels in edges.items():
        lines.append(f"    {src.value} --> {dst.value}: {'<br/>'.join(labels)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The transition table as Markdown, one row per (state, event) pair."""
    out = [
        "| from | event | to | plan | reason code | why |",
        "|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.source} | {r.event} | {r.target} | {r.plan} | {r.code} | {r.comment} |"
        for r in TABLE
    ]
    return "\n".join(out) + "\n"
