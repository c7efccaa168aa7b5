"""The whole daemon in-process against a simulated world: real executor, journal, flag files,
control socket and monha-ctl; fake nodes behind the same protocols. One named regression test
per engine defect of issue 11; seconds, no root.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monha import ctl, daemon, log
from monha.config import load_config
from monha.daemon import Daemon, DaemonLockError
from monha.journal import Journal, JournalRecord, step_to_dict
from monha.model import Step, StepKind
from monha.plan import PlanInputs, build_failover_plan
from tests.middle.world import Clock, World, new_world, read_json, wiring_for, write_config

TIMEOUT = 20.0


class Notifier:
    """Records what the daemon tells systemd."""

    def __init__(self) -> None:
        self.watchdogs: list[float] = []
        self.readies = 0

    def ready(self, status: str = "") -> None:
        self.readies += 1

    def watchdog(self) -> None:
        self.watchdogs.append(time.monotonic())

    def status(self, text: str) -> None: ...

    def stopping(self) -> None: ...

    def reloading(self) -> None: ...

    def close(self) -> None: ...


def make(path: Path, world: World, *, label: str = "") -> tuple[Daemon, Notifier]:
    n = Notifier()
    d = Daemon(
        path,
        node="node2",
        registry=CollectorRegistry(),
        serve_metrics=False,
        wiring=wiring_for(world, label=label),
        notifier=n,  # type: ignore[arg-type]
        clock=Clock(),
    )
    return d, n


@asynccontextmanager
async def running(d: Daemon) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.get_running_loop().create_task(d.run())
    try:
        await until(lambda: d.last_observation is not None or task.done(), "first tick")
        assert not task.done(), task.exception()
        yield task
    finally:
        d.shutdown.set()
        await asyncio.wait_for(task, TIMEOUT)


async def until(cond: Callable[[], object], what: str, limit_s: float = TIMEOUT) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def monha_ctl(cfg: Path, *args: str) -> tuple[int, str]:
    """The real monha-ctl, in a thread (it runs its own event loop)."""

    def call() -> tuple[int, str]:
        out = StringIO()
        with redirect_stdout(out):
            code = ctl.main(["--config", str(cfg), "--node", "node2", *args])
        return code, out.getvalue()

    return await asyncio.to_thread(call)


def flag(path: Path) -> dict[str, Any]:
    data = read_json(path.parent / "failover.flag")
    assert data is not None
    return data


def one_primary(world: World) -> None:
    assert world.vip_holders() == ["node2"] and world.writable() == ["node2"]


def kill_host(world: World) -> None:
    world.node1.host_up = False


# --- defect 2: a stopped plan is retried by the running daemon --------------------------------


async def test_a_stopped_plan_is_retried_by_the_running_daemon(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    world.node2.fail["promote"] = 2
    d, _ = make(cfg, world)
    async with running(d) as task:
        kill_host(world)
        await until(lambda: d.state.state.value == "done_flagged", "done_flagged")
        assert not task.done()
    one_primary(world)
    assert world.node2.promotions == 1
    promotes = [s for s in flag(cfg)["steps"] if s["step"] == "promote@node2"]
    assert [s["ok"] for s in promotes] == [False, False, True]

    # The back-off grows: 5 s then 10 s of the daemon's clock (20 times real time), counted
    # from the end of the failed attempt (its own duration varies).
    def after(i: int) -> float:
        p, q = promotes[i], promotes[i + 1]
        return float(q["started_at"] - (p["started_at"] + p["duration_s"]))

    gap1, gap2 = after(0), after(1)
    assert gap2 > gap1 * 1.5, (gap1, gap2)
    record = Journal(tmp_path / "journal.json").load()
    assert record is not None and record.outcome == "succeeded" and record.attempts == 3


async def test_status_says_which_step_failed_and_when_the_next_attempt_is(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    world.node2.fail["promote"] = 1000
    d, _ = make(cfg, world)
    async with running(d):
        kill_host(world)
        await until(lambda: d.state.plan_attempts >= 2, "two attempts")
        code, out = await monha_ctl(cfg, "status", "--no-cluster", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["state"] == "failing_over"
    assert status["next_attempt_at"] is not None
    j = status["journal"]
    assert j["stopped_at"]["step"] == "promote@node2" and "on purpose" in j["stopped_at"]["detail"]
    assert j["attempts"] >= 2 and "failover --force" in j["what_to_do"]
    assert world.node2.promotions == 0 and world.vip_holders() == []


async def test_an_unrun_plan_is_abandoned_when_the_primary_answers_again(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    world.node1.fail["ip"] = 1000  # the VIP cannot be removed: vip_down (STOP) fails
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.mysql_up = False  # kill -9: host and SSH alive
        await until(lambda: d.state.plan_attempts >= 1, "a stopped plan")
        world.node1.mysql_up = True
        await until(lambda: d.state.state.value == "healthy", "healthy again")
    record = Journal(tmp_path / "journal.json").load()
    assert record is not None and record.finished and record.outcome == "abandoned"
    assert world.node2.promotions == 0 and world.vip_holders() == ["node1"]
    assert not (tmp_path / "failover.flag").exists()


async def test_an_abandoned_plan_gives_back_a_vip_its_failed_fence_removed(
    tmp_path: Path,
) -> None:
    # Review finding: vip_down deleted the VIP, then the connection was lost: the step failed,
    # the plan changed nothing on record; abandoning it must not leave the VIP on no node.
    cfg = write_config(tmp_path)
    world = new_world()
    world.node1.lose_after_delete = 1000
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.mysql_up = False
        await until(lambda: d.state.plan_attempts >= 1, "a stopped plan")
        assert world.vip_holders() == []
        world.node1.lose_after_delete = 0
        world.node1.mysql_up = True
        await until(lambda: d.state.state.value == "healthy", "healthy again")
    record = Journal(tmp_path / "journal.json").load()
    assert record is not None and record.outcome == "abandoned"
    assert any(x["step"] == "vip_up@node1" and x["ok"] for x in record.done)
    assert world.vip_holders() == ["node1"] and world.node2.promotions == 0


# --- defect 1: a resume replays the journaled plan, never a weaker rebuild --------------------


async def test_a_restarted_daemon_replays_the_journaled_fence_steps(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    journal, record, plan = _journal_left_open(cfg_path, ssh_reachable=True)
    assert [s.kind for s in plan[:2]] == [StepKind.VIP_DOWN, StepKind.FENCE_MYSQL]
    world = new_world()
    world.node1.vip.clear()  # the first daemon removed it, then died
    journal.record_step(record, _result("vip_down@node1"))
    # Now node1 hangs: ICMP answers, SSH does not. A fresh decision holds (no witness), and a
    # rebuilt plan would hold no step on node1 at all.
    world.node1.ssh_up = False
    world.node1.mysql_up = False
    d, _ = make(cfg_path, world)
    async with running(d):
        await until(lambda: (tmp_path / "failover.flag").exists(), "the flag")
    ran = [s["step"] for s in flag(cfg_path)["steps"]]
    assert "fence_mysql@node1" in ran and ran.count("vip_down@node1") == 1
    one_primary(world)


def _journal_left_open(
    cfg_path: Path, *, ssh_reachable: bool
) -> tuple[Journal, JournalRecord, tuple[Step, ...]]:
    """The journal a daemon that died mid-failover left behind, its plan begun."""
    cfg = load_config(cfg_path)
    inputs = PlanInputs.from_config(cfg)
    plan = build_failover_plan(inputs, "node1", "node2", ssh_reachable=ssh_reachable)
    journal = Journal(Path(cfg.failover.journal_file))
    record = JournalRecord(
        failover_id="left-open",
        kind="failover",
        started_at=time.time(),
        old_primary="node1",
        new_primary="node2",
        reason="test",
        steps=[s.key for s in plan],
        plan=[step_to_dict(s) for s in plan],
    )
    journal.begin(record)
    return journal, record, plan


def _result(step: str) -> Any:
    from monha.model import StepResult

    return StepResult(step=step, node=step.split("@")[1], ok=True, started_at=1.0, duration_s=0)


# --- defect 3: a lost connection is a failed step, never a dead daemon ------------------------


async def test_a_lost_ssh_connection_is_a_failed_step_not_a_dead_daemon(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    world.node1.lose_connection = 10**6
    d, _ = make(cfg, world)
    async with running(d) as task:
        world.node1.mysql_up = False
        await until(lambda: d.state.plan_attempts >= 1, "a stopped plan")
        for _ in range(10):  # ticks go on, the VIP export asks node1 too
            await asyncio.sleep(0.06)
        assert not task.done()
        record = Journal(tmp_path / "journal.json").load()
        assert record is not None and record.last_failure is not None
        assert "ConnectionLost" in record.last_failure["detail"]
        world.node1.lose_connection = 0
        await until(lambda: (tmp_path / "failover.flag").exists(), "the flag")
    one_primary(world)


# --- defect 4: the watchdog proves the loop lives, not that steps are short -------------------


async def test_the_watchdog_is_fed_while_a_long_step_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "WATCHDOG_KEEPALIVE_S", 0.05)
    cfg = write_config(tmp_path, service_timeout=3.0)
    world = new_world()
    world.node2.hang["zabbix-start"] = 1.0
    d, n = make(cfg, world)
    async with running(d):
        kill_host(world)
        await until(lambda: (tmp_path / "failover.flag").exists(), "the flag")
    start = next(s for s in flag(cfg)["steps"] if s["step"].startswith("start_service@node2"))
    assert start["duration_s"] >= 1.0
    t0 = time.monotonic() - (time.time() - start["started_at"])
    during = [t for t in n.watchdogs if t0 <= t <= t0 + start["duration_s"]]
    gaps = [b - a for a, b in zip([t0, *during], [*during, t0 + start["duration_s"]], strict=True)]
    assert len(during) >= 5 and max(gaps) < 0.5, gaps


# --- defect 5: one daemon per node ------------------------------------------------------------


async def test_a_second_daemon_refuses_and_leaves_the_first_ones_socket(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    first, _ = make(cfg, world)
    async with running(first):
        second, _ = make(cfg, world)
        with pytest.raises(DaemonLockError, match="already runs"):
            await second.run()
        assert (tmp_path / "control.sock").exists()
        code, out = await monha_ctl(cfg, "status", "--no-cluster", "--json")
        assert code == 0 and json.loads(out)["node"] == "node2"
        # The real command line: one line, exit 1, no traceback; the first still answers.
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "monha", "run", "--config", str(cfg), "--node", "node2"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
        assert proc.returncode == 1, proc.stderr
        assert "already runs" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        code, _ = await monha_ctl(cfg, "status", "--no-cluster")
        assert code == 0


# --- defect 6: reload ---------------------------------------------------------------------------


async def test_a_reload_that_does_not_validate_keeps_the_running_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    d, _ = make(cfg, world)
    async with running(d) as task:
        before = d.cfg
        os.chmod(tmp_path / "monitor.pw", 0o644)  # a password file others may read
        d._reload_requested = True
        await until(lambda: not d._reload_requested, "the reload")
        await asyncio.sleep(0.2)
        assert not task.done() and d.cfg is before
        assert world.closed == []  # nothing replaced, nothing closed
        code, _ = await monha_ctl(cfg, "status", "--no-cluster")
        assert code == 0


async def test_a_good_reload_waits_for_a_command_and_closes_what_it_replaces(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    d, _ = make(cfg, world, label="old-")
    async with running(d):
        text = cfg.read_text().replace("replica_silence_s = 2.0", "replica_silence_s = 2.5")
        cfg.write_text(text)
        async with d.busy:  # an operator command runs
            d._reload_requested = True
            await asyncio.sleep(0.3)
            assert d.cfg.probe.replica_silence_s == 2.0  # deferred
        await until(lambda: d.cfg.probe.replica_silence_s == 2.5, "the reload")
        assert d.policy.replica_silence_s == 2.5
        # A command waiting for the tick lock holds the old wiring: the reload waits for it.
        d.operations.running = "switchover"
        cfg.write_text(text.replace("replica_silence_s = 2.5", "replica_silence_s = 3.0"))
        d._reload_requested = True
        await asyncio.sleep(0.3)
        assert d.cfg.probe.replica_silence_s == 2.5 and d._reload_requested
        d.operations.running = None
        await until(lambda: d.cfg.probe.replica_silence_s == 3.0, "the deferred reload")
        text = cfg.read_text()
        assert {"old-mysql:node1", "old-mysql:node2", "old-ssh:node1"} <= set(world.closed)
        # The journal and the flag of a running daemon never move at a reload.
        before = d.cfg
        cfg.write_text(text.replace("journal.json", "elsewhere.json"))
        d._reload_requested = True
        await until(lambda: not d._reload_requested, "the reload")
        await asyncio.sleep(0.2)
        assert d.cfg is before


# --- defect 7: journal states that used to block every operator command -----------------------


async def test_an_unreadable_journal_blocks_with_guidance_until_discarded(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "journal.json").write_text("{half a journal")
    world = new_world()
    d, _ = make(cfg, world)
    async with running(d):
        kill_host(world)
        await until(lambda: d.state.state.value == "blocked", "blocked")
        await asyncio.sleep(0.3)
        assert world.node2.promotions == 0  # nothing runs on a journal nobody can read
        status = d.status()
        assert str(tmp_path / "journal.json") in status["reason"]
        assert "monha-ctl journal discard" in status["reason"]
        code, out = await monha_ctl(cfg, "journal", "discard", "--yes")
        assert code == 0 and "moved to" in out
        await until(lambda: (tmp_path / "failover.flag").exists(), "the flag")
    one_primary(world)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".discarded")]


async def test_a_journal_whose_flag_was_written_is_closed_not_left_open(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    journal, record, plan = _journal_left_open(cfg_path, ssh_reachable=False)
    for s in plan:
        journal.record_step(record, _result(s.key))  # the daemon died before finish()
    (tmp_path / "failover.flag").write_text(json.dumps({"new_primary": "node2"}))
    world = new_world()
    d, _ = make(cfg_path, world)
    async with running(d):
        await until(lambda: d.state.state.value == "done_flagged", "done_flagged")
        code, out = await monha_ctl(cfg_path, "journal", "show", "--json")
    assert code == 0 and json.loads(out)["record"]["finished"] is True
    assert d.status()["journal"]["finished"] is True


# --- defect 11: a dead peer is logged when it changes, not every tick ------------------------


async def test_a_dead_peer_is_logged_once_not_every_tick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "failover.flag").write_text(json.dumps({"new_primary": "node1"}))
    world = new_world()
    log.setup("json", "info")
    d, _ = make(cfg, world)
    async with running(d):
        kill_host(world)
        await until(lambda: d._ticks > 40, "40 ticks")
        world.node1.host_up = True
        await until(lambda: d._ticks > 50, "50 ticks")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"event"' in line]
    failed = [e for e in lines if e["event"] == "probe_failed"]
    assert {e["probe"] for e in failed} == {"mysql", "icmp", "ssh"}
    assert len(failed) == 3, failed
    assert sum(e["event"] == "probe_recovered" for e in lines) == 3
