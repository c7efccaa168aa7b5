"""A hypothesis model of two nodes, one witness and the network (issue 12).

What is modelled. Two hosts (node1, node2) and a witness; the network between them: the link
between the nodes cut or healed, a node isolated from everything (peer and witness), a host
down or up (frozen and thawed: it comes back with what it had, its VIP and read_only included),
the witness down or up, and a daemon restart that loses the daemon's memory (its MonitorState,
the guard's last answer and its copy of the peer's flag; isolated.json stays, as on disk).
Each daemon ticks once per probe interval; the two run half an interval apart (which one goes
first is drawn), and a fault takes effect at a half tick, just before the daemon scheduled then
observes. Each tick drives the project's pure rules exactly as `monha.daemon.Daemon.tick` and
`monha.guard.PrimaryGuard` wire them: `fsm.decide` for the standby (with the peer's flag read
every PEER_FLAG_EVERY_S, the re-fence of a thawed old primary in done_flagged), and
`split_brain.isolated`, `peer_took_over` and `may_return` for a primary or a fenced node.
The model applies the effects itself: a failover plan's steps (fence of a reachable old
primary, epoch + 1 on the promoted node and on the other when the plan reaches it, writable,
VIP, flag on both nodes if reachable), a self-fence (read_only, VIP off), a return to service.
An operator follows the runbook: `rejoin` of a fenced node (flag and epoch copied), `switchover`
and `resume` only on a healthy pair (one primary, the other its replica, both reachable).

A plan runs in the daemon's tick, its steps in order; a step that waits until a given time
(await_peer_step_down, where the plan has one) blocks that daemon until then; its journal
survives a restart, and the restarted daemon's state machine resumes or abandons it.
Not modelled: executor interruptions between steps (tests/unit/test_fsm_invariants.py covers
them), the back-off, a plan step that fails on a reachable node, mysqld dying alone, replication lag
and stale replicas, the fence command, probes that answer only in part (SSH but not MySQL), and
windows shorter than half a probe interval (e.g. the few hundred ms a thawed primary is
writable before the next tick fences it: the model fences it at that tick).

Properties (each can fail: a test per property runs a deliberately broken variant):
1. with a witness, never two writable VIP holders at one model time;
2. once every fault has stopped, within LIVENESS_TICKS exactly one writable VIP holder;
3. never a second automatic failover before the completion flag is cleared;
4. a node fences itself for its peer only when the peer's epoch is higher than its own.

The search found counter-examples to property 1 in the rules as they were; each is now a replay
kept as a regression test, its fix named beside it. A thawed host's daemon ticks at
once (its sleep ran out while it was frozen), so the window between a thaw and that tick, a
fraction of a probe interval, is outside the model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from unit_support import CONFIG, POLICY, WITNESS, policy, probe

from monha import split_brain
from monha.fsm import Policy, decide, heard_why, plan_heard_again
from monha.guard import PEER_FLAG_EVERY_S, next_heard_at
from monha.journal import step_to_dict
from monha.model import (
    MonitorState,
    Observation,
    OnFailure,
    PlanKind,
    ProbeStatus,
    ReplicaStatus,
    ReplicaView,
    State,
    Step,
    StepKind,
)
from monha.plan import last_active_at
from monha.split_brain import Epoch, flag_epoch, next_epoch

NODES = ("node1", "node2")
INTERVAL_S = CONFIG.probe.interval_s
ISOLATION_LIMIT_S = split_brain.isolation_limit(CONFIG)  # the default: the detection time
LIVENESS_TICKS = POLICY.failures_before_failover + 3

OK, TIMEOUT, FAILED, SKIPPED = (
    ProbeStatus.OK,
    ProbeStatus.TIMEOUT,
    ProbeStatus.FAILED,
    ProbeStatus.SKIPPED,
)


# --- The properties, one exception each (an xfail can name exactly the one it expects). ----


class PropertyViolated(AssertionError):
    pass


class TwoWritableVipHolders(PropertyViolated):
    """Property 1."""


class NoSingleHolderAfterFaults(PropertyViolated):
    """Property 2."""


class SecondFailover(PropertyViolated):
    """Property 3."""


class FencedForOlderEpoch(PropertyViolated):
    """Property 4."""


class ModelGap(Exception):
    """The model met a case it does not model (a bug in this file, not in monha)."""


ALL_PROPERTIES = frozenset({1, 2, 3, 4})
ALL_FAULTS = ("cut_link", "isolate", "host_down", "witness_down", "restart")


class TookOver(Protocol):
    def __call__(
        self,
        peer: str,
        *,
        holds_vip: bool | None,
        writable: bool | None,
        flag: Mapping[str, Any] | None,
        epochs: Iterable[Epoch | None] = (),
    ) -> str | None: ...


class MayReturn(Protocol):
    def __call__(
        self,
        me: str,
        *,
        peer_answers: bool,
        peer_replicates_from_me: bool,
        peer_writable: bool | None,
        peer_flag: Mapping[str, Any] | None,
        epochs: Iterable[Epoch | None],
    ) -> str | None: ...


@dataclass(frozen=True)
class Variant:
    """The rules the model drives: the real ones by default; a test breaks one on purpose."""

    policy: Policy = POLICY
    isolation_limit_s: float = ISOLATION_LIMIT_S
    peer_took_over: TookOver = split_brain.peer_took_over
    may_return: MayReturn = split_brain.may_return
    ignore_flag: bool = False  # the standby's state machine is shown no flag
    faults: tuple[str, ...] = ALL_FAULTS
    single_faults: bool = False  # a fault starts only while the world is healthy
    checked: frozenset[int] = ALL_PROPERTIES
    # False: the witness answers ICMP only and cannot say whether it sees the primary.
    witness_checks: bool = True
    recheck_wait: bool = True  # False: the wait step only sleeps (as before the review)


# --- The world. -----------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    writable: bool
    vip: bool
    source: str | None  # the node it replicates from; None: not a replica
    up: bool = True
    flag: dict[str, Any] | None = None
    epoch: Epoch | None = None
    isolation_file: bool = False  # isolated.json: stepped down for isolation (kept on disk)
    # The daemon's memory, lost at a restart.
    state: MonitorState = field(default_factory=MonitorState)
    decided: bool = False  # Daemon.last_decision is not None
    code: str = ""  # the last decision's reason code
    # PrimaryGuard: kept in heard.json, so a restart keeps them; before the first tick, the
    # daemon's start (model time 0) is its last tick.
    last_heard_at: float | None = None
    last_tick_at: float | None = 0.0
    for_isolation: bool = False
    peer_flag: dict[str, Any] | None = None
    peer_flag_at: float | None = None
    # When its replica last heard from its source (for Seconds-since-heard).
    repl_heard_at: float | None = None
    # The open plan (the journal, kept across restarts): the steps not run yet, and whether a
    # step that changed a node ran. `running`: the daemon is inside the executor (blocked in a
    # wait step); a restart ends that, the journal stays.
    journal: Journal | None = None
    running: bool = False

    @property
    def holder(self) -> bool:
        """A writable VIP holder: up, read_only off, the VIP on it."""
        return self.up and self.writable and self.vip

    def restart_daemon(self) -> None:
        self.state, self.decided, self.running = MonitorState(), False, False
        self.peer_flag, self.peer_flag_at = None, None  # heard.json keeps the rest
        self.for_isolation = self.isolation_file  # PrimaryGuard._load_isolation


@dataclass
class Journal:
    fid: str
    old: str
    steps: list[Step]
    other_in_plan: bool
    committed: bool = False
    epoch: Epoch | None = None
    started_at: float = 0.0
    plan: tuple[Step, ...] = ()  # every step, as journaled (`steps`: those not run yet)

    def waits(self) -> bool:
        return any(s.kind.value == _AWAIT for s in self.plan)

    def record(self) -> dict[str, Any]:
        """The journal as the peer's guard reads it."""
        return {
            "kind": "failover",
            "failover_id": self.fid,
            "old_primary": self.old,
            "started_at": self.started_at,
            "plan": [step_to_dict(s) for s in self.plan],
            "done": [],
        }


