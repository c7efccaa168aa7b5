"""Two nodes, one truth (issue 12), the whole daemon in-process on node2 against the world:
epochs (defect 1: a switchover back stands against the older failover's flag), the cluster-wide
flag (defect 2: the peer's copy blocks this standby; resume clears both), and self-fencing of
an isolated primary (defect 3) with its way back. Real journal, flag and epoch files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from monha import check
from monha.model import State
from monha.operations import Operations
from monha.plan import PLAN_STALE_S, PLAN_STALE_SKEW_S
from monha.split_brain import Epoch
from tests.middle.test_daemon import make, monha_ctl, running, until
from tests.middle.world import (
    VIP,
    WITNESS_ADDRESS,
    FakeNode,
    World,
    new_world,
    write_config,
)

WITNESS = f"""
[[witness]]
name = "w1"
address = "{WITNESS_ADDRESS}"
"""


def switched_back_world() -> World:
    """node2 is the primary again (failover node2 -> node1, rejoin node2, switchover back);
    node1 replicates from it, read_only, and still holds the failover's flag."""
    n1 = FakeNode("node1", "192.168.10.1", False, read_only=True, replicating=True)
    n2 = FakeNode("node2", "192.168.10.2", True, vip={VIP}, services={"zabbix-server"})
    return World(n1, n2)


def epoch(number: int, primary: str, by: str = "failover") -> dict[str, Any]:
    return Epoch(number, primary, 0.0, by, f"plan{number}").to_dict()


def failover_flag(new: str, old: str, number: int) -> dict[str, Any]:
    return {"failover_id": f"f{number}", "new_primary": new, "old_primary": old,
            "epoch": epoch(number, new)}  # fmt: skip


def put(world: World, node: str, path: Path, data: dict[str, Any]) -> None:
    """A file on the peer (node1: its files as SSH sees them) or here (node2: a real file)."""
    body = json.dumps(data).encode()
    if node == "node1":
        world.node1.files[str(path)] = body
    else:
        path.write_bytes(body)


async def ticks(n: int = 20) -> None:
    await asyncio.sleep(n * 0.05)


# --- defect 1 -------------------------------------------------------------------------------


async def test_defect1_a_switchover_back_is_not_undone_by_the_older_failovers_flag(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path)
    world = switched_back_world()
    flag, ep = tmp_path / "failover.flag", tmp_path / "epoch.json"
    put(world, "node1", flag, failover_flag("node1", "node2", 1))
    put(world, "node1", ep, epoch(2, "node2", "switchover"))
    put(world, "node2", flag, failover_flag("node1", "node2", 1))  # the copy rejoin made
    put(world, "node2", ep, epoch(2, "node2", "switchover"))
    d, _ = make(cfg, world)
    async with running(d):
        await ticks()
        assert world.writable() == ["node2"] and world.vip_holders() == ["node2"]
        assert "zabbix-server" in world.node2.services
        assert d.guard is not None and d.guard.fenced_because is None


async def test_a_claim_newer_than_mine_makes_me_step_down(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = switched_back_world()
    world.node1.read_only, world.node1.replicating = False, False  # node1 was promoted
    put(world, "node1", tmp_path / "epoch.json", epoch(3, "node1"))
    put(world, "node2", tmp_path / "epoch.json", epoch(2, "node2", "switchover"))
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: world.node2.read_only and not world.node2.vip, "node2 steps down")
        assert d.guard is not None and "epoch 3" in (d.guard.fenced_because or "")
        assert world.writable() == ["node1"]


# --- defect 2 -------------------------------------------------------------------------------


async def test_defect2_the_peers_flag_blocks_this_standby_too(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    put(world, "node1", tmp_path / "failover.flag", failover_flag("node1", "node2", 1))
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: d.state.state is State.DONE_FLAGGED, "the peer's flag to block")
        world.node1.host_up = False
        await ticks(40)
        assert world.node2.promotions == 0 and world.node2.read_only
        assert d.state.state is State.DONE_FLAGGED


async def test_the_peers_flag_still_blocks_after_a_restart_while_the_peer_is_out_of_reach(
    tmp_path: Path,
) -> None:
    """Review finding (c): the peer's flag, as last read, outlives a restart of this daemon;
    a daemon that started while the peer was unreachable would otherwise be armed."""
    cfg = write_config(tmp_path)
    world = new_world()
    put(world, "node1", tmp_path / "failover.flag", failover_flag("node1", "node2", 1))
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: d.state.state is State.DONE_FLAGGED, "the peer's flag to block")
    world.node1.host_up = False  # the primary dies while this daemon is down
    d2, _ = make(cfg, world, label="second")
    async with running(d2):
        await ticks(40)
        assert world.node2.promotions == 0 and world.node2.read_only
        assert d2.state.state is State.DONE_FLAGGED


