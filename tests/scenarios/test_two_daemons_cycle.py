"""Issue 12 on the lab, monha running on BOTH nodes with one config: the whole failback cycle
twice, with no config change — failover node1 -> node2 (kill -9), rejoin node1, switchover
back to node1, resume; and again. After every step exactly one node is writable, holds the VIP
and runs Zabbix; the flag is on both nodes from the failover to resume (defect 2); the
switched-back primary is not fenced by the older flag on its peer (defect 1, which left no
primary at all); no acknowledged row is lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monha.lab.lab import Lab
from tests.scenarios.support import (
    Load,
    Monha,
    read_flag,
    read_only,
    scenario_lab,
    stays_one_primary,
    wait_for,
)
from tests.scenarios.test_operations import _kill_primary_when_caught_up, all_rows_on_both, ctl

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

OTHER = {"node1": "node2", "node2": "node1"}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from scenario_lab()


def flags(lab: Lab) -> dict[str, str | None]:
    return {n: (read_flag(lab, n) or {}).get("new_primary") for n in ("node1", "node2")}


def run_ok(lab: Lab, node: str, *args: str) -> None:
    done = ctl(lab, node, *args)
    assert done.returncode == 0, f"monha-ctl {' '.join(args)}: {done.stdout}{done.stderr}"


def cycle(lab: Lab, both: dict[str, Monha], round_: int) -> None:
    m1, m2 = both["node1"], both["node2"]
    wait_for("node2 to judge node1 healthy", lambda: m2.status()["state"] == "healthy", 30)
    stays_one_primary(lab, "node1", 3)
    load = Load.start(lab)
    _kill_primary_when_caught_up(lab, load)
    wait_for("node2's completion flag", lambda: read_flag(lab, "node2"), 60)
    stays_one_primary(lab, "node2", 3)
    # The copy on the old primary (its host is alive): its monha is blocked too.
    assert flags(lab) == {"node1": "node2", "node2": "node2"}, round_
    after = Load.start(lab)  # writes to node2 through the failback

    lab.faults.start_mysqld("node1")
    wait_for("node1 fenced read_only", lambda: read_only(lab, "node1"), 20, 0.2)
    stays_one_primary(lab, "node2", 3)
    run_ok(lab, "node2", "rejoin", "node1")
    wait_for("node1 to be the standby", lambda: m1.status()["role"] == "standby", 20)
    stays_one_primary(lab, "node2", 3)

    # (node1 may have fenced itself when its MySQL came back: right, and counted here.)
    fenced_before = len(m1.events("self_fence_started"))
    run_ok(lab, "node2", "switchover", "--to", "node1", "--yes")
    # Defect 1: node2 still holds the flag naming it the new primary; node1 must not fence
    # itself for it (the switchover's epoch is newer).
    stays_one_primary(lab, "node1", 10)
    assert flags(lab) == {"node1": "node2", "node2": "node2"}, round_
    assert len(m1.events("self_fence_started")) == fenced_before, m1.events("self_fence_started")

    run_ok(lab, "node1", "resume")
    assert flags(lab) == {"node1": None, "node2": None}, round_
    wait_for("node2 to be the armed standby", lambda: m2.status()["state"] == "healthy", 30)
    stays_one_primary(lab, "node1", 3)
    record = after.stop()
    acked = set(record.acked)
    for node in ("node1", "node2"):
        lost = acked - after.rows_on(node)
        assert not lost, f"round {round_}: {len(lost)} acknowledged rows not on {node}"
    all_rows_on_both(lab, load)
    print(f"\nround {round_}: {len(acked)} rows acknowledged through the failback, none lost")


def test_the_whole_cycle_twice_with_both_daemons(lab: Lab, both: dict[str, Monha]) -> None:
    cycle(lab, both, 1)
    cycle(lab, both, 2)
