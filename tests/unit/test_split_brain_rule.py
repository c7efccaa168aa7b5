"""When a primary must fence itself (issues 8 and 12: epochs, isolation), when it may serve
again, and which of several probe attempts counts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from monha.__main__ import main as monha_main
from monha.config import Config
from monha.guard import StallMeter
from monha.model import ProbeResult, ProbeStatus
from monha.observe import best
from monha.plan import PLAN_STALE_S, PLAN_STALE_SKEW_S, last_active_at
from monha.split_brain import (
    Epoch,
    flag_epoch,
    heard_at,
    isolated,
    isolation_limit,
    may_return,
    newest,
    next_epoch,
    peer_plan_against,
    peer_took_over,
    plan_holds_return,
)
from tests.middle.world import write_config
from tests.unit.unit_support import CONFIG


def test_a_flag_naming_the_peer_is_enough() -> None:
    why = peer_took_over(
        "node2",
        holds_vip=None,
        writable=None,
        flag={"new_primary": "node2", "failover_id": "f1"},
    )
    assert why is not None and "flag" in why and "f1" in why


def test_the_vip_on_the_peer_is_enough() -> None:
    why = peer_took_over("node2", holds_vip=True, writable=True, flag=None)
    assert why == "node2 holds the VIP and is writable"


@pytest.mark.parametrize(
    ("holds_vip", "writable", "flag"),
    [
        (False, True, None),  # writable alone: could leave no primary at all
        (None, None, None),  # nothing known: the peer is out of sight
        (False, False, {"new_primary": "node1"}),  # its flag names this node: not a takeover
    ],
)
def test_no_self_fencing_without_a_clear_sign(
    holds_vip: bool | None, writable: bool | None, flag: dict[str, str] | None
) -> None:
    assert peer_took_over("node2", holds_vip=holds_vip, writable=writable, flag=flag) is None


def _r(status: ProbeStatus, latency: float = 0.1) -> ProbeResult:
    return ProbeResult("mysql", "node1", status, latency)


def test_best_attempt_prefers_an_answer_then_a_refusal() -> None:
    timeout, failed, ok = _r(ProbeStatus.TIMEOUT), _r(ProbeStatus.FAILED), _r(ProbeStatus.OK)
    alive = _r(ProbeStatus.ALIVE_ERROR)
    assert best([timeout, ok]) is ok
    assert best([timeout, alive, failed]) is alive
    assert best([timeout, failed]) is failed
    assert best([_r(ProbeStatus.OK, 0.5), _r(ProbeStatus.OK, 0.2)]).latency_s == 0.2


# --- epochs (issue 12, defect 1: a switchover back must not fence the restored primary) ---


def _e(number: int, primary: str, by: str = "failover") -> Epoch:
    return Epoch(number, primary, 0.0, by, f"plan{number}")


def test_a_switchover_back_stands_against_the_older_failover_flag() -> None:
    """node1 failed over to node2 (epoch 1), was rejoined and switched back (epoch 2): node2
    still holds the flag of epoch 1 and is read_only; node1 must not fence itself."""
    old_flag = {"new_primary": "node2", "failover_id": "f1", "epoch": _e(1, "node2").to_dict()}
    why = peer_took_over(
        "node2",
        holds_vip=False,
        writable=False,
        flag=old_flag,
        epochs=[_e(2, "node1", "switchover"), _e(2, "node1", "switchover")],
    )
    assert why is None


def test_a_newer_epoch_naming_the_peer_fences_even_on_writability_alone() -> None:
    why = peer_took_over(
        "node2", holds_vip=False, writable=True, flag=None, epochs=[_e(1, "node1"), _e(2, "node2")]
    )
    assert why is not None and "epoch 2" in why


def test_an_epoch_naming_me_outweighs_the_vip_on_the_peer() -> None:
    # The peer still shows the VIP of an older claim: its own monha steps down for ours.
    why = peer_took_over(
        "node2", holds_vip=True, writable=True, flag=None, epochs=[_e(3, "node1"), _e(2, "node2")]
    )
    assert why is None


def test_the_flags_own_epoch_counts_when_no_epoch_file_was_read() -> None:
    flag = {"new_primary": "node2", "failover_id": "f2", "epoch": _e(5, "node2").to_dict()}
    why = peer_took_over("node2", holds_vip=None, writable=None, flag=flag, epochs=[_e(4, "node1")])
    assert why is not None and "epoch 5" in why


def test_next_epoch_is_one_above_every_known_one() -> None:
    assert next_epoch([None, _e(3, "a"), _e(7, "b")], "a", 1.0, "failover", "p").number == 8
    assert next_epoch([None, None], "a", 1.0, "failover", "p").number == 1
    assert newest([]) is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"epoch": -1, "primary": "a"}, "'epoch'"),
        ({"epoch": True, "primary": "a"}, "'epoch'"),
        ({"epoch": "3", "primary": "a"}, "'epoch'"),
        ({"epoch": 3, "primary": ""}, "'primary'"),
        ({"epoch": 3}, "'primary'"),
    ],
)
def test_a_bad_epoch_record_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Epoch.from_dict(data)


def test_an_epoch_round_trips() -> None:
    e = Epoch(4, "node2", 12.5, "switchover", "p4")
    assert Epoch.from_dict(e.to_dict()) == e
    assert flag_epoch({"epoch": e.to_dict()}) == e
    assert flag_epoch({"epoch": {"epoch": "x"}}) is None  # a corrupt one is no claim
    assert flag_epoch(None) is None


# --- isolation (issue 12, defect 3) ---


def test_isolation_counts_from_the_last_answer_never_from_an_assumed_silence() -> None:
    assert isolated(100.0, None, 3.0) is None
    assert isolated(102.9, 100.0, 3.0) is None
    why = isolated(103.0, 100.0, 3.0)
    assert why is not None and "3.0 s" in why and "isolation_fence_s 3" in why


def test_the_isolation_clock_after_time_away_or_a_start_counts_only_the_peer() -> None:
    # No time away: any answer restarts the clock; silence keeps it.
    assert heard_at(11.0, 10.0, 0.0, 3.0, peer=False, witness=True) == 11.0
    assert heard_at(11.0, 10.0, 0.0, 3.0, peer=False, witness=False) == 10.0
    # Away for the limit (a frozen host): the witness does not count at the first tick after
    # it, the peer does; the next tick (not away) counts the witness again.
    assert heard_at(20.0, 10.0, 9.0, 3.0, peer=False, witness=True) == 10.0
    assert isolated(20.0, 10.0, 3.0) is not None
    assert heard_at(20.0, 10.0, 9.0, 3.0, peer=True, witness=False) == 20.0
    assert heard_at(21.0, 10.0, 0.0, 3.0, peer=False, witness=True) == 21.0
    # Just started: an answer starts the clock; nobody answering is a silence of unknown length.
    assert heard_at(5.0, None, 0.0, 3.0, peer=False, witness=True) == 5.0
    started_deaf = heard_at(5.0, None, 0.0, 3.0, peer=False, witness=False)
    why = isolated(5.0, started_deaf, 3.0)
    assert why is not None and "since this daemon started" in why


def test_time_away_is_the_process_stalling_not_a_slow_tick() -> None:
    meter = StallMeter(clock=lambda: 0.0)
    p = StallMeter.PERIOD_S
    meter.woke(10.0, 10.0 + p)  # on time
    meter.woke(11.0, 11.0 + p + 0.3)  # a busy loop, within the slack
    assert meter.take() == 0.0
    meter.woke(12.0, 12.0 + p + 8.0)  # frozen for 8 s
    meter.woke(21.0, 21.0 + p + 2.0)
    assert meter.take() == pytest.approx(10.0)
    assert meter.take() == 0.0  # each stall counts once


async def test_the_meter_measures_a_real_stall() -> None:
    meter = StallMeter()
    task = asyncio.create_task(meter.run())
    try:
        await asyncio.sleep(0.1)
        time.sleep(1.0)  # noqa: ASYNC251 - the loop blocked, as a frozen process would be
        await asyncio.sleep(0.4)
        assert 0.5 < meter.take() < 1.5
    finally:
        task.cancel()


def _cfg(failures: int, interval_s: float, fence_s: float | None = None) -> Config:
    probe = CONFIG.probe.model_copy(
        update={"failures_before_failover": failures, "interval_s": interval_s}
    )
    failover = CONFIG.failover.model_copy(update={"isolation_fence_s": fence_s})
    return CONFIG.model_copy(update={"probe": probe, "failover": failover})


def test_the_default_isolation_limit_is_the_standbys_detection_time() -> None:
    assert isolation_limit(_cfg(3, 1.0)) == 3.0
    assert isolation_limit(_cfg(5, 0.5)) == 2.5
    assert isolation_limit(_cfg(3, 1.0, 7.0)) == 7.0


def test_a_failover_waits_for_an_unreachable_primary_to_step_down_first() -> None:
    """The standby promotes only after the isolated primary's limit plus slack (two ticks of
    a failing probe round, one to step down), counted from when it was last heard."""
    with_witness = _cfg(3, 1.0)
    assert with_witness.witness, "the example config has a witness"
    assert with_witness.peer_step_down_s() == 3.0 + 3.0
    no_witness = with_witness.model_copy(update={"witness": []})
    assert no_witness.peer_step_down_s() == 0.0  # no self-fencing: nothing to wait for


def _ret(**kw: object) -> str | None:
    base: dict[str, object] = {
        "peer_answers": True,
        "peer_replicates_from_me": True,
        "peer_writable": False,
        "peer_flag": None,
        "epochs": [_e(1, "node1")],
    }
    base.update(kw)
    return may_return("node1", **base)  # type: ignore[arg-type]


def test_an_isolated_primary_returns_only_when_the_peer_was_not_promoted() -> None:
    assert _ret() is not None
    assert _ret(epochs=[]) is not None  # a cluster that never failed over
    assert _ret(peer_answers=False) is None
    assert _ret(peer_replicates_from_me=False) is None  # promoted, or detached
    assert _ret(peer_writable=True) is None
    assert _ret(peer_writable=None) is None  # not known: no return on half the facts
    assert _ret(peer_flag={"new_primary": "node2"}) is None
    assert _ret(epochs=[_e(1, "node1"), _e(2, "node2")]) is None


@pytest.mark.parametrize(
    ("witnesses", "extra", "says"),
    [
        (0, "", "inactive: no witness configured"),
        (1, "", "use two"),
        (2, "", "for 0.15 s steps down (the default: the standby's detection time, 3 failed"),
        (2, "isolation_fence_s = 4.0", "for 4 s steps down (failover.isolation_fence_s)"),
        (2, 'self_fence_on_isolation = "off"', "off (failover.self_fence_on_isolation)"),
    ],
)
def test_check_config_says_whether_and_when_an_isolated_primary_steps_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], witnesses: int, extra: str, says: str
) -> None:
    path = write_config(tmp_path, failover_extra=extra)
    ws = "".join(
        f'[[witness]]\nname = "w{i}"\naddress = "192.168.10.{250 + i}"\n\n'
        for i in range(witnesses)
    )
    path.write_text(path.read_text().replace("[ssh]", ws + "[ssh]"))
    assert monha_main(["check-config", str(path)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("isolation")]
    assert len(line) == 1 and says in line[0], line


def test_a_tied_epoch_goes_to_the_same_claim_on_both_nodes() -> None:
    """Two promotions that could not read each other's epoch raised the same number: exactly
    one claim stands, whichever node asks."""
    a, b = _e(4, "node1"), _e(4, "node2")
    assert newest([a, b]) == newest([b, a]) == b
    on_node1 = peer_took_over("node2", holds_vip=True, writable=True, flag=None, epochs=[a, b])
    on_node2 = peer_took_over("node1", holds_vip=True, writable=True, flag=None, epochs=[b, a])
    assert on_node1 is not None and on_node2 is None


def test_a_promote_refused_for_want_of_an_epoch_does_not_commit_the_plan() -> None:
    from monha.journal import UNTOUCHED, JournalRecord

    r = JournalRecord("f", "failover", 0.0, "node1", "node2", "why", ["promote@node2"])
    r.done = [{"step": "promote@node2", "ok": False, "data": {UNTOUCHED: "yes"}}]
    assert not r.committed  # it may be abandoned, and the fence undone
    r.done = [{"step": "promote@node2", "ok": False, "data": {}}]
    assert r.committed  # a promote cut off mid-way may have changed the node


# --- the peer's open plan (issue 12, review) ---


def _peer_plan(now: float, *, until: float | None, done: list[dict[str, Any]]) -> dict[str, Any]:
    plan = [{"kind": "catch_up", "node": "node2", "args": []}]
    if until is not None:
        plan.insert(
            0, {"kind": "await_peer_step_down", "node": "node2", "args": [["until", str(until)]]}
        )
    return {
        "failover_id": "f1",
        "kind": "failover",
        "old_primary": "node1",
        "finished": False,
        "started_at": now,
        "plan": plan,
        "done": done,
    }


def test_the_primary_steps_down_only_for_a_running_plan_that_waits_for_it() -> None:
    now = 1000.0
    assert peer_plan_against("node1", _peer_plan(now, until=now + 5, done=[]), now)
    # A plan that fences this node over SSH does so itself.
    assert peer_plan_against("node1", _peer_plan(now, until=None, done=[]), now) is None
    # Against the other node, finished, or a switchover: no reason.
    assert peer_plan_against("node2", _peer_plan(now, until=now + 5, done=[]), now) is None
    finished = {**_peer_plan(now, until=now + 5, done=[]), "finished": True}
    assert peer_plan_against("node1", finished, now) is None
    # Not run for longer than PLAN_STALE_S and the skew: its daemon is stopped.
    old = now - PLAN_STALE_S - PLAN_STALE_SKEW_S - 10
    assert peer_plan_against("node1", _peer_plan(old, until=old + 5, done=[]), now) is None
    # A recent step keeps it running.
    step = {"step": "catch_up@node2", "ok": True, "started_at": now - 10, "duration_s": 2}
    assert peer_plan_against("node1", _peer_plan(old, until=old + 5, done=[step]), now)


def test_a_stale_plan_holds_the_return_only_when_it_changed_a_node() -> None:
    now = 1000.0
    assert plan_holds_return("node1", None, now) is None
    assert plan_holds_return("node1", _peer_plan(now, until=None, done=[]), now)
    old = now - PLAN_STALE_S - PLAN_STALE_SKEW_S - 10
    assert plan_holds_return("node1", _peer_plan(old, until=None, done=[]), now) is None
    promoted = {"step": "promote@node2", "ok": False, "started_at": old, "duration_s": 0.5}
    held = plan_holds_return("node1", _peer_plan(old, until=None, done=[promoted]), now)
    assert held is not None and "changed a node" in held


def test_last_active_at_reads_what_it_can_of_a_record() -> None:
    assert last_active_at({}) == 0.0
    assert last_active_at({"started_at": "x", "done": [None], "plan": [{"kind": 1}]}) == 0.0
    rec = _peer_plan(100.0, until=150.0, done=[{"started_at": 120.0, "duration_s": 3.0}])
    assert last_active_at(rec) == 150.0
    assert last_active_at({**rec, "next_attempt_at": 200.0}) == 200.0
    bad = {"plan": [{"kind": "await_peer_step_down", "args": [["until", "soon"]]}]}
    assert last_active_at(bad) == 0.0


def test_the_step_not_recorded_yet_keeps_a_plan_active_for_its_timeout() -> None:
    # Review finding: a long catch-up after the wait made the running plan look stale, and
    # the old primary returned in the middle of it.
    rec = _peer_plan(100.0, until=150.0, done=[])
    rec["plan"][1]["timeout_s"] = 600.0
    rec["done"] = [{"step": "await_peer_step_down@node2", "started_at": 100.0, "duration_s": 50}]
    assert last_active_at(rec) == 750.0
    assert plan_holds_return("node1", rec, 700.0) is not None


def test_a_malformed_peer_journal_is_no_exception() -> None:
    for bad in ({"done": 5}, {"plan": 7}, {"plan": [3, "x"], "done": {"a": 1}}):
        record = {"kind": "failover", "old_primary": "node1", **bad}
        assert peer_plan_against("node1", record, 1000.0) is None
        assert plan_holds_return("node1", record, 1000.0) is None