async def test_a_peer_flag_cleared_by_resume_stops_blocking(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    flag = tmp_path / "failover.flag"
    put(world, "node1", flag, failover_flag("node1", "node2", 1))
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: d.state.state is State.DONE_FLAGGED, "the peer's flag to block")
        del world.node1.files[str(flag)]  # resume, run on node1
        await until(lambda: d.state.state is State.HEALTHY, "armed again", 30)
    assert not (tmp_path / "peer-flag.json").exists()


@pytest.fixture
def check_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """resume's pre-check (a survey of both MySQL servers, beyond what the fake servers
    answer) passes: these tests are about which copies of the flag it clears."""

    async def survey(self: Operations) -> None:
        return None

    monkeypatch.setattr(Operations, "survey", survey)
    monkeypatch.setattr(check, "problems", lambda cfg, s: [])


@pytest.mark.usefixtures("check_passes")
async def test_resume_clears_the_flag_on_both_nodes(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    flag = tmp_path / "failover.flag"
    put(world, "node1", flag, failover_flag("node1", "node2", 1))
    put(world, "node2", flag, failover_flag("node1", "node2", 1))
    d, _ = make(cfg, world)
    async with running(d):
        code, out = await monha_ctl(cfg, "resume")
        assert code == 0, out
        assert not flag.exists() and str(flag) not in world.node1.files


@pytest.mark.usefixtures("check_passes")
async def test_resume_clears_neither_copy_while_the_peer_is_out_of_reach(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    world = new_world()
    flag = tmp_path / "failover.flag"
    put(world, "node1", flag, failover_flag("node1", "node2", 1))
    put(world, "node2", flag, failover_flag("node1", "node2", 1))
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.ssh_up = False
        code, out = await monha_ctl(cfg, "resume")
        assert code != 0, out
        assert flag.exists() and str(flag) in world.node1.files


# --- defect 3 -------------------------------------------------------------------------------


def isolated_config(tmp_path: Path, extra: str = "") -> Path:
    # The world's clock runs 20 times faster than the 0.05 s ticks: a tick is a fake second
    # apart, so the limit must span several ticks, or every tick would look like a gap.
    cfg = write_config(tmp_path, failover_extra=f"isolation_fence_s = 10.0\n{extra}")
    cfg.write_text(cfg.read_text().replace("[ssh]", WITNESS + "\n[ssh]"))
    return cfg


async def test_defect3_an_isolated_primary_steps_down_and_comes_back_when_the_peer_was_not_promoted(
    tmp_path: Path,
) -> None:
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        await ticks()
        assert world.writable() == ["node2"]
        world.node1.host_up, world.witness_up = False, False  # node2 hears nobody
        await until(lambda: world.node2.read_only and not world.node2.vip, "node2 steps down")
        assert "zabbix-server" not in world.node2.services
        assert d.guard is not None and "heard neither" in (d.guard.fenced_because or "")
        # The cut heals; node1 was not promoted (it still replicates from node2, read_only).
        world.node1.host_up, world.witness_up = True, True
        await until(lambda: not world.node2.read_only and VIP in world.node2.vip, "return")
        assert world.writable() == ["node2"] and world.vip_holders() == ["node2"]


async def test_a_primary_that_still_hears_a_witness_keeps_serving(tmp_path: Path) -> None:
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.host_up = False  # the standby died; the witness still answers
        await ticks(40)
        assert world.writable() == ["node2"] and world.vip_holders() == ["node2"]


@pytest.mark.parametrize("away_s", [0.0, 60.0])
async def test_a_daemon_restarted_after_time_away_counts_the_silence_from_before(
    tmp_path: Path, away_s: float
) -> None:
    """Review finding: a daemon (re)started with the peer out of reach and only a witness
    answering started its isolation clock afresh, though its host may have been frozen (or
    the daemon stopped) while the peer promoted. heard.json keeps what the last run knew."""
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        await ticks()
    heard = json.loads((tmp_path / "heard.json").read_text())
    assert heard["monha_heard"] == 1 and heard["last_heard_at"] <= heard["tick_end"]
    # The time away: everything the last run knew is that much older.
    heard = {k: v - away_s if k != "monha_heard" else v for k, v in heard.items()}
    (tmp_path / "heard.json").write_text(json.dumps(heard))
    world.node1.host_up = False  # the peer is out of reach; the witness still answers
    d2, _ = make(cfg, world)
    async with running(d2):
        if away_s:
            await until(lambda: world.node2.read_only and not world.node2.vip, "step down")
            assert d2.guard is not None and "heard neither" in (d2.guard.fenced_because or "")
        else:
            await ticks(40)
            assert world.writable() == ["node2"] and world.vip_holders() == ["node2"]


async def test_a_daemon_already_silent_when_it_stopped_counts_the_downtime(
    tmp_path: Path,
) -> None:
    """Second review: silent for 8 s when it stopped, down for 4 (under peer_step_down_s): had
    it run on, it would have stepped down; hearing only the witness afterwards changes nothing."""
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    now = d.clock()
    heard = {"monha_heard": 1, "tick_end": now - 4.0, "last_heard_at": now - 12.0}
    (tmp_path / "heard.json").write_text(json.dumps(heard))
    world.node1.host_up = False  # the peer is out of reach; the witness still answers
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: world.node2.read_only and not world.node2.vip, "step down")


async def test_a_garbled_heard_file_counts_as_a_long_time_away(tmp_path: Path) -> None:
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    (tmp_path / "heard.json").write_bytes(b"\xff\xfe not json")
    world.node1.host_up = False  # the peer is out of reach; the witness still answers
    d, _ = make(cfg, world)
    async with running(d):
        await until(lambda: world.node2.read_only and not world.node2.vip, "step down")


async def test_isolation_fencing_switched_off_keeps_the_primary_serving(tmp_path: Path) -> None:
    cfg = isolated_config(tmp_path, 'self_fence_on_isolation = "off"')
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.host_up, world.witness_up = False, False
        await ticks(40)
        assert world.writable() == ["node2"] and world.vip_holders() == ["node2"]


async def test_a_restarted_daemon_still_returns_from_an_isolation_step_down(
    tmp_path: Path,
) -> None:
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.host_up, world.witness_up = False, False
        await until(lambda: world.node2.read_only and not world.node2.vip, "node2 steps down")
    assert (tmp_path / "isolated.json").exists()
    d2, _ = make(cfg, world)
    async with running(d2):
        world.node1.host_up, world.witness_up = True, True
        await until(lambda: not world.node2.read_only and VIP in world.node2.vip, "return")
    assert not (tmp_path / "isolated.json").exists()


async def test_no_return_from_isolation_while_a_plan_is_open_on_the_peer(tmp_path: Path) -> None:
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.host_up, world.witness_up = False, False
        await until(lambda: world.node2.read_only and not world.node2.vip, "node2 steps down")
        # node1 decided a failover meanwhile and is about to promote itself.
        journal = {"failover_id": "f9", "finished": False, "started_at": d.clock()}
        put(world, "node1", tmp_path / "journal.json", journal)
        world.node1.host_up, world.witness_up = True, True
        await ticks(40)
        assert world.node2.read_only and not world.node2.vip
        world.node1.files[str(tmp_path / "journal.json")] = b'{"finished": true}'
        await until(lambda: not world.node2.read_only and VIP in world.node2.vip, "return")


@pytest.mark.parametrize("committed", [False, True])
async def test_a_stale_plan_on_the_peer_holds_the_return_only_if_it_changed_a_node(
    tmp_path: Path, committed: bool
) -> None:
    """A plan open on the peer that has not run for PLAN_STALE_S (its daemon stopped) is no
    reason to leave the cluster without a primary, unless it already changed a node."""
    cfg = isolated_config(tmp_path)
    world = switched_back_world()
    d, _ = make(cfg, world)
    async with running(d):
        world.node1.host_up, world.witness_up = False, False
        await until(lambda: world.node2.read_only and not world.node2.vip, "node2 steps down")
        long_ago = d.clock() - PLAN_STALE_S - PLAN_STALE_SKEW_S - 10.0
        done = [{"step": "promote@node1", "ok": True, "started_at": long_ago, "duration_s": 1}]
        journal = {
            "failover_id": "f9",
            "kind": "failover",
            "old_primary": "node2",
            "finished": False,
            "started_at": long_ago,
            "done": done if committed else [],
        }
        put(world, "node1", tmp_path / "journal.json", journal)
        world.node1.host_up, world.witness_up = True, True
        if committed:
            await ticks(40)
            assert world.node2.read_only and not world.node2.vip
        else:
            await until(lambda: not world.node2.read_only and VIP in world.node2.vip, "return")
