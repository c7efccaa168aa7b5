"""Replication comes back by itself (issue 12, defect 9): the whole daemon, in-process, with a
fake world. monha sets the heartbeat and net timeout it needs on the replica it manages (and
logs it), restarts an IO thread that failed while the primary answers, and leaves alone a SQL
thread or an IO thread that an operator stopped.
"""

from __future__ import annotations

from pathlib import Path

from tests.middle.test_daemon import make, running, until
from tests.middle.world import new_world, write_config


async def test_defect9_heartbeat_and_net_timeout_are_set_on_the_replica(tmp_path: Path) -> None:
    world = new_world()
    world.node2.heartbeat_s = 30.0  # what the seed's CHANGE MASTER leaves: the server default
    d, _ = make(write_config(tmp_path), world)
    async with running(d):
        await until(lambda: world.node2.heartbeat_s == d.cfg.mysql.heartbeat_period_s, "heartbeat")
        await until(
            lambda: world.node2.net_timeout_s == d.cfg.mysql.replica_net_timeout_s, "net timeout"
        )
    assert world.writable() == ["node1"] and world.node2.promotions == 0


async def test_defect9_a_failed_io_thread_is_restarted_while_the_primary_answers(
    tmp_path: Path,
) -> None:
    world = new_world()
    d, _ = make(write_config(tmp_path), world)
    async with running(d):
        await until(lambda: d.state.state.value == "healthy", "healthy")
        world.node2.io_failed = True  # e.g. error 2013 after the primary's quick restart
        await until(lambda: world.node2.io_restarts == 1, "the IO thread restarted")
        assert not world.node2.io_failed
    assert world.node2.promotions == 0


async def test_an_io_thread_is_not_restarted_while_the_primary_is_silent(tmp_path: Path) -> None:
    world = new_world()
    d, _ = make(write_config(tmp_path), world)
    async with running(d):
        await until(lambda: d.state.state.value == "healthy", "healthy")
        world.node1.mysql_up = False
        world.node2.io_failed = True
        await until(lambda: d.state.state.value != "healthy", "suspect")
        assert world.node2.io_restarts == 0
