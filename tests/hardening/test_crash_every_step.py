"""Crash safety at every step: the daemon is killed (as by SIGKILL, through the executor's
failpoint) right after each step of a real failover plan is journaled, started again, and the
end state is what an operator expects from one failover: one promotion, the VIP on one node,
the Zabbix server on one node, one flag, no second failover.

Each case gets a fresh lab (down, then a warm up of a few seconds).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from monha.lab.drive import Monha, alive, read_flag, read_only, wait_for, zabbix_running
from monha.lab.lab import Lab
from tests.hardening.support import FreshLab, fresh_lab_for_module, lab_plan_keys

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

STEP_KEYS = lab_plan_keys()


@pytest.fixture(scope="module")
def labs() -> Iterator[FreshLab]:
    yield from fresh_lab_for_module()


def journal(lab: Lab, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (lab.paths.node(node).var_lib_monha / "journal.json").read_text()
    )
    return data


def test_the_plan_has_the_steps_the_brief_names() -> None:
    """The parametrisation below covers a real plan, not an empty or shrunken one."""
    for key in ("vip_down@node1", "promote@node2", "vip_up@node2", "write_flag@node2"):
        assert key in STEP_KEYS
    assert STEP_KEYS[-1] == "write_flag@node2" and len(STEP_KEYS) == len(set(STEP_KEYS))


@pytest.mark.parametrize("key", STEP_KEYS)
def test_killed_after_each_step_then_restarted_finishes_once(labs: FreshLab, key: str) -> None:
    lab = labs.fresh()
    first = Monha.start(lab, "node2", env={"MONHA_FAILPOINT": key})
    try:
        wait_for("a healthy decision", lambda: first.status()["state"] == "healthy", 15)
        lab.faults.kill_mysqld("node1")
        wait_for(f"the daemon to die after {key}", lambda: not alive(first.pid), 90)
    finally:
        first.kill()  # a no-op when it died at the failpoint
    reached = first.events("failpoint_reached")
    assert [e["step"] for e in reached] == [key], first.log.read_text()[-3000:]
    started = first.events("failover_started")
    assert len(started) == 1
    failover_id = started[0]["failover_id"]
    # The journal ends with the step we died after; the flag exists only if that was its step.
    assert journal(lab, "node2")["done"][-1]["step"] == key
    assert (read_flag(lab, "node2") is not None) == key.startswith("write_flag@")

    second = Monha.start(lab, "node2")
    try:
        flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 90)
        wait_for("done_flagged", lambda: second.status()["state"] == "done_flagged", 30)
        # Watch a few more ticks: nothing starts again.
        time.sleep(3)
        assert second.status()["state"] == "done_flagged"
        assert not second.events("failover_started"), "a second failover started"
        assert not second.events("failpoint_reached")
        if not key.startswith("write_flag@"):
            resumed = second.events("failover_resumed")
            assert [e["failover_id"] for e in resumed] == [failover_id]
        assert flag["failover_id"] == failover_id
        assert (flag["old_primary"], flag["new_primary"]) == ("node1", "node2")

        # The journal holds every step's record, the flag's own step included.
        records = journal(lab, "node2")["done"]
        ok = Counter(r["step"] for r in records if r["ok"])
        seen = Counter(r["step"] for r in records)
        assert ok["promote@node2"] == 1, records
        assert all(n == 1 for n in ok.values()), ok
        # Every step ran once, except a failed step the daemon died after: the journal
        # retries a last failure, so it may appear twice (failed, then retried).
        first_try = {r["step"]: r["ok"] for r in reversed(records)}
        twice = {step for step, n in seen.items() if n > 1}
        assert twice <= {key} and all(n <= 2 for n in seen.values()), seen
        assert not any(first_try[step] for step in twice), records
        assert set(seen) == set(STEP_KEYS), sorted(set(STEP_KEYS) - set(seen))
        assert [r["step"] for r in flag["steps"]] == [r["step"] for r in records[:-1]]
        assert journal(lab, "node2")["finished"] or key.startswith("write_flag@")

        # What an operator sees: one primary, one VIP holder, one Zabbix server.
        assert wait_for("the VIP on node2 only", lambda: lab.vip_holders() == ["node2"], 15)
        assert wait_for("Zabbix on node2 only", lambda: zabbix_running(lab) == ["node2"], 30)
        assert not read_only(lab, "node2")
        print(f"\ncrash after {key}: resumed and finished; steps {dict(seen)}")
    finally:
        second.stop()
