"""The state machine, rule by rule: pure values in, decisions out. No mocks, no event loop."""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import replace

import pytest
from unit_support import POLICY, ROOT, WITNESS, _obs, lost_obs, policy, probe, view, witness

from monha import fsm
from monha.fsm import TABLE, assess, decide
from monha.model import (
    Decision,
    Event,
    MonitorState,
    Observation,
    PlanKind,
    ProbeStatus,
    ReasonCode,
    State,
    StepKind,
)
from monha.plan import PLAN_STALE_S, PlanInputs

OK, FAILED, TIMEOUT, ALIVE = (
    ProbeStatus.OK,
    ProbeStatus.FAILED,
    ProbeStatus.TIMEOUT,
    ProbeStatus.ALIVE_ERROR,
)
SUSPECT3 = MonitorState(State.SUSPECT, consecutive_failures=2, first_failure_at=998.0, since=998.0)


def run(observations: list[Observation], pol: fsm.Policy = POLICY) -> list[Decision]:
    state, out = MonitorState(), []
    for obs in observations:
        d = decide(state, obs, pol)
        out.append(d)
        state = d.state
    return out


def at_threshold(obs: Observation, pol: fsm.Policy = POLICY) -> Decision:
    """Decide the tick on which the failure count reaches the threshold (the ticks before saw
    the same: ICMP, if lost now, was lost on them too)."""
    return decide(replace(SUSPECT3, icmp_losses=pol.host_down_icmp_losses - 1), obs, pol)


# --- The table. ------------------------------------------------------------------------------


