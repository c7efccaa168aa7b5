"""Issue 4 on the lab, under a write load of 200 rows/s: kill -9 of the primary's mysqld while
the replica lags loses no acknowledged row (the binlog salvage recovers them); a host death
with asynchronous replication loses rows, and exactly those are found afterwards as errant
transactions on the old primary; with semi-sync (AFTER_SYNC) a host death loses none; and
after the errant transactions are saved and undone, the old primary replicates from the new
one without skipping anything.

Each run starts from a fresh lab (the same prefix; `up` takes a few seconds). Runs per
scenario: MONHA_DATA_LOSS_RUNS (default 3); bench/data_loss.py runs 10 of each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monha.lab import dataloss
from monha.lab.lab import Lab
from monha.lab.names import ADDRESSES, MYSQL_PORT, USERS
from tests.scenarios.support import scenario_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

RUNS = int(os.environ.get("MONHA_DATA_LOSS_RUNS", "3"))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from scenario_lab()


@pytest.mark.parametrize("run", range(RUNS))
def test_kill9_with_a_lagging_replica_loses_nothing(lab: Lab, run: int) -> None:
    r = dataloss.run_kill9_lagging(lab)
    print(f"\nrun {run}: {r.line()}")
    assert r.lost == 0, r.line()
    assert r.salvaged is not None and r.salvaged > 0, r.line()
    fb = r.flag["failback"]
    assert fb["salvaged_to_gtid"] == fb["new_primary_gtid"]
    # Caught up or not (a loaded machine may hit the bound), the salvage starts at the applied
    # position, so what the relay log held unapplied is recovered too; the flag says which.
    assert fb["catch_up"] in ("caught up", "not caught up") and fb["catch_up_detail"]


@pytest.mark.parametrize("run", range(RUNS))
def test_host_death_async_lost_rows_are_the_errant_ones(lab: Lab, run: int) -> None:
    r = dataloss.run_host_death(lab, semi_sync=False)
    print(f"\nrun {run}: {r.line()}")
    assert r.salvaged is None  # SSH cannot reach a dead host: no salvage step
    assert r.errant_load_rows is not None
    # The load has one INSERT in flight at a time: at most one row committed on the old
    # primary without its acknowledgement reaching the client.
    assert r.lost <= r.errant_load_rows <= r.lost + 1, r.line()


@pytest.mark.parametrize("run", range(RUNS))
def test_host_death_with_semi_sync_loses_nothing(lab: Lab, run: int) -> None:
    r = dataloss.run_host_death(lab, semi_sync=True)
    print(f"\nrun {run}: {r.line()}")
    assert r.lost == 0, r.line()


def test_errant_transactions_saved_then_replication_runs_without_skipping(lab: Lab) -> None:
    # The last host-death run left node1 fenced with transactions only it has (async, so
    # that there are some): make sure of that with a fresh async run.
    r = dataloss.run_host_death(lab, semi_sync=False)
    report = dataloss.errant_report(lab)
    assert report["count"] >= 1 and report["sql_file"] and report["flashback_file"]
    saved = lab.paths.node("node2").var_lib_monha / Path(report["sql_file"]).relative_to(
        "/var/lib/monha"
    )
    assert saved.stat().st_mode & 0o077 == 0
    assert saved.read_text(errors="replace").count("GTID ") >= report["count"]
    assert r.lost <= report["errant_load_rows"]
    # Undo them on node1 (not binlogged: they are not new history), then replicate from
    # node2 from the position both share.
    flashback = lab.paths.node("node2").var_lib_monha / Path(report["flashback_file"]).relative_to(
        "/var/lib/monha"
    )
    from monha.lab.proc import run

    run(
        ["mariadb", "--no-defaults", f"--socket={lab.socket('node1')}", "-uroot", "--binary-mode"],
        input="SET SESSION sql_log_bin = 0;\n" + flashback.read_text(errors="surrogateescape"),
        timeout=60,
    )
    lab.sql(
        "node1",
        f"SET GLOBAL gtid_slave_pos = '{report['rejoin_gtid']}'; "
        f"CHANGE MASTER TO MASTER_HOST='{ADDRESSES['node2']}', MASTER_PORT={MYSQL_PORT}, "
        f"MASTER_USER='repl', MASTER_PASSWORD='{USERS['repl']}', MASTER_USE_GTID=slave_pos, "
        "MASTER_CONNECT_RETRY=1; START SLAVE",
    )
    lab.sql("node2", "INSERT INTO labdb.load_rows (id, run_id, written_at) VALUES (1, 'rejoin', 0)")
    wait_for(
        "node1 to replicate node2's new row",
        lambda: (
            lab.sql("node1", "SELECT COUNT(*) FROM labdb.load_rows WHERE run_id='rejoin'").strip()
            == "1"
        ),
        30,
    )
    from monha.lab.mariadb import replica_status

    st = replica_status(lab.socket("node1"))
    assert st["Slave_IO_Running"] == "Yes" and st["Slave_SQL_Running"] == "Yes", st
    assert st["Last_SQL_Errno"] == "0" and st["Skip_Counter"] == "0", st
    # Nothing skipped, nothing left over: both nodes hold the same load rows.
    rows = "SELECT COUNT(*), COALESCE(SUM(id % 1000003), 0) FROM labdb.load_rows"
    wait_for(
        "the same rows on both nodes", lambda: lab.sql("node1", rows) == lab.sql("node2", rows), 30
    )
