"""The engine on the lab (commits 735e62a, 164182a): a plan stopped at a failed step is retried
by the running daemon after its back-off; the old primary's host dying in the middle of the
binlog salvage does not stop the failover; a second `monha run` on the same node refuses and
leaves the first daemon, its control socket and its lock alone.

One lab for the module. The tests that inject a fault mark it used; the next test that needs
a pristine lab replaces it (`up --replace`, same prefix: a few seconds), so each test also
runs alone (`-k`).
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monha.lab.drive import BIN, CONFIG
from monha.lab.lab import Lab
from monha.lab.proc import CommandError
from tests.scenarios.support import Monha, alive, read_flag, scenario_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

_used: set[str] = set()  # prefixes of labs a test left with a fault or a failover in them


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from scenario_lab()


def pristine(lab: Lab, *, dirties: bool = True) -> None:
    """Replace the lab if an earlier test of this module used it; mark it used from here on
    unless the caller leaves it as it found it."""
    if lab.prefix in _used:
        t0 = time.monotonic()
        lab.up(replace=True, log=lambda _m: None)
        _used.discard(lab.prefix)
        print(f"\nfresh lab in {time.monotonic() - t0:.1f} s")
    if dirties:
        _used.add(lab.prefix)


def start_healthy(lab: Lab, env: dict[str, str] | None = None) -> Monha:
    m = Monha.start(lab, "node2", env=env)
    try:
        wait_for("a healthy decision", lambda: m.status()["state"] == "healthy", 20)
    except BaseException:
        m.stop()
        raise
    return m


def writable_nodes(lab: Lab) -> list[str]:
    """Nodes whose MariaDB answers and has read_only off (a dead mysqld is not writable)."""
    out = []
    for node in ("node1", "node2"):
        try:
            if lab.sql(node, "SELECT @@global.read_only", timeout=5).strip() == "0":
                out.append(node)
        except CommandError:
            pass
    return out


def journal(lab: Lab) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (lab.paths.node("node2").var_lib_monha / "journal.json").read_text()
    )
    return data


def lock_holder(lab: Lab) -> str:
    return (lab.paths.node("node2").var_lib_monha / "journal.json.lock").read_text().strip()


def control_socket(lab: Lab) -> Path:
    return lab.paths.node("node2").run / "monha" / "control.sock"


def assert_one_daemon_that_never_failed(m: Monha) -> None:
    assert alive(m.pid), "the daemon exited"
    assert len(m.events("daemon_started")) == 1, "the daemon started more than once"
    assert not m.events("tick_failed"), m.events("tick_failed")
    assert lock_holder(m.lab) == str(m.pid)


def steps_named(flag: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [s for s in flag["steps"] if s["step"] == key]


# --- 1. a second daemon on the same node ------------------------------------------------------


def second_run(lab: Lab) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    done = lab.run_in("node2", [str(BIN / "monha"), "run", "--config", CONFIG], timeout=30)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - t0


def test_monha_run_twice_leaves_one_daemon_and_a_working_status(lab: Lab) -> None:
    pristine(lab, dirties=False)  # it injects no fault: the lab stays as it was
    m = start_healthy(lab)
    try:
        sock = control_socket(lab)
        before = sock.stat()
        assert stat.S_ISSOCK(before.st_mode)
        durations = []
        for attempt in (2, 3):
            rc, out, err, took = second_run(lab)
            durations.append(took)
            assert rc != 0, (attempt, rc, out, err)
            assert took < 10, took
            lines = err.strip().splitlines()
            assert len(lines) == 1, (attempt, err)
            assert "already runs" in lines[0] and f"pid {m.pid}" in lines[0], lines
            assert "Traceback" not in out + err, (out, err)
            # It changed nothing: the first daemon answers on the same socket, holds the lock.
            s = m.status()
            assert s["node"] == "node2" and s["state"] == "healthy", s
            after = sock.stat()
            assert stat.S_ISSOCK(after.st_mode) and after.st_ino == before.st_ino
            assert_one_daemon_that_never_failed(m)
        took_s = ", ".join(f"{d:.2f} s" for d in durations)
        print(f"\nsecond and third `monha run` refused in {took_s}")
        print(f"its error: {lines[0]}")
    finally:
        m.stop()
    # The first daemon removes its own socket when it stops.
    assert not control_socket(lab).exists()


# --- 2. a STOP step that failed once is retried by the same daemon -----------------------------


def test_promote_failing_once_is_retried_without_a_restart(lab: Lab) -> None:
    pristine(lab)
    m = start_healthy(lab, env={"MONHA_FAIL_ONCE": "promote@node2"})
    try:
        pid = m.pid
        fault_at = time.time()
        lab.faults.kill_mysqld("node1")
        # Poll the daemon while it waits out the back-off: what an operator would see.
        seen_attempts, stopped_at, next_at = 0, None, None
        deadline = time.monotonic() + 40
        flag = None
        while flag is None:
            assert time.monotonic() < deadline, "no completion flag within 40 s"
            s = m.status()
            seen_attempts = max(seen_attempts, s["plan_attempts"] or 0)
            j = s["journal"] or {}
            if j.get("stopped_at") and stopped_at is None:
                stopped_at, next_at = j["stopped_at"], j.get("next_attempt_at")
                assert s["next_attempt_at"] is not None and s["state"] == "failing_over", s
            flag = read_flag(lab, "node2")
            time.sleep(0.2)
        done_at = time.time()

        assert m.pid == pid
        assert_one_daemon_that_never_failed(m)
        # The flag's report: promote failed once (on purpose, not run), then succeeded; no
        # other step ran twice.
        promotes = steps_named(flag, "promote@node2")
        assert [p["ok"] for p in promotes] == [False, True], promotes
        assert "MONHA_FAIL_ONCE" in promotes[0]["detail"], promotes[0]
        keys = [s["step"] for s in flag["steps"]]
        assert len(keys) == len(set(keys)) + 1, keys
        assert all(s["ok"] for s in steps_named(flag, "vip_up@node2")), keys
        retry_s = promotes[1]["started_at"] - promotes[0]["started_at"]
        # The first back-off is 5 s; a tick (1 s) and the next observation come on top.
        assert 4.5 <= retry_s <= 15, retry_s
        # The daemon said so while waiting, and the journal counts both runs.
        assert seen_attempts >= 1 and stopped_at is not None, (seen_attempts, stopped_at)
        assert stopped_at["step"] == "promote@node2", stopped_at
        assert next_at is not None and next_at > promotes[0]["started_at"]
        rec = journal(lab)
        assert rec["attempts"] == 2 and rec["finished"] and rec["outcome"] == "succeeded", rec
        assert rec["failover_id"] == flag["failover_id"]
        scheduled = m.events("plan_retry_scheduled")
        assert [e["attempts"] for e in scheduled] == [1], scheduled
        resumed = m.events("failover_resumed")
        assert [e["attempt"] for e in resumed] == [2], resumed
        assert len(m.events("failover_started")) == 1
        # One primary: node2 holds the VIP and is writable; node1's mysqld is dead.
        assert lab.vip_holders() == ["node2"]
        assert writable_nodes(lab) == ["node2"]
        s = wait_for("done_flagged", lambda: (s := m.status())["state"] == "done_flagged" and s, 5)
        assert s["plan_attempts"] == 0, s
        assert s["journal"]["attempts"] == 2 and s["journal"]["outcome"] == "succeeded"
        assert "stopped_at" not in s["journal"]
        print(
            f"\npromote failed once, retried after {retry_s:.2f} s; kill -9 to flag "
            f"{done_at - fault_at:.1f} s; attempts seen in status: {seen_attempts}"
        )
    finally:
        m.stop()


# --- 3. the old host dies while the salvage reads its binary log -------------------------------

_SLOW_TOOL = """#!/bin/sh
# The lab's slow binlog tool: says it started, waits, then runs the real one.
date +%s.%N > {marker}
sleep {sleep_s}
exec /usr/bin/mariadb-binlog "$@"
"""


def test_old_host_dying_during_salvage_still_completes(lab: Lab) -> None:
    pristine(lab)
    # node2's monha runs the binlog tool on node1 over SSH: give node1 one that sleeps first,
    # so the host dies while the salvage step is waiting for it.
    opt1 = lab.paths.node("node1").opt
    marker = lab.paths.node("node1").var_log_monha / "slow-binlog.started"
    marker.unlink(missing_ok=True)
    tool = opt1 / "slow-mariadb-binlog"
    tool.write_text(_SLOW_TOOL.format(marker="/var/log/monha/slow-binlog.started", sleep_s=6))
    tool.chmod(0o755)
    cfg = lab.node_config("node2")
    text = cfg.read_text()
    real = 'binlog_tool = "/usr/bin/mariadb-binlog"'
    assert real in text
    cfg.write_text(text.replace(real, 'binlog_tool = "/opt/monha-lab/slow-mariadb-binlog"'))

    m = start_healthy(lab)
    try:
        pid = m.pid
        fault_at = time.time()
        lab.faults.kill_mysqld("node1")
        wait_for("the slow binlog tool to start on node1", marker.exists, 30, 0.02)
        tool_at = time.time()
        lab.faults.host_down("node1")
        frozen_at = time.time()
        started = [e for e in m.events("step_started") if e["step"] == "salvage_binlog@node2"]
        assert started, "the binlog tool ran outside a salvage step"
        assert not [e for e in m.events("step_finished") if e["step"] == "salvage_binlog@node2"]

        flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 60)
        done_at = time.time()
        assert m.pid == pid
        assert_one_daemon_that_never_failed(m)
        (salvage,) = steps_named(flag, "salvage_binlog@node2")
        assert salvage["ok"] is False and salvage["detail"], salvage
        assert "not salvaged" in salvage["detail"], salvage
        # The salvage waited for a dead host no longer than its own timeout (20 s).
        assert salvage["duration_s"] <= 21, salvage
        (promote,) = steps_named(flag, "promote@node2")
        (vip_up,) = steps_named(flag, "vip_up@node2")
        assert promote["ok"] and vip_up["ok"], flag["steps"]
        assert promote["started_at"] >= frozen_at - 0.5
        assert lab.vip_holders() == ["node2"]
        assert writable_nodes(lab) == ["node2"]
        # The tick after the plan reports it (the flag is written before that tick).
        s = wait_for("done_flagged", lambda: (s := m.status())["state"] == "done_flagged" and s, 5)
        assert s["journal"]["outcome"] == "succeeded" and s["journal"]["attempts"] == 1
        failed = [x["step"] for x in flag["steps"] if not x["ok"]]
        print(
            f"\nsalvage started {tool_at - fault_at:.1f} s after kill -9, host down "
            f"{frozen_at - tool_at:.2f} s after the tool started; salvage failed after "
            f"{salvage['duration_s']:.1f} s: {salvage['detail']!r}; flag "
            f"{done_at - frozen_at:.1f} s after the host died; failed steps: {failed}"
        )
    finally:
        m.stop()
        lab.faults.clear_all()