def test_every_state_event_pair_has_exactly_one_row() -> None:
    pairs = [(r.source, r.event) for r in TABLE]
    assert sorted(pairs) == sorted(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_every_row_is_sane(state: State, event: Event) -> None:
    row = fsm.row_for(state, event)
    assert row.comment
    # A failover plan only on primary_lost, a replay only on an unfinished journal, closing
    # a plan unrun only on plan_abandoned; never a plan from done_flagged.
    if row.plan is not PlanKind.NONE:
        assert state is not State.DONE_FLAGGED
        assert (event, row.plan, row.target) in {
            (Event.PRIMARY_LOST, PlanKind.FAILOVER, State.FAILING_OVER),
            (Event.FAILOVER_UNFINISHED, PlanKind.RESUME, State.FAILING_OVER),
            (Event.PLAN_ABANDONED, PlanKind.ABANDON, State.HEALTHY),
            (Event.PLAN_SUPERSEDED, PlanKind.ABANDON, State.SUSPECT),
        }
    if event is Event.FLAG_PRESENT:
        assert row.target is State.DONE_FLAGGED and row.plan is PlanKind.NONE
    if event is Event.JOURNAL_UNREADABLE:
        assert row.target is State.BLOCKED and row.plan is PlanKind.NONE
    if event is Event.PLAN_RETRY_WAIT:
        assert row.plan is PlanKind.NONE
        assert row.target in (State.FAILING_OVER, State.DONE_FLAGGED)


def test_the_doc_shows_exactly_the_table() -> None:
    doc = (ROOT / "docs" / "state-machine.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", doc, re.S)
    assert blocks == [fsm.mermaid()], "regenerate docs/state-machine.md from fsm.mermaid()"
    assert fsm.markdown_table() in doc, "regenerate the table in docs/state-machine.md"


def test_mermaid_has_an_edge_for_every_row() -> None:
    text = fsm.mermaid()
    for r in TABLE:
        assert re.search(rf"{r.source} --> {r.target}: .*\b{r.event}\b", text)


# --- The rules of issue 3. -------------------------------------------------------------------


def test_healthy_stays_healthy() -> None:
    d = decide(MonitorState(), _obs(), POLICY)
    assert (d.state.state, d.reason_code, d.plan) == (State.HEALTHY, ReasonCode.PRIMARY_OK, ())


def test_fails_over_on_the_third_consecutive_failure_exactly() -> None:
    ds = run([lost_obs(at=1000.0 + i) for i in range(3)])
    assert [d.state.state for d in ds] == [State.SUSPECT, State.SUSPECT, State.FAILING_OVER]
    assert [bool(d.plan) for d in ds] == [False, False, True]
    last = ds[-1]
    assert last.reason_code is ReasonCode.FAILOVER_STARTED and last.plan_kind is PlanKind.FAILOVER
    assert last.state.first_failure_at == 1000.0 and last.state.failover_started_at == 1002.0
    assert "failed 3 consecutive" in last.reason and WITNESS in last.reason
    assert last.plan[-1].kind is StepKind.WRITE_FLAG
    assert {s.node for s in last.plan if s.kind is StepKind.PROMOTE} == {"node2"}


def test_threshold_comes_from_policy() -> None:
    ds = run([lost_obs()], policy(failures_before_failover=1))
    assert ds[0].plan_kind is PlanKind.FAILOVER  # healthy -> failing_over directly


def test_below_threshold_is_suspect_and_says_so() -> None:
    d = decide(MonitorState(), lost_obs(), POLICY)
    assert d.state.state is State.SUSPECT and d.reason_code is ReasonCode.PRIMARY_FAILING
    assert "fewer than 3" in d.reason


def test_timeout_counts_as_failure() -> None:
    assert assess(lost_obs(mysql=TIMEOUT), POLICY, 2).event is Event.PRIMARY_LOST


@pytest.mark.parametrize("state", [MonitorState(), SUSPECT3])
def test_alive_error_means_alive_and_resets(state: MonitorState) -> None:
    # Scenario 6: "too many connections" is an answer.
    refused = probe("mysql", "node1", ALIVE, detail="Too many connections", error_code=1040)
    obs = lost_obs(primary_mysql=refused)
    d = decide(state, obs, POLICY)
    assert d.state.state is State.HEALTHY and d.state.consecutive_failures == 0
    assert d.reason_code is ReasonCode.PRIMARY_ALIVE_ERROR and "1040" in d.reason and not d.plan


@pytest.mark.parametrize("state", [MonitorState(), SUSPECT3])
def test_mysql_answering_on_its_own_host_means_the_network_is_at_fault(
    state: MonitorState,
) -> None:
    # Scenario 5: 30 % loss between the nodes. The probe from here timed out, the replica
    # reconnects, but the check run on node1 over SSH reached its MySQL: no failover.
    local = probe("ssh_mysql", "node1", ProbeStatus.OK)
    obs = lost_obs(mysql=TIMEOUT, primary_local_mysql=local)
    d = decide(state, obs, POLICY)
    assert d.state.state is State.HEALTHY and d.state.consecutive_failures == 0
    assert d.reason_code is ReasonCode.PRIMARY_ALIVE_LOCALLY and not d.plan
    assert "checked over SSH" in d.reason


@pytest.mark.parametrize("local_status", [ProbeStatus.FAILED, ProbeStatus.SKIPPED, None])
def test_a_local_check_that_did_not_answer_is_no_evidence_of_life(
    local_status: ProbeStatus | None,
) -> None:
    # Scenario 1: mysqld killed, its host up: the check over SSH fails too (or did not run).
    local = None if local_status is None else probe("ssh_mysql", "node1", local_status)
    d = decide(SUSPECT3, lost_obs(primary_local_mysql=local), POLICY)
    assert d.reason_code is ReasonCode.FAILOVER_STARTED and d.plan


def test_recovery_within_the_window_returns_to_healthy() -> None:
    # Scenario 7: mysqld killed and back within the detection window.
    ds = run([lost_obs(), lost_obs(), _obs(), lost_obs(), lost_obs()])
    assert not any(d.plan for d in ds)
    assert ds[2].reason_code is ReasonCode.PRIMARY_RECOVERED
    assert ds[-1].state.consecutive_failures == 2


def test_a_skipped_mysql_probe_neither_counts_nor_resets() -> None:
    d = decide(SUSPECT3, lost_obs(mysql=ProbeStatus.SKIPPED), POLICY)
    assert d.reason_code is ReasonCode.HOLD_EVIDENCE_MISSING and not d.plan
    assert d.state.consecutive_failures == 2 and d.state.first_failure_at == 998.0


def test_the_flag_blocks_failover() -> None:
    # Scenario 3.
    d = at_threshold(lost_obs(flag_present=True))
    assert d.state.state is State.DONE_FLAGGED and not d.plan
    assert d.reason_code is ReasonCode.FLAG_BLOCKS
    assert "completion flag present" in d.reason and "blocks automatic failover" in d.reason
    again = decide(d.state, lost_obs(flag_present=True), POLICY)
    assert again.state.state is State.DONE_FLAGGED and not again.plan


def test_clearing_the_flag_returns_to_healthy() -> None:
    flagged = MonitorState(State.DONE_FLAGGED, since=1.0, failover_started_at=1.0)
    d = decide(flagged, lost_obs(), POLICY)
    assert d.state.state is State.HEALTHY and d.reason_code is ReasonCode.FLAG_CLEARED
    assert d.state.failover_started_at is None and not d.plan


def test_no_failover_when_no_witness_answers() -> None:
    # Scenario 4: the standby isolated from everything.
    obs = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=(witness(TIMEOUT, None),))
    d = at_threshold(obs)
    assert d.reason_code is ReasonCode.HOLD_ISOLATED and not d.plan
    assert "no witness answered" in d.reason and WITNESS in d.reason


