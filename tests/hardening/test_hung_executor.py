"""A command that never returns, in the real executor with the real local runner and journal:
its step times out, the plan stops or goes on according to the step's policy, and the journal
and flag say which. (The same on the lab, over SSH: test_hung_commands.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monha.executor import Executor
from monha.journal import Journal, read_flag
from monha.metrics import Metrics
from monha.model import OnFailure, PlanKind, Step, StepKind
from monha.runners import LocalRunner
from monha.steps import Nodes

HANG_S = 0.5


def _plan(tmp_path: Path, policy: OnFailure) -> tuple[Step, ...]:
    pid_file = tmp_path / "hung.pid"
    # The command records its PID, then sleeps "forever" (far past the step's timeout).
    hang = ("/bin/sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 300')
    return (
        Step(StepKind.STOP_SERVICE, "node2", HANG_S, policy, (("name", "hung-svc"),), hang),
        Step(StepKind.WRITE_FLAG, "node2", 5.0, OnFailure.STOP, (("path", f"{tmp_path}/flag"),)),
    )


def _executor(tmp_path: Path) -> tuple[Executor, Journal]:
    journal = Journal(tmp_path / "journal.json")
    nodes = Nodes(runners={"node2": LocalRunner()}, mysql={})
    return Executor(journal, nodes, Metrics(CollectorRegistry()), cluster="t"), journal


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("policy", [OnFailure.STOP, OnFailure.CONTINUE])
async def test_a_hung_command_times_out_and_the_policy_decides(
    tmp_path: Path, policy: OnFailure
) -> None:
    executor, journal = _executor(tmp_path)
    t0 = time.monotonic()
    finished = await executor.run(_plan(tmp_path, policy), PlanKind.FAILOVER, "test", "n1", "node2")
    took = time.monotonic() - t0
    assert took < HANG_S + 6, f"the hung step held the plan for {took:.1f} s"
    record = journal.load()
    assert record is not None
    hung = record.done[0]
    assert hung["step"] == "stop_service@node2:hung-svc" and not hung["ok"]
    assert "timed out after" in hung["detail"], hung["detail"]
    assert HANG_S * 0.9 <= hung["duration_s"] < HANG_S + 5
    # Nothing of the hung command is left running (the runner kills and reaps its group
    # before the step returns).
    pid = int((tmp_path / "hung.pid").read_text())
    assert _gone(pid), f"the hung command (pid {pid}) still runs"
    flag = read_flag(tmp_path / "flag")
    if policy is OnFailure.STOP:
        assert not finished and flag is None and not record.finished
        assert [d["step"] for d in record.done] == ["stop_service@node2:hung-svc"]
        # A resumed plan would retry it: a last failure is not settled.
        assert "stop_service@node2:hung-svc" not in record.finished_steps()
    else:
        assert finished and record.finished and flag is not None
        assert "timed out after" in flag["steps"][0]["detail"]
        assert flag["steps"][0]["ok"] is False
