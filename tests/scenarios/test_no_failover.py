"""Scenarios 4, 5, 6 and 7 on one lab and one daemon: faults that must NOT fail over.

Each test injects its fault, watches long enough for a failover to have happened (three
failed probes at 1 s, plus margin), checks that none did, and removes the fault.
"""

from __future__ import annotations

import time

import pytest

from monha.lab.lab import Lab
from tests.scenarios.support import Monha, read_flag, read_only, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(400)]

WATCH_S = 8.0  # well past detection: 3 probes at 1 s


def assert_no_failover(lab: Lab, monha: Monha, *, ask_mysql: bool = True) -> None:
    assert not monha.events("failover_started")
    assert read_flag(lab, "node2") is None
    assert lab.vip_holders() == ["node1"]
    if ask_mysql:  # not while node1 refuses every new connection, root's included
        assert read_only(lab, "node2") and not read_only(lab, "node1")


def reason_codes_seen(monha: Monha, since: float) -> set[str]:
    return {
        e["reason_code"]
        for e in monha.events("decision_made")
        if time.mktime(time.strptime(e["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        >= since - 1
    }


def back_to_healthy(monha: Monha) -> None:
    wait_for("healthy again", lambda: monha.status()["state"] == "healthy", 30, 0.2)


def test_too_many_connections_is_alive_not_dead(lab: Lab, monha: Monha) -> None:
    since = time.time()
    lab.faults.too_many_connections("node1")
    try:
        time.sleep(WATCH_S)
        s = monha.status()
        assert s["observation"]["primary_mysql"]["error_code"] == 1040
        assert s["state"] == "healthy" and s["reason_code"] == "primary_alive_error"
        assert_no_failover(lab, monha, ask_mysql=False)
    finally:
        lab.faults.restore_connections("node1")
    assert_no_failover(lab, monha)
    assert "primary_alive_error" in reason_codes_seen(monha, since)
    back_to_healthy(monha)


def test_mysqld_killed_and_back_within_the_window(lab: Lab, monha: Monha) -> None:
    since = time.time()
    lab.faults.kill_mysqld("node1")
    time.sleep(1.5)  # down for one or two probes, back before the third
    lab.faults.start_mysqld("node1")
    took = time.time() - since
    time.sleep(WATCH_S)
    assert_no_failover(lab, monha)
    print(
        f"\nmysqld killed and back in {took:.2f} s: codes {sorted(reason_codes_seen(monha, since))}"
    )
    back_to_healthy(monha)


def test_an_isolated_standby_takes_nothing(lab: Lab, monha: Monha) -> None:
    since = time.time()
    lab.faults.isolate("node2")
    try:
        time.sleep(WATCH_S)
        s = monha.status()
        assert s["state"] in ("suspect", "healthy")
        assert_no_failover(lab, monha)
    finally:
        lab.faults.unisolate("node2")
    assert "hold_isolated" in reason_codes_seen(monha, since)
    back_to_healthy(monha)


def test_thirty_percent_loss_for_a_minute(lab: Lab, monha: Monha) -> None:
    since = time.time()
    lab.faults.loss("node1", 30)
    try:
        time.sleep(60)
        assert_no_failover(lab, monha)
    finally:
        lab.faults.loss_clear("node1")
    codes = reason_codes_seen(monha, since)
    print(f"\n30 % loss for 60 s: decisions seen {sorted(codes)}")
    back_to_healthy(monha)