def test_missing_witness_results_count_as_silence() -> None:
    assert assess(lost_obs(witnesses=()), POLICY, 2).event is Event.HOLD_ISOLATED


def test_results_of_unconfigured_witnesses_are_ignored() -> None:
    stranger = witness(name="somebody-else")
    assert assess(lost_obs(witnesses=(stranger,)), POLICY, 2).event is Event.HOLD_ISOLATED


def test_one_answering_witness_is_enough() -> None:
    pol = policy(witnesses=(WITNESS, "w2"))
    obs = lost_obs(witnesses=(witness(TIMEOUT, None, "w2"), witness()))
    assert at_threshold(obs, pol).plan_kind is PlanKind.FAILOVER


def test_a_witness_that_sees_the_primary_means_a_partition() -> None:
    # Issue 8: only the link between the nodes is cut.
    obs = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=(witness(sees_primary=True),))
    d = at_threshold(obs)
    assert d.reason_code is ReasonCode.HOLD_PARTITION and not d.plan
    assert f"witness {WITNESS} still reaches" in d.reason and "partition" in d.reason


def test_an_icmp_only_witness_proves_this_node_is_not_isolated() -> None:
    obs = lost_obs(witnesses=(witness(sees_primary=None),))
    assert at_threshold(obs).plan_kind is PlanKind.FAILOVER


def test_hold_while_the_replica_still_hears_the_primary() -> None:
    d = at_threshold(lost_obs(replica_view=view(io="Yes", heard=0.5)))
    assert d.reason_code is ReasonCode.HOLD_REPLICA_CONNECTED and not d.plan
    assert "still hears it" in d.reason


def test_replica_silence_alone_means_lost() -> None:
    # Scenario 9: a hung primary keeps the TCP connection, the IO thread says Yes, nothing comes.
    obs = lost_obs(mysql=TIMEOUT, ssh=TIMEOUT, replica_view=view(io="Yes", heard=3.5))
    d = at_threshold(obs)
    assert d.plan_kind is PlanKind.FAILOVER and "silent for 3.5 s" in d.reason


def test_host_down_does_not_outweigh_a_replica_that_still_hears_it() -> None:
    # Defect 5: on a lossy link this node's pings and SSH fail while the primary serves; the
    # replica's stream from it is the better witness of whether it still sends.
    for heard in (0.5, None):
        obs = lost_obs(icmp=TIMEOUT, ssh=FAILED, replica_view=view(io="Yes", heard=heard))
        d = at_threshold(obs)
        assert d.reason_code is ReasonCode.HOLD_REPLICA_CONNECTED and not d.plan, d.reason
        assert "host is down" in d.reason


def test_host_down_with_the_replica_silent_fails_over_without_ssh_fencing() -> None:
    obs = lost_obs(icmp=TIMEOUT, ssh=FAILED, replica_view=view(io="Yes", heard=3.5))
    d = at_threshold(obs)
    assert d.plan_kind is PlanKind.FAILOVER and "host is down" in d.reason
    assert d.plan[0].kind is not StepKind.VIP_DOWN, d.plan


