"""Defect 7 (issue 12), the whole daemon in-process: a replica whose SQL thread an operator
stopped is not promoted when the primary dies; the daemon holds and says why. (The operator's
`failover --force` past it runs on the lab: tests/scenarios/test_both_daemons_faults.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.middle.test_daemon import kill_host, make, running, until
from tests.middle.world import new_world, write_config


async def test_defect7_a_replica_with_a_stopped_sql_thread_is_not_promoted(
    tmp_path: Path,
) -> None:
    world = new_world()
    d, _ = make(write_config(tmp_path), world)
    async with running(d):
        await until(lambda: d.state.state.value == "healthy", "healthy")
        world.node2.sql_stopped = True
        await asyncio.sleep(0.2)
        kill_host(world)
        await until(
            lambda: (
                d.last_decision is not None
                and d.last_decision.reason_code.value == "hold_replica_stale"
            ),
            "the stale-replica hold",
        )
        await asyncio.sleep(0.5)  # more ticks: still held
        assert d.last_decision is not None
        assert "SQL thread is No" in d.last_decision.reason
        status = d.status()
    assert world.node2.promotions == 0 and world.writable() == []
    assert "SQL thread" in str(status)
