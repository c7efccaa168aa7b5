"""Crash safety at every step: the daemon is killed (as by SIGKILL, through the executor's
failpoint) right after a step of a real failover plan is journaled, started again, and the end
state is what an operator expects from one failover: one promotion, the VIP on one node, the
Zabbix server on one node, one flag, no second failover.

Every step key of the lab's plan is a crash point. Each case gets a fresh lab (down, then a
warm up) and one failover. By default a case crashes the daemon twice in that failover: once
after step i, and the restarted daemon again after step i + n/2; a third daemon finishes. So
12 steps take 6 failovers (the old primary's Zabbix takes 13 s to stop, once per failover).
The journal on disk at each crash is the same as after a single crash at that step.
`MONHA_CRASH_ONE_PER_CASE=1` runs one fresh failover per step instead (about twice as long).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from monha.lab.drive import Monha, alive, read_flag, read_only, wait_for, zabbix_running
from monha.lab.lab import Lab
from tests.hardening.support import FreshLab, fresh_lab_for_module, lab_plan_keys

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

STEP_KEYS = lab_plan_keys()


def crash_cases(keys: list[str], one_per_case: bool) -> list[tuple[str, ...]]:
    """Each case's crash points, in plan order; together they cover every key exactly once."""
    if one_per_case:
        return [(k,) for k in keys]
    half = (len(keys) + 1) // 2
    return [(keys[i], keys[i + half]) if i + half < len(keys) else (keys[i],) for i in range(half)]


CASES = crash_cases(STEP_KEYS, os.environ.get("MONHA_CRASH_ONE_PER_CASE", "") == "1")


@pytest.fixture(scope="module")
def labs() -> Iterator[FreshLab]:
    yield from fresh_lab_for_module()


def journal(lab: Lab, node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (lab.paths.node(node).var_lib_monha / "journal.json").read_text()
    )
    return data


def test_the_cases_cover_every_step_of_a_real_plan_once() -> None:
    """The parametrisation covers a real plan, not an empty or shrunken one."""
    for key in ("vip_down@node1", "promote@node2", "vip_up@node2", "write_flag@node2"):
        assert key in STEP_KEYS
    assert STEP_KEYS[-1] == "write_flag@node2" and len(STEP_KEYS) == len(set(STEP_KEYS))
    for one in (False, True):
        covered = [k for case in crash_cases(STEP_KEYS, one) for k in case]
        assert sorted(covered) == sorted(STEP_KEYS)
        assert all(STEP_KEYS.index(a) < STEP_KEYS.index(b) for a, b, *_ in
                   [c for c in crash_cases(STEP_KEYS, one) if len(c) > 1])  # fmt: skip


def crash_at(lab: Lab, key: str, *, first: bool) -> Monha:
    """Start a daemon that dies right after `key`; the first one also gets the fault."""
    m = Monha.start(lab, "node2", env={"MONHA_FAILPOINT": key})
    try:
        if first:
            wait_for("a healthy decision", lambda: m.status()["state"] == "healthy", 15)
            lab.faults.kill_mysqld("node1")
        wait_for(f"the daemon to die after {key}", lambda: not alive(m.pid), 90)
    finally:
        m.kill()  # a no-op when it died at the failpoint
    reached = m.events("failpoint_reached")
    assert [e["step"] for e in reached] == [key], m.log.read_text()[-3000:]
    # The journal ends with the step we died after; the flag exists only if that was its step.
    assert journal(lab, "node2")["done"][-1]["step"] == key
    assert (read_flag(lab, "node2") is not None) == key.startswith("write_flag@")
    return m


@pytest.mark.parametrize("keys", CASES, ids=["+".join(c) for c in CASES])
def test_killed_after_each_step_then_restarted_finishes_once(
    labs: FreshLab, keys: tuple[str, ...]
) -> None:
    lab = labs.fresh()
    daemons = [crash_at(lab, key, first=i == 0) for i, key in enumerate(keys)]
    started = daemons[0].events("failover_started")
    assert len(started) == 1
    failover_id = started[0]["failover_id"]
    for m in daemons[1:]:  # a restarted daemon resumes, it never starts afresh
        assert not m.events("failover_started")
        assert [e["failover_id"] for e in m.events("failover_resumed")] == [failover_id]

    last = Monha.start(lab, "node2")
    try:
        flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 90)
        wait_for("done_flagged", lambda: last.status()["state"] == "done_flagged", 30)
        time.sleep(1.5)  # a tick or two more: nothing starts again
        assert last.status()["state"] == "done_flagged"
        assert not last.events("failover_started"), "a second failover started"
        assert not last.events("failpoint_reached")
        resumed = last.events("failover_resumed")
        if keys[-1].startswith("write_flag@"):
            assert not resumed  # the flag was there: nothing to resume
        else:
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
        assert twice <= set(keys) and all(n <= 2 for n in seen.values()), seen
        assert not any(first_try[step] for step in twice), records
        assert set(seen) == set(STEP_KEYS), sorted(set(STEP_KEYS) - set(seen))
        assert [r["step"] for r in flag["steps"]] == [r["step"] for r in records[:-1]]
        assert journal(lab, "node2")["finished"] or keys[-1].startswith("write_flag@")

        # What an operator sees: one primary, one VIP holder, one Zabbix server.
        assert wait_for("the VIP on node2 only", lambda: lab.vip_holders() == ["node2"], 15)
        assert wait_for("Zabbix on node2 only", lambda: zabbix_running(lab) == ["node2"], 30)
        assert not read_only(lab, "node2")
        print(f"\ncrash after {' and '.join(keys)}: resumed and finished; {dict(seen)}")
    finally:
        last.kill()