# Step kinds by value, so that this file runs with or without a kind that is newer than it.
_AWAIT = "await_peer_step_down"  # sleeps until its "until" (an absolute time)
_NO_EFFECT = {"catch_up", "salvage_binlog", "stop_service", "start_service", "restart_agent"}
_NO_EFFECT |= {"check_hot"}


def _key(e: Epoch | None) -> tuple[int, str]:
    return (-1, "") if e is None else (e.number, e.primary)


class TwoNodes(RuleBasedStateMachine):
    VARIANT: ClassVar[Variant] = Variant()

    def __init__(self) -> None:
        super().__init__()
        v = self.VARIANT
        self.v = v
        self.nodes = {
            "node1": Node("node1", writable=True, vip=True, source=None),
            "node2": Node("node2", writable=False, vip=False, source="node1"),
        }
        self.link_cut = False
        self.isolated: set[str] = set()
        self.witness_up = True
        self.half = 0  # half ticks elapsed
        self.first = "node1"  # which daemon ticks on even half ticks
        self.quiet_halves: int | None = 0  # half ticks since the last fault stopped
        self.failovers_since_clear = 0
        self.failover_seq = 0
        self.trace: list[str] = []

    # --- the network --------------------------------------------------------------------

    def peer(self, me: str) -> Node:
        return self.nodes[NODES[1 - NODES.index(me)]]

    def reach(self, a: str, b: str) -> bool:
        na, nb = self.nodes[a], self.nodes[b]
        return (
            na.up
            and nb.up
            and not self.link_cut
            and a not in self.isolated
            and b not in self.isolated
        )

    def witness_reaches(self, n: str) -> bool:
        return self.witness_up and self.nodes[n].up and n not in self.isolated

    def healthy(self) -> bool:
        return (
            all(n.up for n in self.nodes.values())
            and not self.link_cut
            and not self.isolated
            and self.witness_up
        )

    def now(self) -> float:
        return self.half * INTERVAL_S / 2

    def fault(self, what: str) -> None:
        self.trace.append(f"t={self.now():g} {what}")
        self.quiet_halves = 0 if self.healthy() else None

    # --- one daemon's tick: monha.daemon.Daemon.tick with the pure rules ------------------

    def observe(self, me: str) -> Observation:
        n, p = self.nodes[me], self.peer(me)
        at = self.now()
        reach = self.reach(me, p.name)
        st_ = OK if reach else TIMEOUT
        if n.source is not None:
            from_source = self.reach(me, n.source)
            if from_source:
                n.repl_heard_at = at
            silent = None if n.repl_heard_at is None else at - n.repl_heard_at
            status = ReplicaStatus(
                configured=True,
                io_running="Yes" if from_source else "Connecting",
                sql_running="Yes",
                source_host=n.source,
                seconds_behind=0 if from_source else None,
            )
            rv = ReplicaView(probe("replica", me), status, silent)
        else:
            rv = ReplicaView(probe("replica", me), ReplicaStatus(configured=False), None)
        if self.witness_reaches(me):
            sees = self.witness_reaches(p.name) if self.v.witness_checks else None
            w = probe("witness", WITNESS, OK, sees_primary=sees, reached=True)
        else:
            w = probe("witness", WITNESS, FAILED, detail="no answer")
        return Observation(
            at=at,
            primary=p.name,
            replica=me,
            primary_mysql=probe("mysql", p.name, st_),
            primary_icmp=probe("icmp", p.name, st_),
            primary_ssh=probe("ssh", p.name, st_),
            replica_view=rv,
            witnesses=(w,),
            primary_local_mysql=probe("ssh_mysql", p.name, OK if reach else SKIPPED),
            flag_present=n.flag is not None,
            journal_open=n.journal is not None,
            plan_committed=n.journal is not None and n.journal.committed,
            plan_active_at=None if n.journal is None else last_active_at(n.journal.record()),
            plan_waits=n.journal is not None
            and any(s.kind.value == _AWAIT for s in n.journal.plan),
        )

    def daemon_tick(self, me: str) -> None:
        n, p = self.nodes[me], self.peer(me)
        if not n.up:
            return  # a frozen host
        if n.running:
            self.recheck_wait(n)  # a daemon in its executor's wait step looks again
            return
        obs = self.observe(me)
        # PrimaryGuard.heard
        # Its ticks take no model time: whatever gap exceeds the sleep is the process
        # stalling (guard.StallMeter), time away.
        last = n.last_tick_at
        away = 0.0 if last is None else max(0.0, obs.at - last - INTERVAL_S)
        n.last_heard_at = next_heard_at(obs, n.last_heard_at, away, self.v.isolation_limit_s)
        n.last_tick_at = obs.at
        role = "standby" if n.source is not None else "primary" if n.writable else "fenced"
        idle = role in ("primary", "fenced") and not (obs.flag_present or obs.journal_open)
        if idle and role == "fenced":
            n.state = MonitorState(state=State.HEALTHY, since=n.state.since or obs.at)
            self.as_fenced(n, p, obs)
            return
        if idle:
            if not n.decided or n.state.state is not State.HEALTHY:
                n.state = MonitorState(state=State.HEALTHY, since=obs.at)
            self.as_primary(n, p, obs, flagged=False)
            return
        if role == "primary" and not obs.journal_open:
            self.as_primary(n, p, obs, flagged=True)
        if n.source is not None:
            self.replicating(n)
        if not obs.flag_present and not obs.journal_open:
            peer_flag = self.read_peer_flag(n, p, obs)
            if peer_flag is not None:
                obs = replace(obs, flag_present=True)
        shown = replace(obs, flag_present=False) if self.v.ignore_flag else obs
        d = decide(n.state, shown, self.v.policy)
        n.state, n.decided, n.code = d.state, True, d.reason_code.value
        if n.state.state is State.DONE_FLAGGED:
            self.refence(n, p, obs, role)
        if d.plan_kind is PlanKind.FAILOVER:
            self.failover(n, p, d.plan)
        elif d.plan_kind is PlanKind.RESUME:
            assert n.journal is not None
            self.trace.append(f"t={self.now():g} {me} resumes {n.journal.fid}")
            n.running = True
            self.execute(n)
        elif d.plan_kind is PlanKind.ABANDON:
            assert n.journal is not None and not n.journal.committed
            self.trace.append(f"t={self.now():g} {me} abandons {n.journal.fid}")
            n.journal = None
            self.failovers_since_clear -= 1  # it changed nothing: no failover happened

    def recheck_wait(self, n: Node) -> None:
        """steps.await_peer_step_down with recheck: the old primary heard again (fsm.heard_why)
        ends the plan unrun (the executor closes it; fsm.plan_heard_again)."""
        j = n.journal
        if j is None or not j.steps or j.steps[0].kind.value != _AWAIT:
            return
        if not self.v.recheck_wait or j.steps[0].arg("recheck") != "yes":
            return
        obs = self.observe(n.name)
        why = heard_why(obs, self.v.policy)
        if why is None:
            return
        self.trace.append(f"t={self.now():g} {n.name}'s wait hears {j.old} again ({why})")
        n.journal, n.running = None, False
        self.failovers_since_clear -= 1  # it changed nothing: no failover happened
        n.state = plan_heard_again(n.state, obs.at)

    def read_peer_flag(self, n: Node, p: Node, obs: Observation) -> dict[str, Any] | None:
        due = n.peer_flag_at is None or obs.at - n.peer_flag_at >= PEER_FLAG_EVERY_S
        if due and obs.primary_ssh.status is OK:
            n.peer_flag_at = obs.at
            n.peer_flag = copy.deepcopy(p.flag)
        return n.peer_flag

    def replicating(self, n: Node) -> None:
        if n.for_isolation:
            n.isolation_file = False
        n.for_isolation = False

    def as_primary(self, n: Node, p: Node, obs: Observation, *, flagged: bool) -> None:
        self.replicating(n)
        if flagged and n.flag is not None and n.flag.get("new_primary") == n.name:
            return
        why = None
        # The guard's own rule: only with witnesses configured (CONFIG has one), and
        # self_fence_on_isolation = "on" (the default).
        if not flagged and CONFIG.witness:
            why = split_brain.isolated(obs.at, n.last_heard_at, self.v.isolation_limit_s)
        if why is not None:
            self.self_fence(n, why)
            n.for_isolation = n.isolation_file = True
            return
        mysql_ok, ssh_ok = obs.primary_mysql.status is OK, obs.primary_ssh.status is OK
        if not (obs.primary_mysql.answered or ssh_ok):
            return
        if not flagged and ssh_ok and p.journal is not None:
            why = split_brain.peer_plan_against(n.name, p.journal.record(), obs.at)
            if why is not None:
                self.self_fence(n, why)
                n.for_isolation = n.isolation_file = True
                return
        flag = copy.deepcopy(p.flag) if ssh_ok else None
        peer_epoch = p.epoch if ssh_ok else None
        why = self.v.peer_took_over(
            p.name,
            holds_vip=p.vip if ssh_ok else None,
            writable=p.writable if mysql_ok else None,
            flag=flag,
            epochs=[n.epoch, peer_epoch],
        )
        if why is None:
            return
        if 4 in self.v.checked:
            claims = [e for e in (peer_epoch, flag_epoch(flag)) if e and e.primary == p.name]
            if not any(_key(e) > _key(n.epoch) for e in claims):
                raise FencedForOlderEpoch(
                    f"{n.name} (epoch {n.epoch}) fenced itself for {p.name}, whose claims are "
                    f"{claims or 'none'}: {why}\n" + self.story()
                )
        self.self_fence(n, why)

    def self_fence(self, n: Node, why: str) -> None:
        self.trace.append(f"t={self.now():g} {n.name} fences itself: {why}")
        n.writable, n.vip = False, False

    def as_fenced(self, n: Node, p: Node, obs: Observation) -> None:
        if not n.for_isolation or not obs.primary_mysql.answered:
            return
        if obs.primary_ssh.status is not OK or p.vip:
            return
        record = p.journal.record() if p.journal is not None else None
        if split_brain.plan_holds_return(n.name, record, obs.at) is not None:
            return  # PrimaryGuard.as_fenced: no return into a plan open on the peer
        why = self.v.may_return(
            n.name,
            peer_answers=True,
            peer_replicates_from_me=p.source == n.name,
            peer_writable=p.writable,
            peer_flag=copy.deepcopy(p.flag),
            epochs=[n.epoch, p.epoch],
        )
        if why is None:
            return
        self.trace.append(f"t={self.now():g} {n.name} returns to service: {why}")
        n.writable, n.vip = True, True
        n.for_isolation = n.isolation_file = False
        n.last_heard_at = obs.at

    def refence(self, n: Node, p: Node, obs: Observation, role: str) -> None:
        if role != "primary" or n.flag is None:
            return
        if n.flag.get("new_primary") != n.name or n.flag.get("old_primary") != obs.primary:
            return
        ssh_ok = obs.primary_ssh.status is OK
        if not (obs.primary_mysql.answered or ssh_ok):
            return
        writable = p.writable if obs.primary_mysql.status is OK else None
        holds_vip = p.vip if ssh_ok else None
        if writable or holds_vip:
            self.trace.append(f"t={self.now():g} {n.name} re-fences {p.name}")
            p.writable, p.vip = False, False
            n.vip = True

    def failover(self, n: Node, p: Node, plan: Iterable[Step]) -> None:
        steps = list(plan)
        self.failover_seq += 1
        fid = f"f{self.failover_seq}"
        self.trace.append(f"t={self.now():g} {n.name} fails over from {p.name} ({fid})")
        if 3 in self.v.checked and self.failovers_since_clear >= 1:
            raise SecondFailover(
                f"{n.name} failed over again before the completion flag was cleared\n"
                + self.story()
            )
        self.failovers_since_clear += 1
        n.journal = Journal(
            fid, p.name, steps, any(s.node == p.name for s in steps), False, None,
            self.now(), tuple(steps),
        )  # fmt: skip
        n.running = True
        self.execute(n)

    def execute(self, n: Node) -> None:
        """Run the open plan's steps, in order, until it ends or a wait step is not due."""
        j, p = n.journal, self.nodes[n.journal.old if n.journal else self.peer(n.name).name]
        while j is not None and j.steps:
            s = j.steps[0]
            kind = s.kind.value
            reach = self.reach(n.name, p.name)
            if kind == _AWAIT and self.now() < float(s.arg("until")):
                return  # the daemon sleeps in the step (it does not tick meanwhile)
            j.steps.pop(0)
            if s.node != n.name and not reach:
                if s.on_failure is OnFailure.STOP:
                    raise ModelGap(f"a STOP step on an unreachable node: {s.key}")
                continue
            target = self.nodes[s.node]
            if kind == StepKind.VIP_DOWN.value:
                target.vip, j.committed = False, True
            elif kind == StepKind.FENCE_MYSQL.value:
                target.writable, j.committed = False, True
            elif kind == StepKind.PROMOTE.value:
                theirs = p.epoch if j.other_in_plan and reach else None
                j.epoch = next_epoch([n.epoch, theirs], n.name, self.now(), "failover", j.fid)
                n.epoch = j.epoch
                if j.other_in_plan and reach:
                    p.epoch = j.epoch
                n.source, n.writable, j.committed = None, True, True
                self.trace.append(f"t={self.now():g} {n.name} promoted ({j.fid})")
            elif kind == StepKind.VIP_UP.value:
                n.vip = True
            elif kind == StepKind.WRITE_FLAG.value:
                assert j.epoch is not None
                flag = {
                    "failover_id": j.fid,
                    "old_primary": p.name,
                    "new_primary": n.name,
                    "epoch": j.epoch.to_dict(),
                }
                n.flag = flag
                if reach:
                    p.flag = copy.deepcopy(flag)
            elif kind not in _NO_EFFECT and kind != _AWAIT:
                raise ModelGap(f"a plan step this model does not know: {s.key}")
        n.journal, n.running = None, False

    # --- the checks -----------------------------------------------------------------------

    def story(self) -> str:
        return "model trace:\n  " + "\n  ".join(self.trace[-40:])

    def check(self) -> None:
        holders = [n.name for n in self.nodes.values() if n.holder]
        if 1 in self.v.checked and len(holders) > 1:
            raise TwoWritableVipHolders(
                f"t={self.now():g}: {', '.join(holders)} are writable and hold the VIP\n"
                + self.story()
            )
        quiet = self.quiet_halves is not None and self.quiet_halves >= 2 * LIVENESS_TICKS
        if 2 in self.v.checked and quiet and len(holders) != 1:
            raise NoSingleHolderAfterFaults(
                f"t={self.now():g}: {len(holders)} writable VIP holder(s) "
                f"{LIVENESS_TICKS} ticks after the last fault stopped\n" + self.story()
            )

    # --- rules ----------------------------------------------------------------------------

    @initialize(first=st.sampled_from(NODES))
    def phase(self, first: str) -> None:
        self.first = first

    @rule(halves=st.integers(1, 2 * POLICY.failures_before_failover + 2))
    def tick(self, halves: int) -> None:
        for _ in range(halves):
            self.half += 1
            for n in self.nodes.values():
                if n.running and n.up:
                    self.execute(n)  # a wait step that ended since the last half tick
            me = self.first if self.half % 2 == 0 else self.peer(self.first).name
            self.daemon_tick(me)
            if self.quiet_halves is not None:
                self.quiet_halves += 1
            self.check()

    def active_faults(self) -> int:
        downs = sum(not n.up for n in self.nodes.values())
        return int(self.link_cut) + len(self.isolated) + downs + int(not self.witness_up)

    def apply_fault(self, kind: str, who: str) -> None:
        """Start or stop one fault (`kind` toggles it), or heal everything ("heal")."""
        if kind not in (*self.v.faults, "heal"):
            return
        if self.v.single_faults and self.healthy() and (self.quiet_halves or 0) < 2:
            return  # one fault at a time: the next starts after a full tick without any
        if kind == "restart":
            if self.v.single_faults and not self.healthy():
                return  # a restart of an isolated primary's daemon would be a second fault
            if not self.nodes[who].up:
                return  # a frozen host runs nothing (a reboot would drop its VIP: not modelled)
            self.nodes[who].restart_daemon()
            self.fault(f"{who}'s daemon restarted")
            return
        before = (self.link_cut, set(self.isolated), self.witness_up, self.nodes[who].up)
        was_up = [self.nodes[name].up for name in NODES]
        if kind == "heal":
            self.link_cut, self.isolated, self.witness_up = False, set(), True
            for n in self.nodes.values():
                n.up = True
            what = "everything healed"
        elif kind == "cut_link":
            self.link_cut = not self.link_cut
            what = "link " + ("cut" if self.link_cut else "healed")
        elif kind == "isolate":
            self.isolated ^= {who}
            what = f"{who} " + ("isolated" if who in self.isolated else "reconnected")
        elif kind == "host_down":
            n = self.nodes[who]
            n.up = not n.up
            what = f"{who} host " + ("up" if n.up else "down")
        elif kind == "witness_down":
            self.witness_up = not self.witness_up
            what = "witness " + ("up" if self.witness_up else "down")
        else:
            raise ModelGap(f"unknown fault {kind}")
        if self.v.single_faults and self.active_faults() > 1:
            self.link_cut, self.isolated, self.witness_up, self.nodes[who].up = before
            return
        self.fault(what)
        for name, up in zip(NODES, was_up, strict=True):
            if not up and self.nodes[name].up:
                # A thawed daemon's sleep ran out while it was frozen: it ticks at once.
                self.daemon_tick(name)
                self.check()

    # --- the operator, by the runbook ----------------------------------------------------

    def pair(self) -> tuple[Node, Node] | None:
        """(primary, its replica) when the pair is healthy and both reachable, else None."""
        for name in NODES:
            pr, rep = self.nodes[name], self.peer(name)
            if (
                pr.holder
                and pr.source is None
                and rep.source == pr.name
                and not rep.writable
                and self.reach(pr.name, rep.name)
            ):
                return pr, rep
        return None

    def operate(self, action: str) -> None:
        if any(n.journal is not None for n in self.nodes.values()):
            return  # a command is refused while a plan is open (the tick lock, the journal)
        if action == "rejoin":
            for who in NODES:
                self.operator_rejoins(who)
        elif action == "switchover":
            self.operator_switches_over()
        elif action == "resume":
            self.operator_resumes()

    def operator_rejoins(self, who: str) -> None:
        n, p = self.nodes[who], self.peer(who)
        if not (p.holder and p.source is None and n.source is None and not n.writable):
            return
        if not self.reach(who, p.name):
            return
        self.trace.append(f"t={self.now():g} operator rejoins {who} to {p.name}")
        n.source, n.vip, n.repl_heard_at = p.name, False, None
        n.epoch = p.epoch
        if p.flag is not None:
            n.flag = copy.deepcopy(p.flag)

    def operator_switches_over(self) -> None:
        pair = self.pair()
        if pair is None:
            return
        old, new = pair
        e = next_epoch([old.epoch, new.epoch], new.name, self.now(), "switchover", "s")
        self.trace.append(f"t={self.now():g} operator switches over to {new.name} (epoch {e})")
        old.writable, old.vip, old.source = False, False, new.name
        new.writable, new.vip, new.source = True, True, None
        old.epoch = new.epoch = e

    def operator_resumes(self) -> None:
        pair = self.pair()
        if pair is None or all(n.flag is None for n in self.nodes.values()):
            return
        self.trace.append(f"t={self.now():g} operator resumes (flags cleared)")
        for n in self.nodes.values():
            n.flag = None
        self.failovers_since_clear = 0


