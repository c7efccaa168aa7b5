"""Scenarios 2 and 8: the primary's host dies (frozen and its link cut) → failover; when it
comes back still holding the VIP and a writable MySQL, it is fenced at once."""

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


def monha_state(m: Monha) -> str:
    return str(m.status()["state"])


def test_host_death_fails_over(lab: Lab, monha: Monha) -> None:
    load = Load.start(lab)
    fault_at = time.time()
    lab.faults.host_down("node1")
    flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 60)
    assert flag["old_primary"] == "node1" and flag["new_primary"] == "node2"
    # SSH could not reach the dead host, so no fencing step ran against it.
    assert not [s for s in flag["steps"] if s["node"] == "node1"]
    assert "node2" in lab.vip_holders()
    assert wait_for("HTTP through the VIP to name node2", lambda: http_via_vip(lab) == "node2", 10)
    wait_for(
        "acknowledged writes from node2 (server_id 102)",
        lambda: 102 in load.record().acked_server.values(),
        15,
    )
    report = load_report(load, "node2")
    decided = monha.events("failover_started")[0]
    print(f"\nhost death: {report.line()}; failover started {decided['timestamp']}")
    assert flag["finished_at"] - fault_at < 20


def test_the_dead_host_coming_back_is_fenced(lab: Lab, monha: Monha) -> None:
    # It comes back as it died: VIP on eth0:1, MySQL writable, Zabbix running.
    assert "node1" in lab.vip_holders()
    lab.faults.host_up("node1")
    back = time.monotonic()
    wait_for("node1 to drop the VIP", lambda: lab.vip_holders() == ["node2"], 10, 0.05)
    wait_for("node1 to turn read_only", lambda: read_only(lab, "node1"), 10, 0.05)
    print(f"\nthawed host fenced in {time.monotonic() - back:.2f} s")
    assert wait_for("Zabbix on node2 only", lambda: zabbix_running(lab) == ["node2"], 40)
    assert http_via_vip(lab) == "node2"
    assert monha_state(monha) == "done_flagged"
