"""Scenarios 1, 8 and 3 on one lab, in order: kill -9 of the primary's mysqld fails over; the
old mysqld brought back is fenced at once; with the flag present a second fault changes nothing.
"""

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


def test_healthy_before_any_fault(lab: Lab, monha: Monha) -> None:
    s = wait_for(
        "a healthy decision", lambda: (s := monha.status())["state"] == "healthy" and s, 10
    )
    assert s["role"] == "standby" and s["reason_code"] == "primary_ok"
    assert s["flag"] is None
    assert lab.vip_holders() == ["node1"]


def test_kill9_of_the_primary_mysqld_fails_over(lab: Lab, monha: Monha) -> None:
    load = Load.start(lab)
    lab.faults.kill_mysqld("node1")
    flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 60)
    assert flag["old_primary"] == "node1" and flag["new_primary"] == "node2"
    steps = {s["step"]: s for s in flag["steps"]}
    assert steps["promote@node2"]["ok"] and steps["vip_up@node2"]["ok"]
    assert all("duration_s" in s for s in flag["steps"])
    assert flag["failback"]["new_primary_binlog_file"]
    # What an operator sees: the VIP, the web tier and Zabbix on node2 only, node2 writable.
    assert lab.vip_holders() == ["node2"]
    assert wait_for("HTTP through the VIP to name node2", lambda: http_via_vip(lab) == "node2", 10)
    assert zabbix_running(lab) == ["node2"]
    assert not read_only(lab, "node2")
    # Writes through the VIP land on node2 again.
    wait_for(
        "acknowledged writes from node2 (server_id 102)",
        lambda: 102 in load.record().acked_server.values(),
        15,
    )
    report = load_report(load, "node2")
    print(f"\nkill -9 scenario: {report.line()}")
    assert report.acked > 0
    s = monha.status()
    assert s["state"] == "done_flagged"
    assert s["reason_code"] in ("failover_done", "flag_blocks")
    assert monha.events("failover_finished")


def test_the_old_mysqld_coming_back_is_fenced_at_once(lab: Lab, monha: Monha) -> None:
    lab.faults.start_mysqld("node1")  # as a supervisor would: it comes back writable
    wait_for("node1 to be read_only again", lambda: read_only(lab, "node1"), 10, 0.05)
    # Whichever daemon sees it first fences it: node2's (old_primary_refenced) or node1's own,
    # which finds node2's flag naming node2 (self_fenced); a CI run saw each win the race.
    wait_for(
        "the VIP and Zabbix on node2 alone",
        lambda: lab.vip_holders() == ["node2"] and zabbix_running(lab) == ["node2"],
        10,
    )
    assert read_only(lab, "node1")


def test_with_the_flag_a_second_fault_does_not_fail_over(lab: Lab, monha: Monha) -> None:
    flag_before = read_flag(lab, "node2")
    lab.faults.kill_mysqld("node1")
    wait_for(
        "node1's MySQL probe to fail a few times",
        lambda: (
            len(monha.events("probe_failed")) > 0
            and monha.status()["observation"]["primary_mysql"]["status"] != "ok"
        ),
        10,
    )
    time.sleep(5)  # longer than detection: three probes at 1 s
    s = monha.status()
    assert s["state"] == "done_flagged"
    assert "flag" in s["reason"]
    assert read_flag(lab, "node2") == flag_before
    assert len(monha.events("failover_started")) == 1
    assert lab.vip_holders() == ["node2"]