def machine(variant: Variant) -> type[TwoNodes]:
    """The machine under `variant`, with its fault rule drawing only the faults it allows."""
    faults = st.sampled_from((*variant.faults, "heal"))

    class Model(TwoNodes):
        VARIANT = variant

        @rule(kind=faults, who=st.sampled_from(NODES))
        def fault_rule(self, kind: str, who: str) -> None:
            self.apply_fault(kind, who)

        @rule(action=st.sampled_from(("rejoin", "switchover", "resume")))
        def operator_rule(self, action: str) -> None:
            self.operate(action)

    return Model


def run(variant: Variant, *, examples: int = 300, derandomize: bool = True) -> None:
    """Search the machine under `variant`. No shrinking (the trace in the message names the
    steps), no example database (nothing written beside the repository), and a fixed search
    by default, so that CI gives the same verdict every run."""
    run_state_machine_as_test(
        machine(variant),
        settings=settings(
            max_examples=examples,
            stateful_step_count=60,
            deadline=None,
            database=None,
            derandomize=derandomize,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def replay(variant: Variant, first: str, script: Iterable[tuple[str | int, ...]]) -> TwoNodes:
    """Run one fixed sequence of steps through the machine (a counter-example, written out)."""
    m = machine(variant)()
    m.phase(first)
    for step in script:
        if step[0] == "tick":
            m.tick(int(step[1]))
        elif step[0] == "operate":
            m.operate(str(step[1]))
        else:
            m.apply_fault(str(step[0]), str(step[1]) if len(step) > 1 else "node1")
    return m


def only(*properties: int) -> frozenset[int]:
    return frozenset(properties)


# A fixed search for the tests that must find a counter-example: the same result every run.
def must_fail(variant: Variant) -> None:
    run(variant, examples=1000, derandomize=True)


# --- Property 1: never two writable VIP holders. ----------------------------------------------

SHORTER_LIMIT_S = (POLICY.failures_before_failover - 1) * INTERVAL_S


def test_1_never_two_writable_vip_holders() -> None:
    run(Variant(checked=only(1)), examples=1000)


_SEEN_AGAIN: list[tuple[str | int, ...]] = [
    ("cut_link",),
    ("tick", 16),
    ("isolate", "node1"),
    ("cut_link",),
    ("tick", 2),
    ("cut_link",),
    ("tick", 1),
    ("isolate", "node1"),
    ("tick", 12),
]


# Was the open counter-example (a strict xfail): the wait only slept. Fixed: the wait looks
# again every interval (fsm.heard_why), and the old primary heard again ends the plan unrun.
def test_1_counter_example_the_old_primary_is_seen_again_during_the_wait() -> None:
    """The link cut at 0 (node2 holds: the witness sees node1); node1 isolated at 8 and the
    link healed; node2 fails over at 8.5 and waits until 13.5 (the witness last saw node1 at
    7.5); the link is cut again at 9, node1 is back in the witness's sight at 9.5 (its silence,
    2 s, stays under the 3 s limit): node1 keeps serving; node2's wait hears of it (the witness
    sees node1) and ends the plan unrun instead of promoting at 13.5."""
    m = replay(Variant(checked=only(1)), "node1", _SEEN_AGAIN)
    assert any("wait hears node1 again" in line for line in m.trace), m.story()


def test_1_the_same_sequence_with_a_wait_that_only_sleeps_gives_two_holders() -> None:
    with pytest.raises(TwoWritableVipHolders):
        replay(Variant(checked=only(1), recheck_wait=False), "node1", _SEEN_AGAIN)


# Found by a random search (issue 12, this review): node1 frozen before its daemon's first tick,
# cut off meanwhile, node2 failed over; node1 thawed behind a cut link hearing only the witness.
# With no tick before, its isolation clock started afresh and it kept the VIP beside node2.
# Fixed: before the first tick the daemon's start is its last tick, so the freeze is time away.
def test_1_counter_example_frozen_before_the_first_tick() -> None:
    m = replay(
        Variant(checked=only(1)),
        "node1",
        [
            ("host_down", "node1"),
            ("tick", 4),
            ("isolate", "node1"),
            ("tick", 9),
            ("isolate", "node1"),
            ("tick", 1),
            ("cut_link",),
            ("tick", 9),
            ("host_down", "node1"),
        ],
    )
    assert not m.nodes["node1"].holder and m.nodes["node2"].holder, m.story()


# Review finding (issue 12): a witness that answers ICMP only (sees_primary None) restarts the
# primary's isolation clock, but the standby, counting only a witness that sees the primary,
# ended its wait and promoted: the link cut, node1 serving beside node2. Fixed: without SSH to
# the primary and without a fence command, a witness that cannot tell holds the failover.
def test_1_an_icmp_only_witness_never_gives_two_writable_vip_holders() -> None:
    run(Variant(checked=only(1), witness_checks=False))


def test_1_counter_example_the_link_cut_with_an_icmp_only_witness() -> None:
    m = replay(
        Variant(checked=only(1), witness_checks=False), "node1", [("cut_link",), ("tick", 30)]
    )
    n1, n2 = m.nodes["node1"], m.nodes["node2"]
    assert (n1.holder, n2.writable, n2.source) == (True, False, "node1"), m.story()
    assert n2.code == "hold_unfenceable", m.story()


# Was counter-example 1 (an xfail): fixed by the failover's wait for an unreachable old primary to
# step down (plan step await_peer_step_down); kept as its regression test.
def test_1_counter_example_the_isolated_primary_steps_down_half_a_tick_late() -> None:
    replay(Variant(checked=only(1)), "node1", [("tick", 4), ("isolate", "node1"), ("tick", 8)])


def test_1_the_same_isolation_half_a_tick_later_is_fenced_in_time() -> None:
    """The other phase of the same fault: node1 isolated after the standby's tick at 2.5. Its
    last answer was at 2, it steps down at 5, the standby fails over at 5.5 (or later, if its
    plan waits for the step-down)."""
    m = replay(Variant(checked=only(1)), "node1", [("tick", 5), ("isolate", "node1"), ("tick", 24)])
    n1, n2 = m.nodes["node1"], m.nodes["node2"]
    assert (n1.writable, n1.vip, n2.writable, n2.vip) == (False, False, True, True), m.story()


def test_1_holds_for_one_fault_at_a_time_with_isolation_fence_one_interval_shorter() -> None:
    """With failover.isolation_fence_s = (failures - 1) x interval and one fault at a time
    (the next one a full tick after the last healed), the real rules keep property 1."""
    run(Variant(checked=only(1), single_faults=True, isolation_limit_s=SHORTER_LIMIT_S))


# Was counter-example 2 (an xfail, even with isolation_fence_s = 2 s): the link cut at t=2, node2
# holding (hold_partition) but counting failed probes, node1 isolated at 6.5 (its last witness
# answer at 6); node2 failed over at 7.5, node1 stepped down at 8. Fixed: the standby's "last
# heard" counts a witness that sees the primary, so the wait for the step-down outlasts it.
def test_1_counter_example_a_partition_then_the_primary_isolated() -> None:
    replay(
        Variant(checked=only(1), isolation_limit_s=SHORTER_LIMIT_S),
        "node1",
        [("tick", 4), ("cut_link",), ("tick", 9), ("isolate", "node1"), ("tick", 8)],
    )


# Was counter-example 3 (an xfail): fixed by the failover's wait for an unreachable old primary to
# step down (plan step await_peer_step_down); kept as its regression test.
def test_1_counter_example_the_isolated_primarys_daemon_restarts() -> None:
    replay(
        Variant(checked=only(1)),
        "node1",
        [("tick", 5), ("isolate", "node1"), ("tick", 2), ("restart", "node1"), ("tick", 10)],
    )


# Was counter-example 4 (an xfail, defaults): the link cut at t=2, node1 frozen at 6, node2
# failing over at 6.5; node1 thawed at 10 hearing only the witness and kept the VIP beside node2.
# Fixed: after a gap between ticks of the isolation limit, a witness's answer does not count
# until the peer's does (split_brain.heard_at), so the thawed primary steps down at once.
def test_1_counter_example_a_frozen_primary_thaws_behind_a_cut_link() -> None:
    replay(
        Variant(checked=only(1)),
        "node1",
        [
            ("tick", 4),
            ("cut_link",),
            ("tick", 8),
            ("host_down", "node1"),
            ("tick", 8),
            ("host_down", "node1"),
            ("tick", 6),
        ],
    )


# Found with counter-example 4's fix: node1 frozen at 0, node2 failing over at 2.5, node1 thawing
# at 7.5 with the witness down and the link cut. Its thaw tick, after a gap, hears nobody: it
# steps down at once (split_brain.heard_at), before node2 promotes.
def test_1_a_frozen_primary_thaws_with_the_witness_down_and_the_link_cut() -> None:
    m = replay(
        Variant(checked=only(1)),
        "node1",
        [
            ("host_down", "node1"),
            ("tick", 15),
            ("witness_down",),
            ("cut_link",),
            ("host_down", "node1"),
            ("tick", 8),
        ],
    )
    n1, n2 = m.nodes["node1"], m.nodes["node2"]
    assert (n1.writable, n1.vip, n2.writable, n2.vip) == (False, False, True, True), m.story()


def test_1_can_fail_a_standby_that_ignores_the_witness() -> None:
    broken = policy(witnesses=())  # the standby decides as if no witness were configured
    with pytest.raises(TwoWritableVipHolders):
        must_fail(
            Variant(
                checked=only(1),
                policy=broken,
                single_faults=True,
                isolation_limit_s=SHORTER_LIMIT_S,
            )
        )


# --- Property 2: one writable VIP holder again, once the faults stop. -------------------------


def test_2_one_writable_vip_holder_once_the_faults_stop() -> None:
    run(Variant(checked=only(2)))


def _never_returns(me: str, **facts: Any) -> str | None:
    return None


def test_2_can_fail_an_isolated_primary_that_never_returns() -> None:
    with pytest.raises(NoSingleHolderAfterFaults):
        must_fail(Variant(checked=only(2), may_return=_never_returns))


# --- Property 3: no second automatic failover before the flag is cleared. ---------------------


def test_3_no_second_failover_before_the_flag_is_cleared() -> None:
    run(Variant(checked=only(3)))


def test_3_can_fail_a_standby_that_is_shown_no_flag() -> None:
    with pytest.raises(SecondFailover):
        # Host failures alone lead there: failover, rejoin, the new primary fails in turn.
        must_fail(Variant(checked=only(3), ignore_flag=True, faults=("host_down",)))


# --- Property 4: self-fencing only for a peer with a higher epoch. ----------------------------


def test_4_fencing_only_for_a_peer_with_a_higher_epoch() -> None:
    run(Variant(checked=only(4)))


def _took_over_without_epochs(
    peer: str,
    *,
    holds_vip: bool | None,
    writable: bool | None,
    flag: Mapping[str, Any] | None,
    epochs: Iterable[Epoch | None] = (),
) -> str | None:
    """The rule before epochs: a flag naming the peer, or the VIP on it, is enough."""
    bare = None if flag is None else {k: v for k, v in flag.items() if k != "epoch"}
    return split_brain.peer_took_over(peer, holds_vip=holds_vip, writable=writable, flag=bare)


def test_4_can_fail_a_rule_that_ignores_epochs() -> None:
    with pytest.raises(FencedForOlderEpoch):
        must_fail(Variant(checked=only(4), peer_took_over=_took_over_without_epochs))
