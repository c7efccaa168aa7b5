"""Issue 12, defect 7 and the evidence rules: no automatic promotion of a stale replica, "host
down" needs several ICMP losses in a row, what a failover may lose is said at once, and the
standby's care for its own replica (heartbeat, a failed IO thread). Pure functions only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monha import fsm, loss_bound, replica_care
from monha.model import (
    BinlogCoordinates,
    Event,
    MonitorState,
    ProbeStatus,
    ReplicaStatus,
    ReplicaView,
    State,
)
from tests.unit.unit_support import POLICY, _obs, lost_obs, probe, view

SUSPECT = MonitorState(State.SUSPECT, consecutive_failures=2, first_failure_at=998.0, since=998.0)
OK = ReplicaStatus(configured=True, io_running="Connecting", sql_running="Yes")


def with_status(status: ReplicaStatus) -> ReplicaView:
    return ReplicaView(probe("replica", "node2"), status, 4.0)


def decide_lost(status: ReplicaStatus, state: MonitorState = SUSPECT) -> fsm.Decision:
    state = replace(state, icmp_losses=POLICY.host_down_icmp_losses)
    return fsm.decide(state, lost_obs(replica_view=with_status(status)), POLICY)


# --- the stale-replica guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "words"),
    [
        (replace(OK, sql_running="No"), SUSPECT, "SQL thread is No"),
        (replace(OK, last_sql_errno=1062, last_sql_error="Duplicate"), SUSPECT, "error 1062"),
        (OK, replace(SUSPECT, lag_s=600.0), "lagged 600 s"),
        (OK, replace(SUSPECT, io_failing_since=998.0 - 3600), "IO thread had been failing"),
    ],
)
def test_defect7_a_stale_replica_is_not_promoted(
    status: ReplicaStatus, state: MonitorState, words: str
) -> None:
    d = decide_lost(status, state)
    assert d.event is Event.HOLD_REPLICA_STALE and not d.plan, d.reason
    assert words in d.reason


def test_defect7_a_fresh_replica_is_promoted() -> None:
    d = decide_lost(OK, replace(SUSPECT, lag_s=1.0, io_failing_since=997.0))
    assert d.event is Event.PRIMARY_LOST and d.plan, d.reason


def test_defect7_lag_and_io_failures_count_only_while_the_primary_answered() -> None:
    lagging = replace(view().status, seconds_behind=900)  # type: ignore[type-var]
    healthy = _obs(replica_view=with_status(lagging))
    after = fsm.decide(MonitorState(), healthy, POLICY).state
    assert after.lag_s == 900.0
    lost = lost_obs(replica_view=with_status(replace(lagging, seconds_behind=None)))
    assert fsm.decide(after, lost, POLICY).state.lag_s == 900.0  # the fault's own view ignored


def test_an_empty_sql_error_with_no_errno_is_not_a_reason() -> None:
    assert fsm.stale_replica(replace(OK, last_sql_error="old text"), SUSPECT, 1000.0, 60.0) == ""


# --- host down needs several ICMP losses in a row ------------------------------------------------


def test_one_lost_ping_with_an_ssh_timeout_is_not_a_dead_host() -> None:
    obs = lost_obs(icmp=ProbeStatus.TIMEOUT, ssh=ProbeStatus.TIMEOUT)
    d = fsm.decide(replace(SUSPECT, icmp_losses=0), obs, POLICY)
    assert "its host is down" not in d.reason, d.reason
    assert d.state.icmp_losses == 1


def test_enough_losses_in_a_row_make_a_dead_host() -> None:
    obs = lost_obs(icmp=ProbeStatus.TIMEOUT, ssh=ProbeStatus.TIMEOUT)
    state = replace(SUSPECT, icmp_losses=POLICY.host_down_icmp_losses - 1)
    d = fsm.decide(state, obs, POLICY)
    assert "its host is down" in d.reason, d.reason


def test_an_answered_ping_resets_the_losses() -> None:
    state = replace(SUSPECT, icmp_losses=2)
    assert fsm.decide(state, lost_obs(), POLICY).state.icmp_losses == 0


# --- the loss bound ------------------------------------------------------------------------------


def test_the_loss_bound_counts_gtids_not_received() -> None:
    primary = BinlogCoordinates("bin.000003", 5000, "0-1-120")
    replica = ReplicaStatus(configured=True, gtid_io_pos="0-1-100", gtid_slave_pos="0-1-99")
    bound = loss_bound.unreceived(primary, replica)
    assert bound.transactions == 20 and "lost at most 20 transaction" in bound.text


def test_the_loss_bound_without_gtids_says_bytes_or_unknown() -> None:
    primary = BinlogCoordinates("bin.000003", 5000)
    same = ReplicaStatus(configured=True, read_position=BinlogCoordinates("bin.000003", 4000))
    assert "1000 byte(s)" in loss_bound.unreceived(primary, same).text
    other = ReplicaStatus(configured=True, read_position=BinlogCoordinates("bin.000002", 9))
    assert loss_bound.unreceived(primary, other).transactions is None
    assert loss_bound.unreceived(None, same).text.startswith("unknown")


# --- the replica's care --------------------------------------------------------------------------


def care(status: ReplicaStatus, **kw: object) -> replica_care.Care:
    args: dict[str, object] = {
        "heartbeat_s": 1.0,
        "primary_answers": True,
        "now": 100.0,
        "last_restart_at": None,
    }
    return replica_care.care(status, **{**args, **kw})  # type: ignore[arg-type]


def test_a_wrong_heartbeat_is_set() -> None:
    c = care(ReplicaStatus(configured=True, io_running="Yes", heartbeat_period_s=30.0))
    assert c.set_heartbeat and "30 s" in c.why


def test_a_failed_io_thread_is_restarted_only_when_the_primary_answers_and_not_too_often() -> None:
    failed = ReplicaStatus(configured=True, io_running="No", last_io_errno=2013)
    assert care(failed).restart_io
    assert not care(failed, primary_answers=False).needed
    assert not care(failed, last_restart_at=90.0).needed
    assert care(failed, last_restart_at=100.0 - replica_care.RESTART_INTERVAL_S).restart_io


def test_threads_an_operator_stopped_are_left_alone() -> None:
    stopped = ReplicaStatus(configured=True, io_running="No", sql_running="No")
    assert not care(stopped).needed
    assert not care(ReplicaStatus(configured=False)).needed
