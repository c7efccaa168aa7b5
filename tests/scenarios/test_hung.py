"""Scenario 9: the primary hangs (every process frozen, its kernel alive: ping answers, TCP
connects, nothing replies) → failover as for a dead host; thawed, it is fenced at once."""

from __future__ import annotations

import time

import pytest

from monha.lab.lab import Lab
from tests.scenarios.support import (
    Load,
    Monha,
    http_via_vip,
    load_report,
    read_flag,
    read_only,
    wait_for,
    zabbix_running,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def test_a_hung_primary_is_failed_over(lab: Lab, monha: Monha) -> None:
    load = Load.start(lab)
    lab.faults.freeze("node1")
    flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 60)
    assert flag["new_primary"] == "node2"
    started = monha.events("failover_started")[0]
    # The kernel still answered ping: the decision rested on the replica's silence.
    assert "replica lost it" in started["reason"], started["reason"]
    wait_for("HTTP through the VIP to name node2", lambda: http_via_vip(lab) == "node2", 15)
    wait_for(
        "acknowledged writes from node2 (server_id 102)",
        lambda: 102 in load.record().acked_server.values(),
        20,
    )
    print(f"\nhung primary: {load_report(load, 'node2').line()}")


def test_the_thawed_primary_is_fenced(lab: Lab, monha: Monha) -> None:
    lab.faults.thaw("node1")
    back = time.monotonic()
    wait_for("node1 to turn read_only", lambda: read_only(lab, "node1"), 10, 0.05)
    wait_for("node1 to drop the VIP", lambda: lab.vip_holders() == ["node2"], 10, 0.05)
    print(f"\nthawed primary fenced in {time.monotonic() - back:.2f} s")
    assert wait_for("Zabbix on node2 only", lambda: zabbix_running(lab) == ["node2"], 40)
    assert wait_for("HTTP through the VIP to name node2", lambda: http_via_vip(lab) == "node2", 5)
