"""Issue 8 with a witness: monha on both nodes from the same moment, and a cut of only the link
between the nodes. The witness (an sshd in the LAN namespace, asked over SSH whether it gets a
greeting from the primary's MySQL) still sees the primary: no failover, and the reason says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from monha.lab.lab import Lab
from tests.scenarios.support import Load, Monha, read_flag, read_only, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def both(lab: Lab) -> Iterator[tuple[Monha, Monha]]:
    # Started together, as after a power cut; neither may take anything from the other.
    m1, m2 = Monha.start(lab, "node1"), Monha.start(lab, "node2")
    yield m1, m2
    m1.stop()
    m2.stop()


def test_both_daemons_started_together_leave_one_primary(
    lab: Lab, both: tuple[Monha, Monha]
) -> None:
    m1, m2 = both
    wait_for("node2 to judge node1 healthy", lambda: m2.status()["state"] == "healthy", 15)
    time.sleep(3)
    assert m1.status()["role"] == "primary" and m2.status()["role"] == "standby"
    assert lab.vip_holders() == ["node1"]
    assert not read_only(lab, "node1") and read_only(lab, "node2")
    assert not m1.events("self_fence_started") and not m2.events("failover_started")
    witness = m2.status()["observation"]["witnesses"][0]
    assert witness["sees_primary"] is True, witness


def test_a_cut_between_the_nodes_is_not_a_death(lab: Lab, both: tuple[Monha, Monha]) -> None:
    m1, m2 = both
    load = Load.start(lab)
    lab.faults.cut_link()
    try:
        wait_for(
            "node2 to hold because of the partition",
            lambda: m2.status()["reason_code"] == "hold_partition",
            15,
        )
        time.sleep(5)  # well past detection
        s = m2.status()
        assert s["reason_code"] == "hold_partition"
        assert "lan-witness" in s["reason"] and "partition" in s["reason"]
        assert read_flag(lab, "node2") is None and not m2.events("failover_started")
        assert lab.vip_holders() == ["node1"]
        assert not m1.events("self_fence_started")
    finally:
        lab.faults.heal_link()
    report = load.stop()
    assert 101 in report.acked_server.values() and 102 not in report.acked_server.values()
    wait_for("healthy again", lambda: m2.status()["state"] == "healthy", 20)
