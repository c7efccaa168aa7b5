"""Semi-sync state read from real servers, MariaDB (built in) and MySQL (the semisync_source
and semisync_replica plugins, rpl_semi_sync_source_* names): what status and check report,
and what the data-loss bound leans on (issue 13: the MySQL spellings were never run)."""

from __future__ import annotations

import asyncio
import time

import pytest

from monha.mysql import Server
from tests.adapters.sandbox import ADMIN_PASSWORD, ADMIN_USER, ServerPair

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(180)]


def _server(port: int) -> Server:
    return Server(host="127.0.0.1", port=port, user=ADMIN_USER, password=ADMIN_PASSWORD)


def _enable(pair: ServerPair) -> None:
    p, r = pair.primary, pair.replica
    if pair.flavor == "mysql":
        p.sql("INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'")
        r.sql("INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'")
        src, rep = "rpl_semi_sync_source", "rpl_semi_sync_replica"
    else:
        src, rep = "rpl_semi_sync_master", "rpl_semi_sync_slave"
    p.sql(f"SET GLOBAL {src}_wait_point = AFTER_SYNC")
    p.sql(f"SET GLOBAL {src}_timeout = 2000")
    p.sql(f"SET GLOBAL {src}_enabled = ON")
    r.sql(f"SET GLOBAL {rep}_enabled = ON")
    # The IO thread negotiates semi-sync when it connects.
    pair.replication("STOP", "IO_THREAD")
    pair.replication("START", "IO_THREAD")


async def test_semi_sync_state_on_both_servers(pair: ServerPair) -> None:
    p, r = _server(pair.primary.port), _server(pair.replica.port)
    try:
        before = await p.semi_sync_state()
        # MariaDB has it built in (off); MySQL without the plugin has no variables at all.
        assert before.available is (pair.flavor == "mariadb")
        assert not before.primary_active and not before.protects_failover
        _enable(pair)
        deadline = time.monotonic() + 20
        while True:
            ps = await p.semi_sync_state()
            if ps.primary_active and ps.clients == 1:
                break
            assert time.monotonic() < deadline, ps
            await asyncio.sleep(0.2)
        assert ps.available and ps.primary_enabled and ps.wait_point.upper() == "AFTER_SYNC"
        assert ps.timeout_ms == 2000 and ps.protects_failover
        rs = await r.semi_sync_state()
        assert rs.available and rs.replica_enabled and rs.replica_active
        # A commit is acknowledged by the replica before it returns.
        pair.primary.sql("CREATE TABLE labdb.semi (id INT PRIMARY KEY)")
        pair.wait_replicated()
    finally:
        await p.close()
        await r.close()
