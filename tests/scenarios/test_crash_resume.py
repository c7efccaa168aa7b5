"""A daemon killed in the middle of a failover, started again, finishes the plan: one
promotion, the VIP on one node, Zabbix on one node, one flag, no second failover."""

from __future__ import annotations

import pytest

from monha.lab.lab import Lab
from tests.scenarios.support import (
    Monha,
    alive,
    http_via_vip,
    read_flag,
    read_only,
    wait_for,
    zabbix_running,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def test_killed_after_promote_then_restarted_finishes_once(lab: Lab) -> None:
    first = Monha.start(lab, "node2", env={"MONHA_FAILPOINT": "promote@node2"})
    wait_for("a healthy decision", lambda: first.status()["state"] == "healthy", 10)
    lab.faults.kill_mysqld("node1")
    wait_for("the daemon to die at the failpoint", lambda: not alive(first.pid), 30)
    first.keep_log()
    assert first.events("failpoint_reached")
    # Half done: node2 promoted, the VIP removed from node1 and not yet up anywhere, no flag.
    assert not read_only(lab, "node2")
    assert lab.vip_holders() == []
    assert read_flag(lab, "node2") is None

    second = Monha.start(lab, "node2")
    try:
        flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 60)
        resumed = second.events("failover_resumed")
        assert resumed and resumed[0]["failover_id"] == flag["failover_id"]
        keys = [s["step"] for s in flag["steps"]]
        assert keys.count("promote@node2") == 1 and keys.count("vip_up@node2") == 1
        assert len(keys) == len(set(keys)), keys
        assert not second.events("failover_started")  # resumed, never started afresh
        assert lab.vip_holders() == ["node2"]
        assert zabbix_running(lab) == ["node2"]
        assert wait_for("HTTP via the VIP names node2", lambda: http_via_vip(lab) == "node2", 10)
        # The plan ends after the flag's copy to node1, the state follows at the next tick.
        wait_for("done_flagged", lambda: second.status()["state"] == "done_flagged", 15)
    finally:
        second.stop()