def test_a_witness_that_sees_the_primary_counts_as_hearing_it() -> None:
    """The failover's wait for a step-down counts from the last sign of the primary, a
    witness's included: the primary may hear that witness, and its isolation clock with it."""
    cut = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=(witness(sees_primary=True),))
    state = decide(replace(SUSPECT3, primary_heard_at=900.0), cut, POLICY).state
    assert state.primary_heard_at == cut.at
    unseen = replace(cut, witnesses=(witness(sees_primary=False),))
    assert (
        decide(replace(SUSPECT3, primary_heard_at=900.0), unseen, POLICY).state.primary_heard_at
        == 900.0
    )


@pytest.mark.parametrize(
    ("replica_view", "missing"),
    [
        (view(status=TIMEOUT), "own MySQL did not report"),
        (view(status=FAILED), "own MySQL did not report"),
        (view(configured=False), "not a replica"),
    ],
)
def test_unclear_local_evidence_holds_and_names_it(replica_view: object, missing: str) -> None:
    d = at_threshold(lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, replica_view=replica_view))
    assert d.reason_code is ReasonCode.HOLD_EVIDENCE_MISSING and not d.plan
    assert missing in d.reason


def test_unknown_node_names_hold() -> None:
    d = at_threshold(lost_obs(primary="node9"))
    assert d.reason_code is ReasonCode.HOLD_EVIDENCE_MISSING and "node9" in d.reason
    assert assess(lost_obs(primary="node2"), POLICY, 2).event is Event.HOLD_EVIDENCE_MISSING


# --- Without witnesses. ----------------------------------------------------------------------

NO_WITNESS = policy(witnesses=())


def test_no_witness_host_down_by_icmp_and_replica_lost_fails_over() -> None:
    d = at_threshold(lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=()), NO_WITNESS)
    assert d.plan_kind is PlanKind.FAILOVER and "no witness configured" in d.reason


def test_no_witness_reachable_by_ssh_fails_over_fencing_over_ssh() -> None:
    d = at_threshold(lost_obs(witnesses=()), NO_WITNESS)
    assert d.plan_kind is PlanKind.FAILOVER
    assert d.plan[0].kind is StepKind.VIP_DOWN and d.plan[0].node == "node1"


def test_no_witness_hung_host_holds() -> None:
    d = at_threshold(lost_obs(ssh=TIMEOUT, witnesses=()), NO_WITNESS)
    assert d.reason_code is ReasonCode.HOLD_EVIDENCE_MISSING and not d.plan
    assert "no witness configured" in d.reason


def test_no_witness_replica_connected_holds() -> None:
    obs = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, replica_view=view(), witnesses=())
    assert at_threshold(obs, NO_WITNESS).reason_code is ReasonCode.HOLD_REPLICA_CONNECTED


# --- witness_silent = "fence". ---------------------------------------------------------------


def _fencing_policy() -> fsm.Policy:
    inputs = dataclasses.replace(POLICY.plan, fence_argv=("/usr/local/sbin/fence-node1",))
    return policy(plan=inputs, witness_silent="fence")


def test_silent_witnesses_with_fence_policy_fail_over_through_a_mandatory_fence() -> None:
    obs = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=(witness(TIMEOUT, None),))
    d = at_threshold(obs, _fencing_policy())
    assert d.plan_kind is PlanKind.FAILOVER
    fence = d.plan[0]
    assert fence.kind is StepKind.FENCE_COMMAND and fence.on_failure == "stop"
    assert "fence command must succeed" in d.reason


def test_silent_witnesses_with_fence_policy_but_no_command_hold() -> None:
    pol = policy(witness_silent="fence", plan=dataclasses.replace(POLICY.plan, fence_argv=()))
    obs = lost_obs(witnesses=(witness(TIMEOUT, None),))
    assert at_threshold(obs, pol).reason_code is ReasonCode.HOLD_ISOLATED


# --- Failing over, resuming, and the flag cycle. ----------------------------------------------


