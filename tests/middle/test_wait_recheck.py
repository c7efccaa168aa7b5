"""The failover's wait for an unreachable old primary to step down looks again while it waits.

The real executor and journal run a plan whose wait step re-checks (recheck = yes), with a
recheck that answers as a daemon's fresh observation would. Heard again during the wait, the
old primary may have restarted its own isolation clock and go on serving: the plan must end
unrun (closed as abandoned, nothing after the wait run, no flag), and say why. Not heard, the
wait lasts until its absolute time and the plan goes on. Review finding (issue 12): the wait
only slept, and promoted beside an old primary that a witness saw again.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from monha.executor import Executor
from monha.journal import Journal, read_flag
from monha.metrics import Metrics
from monha.model import OnFailure, PlanKind, Step, StepKind
from monha.steps import Nodes

WAIT_S = 2.5  # two looks (one a second) before its end


def _plan(tmp_path: Path, *, recheck: bool) -> tuple[Step, ...]:
    until = time.time() + WAIT_S
    args = [("until", f"{until:.3f}"), ("wait_s", f"{WAIT_S:g}")]
    if recheck:
        args.append(("recheck", "yes"))
    flag = (("path", str(tmp_path / "failover.flag")), ("old_primary", "node1"))
    return (
        Step(StepKind.AWAIT_PEER_STEP_DOWN, "node2", WAIT_S + 5.0, OnFailure.STOP, tuple(args)),
        Step(StepKind.WRITE_FLAG, "node2", 5.0, OnFailure.STOP, (*flag, ("new_primary", "node2"))),
    )


def _executor(tmp_path: Path, answers: list[str | None]) -> tuple[Executor, list[float]]:
    calls: list[float] = []

    async def recheck() -> str | None:
        calls.append(time.time())
        return answers.pop(0) if answers else None

    nodes = Nodes(runners={}, mysql={}, recheck=recheck)
    journal = Journal(tmp_path / "journal.json")
    return Executor(journal, nodes, Metrics(CollectorRegistry()), cluster="t"), calls


async def _run(ex: Executor, plan: tuple[Step, ...]) -> bool:
    return await ex.run(plan, PlanKind.FAILOVER, "test", "node1", "node2")


async def test_the_old_primary_heard_during_the_wait_ends_the_plan_unrun(tmp_path: Path) -> None:
    ex, calls = _executor(tmp_path, [None, "witness w1 reaches node1's MySQL"])
    started = time.time()
    assert not await _run(ex, _plan(tmp_path, recheck=True))
    assert time.time() - started < WAIT_S  # it did not wait to the end
    assert len(calls) == 2 and ex.heard_again_at is not None
    record = Journal(tmp_path / "journal.json").load()
    assert record is not None and record.finished and record.outcome == "abandoned"
    assert "heard again" in record.data["abandoned"]
    assert "witness w1 reaches node1's MySQL" in record.data["abandoned"]
    assert [d["step"] for d in record.done] == ["await_peer_step_down@node2"]
    assert read_flag(tmp_path / "failover.flag") is None


async def test_not_heard_the_wait_lasts_to_its_time_and_the_plan_goes_on(tmp_path: Path) -> None:
    ex, calls = _executor(tmp_path, [])
    plan = _plan(tmp_path, recheck=True)
    until = float(plan[0].arg("until"))
    assert await _run(ex, plan)
    assert time.time() >= until and calls  # it looked while it waited
    assert ex.heard_again_at is None
    assert read_flag(tmp_path / "failover.flag") is not None


async def test_a_wait_without_recheck_does_not_look(tmp_path: Path) -> None:
    # A forced failover's wait, or one journaled before the recheck existed.
    ex, calls = _executor(tmp_path, ["node1 answered ICMP"] * 5)
    assert await _run(ex, _plan(tmp_path, recheck=False))
    assert not calls and read_flag(tmp_path / "failover.flag") is not None


async def test_a_resumed_wait_with_no_time_left_still_looks_once(tmp_path: Path) -> None:
    # Review finding: resumed after its time, the wait ran no look and promoted.
    ex, calls = _executor(tmp_path, ["node1's MySQL answered"])
    late = _plan(tmp_path, recheck=True)
    args = tuple(
        ("until", f"{time.time() - 30:.3f}") if k == "until" else (k, v) for k, v in late[0].args
    )
    plan = (dataclasses.replace(late[0], args=args), late[1])
    assert not await _run(ex, plan)
    assert len(calls) == 1 and read_flag(tmp_path / "failover.flag") is None


async def test_a_look_that_fails_counts_as_heard(tmp_path: Path) -> None:
    async def broken() -> str | None:
        raise RuntimeError("no observer")

    nodes = Nodes(runners={}, mysql={}, recheck=broken)
    ex = Executor(
        Journal(tmp_path / "journal.json"), nodes, Metrics(CollectorRegistry()), cluster="t"
    )
    assert not await _run(ex, _plan(tmp_path, recheck=True))
    record = Journal(tmp_path / "journal.json").load()
    assert record is not None and record.outcome == "abandoned"
    assert "the fresh look failed (RuntimeError: no observer)" in record.data["abandoned"]
    # The next run of any plan starts with nothing said.
    ex2, _ = _executor(tmp_path, [])
    assert await _run(ex2, _plan(tmp_path, recheck=True)) and ex2.heard_again_at is None
