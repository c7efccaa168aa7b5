"""Invariants of the state machine over random observation sequences and a simulated world.

- never a plan while the completion flag is present;
- never a second failover plan before the flag was seen and then cleared;
- a failover plan only with its evidence (threshold, a witness or none configured, no witness
  seeing the primary, this node's replica status read);
- every plan interrupted after any prefix of steps converges: one promotion, one flag, and
  the plan replayed is the journaled one, never a weaker rebuild;
- an open plan that changed nothing is abandoned (never resumed) once the primary answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from unit_support import POLICY, WITNESS, _obs, lost_obs, policy, view, witness

from monha.fsm import Policy, decide, row_for
from monha.model import (
    Decision,
    MonitorState,
    Observation,
    PlanKind,
    ProbeStatus,
    State,
    Step,
    StepKind,
)

statuses = st.sampled_from(list(ProbeStatus))
views = st.builds(
    view,
    io=st.sampled_from(["Yes", "No", "Connecting", ""]),
    heard=st.none() | st.floats(0, 10),
    status=statuses,
    configured=st.booleans(),
)
witness_results = st.lists(
    st.builds(witness, statuses, st.none() | st.booleans(), st.sampled_from([WITNESS, "w2"])),
    max_size=2,
)


# Plausible ticks, so that failovers do happen; with random flags and journals on top.
typical = st.sampled_from(
    [
        _obs(),
        _obs(mysql=ProbeStatus.ALIVE_ERROR),
        lost_obs(),
        lost_obs(),
        lost_obs(primary_icmp=lost_obs(icmp=ProbeStatus.TIMEOUT).primary_icmp),
        lost_obs(witnesses=(witness(sees_primary=True),)),
        lost_obs(witnesses=(witness(ProbeStatus.TIMEOUT, None),)),
        lost_obs(replica_view=view()),
    ]
)


@st.composite
def typical_observations(draw: st.DrawFn) -> Observation:
    from dataclasses import replace

    return replace(
        draw(typical),
        flag_present=draw(st.sampled_from([False, False, False, True])),
        journal_open=draw(st.sampled_from([False] * 7 + [True])),
    )


@st.composite
def random_observations(draw: st.DrawFn, at: float = 0.0) -> Observation:
    return _obs(
        at=at,
        mysql=draw(st.sampled_from(list(ProbeStatus))),
        icmp=draw(statuses),
        ssh=draw(statuses),
        replica_view=draw(views),
        witnesses=tuple(draw(witness_results)),
        flag_present=draw(st.sampled_from([False, False, True])),
        journal_open=draw(st.sampled_from([False, False, False, True])),
    )


policies = st.sampled_from(
    [POLICY, policy(witnesses=()), policy(failures_before_failover=1), policy(witnesses=("w2",))]
)


def _has_failover_evidence(obs: Observation, pol: Policy, before: MonitorState) -> bool:
    results = [w for w in obs.witnesses if w.target in pol.witnesses]
    return (
        obs.primary_mysql.status in (ProbeStatus.FAILED, ProbeStatus.TIMEOUT)
        and before.consecutive_failures + 1 >= pol.failures_before_failover
        and not any(w.answered and w.sees_primary for w in results)
        and (not pol.witnesses or any(w.answered for w in results))
        and obs.replica_view.probe.status is ProbeStatus.OK
        and obs.replica_view.status is not None
        and obs.replica_view.status.configured
    )


@settings(max_examples=400, deadline=None)
@given(
    pol=policies,
    ticks=st.lists(
        st.tuples(
            typical_observations() | random_observations(),
            st.sampled_from([False] * 9 + [True]),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_random_sequences_keep_the_invariants(
    pol: Policy, ticks: list[tuple[Observation, bool]]
) -> None:
    state = MonitorState()
    armed, flag_seen = True, False  # may a new failover plan come? has the flag been seen?
    for i, (obs, restart) in enumerate(ticks):
        if restart:
            # The daemon restarts: its state is gone. Only the journal and the flag remember a
            # failover across processes; the World test below checks that they do.
            state, armed, flag_seen = MonitorState(), True, False
        obs = _replace_at(obs, float(i))
        d = decide(state, obs, pol)
        assert d == decide(state, obs, pol)  # pure
        row = row_for(state.state, d.event)
        assert (d.state.state, d.reason_code) == (row.target, row.code) and d.reason
        assert bool(d.plan) == (d.plan_kind is PlanKind.FAILOVER)
        assert d.state.consecutive_failures >= 0
        if obs.flag_present:
            assert not d.plan, "a plan while the completion flag is present"
            assert d.plan_kind is PlanKind.NONE
            flag_seen = True
        elif flag_seen:
            armed, flag_seen = True, False
        elif not obs.journal_open and state.state is State.FAILING_OVER:
            # A plan that left no journal (it could not be written, or an operator discarded
            # it) never ran a step: starting afresh is no second failover.
            armed = True
        event(f"plan: {d.plan_kind}")
        if d.plan_kind is PlanKind.FAILOVER:
            assert armed, "a second failover plan before the flag was cleared"
            assert _has_failover_evidence(obs, pol, state)
            armed = False
        elif d.plan_kind is PlanKind.RESUME:
            assert obs.journal_open and not obs.flag_present
            armed = False
        elif d.plan_kind is PlanKind.ABANDON:
            assert obs.journal_open and not obs.plan_committed
            assert d.state.state in (State.HEALTHY, State.SUSPECT)
            armed = True  # the abandoned plan changed nothing: a fresh decision may follow
        state = d.state


def _replace_at(obs: Observation, at: float) -> Observation:
    from dataclasses import replace

    return replace(obs, at=at)


# --- A simulated world: a primary that dies, an executor that may be killed mid-plan. ---------


@dataclass
class Executor:
    """Runs plan steps idempotently, keyed like a journal: a step recorded done is skipped."""

    plan: tuple[Step, ...] = ()  # the plan as journaled when it started
    done: list[str] = field(default_factory=list)
    promotions: int = 0
    flags_written: int = 0

    @property
    def committed(self) -> bool:
        return any(not k.startswith(("catch_up@", "check_hot@")) for k in self.done)

    def run(self, step: Step) -> None:
        if step.key in self.done:
            return
        if step.kind is StepKind.PROMOTE:
            self.promotions += 1
        if step.kind is StepKind.WRITE_FLAG:
            self.flags_written += 1
        self.done.append(step.key)


class World(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = MonitorState()
        self.at = 0.0
        self.dead = False
        self.flag = False
        self.journal: Executor | None = None  # an open journal: a failover started, no flag yet
        self.pending: list[Step] = []  # what this daemon process still has to run
        self.cycle_failovers = 0
        self.cycle_promotions = 0

    def _obs(self) -> Observation:
        base = lost_obs if self.dead else _obs
        j = self.journal
        return base(
            at=self.at,
            flag_present=self.flag,
            journal_open=j is not None,
            plan_committed=j is not None and j.committed,
        )

    @rule()
    def kill_primary(self) -> None:
        self.dead = True

    @rule()
    def revive_primary(self) -> None:
        self.dead = False

    @rule()
    def tick(self) -> None:
        self.at += 1.0
        d: Decision = decide(self.state, self._obs(), POLICY)
        self.state = d.state
        if d.plan_kind is not PlanKind.NONE:
            assert not self.flag
            event(f"world plan: {d.plan_kind}")
        if d.plan_kind is PlanKind.FAILOVER:
            assert self.journal is None, "a new failover over an unfinished one"
            self.cycle_failovers += 1
            self.journal = Executor(plan=d.plan)
            self.pending = list(d.plan)
        elif d.plan_kind is PlanKind.RESUME:
            assert self.journal is not None
            self.pending = list(self.journal.plan)  # the journaled plan, as decided
        elif d.plan_kind is PlanKind.ABANDON:
            assert self.journal is not None and not self.journal.committed
            assert self.journal.promotions == 0
            self.journal, self.pending = None, []
            self.cycle_failovers -= 1  # it never changed anything

    @rule(steps=st.integers(1, 12))
    def execute(self, steps: int) -> None:
        for _ in range(steps):
            if not self.pending or self.journal is None:
                return
            before = self.journal.promotions
            self.journal.run(self.pending.pop(0))
            self.cycle_promotions += self.journal.promotions - before
            if self.journal.flags_written:
                event("world: flag written")
                self.flag, self.journal, self.pending = True, None, []

    @rule()
    def crash_daemon(self) -> None:
        self.state, self.pending = MonitorState(), []

    @rule()
    def operator_clears_flag(self) -> None:
        if self.flag:
            self.flag = False
            self.cycle_failovers = self.cycle_promotions = 0

    @invariant()
    def at_most_one_failover_and_one_promotion_per_flag_cycle(self) -> None:
        assert self.cycle_failovers <= 1 and self.cycle_promotions <= 1

    @invariant()
    def no_failover_state_while_flagged_without_a_journal(self) -> None:
        if self.flag and self.state.state is State.FAILING_OVER:
            assert self.pending == [] or self.journal is not None


TestWorld = World.TestCase
TestWorld.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


# --- Every interrupted prefix converges. -------------------------------------------------------


def _failover_plan() -> tuple[MonitorState, tuple[Step, ...]]:
    state = MonitorState()
    for i in range(3):
        d = decide(state, lost_obs(at=float(i)), POLICY)
        state = d.state
    assert d.plan_kind is PlanKind.FAILOVER
    return state, d.plan


@pytest.mark.parametrize("done", range(len(_failover_plan()[1])))
def test_an_interrupted_failover_resumes_and_converges(done: int) -> None:
    _, plan = _failover_plan()
    journal = Executor(plan=plan)
    for step in plan[:done]:
        journal.run(step)
    # The daemon is killed; a new one starts from scratch and sees the open journal. Until
    # the plan changed a node, the evidence is re-established first (the threshold again).
    state = MonitorState()
    for i in range(3):
        obs = lost_obs(at=10.0 + i, journal_open=True, plan_committed=journal.committed)
        d = decide(state, obs, POLICY)
        state = d.state
        assert d.plan_kind in (PlanKind.NONE, PlanKind.RESUME) and not d.plan
        if d.plan_kind is PlanKind.RESUME:
            break
    assert d.plan_kind is PlanKind.RESUME
    assert journal.committed or i == 2
    for step in journal.plan:  # the executor replays the journaled plan
        journal.run(step)
    assert journal.promotions == 1 and journal.flags_written == 1
    assert journal.done == [s.key for s in plan]
    final = decide(d.state, lost_obs(at=20.0, flag_present=True), POLICY)
    assert final.state.state is State.DONE_FLAGGED and not final.plan