def test_failing_over_with_an_open_journal_never_plans_anew() -> None:
    failing = MonitorState(State.FAILING_OVER, 3, 998.0, 1000.0, 1000.0)
    for committed in (False, True):
        for obs in (lost_obs(), _obs(), _obs(mysql=ALIVE)):
            o = replace(obs, journal_open=True, plan_committed=committed)
            d = decide(failing, o, POLICY)
            assert d.plan_kind is not PlanKind.FAILOVER and not d.plan
            if d.state.state is State.FAILING_OVER:
                assert d.state.failover_started_at == 1000.0


def test_the_flag_appearing_ends_the_failover() -> None:
    failing = MonitorState(State.FAILING_OVER, 3, 998.0, 1000.0, 1000.0)
    d = decide(failing, _obs(flag_present=True), POLICY)
    assert d.state.state is State.DONE_FLAGGED and d.reason_code is ReasonCode.FAILOVER_DONE
    assert d.state.failover_started_at == 1000.0


@pytest.mark.parametrize("state", [MonitorState(), SUSPECT3])
def test_an_open_committed_journal_is_replayed_not_rebuilt(state: MonitorState) -> None:
    # Issue 11, defect 1: the resumed plan is the journal's, never one rebuilt from a fresh
    # observation (which could hold no fence step at all): the decision carries no steps.
    d = decide(state, _obs(journal_open=True, plan_committed=True), POLICY)
    assert d.state.state is State.FAILING_OVER and d.plan_kind is PlanKind.RESUME
    assert d.reason_code is ReasonCode.FAILOVER_RESUMED and d.plan == ()


def test_the_flag_beats_an_open_journal() -> None:
    d = decide(MonitorState(), _obs(journal_open=True, flag_present=True), POLICY)
    assert d.state.state is State.DONE_FLAGGED and not d.plan


def test_an_open_journal_after_the_flag_needs_an_operator() -> None:
    flagged = MonitorState(State.DONE_FLAGGED)
    d = decide(flagged, _obs(journal_open=True), POLICY)
    assert d.state.state is State.DONE_FLAGGED and not d.plan
    assert d.reason_code is ReasonCode.JOURNAL_AFTER_FLAG


def test_since_tracks_the_last_transition() -> None:
    ds = run([_obs(at=1.0), lost_obs(at=2.0), lost_obs(at=3.0), _obs(at=4.0)])
    assert [d.state.since for d in ds] == [1.0, 2.0, 2.0, 4.0]


def test_fence_policy_follows_the_evidence() -> None:
    with_command = dataclasses.replace(POLICY.plan, fence_argv=("/usr/local/sbin/fence",))
    pol = policy(plan=with_command)
    down = at_threshold(lost_obs(icmp=TIMEOUT, ssh=TIMEOUT), pol).plan[0]
    hung = at_threshold(lost_obs(mysql=TIMEOUT, ssh=TIMEOUT), pol).plan[0]
    assert (down.kind, down.on_failure) == (StepKind.FENCE_COMMAND, "continue")
    assert (hung.kind, hung.on_failure) == (StepKind.FENCE_COMMAND, "stop")


def test_policy_from_config_matches_the_config() -> None:
    assert POLICY.failures_before_failover == 3 and POLICY.witnesses == (WITNESS,)
    assert POLICY.witness_silent == "hold" and isinstance(POLICY.plan, PlanInputs)


def test_a_failed_fence_command_is_abandoned_once_the_primary_answers() -> None:
    # Review finding: retrying it later would power off a healthy primary.
    failing = MonitorState(State.FAILING_OVER, 5, 990.0, 990.0, 990.0, 1, 995.0)
    d = decide(failing, _obs(at=1000.0, journal_open=True, plan_committed=False), POLICY)
    assert d.plan_kind is PlanKind.ABANDON and d.event is Event.PLAN_ABANDONED


def test_a_plan_whose_old_host_died_is_superseded_keeping_the_count() -> None:
    failing = MonitorState(State.FAILING_OVER, 5, 990.0, 990.0, 990.0, 1, 995.0, icmp_losses=2)
    dead = lost_obs(at=1000.0, icmp=TIMEOUT, ssh=TIMEOUT, journal_open=True)
    d = decide(failing, dead, POLICY)
    assert d.plan_kind is PlanKind.ABANDON and d.event is Event.PLAN_SUPERSEDED
    nxt = decide(d.state, replace(dead, at=1001.0, journal_open=False), POLICY)
    assert nxt.plan_kind is PlanKind.FAILOVER  # at once: the failure count was kept


def test_a_promote_that_ran_unrecorded_is_resumed_not_waited_for() -> None:
    # Review finding: killed mid-promote, this node no longer replicates; the fresh look holds
    # ("not a replica"), but only finishing the plan gives the cluster its primary back.
    gone = lost_obs(replica_view=view(configured=False), journal_open=True)
    d = decide(MonitorState(), gone, POLICY)
    assert d.plan_kind is PlanKind.RESUME


def test_a_stale_uncommitted_plan_is_superseded_a_committed_one_resumed() -> None:
    # Review finding: resumed long after its wait for the old primary's step-down ended, the
    # plan would promote while that primary may be serving again.
    failing = MonitorState(State.FAILING_OVER, 5, 990.0, 990.0, 990.0, 1, None)
    long_ago = 1000.0 - PLAN_STALE_S - 1.0
    stale = lost_obs(at=1000.0, journal_open=True, plan_active_at=long_ago)
    d = decide(failing, stale, POLICY)
    assert d.plan_kind is PlanKind.ABANDON and d.event is Event.PLAN_SUPERSEDED
    assert "has not run for" in d.reason
    recent = decide(failing, replace(stale, plan_active_at=1000.0 - 5.0), POLICY)
    assert recent.plan_kind is PlanKind.RESUME
    committed = decide(failing, replace(stale, plan_committed=True), POLICY)
    assert committed.plan_kind is PlanKind.RESUME


def test_a_witness_that_cannot_tell_holds_a_failover_nothing_can_fence() -> None:
    # Review finding: an ICMP-only witness answers the primary too, whose isolation clock then
    # never runs out; promoting after the step-down wait gave two writable primaries.
    icmp_only = (witness(sees_primary=None),)
    cut = lost_obs(icmp=TIMEOUT, ssh=TIMEOUT, witnesses=icmp_only)
    d = at_threshold(cut)
    assert d.event is Event.HOLD_UNFENCEABLE and d.plan_kind is PlanKind.NONE
    assert "witness zabbix-external cannot tell" in d.reason and "no fence command" in d.reason
    # SSH reaches it (the plan fences it), or a fence command can: the failover goes on.
    assert (
        at_threshold(replace(cut, primary_ssh=probe("ssh", "node1"))).plan_kind is PlanKind.FAILOVER
    )
    command = dataclasses.replace(POLICY.plan, fence_argv=("/usr/local/sbin/fence",))
    assert at_threshold(cut, policy(plan=command)).plan_kind is PlanKind.FAILOVER
    # A witness that checked and does not see it: the primary steps down by itself in time.
    assert at_threshold(lost_obs(icmp=TIMEOUT, ssh=TIMEOUT)).plan_kind is PlanKind.FAILOVER
    # Second review: one witness does not see it, the other's check failed though it answers
    # ICMP (the primary's clock counts that): hold too.
    failed_check = probe("witness", "w2", FAILED, reached=True)
    two = policy(witnesses=(WITNESS, "w2"), heard_witnesses=(WITNESS, "w2"))
    mixed = replace(cut, witnesses=(witness(), failed_check))
    assert at_threshold(mixed, two).event is Event.HOLD_UNFENCEABLE


def test_a_waiting_plan_found_by_a_daemon_just_started_is_decided_afresh() -> None:
    # Review finding: resumed after a restart, the wait had missed whatever the old primary
    # did meanwhile (a witness may have seen it, its own clock restarted).
    fresh_daemon = MonitorState()
    obs = lost_obs(at=1000.0, journal_open=True, plan_waits=True, plan_active_at=995.0)
    d = decide(fresh_daemon, obs, POLICY)
    assert d.event is Event.PLAN_SUPERSEDED and d.plan_kind is PlanKind.ABANDON
    assert d.state.primary_heard_at == 1000.0  # the next plan waits in full
    # The same plan seen by a daemon that has been running: resumed.
    running = MonitorState(State.FAILING_OVER, 5, 990.0, 990.0, 990.0, 1, None, observed_at=999.0)
    assert decide(running, obs, POLICY).plan_kind is PlanKind.RESUME
