"""Binlog salvage and errant transactions against real servers, MariaDB and Oracle MySQL: the
servers' own binlog tool and client, through the code the daemon runs (the SALVAGE_BINLOG step,
binlog_io.salvage, failback.undo_errant and the MAKE_REPLICA step).

The old primary is reached with a LocalRunner (its binary logs are local files here) and the
binlog tool is a wrapper script that runs the flavour's tool (on MySQL: chrooted into the lab's
root filesystem), as the lab does. One pair per flavour serves the whole module; every test
leaves it replicating again, except the last, which swaps the roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pymysql
import pytest

from monha import binlog_io, failback
from monha.binlog_io import SalvageReport
from monha.config import Config, Salvage
from monha.model import OnFailure, Step, StepKind
from monha.mysql import MySQLError, Server
from monha.runners import LocalRunner
from monha.salvage import parse_gtid_state
from monha.steps import Nodes, ReplicationSource, run_step
from tests.adapters.sandbox import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    APP_DB,
    APP_PASSWORD,
    APP_USER,
    REPL_PASSWORD,
    REPL_USER,
    MariaDB,
    ServerPair,
)
from tests.conftest import require
from tests.unit.unit_support import CONFIG

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(180)]


@pytest.fixture
def tool(pair: ServerPair, tmp_path: Path) -> str:
    """The binlog tool as the daemon runs it: one program path, the arguments after it."""
    argv = pair.binlog_tool_argv()
    require(shutil.which(argv[0]) is not None, f"needs {argv[0]!r} on PATH")
    require(shutil.which(pair.client_argv(pair.replica)[0]) is not None, "needs the client")
    path = tmp_path / "binlog-tool"
    path.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture
async def servers(pair: ServerPair) -> AsyncIterator[tuple[Server, Server]]:
    """monha's handles on (primary, replica), as its admin user over TCP."""
    primary, replica = (
        Server(host="127.0.0.1", port=db.port, user=ADMIN_USER, password=ADMIN_PASSWORD)
        for db in (pair.primary, pair.replica)
    )
    yield primary, replica
    await primary.close()
    await replica.close()


def _session(db: MariaDB, *statements: str) -> None:
    """Several statements in one root session (session variables such as sql_log_bin hold)."""
    conn = pymysql.connect(unix_socket=str(db.socket), user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def _behind_the_replicas_back(pair: ServerPair, statement: str) -> None:
    """Change the replica's data without a GTID (a conflict the replay will run into)."""
    lift = pair.flavor == "mysql"
    _session(
        pair.replica,
        *(["SET GLOBAL super_read_only = OFF"] if lift else []),
        "SET SESSION sql_log_bin = 0",
        statement,
        *(["SET GLOBAL super_read_only = ON"] if lift else []),
    )


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _rows(db: MariaDB, table: str) -> list[tuple[object, ...]]:
    return db.sql(f"SELECT * FROM {APP_DB}.{table} ORDER BY id")


def _read_only(pair: ServerPair, db: MariaDB) -> tuple[int, ...]:
    """(read_only, super_read_only) on MySQL; (read_only,) on MariaDB."""
    if pair.flavor == "mysql":
        return tuple(int(str(v)) for v in db.sql("SELECT @@read_only, @@super_read_only")[0])
    return (int(str(db.sql("SELECT @@read_only")[0][0])),)


def _gtids(pair: ServerPair, db: MariaDB) -> str:
    """What `db` has as GTIDs of its own binary log (MariaDB) or executed (MySQL)."""
    if pair.flavor == "mysql":
        return pair.gtid_executed(db)
    return str(db.sql("SELECT @@gtid_binlog_pos")[0][0])


def _resume(pair: ServerPair) -> None:
    """Replicate again after a salvage stopped it (the salvage's replay is not replication: on
    MariaDB the replica's slave position is moved to what it has, or it would fetch it twice)."""
    if pair.flavor == "mariadb":
        pair.replication("STOP")
        have = _gtids(pair, pair.replica)
        pair.replica.sql(f"SET GLOBAL gtid_slave_pos = '{have}'")
    pair.replication("START")
    pair.wait_replicated(30)


def _salvage_step(pair: ServerPair, tool: str) -> Step:
    args = (
        ("old", "p"),
        ("binlog_index", str(pair.primary.datadir / "bin.index")),
        ("binlog_tool", tool),
        ("max_output_mib", "64"),
    )
    argv = tuple(pair.client_argv(pair.replica))
    return Step(StepKind.SALVAGE_BINLOG, "r", 90.0, OnFailure.CONTINUE, args, argv)


def _nodes(primary: Server, replica: Server) -> Nodes:
    return Nodes(
        runners={"p": LocalRunner(), "r": LocalRunner()}, mysql={"p": primary, "r": replica}
    )


async def _received_everything(pair: ServerPair, primary: Server, replica: Server) -> None:
    """Until the replica's IO thread has read the primary's binary log to its end."""
    end = await primary.binlog_coordinates()
    deadline = time.monotonic() + 30
    while True:
        read = (await replica.replica_status()).read_position
        if read is not None and (read.file, read.position) == (end.file, end.position):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica read {read}, not {end}")
        await asyncio.sleep(0.05)


async def _salvage(pair: ServerPair, tool: str, new: Server, apply: list[str]) -> SalvageReport:
    return await binlog_io.salvage(
        new,
        LocalRunner(),
        LocalRunner(),
        binlog_index=str(pair.primary.datadir / "bin.index"),
        binlog_tool=tool,
        apply_argv=apply,
        timeout_s=60.0,
    )


# --- salvage ------------------------------------------------------------------------------------


async def test_salvage_brings_every_acknowledged_row_into_a_super_read_only_replica(
    pair: ServerPair, tool: str, servers: tuple[Server, Server]
) -> None:
    """Regressions: (1) the parser wanted BEGIN as the first line of MySQL's BEGIN query event
    (mysqlbinlog prints SET TIMESTAMP and the session first), so the replay held each
    transaction's GTID and BEGIN but no rows and no COMMIT; (2) the replay went into a
    replica on which monha had set super_read_only, and MySQL refused it (error 1290)."""
    primary, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s1 (id INT PRIMARY KEY, v VARCHAR(40))")
    pair.wait_replicated(30)
    await replica.set_read_only(True)  # as make_replica leaves a replica
    # Received but never applied (left in the relay log), then never received at all.
    pair.replication("STOP", "SQL_THREAD")
    for i in range(1, 6):
        p.sql(f"INSERT INTO {APP_DB}.s1 VALUES ({i}, 'relay {i}')")
    await _received_everything(pair, primary, replica)
    pair.replication("STOP", "IO_THREAD")
    p.sql(f"INSERT INTO {APP_DB}.s1 VALUES (6, 'six'), (7, 'it''s'), (8, 'eight')")
    p.sql(f"UPDATE {APP_DB}.s1 SET v = 'one, updated' WHERE id = 1")
    p.sql("FLUSH BINARY LOGS")  # the range spans two files
    p.sql(f"CREATE TABLE {APP_DB}.s1b (id INT PRIMARY KEY)")
    for i in range(9, 21):
        p.sql(f"INSERT INTO {APP_DB}.s1 VALUES ({i}, 'after the rotate')")
    p.sql(f"DELETE FROM {APP_DB}.s1 WHERE id = 2")
    transactions = 5 + 1 + 1 + 1 + 12 + 1
    assert _rows(r, "s1") == [] and _read_only(pair, r)[-1] == 1
    nodes = _nodes(primary, replica)
    try:
        outcome = await run_step(_salvage_step(pair, tool), nodes)
        assert outcome.ok, outcome
        assert outcome.data["salvaged_transactions"] == str(transactions), outcome
        # Nothing lost: every acknowledged row, in its last state, and the new table.
        assert _rows(r, "s1") == _rows(p, "s1") and len(_rows(r, "s1")) == 19
        assert r.sql(f"SHOW TABLES FROM {APP_DB} LIKE 's1b'")
        # The replayed transactions keep the old primary's GTIDs exactly.
        assert _gtids(pair, r) == _gtids(pair, p)
        if pair.flavor == "mysql":
            assert str(r.sql("SELECT @@server_uuid")[0][0]) not in _gtids(pair, r)
        assert _read_only(pair, r) == ((1, 1) if pair.flavor == "mysql" else (1,))
        # Again (a daemon killed after the replay): nothing is applied twice.
        again = await run_step(_salvage_step(pair, tool), nodes)
        assert again.ok and again.data["salvaged_transactions"] == "0", again
        assert again.data["salvage_already_present"] == str(transactions), again
        # ... and says where the new primary's copy of the old log ends, as the first run did:
        # rejoin reads errant transactions from there (review: the rerun left it unset, and
        # on MariaDB rejoin then took the salvaged transactions for errant ones).
        for key in ("salvaged_to_file", "salvaged_to_pos"):
            assert again.data[key] == outcome.data[key], (key, again.data, outcome.data)
        assert _rows(r, "s1") == _rows(p, "s1") and _gtids(pair, r) == _gtids(pair, p)
        assert _read_only(pair, r)[-1] == 1
    finally:
        _resume(pair)


async def test_a_replay_that_fails_midway_restores_read_only_and_a_rerun_finishes(
    pair: ServerPair, tool: str, servers: tuple[Server, Server]
) -> None:
    _, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s2 (id INT PRIMARY KEY)")
    pair.wait_replicated(30)
    await replica.set_read_only(True)
    pair.replication("STOP", "IO_THREAD")
    for i in range(1, 5):
        p.sql(f"INSERT INTO {APP_DB}.s2 VALUES ({i})")
    _behind_the_replicas_back(pair, f"INSERT INTO {APP_DB}.s2 VALUES (3)")
    apply = pair.client_argv(r)
    try:
        failed = await _salvage(pair, tool, replica, apply)
        assert not failed.ok and failed.transactions == 2, failed
        assert "applied 2 of 4 transaction(s)" in failed.detail, failed
        assert _read_only(pair, r)[-1] == 1  # put back although the client failed
        _behind_the_replicas_back(pair, f"DELETE FROM {APP_DB}.s2 WHERE id = 3")
        rerun = await _salvage(pair, tool, replica, apply)
        assert rerun.ok and rerun.transactions == 2, rerun
        assert _rows(r, "s2") == [(1,), (2,), (3,), (4,)]
        assert _gtids(pair, r) == _gtids(pair, p) and _read_only(pair, r)[-1] == 1
    finally:
        _resume(pair)


async def test_a_replay_that_fails_midway_leaves_what_it_did_not_apply_in_the_errant_range(
    pair: ServerPair, tool: str, servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """Regression (review C): a replay that failed midway recorded the end of everything it
    selected as where the salvage ended (salvaged_to_file/pos). The errant check at rejoin
    reads from there, so the transactions selected but never applied were behind its range:
    on MariaDB the rejoin went on with rows only the old primary had; on MySQL they were
    "unsaved" and the operator was told to rebuild."""
    primary, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s4 (id INT PRIMARY KEY)")
    pair.wait_replicated(30)
    await replica.set_read_only(True)
    pair.replication("STOP", "IO_THREAD")
    for i in range(1, 5):
        p.sql(f"INSERT INTO {APP_DB}.s4 VALUES ({i})")
    last = parse_gtid_state(_gtids(pair, p))
    _behind_the_replicas_back(pair, f"INSERT INTO {APP_DB}.s4 VALUES (3)")
    try:
        failed = await _salvage(pair, tool, replica, pair.client_argv(r))
        assert not failed.ok and failed.transactions == 2, failed
        # The new primary's copy ends after the second insert; the errant check from there
        # finds the two it lacks, with their rows saved.
        found = await binlog_io.find_errant(
            primary,
            LocalRunner(),
            replica,
            failed.data,
            tmp_path,
            binlog_index=str(p.datadir / "bin.index"),
            binlog_tool=tool,
        )
        if pair.flavor == "mysql":
            uuid = str(p.sql("SELECT @@server_uuid")[0][0])
            seq = max(hi for _, hi in last.intervals[uuid])
            assert found.gtid_set == f"{uuid}:{seq - 1}-{seq}" and not found.unsaved, found
            assert found.errant == (f"{uuid}:{seq - 1}", f"{uuid}:{seq}"), found
        else:
            server, seq = last.last["0"]
            assert found.errant == (f"0-{server}-{seq - 1}", f"0-{server}-{seq}"), found
        # MariaDB logs these as statements, MySQL as rows (printed as ### comments).
        assert re.search(rb"INSERT INTO `?labdb`?\.`?s4`?", _read(found.sql_file))
    finally:
        _behind_the_replicas_back(pair, f"DELETE FROM {APP_DB}.s4 WHERE id = 3")
        _resume(pair)
    assert _rows(r, "s4") == [(1,), (2,), (3,), (4,)]


def _sessions_of_the_client(db: MariaDB) -> list[tuple[object, ...]]:
    """The apply client's sessions (it logs in as root; the tests' own root sessions last one
    statement, so none but the asking one stays)."""
    return db.sql(
        "SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST"
        " WHERE USER = 'root' AND ID <> CONNECTION_ID()"
    )


async def test_a_replay_stuck_on_a_row_lock_is_ended_and_the_promoted_replica_takes_writes(
    pair: ServerPair, tool: str, servers: tuple[Server, Server]
) -> None:
    """Regression (review B, D): the replay waits on a row lock another session holds on the
    replica, and the salvage's bound kills its client; its statement went on running on the
    server. Putting super_read_only back then waited for it (the global read lock) beyond
    monha's 10 s, and the SET stayed queued on the server: after the promotion turned
    read_only off, every application write waited behind it. And the salvage overran its own
    time by that restore, so its step would have timed out without reporting anything.

    Now the replay's session is found (the user-level lock its first statement takes) and
    killed, the restore's own lock wait is bounded on the server, and both fit in the
    salvage's time."""
    _, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s5 (id INT PRIMARY KEY, v INT)")
    p.sql(f"INSERT INTO {APP_DB}.s5 VALUES (1, 0)")
    pair.wait_replicated(30)
    pair.replication("STOP", "IO_THREAD")
    p.sql(f"UPDATE {APP_DB}.s5 SET v = 1 WHERE id = 1")
    # The row lock is taken before the replica is made read-only again (MySQL refuses a
    # locking read under super_read_only); an open transaction does not keep it from that.
    await replica.set_read_only(False)
    holder = pymysql.connect(
        host="127.0.0.1", port=r.port, user=ADMIN_USER, password=ADMIN_PASSWORD
    )
    timeout_s = 12.0
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM {APP_DB}.s5 WHERE id = 1 FOR UPDATE")
        await replica.set_read_only(True, 10.0)
        start = time.monotonic()
        report = await binlog_io.salvage(
            replica,
            LocalRunner(),
            LocalRunner(),
            binlog_index=str(p.datadir / "bin.index"),
            binlog_tool=tool,
            apply_argv=pair.client_argv(r),
            timeout_s=timeout_s,
        )
        took = time.monotonic() - start
        # No replay statement outlived the salvage.
        deadline = time.monotonic() + 1.0
        while left := _sessions_of_the_client(r):
            assert time.monotonic() < deadline, (left, report)
            await asyncio.sleep(0.05)
        assert not report.ok and "timed out" in report.detail, report
        assert took < timeout_s + 1.0, (took, report)  # within its own time, with its data
        assert report.data["salvaged_transactions"] == "0", report
        assert report.data["salvaged_to_pos"] == report.data["salvage_from_pos"], report
        assert _read_only(pair, r) == ((1, 1) if pair.flavor == "mysql" else (1,))
        assert _rows(r, "s5") == [(1, 0)]
        # Promoted: an application writes at once (its row is not the locked one).
        await replica.set_read_only(False, 5.0)
        app = pymysql.connect(
            host="127.0.0.1",
            port=r.port,
            user=APP_USER,
            password=APP_PASSWORD,
            read_timeout=5,
        )
        try:
            with app.cursor() as cur:
                began = time.monotonic()
                cur.execute(f"INSERT INTO {APP_DB}.s5 VALUES (2, 0)")
                assert time.monotonic() - began < 2.0
            app.rollback()  # the pair goes on replicating: nothing of this may stay
        finally:
            app.close()
        assert _read_only(pair, r) == ((0, 0) if pair.flavor == "mysql" else (0,))
    finally:
        holder.rollback()
        holder.close()
        await replica.set_read_only(True, 30.0)
        _resume(pair)
    assert _rows(r, "s5") == [(1, 1)]


async def test_putting_read_only_back_gives_up_on_the_server_too(
    pair: ServerPair, servers: tuple[Server, Server]
) -> None:
    """Regression (review B): when the restore cannot get the global read lock (a write
    statement of a session that could not be ended holds it), monha's bound dropped the
    connection but the SET stayed queued on the server and blocked every write queued
    behind it. The server's own wait (lock_wait_timeout) now ends it first."""
    _, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s7 (id INT PRIMARY KEY, v INT)")
    p.sql(f"INSERT INTO {APP_DB}.s7 VALUES (1, 0)")
    pair.wait_replicated(30)
    await replica.set_read_only(False)  # so that the restore has to take the lock
    holder, writer = (
        pymysql.connect(host="127.0.0.1", port=r.port, user=ADMIN_USER, password=ADMIN_PASSWORD)
        for _ in range(2)
    )
    stuck: asyncio.Future[None] | None = None
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM {APP_DB}.s7 WHERE id = 1 FOR UPDATE")
        with writer.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")  # and rolled back: nothing stays
            cur.execute("BEGIN")

        def write() -> None:
            with writer.cursor() as cur:
                cur.execute(f"UPDATE {APP_DB}.s7 SET v = 2 WHERE id = 1")

        stuck = asyncio.get_running_loop().run_in_executor(None, write)
        deadline = time.monotonic() + 10
        while not r.sql(
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE labdb.s7%'"
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(MySQLError):
            await binlog_io._raise_read_only(replica)
        took = time.monotonic() - start
        assert binlog_io._LOCK_WAIT_S - 0.5 < took < binlog_io._RESTORE_S, took
        queued = r.sql(
            "SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST"
            " WHERE INFO LIKE 'SET GLOBAL%read_only%'"
        )
        assert queued == [], queued
        # And monha's connection is as before: lock_wait_timeout back at the server's default.
        session = await replica._one("read", "SELECT @@SESSION.lock_wait_timeout", 5.0)
        assert int(session) == int(str(r.sql("SELECT @@GLOBAL.lock_wait_timeout")[0][0]))
    finally:
        holder.rollback()
        holder.close()
        if stuck is not None:
            await stuck
        writer.rollback()
        writer.close()
        await replica.set_read_only(True, 30.0)
    assert _rows(r, "s7") == [(1, 0)]


async def test_a_resumed_replay_puts_back_the_strongest_read_only(
    pair: ServerPair, tool: str, servers: tuple[Server, Server]
) -> None:
    """Regression (review D): a daemon killed mid-replay leaves super_read_only off (plain
    read_only on); the salvage run again read that, kept it, and left the replica open to
    admins. (MariaDB before 12 has no stronger form: read_only stays as it is.)"""
    _, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s6 (id INT PRIMARY KEY)")
    pair.wait_replicated(30)
    await replica.set_read_only(True)
    if pair.flavor == "mysql":
        r.sql("SET GLOBAL super_read_only = OFF")  # what the killed replay left
    pair.replication("STOP", "IO_THREAD")
    p.sql(f"INSERT INTO {APP_DB}.s6 VALUES (1)")
    try:
        resumed = await _salvage(pair, tool, replica, pair.client_argv(r))
        assert resumed.ok and resumed.transactions == 1, resumed
        assert _read_only(pair, r) == ((1, 1) if pair.flavor == "mysql" else (1,))
    finally:
        _resume(pair)
    assert _rows(r, "s6") == [(1,)]


async def test_a_cancelled_replay_restores_read_only_and_applications_never_write(
    pair: ServerPair, tool: str, servers: tuple[Server, Server]
) -> None:
    """The client gets the script's first line only and then hangs: on MySQL that line
    lowers super_read_only. While it hangs an application still cannot write (read_only
    stays on); cancelled (the step's timeout, a daemon stopping), read-only is put back."""
    _, replica = servers
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.s3 (id INT PRIMARY KEY)")
    pair.wait_replicated(30)
    await replica.set_read_only(True)
    pair.replication("STOP", "IO_THREAD")
    p.sql(f"INSERT INTO {APP_DB}.s3 VALUES (1)")
    hang = ["/bin/sh", "-c", 'head -n 1 | "$@"; exec sleep 60', "sh", *pair.client_argv(r)]
    task = asyncio.ensure_future(_salvage(pair, tool, replica, hang))
    try:
        if pair.flavor == "mysql":
            deadline = time.monotonic() + 30
            while _read_only(pair, r) != (1, 0):
                assert time.monotonic() < deadline and not task.done(), _read_only(pair, r)
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(1.0)
        app = pymysql.connect(
            host="127.0.0.1", port=r.port, user=APP_USER, password=APP_PASSWORD, autocommit=True
        )
        try:
            with pytest.raises(pymysql.err.MySQLError) as refused, app.cursor() as cur:
                cur.execute(f"INSERT INTO {APP_DB}.s3 VALUES (99)")
            assert refused.value.args[0] == 1290  # read-only
        finally:
            app.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _read_only(pair, r) == ((1, 1) if pair.flavor == "mysql" else (1,))
        assert _rows(r, "s3") == []
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _resume(pair)
    assert _rows(r, "s3") == [(1,)]


# --- errant transactions at rejoin (last: it swaps the roles) -------------------------------


def _config(pair: ServerPair, tool: str, tmp_path: Path, old: MariaDB) -> Config:
    salvage = Salvage.model_validate(
        {
            "binlog_index": str(pair.primary.datadir / "bin.index"),
            "binlog_tool": tool,
            "apply_command": pair.client_argv(old),  # used on the old primary (flashback)
            "timeout_s": 60.0,
        }
    )
    failover = CONFIG.failover.model_copy(update={"flag_file": str(tmp_path / "failover.flag")})
    return CONFIG.model_copy(update={"salvage": salvage, "failover": failover})


async def test_errant_transactions_are_saved_then_undone_or_refused_until_kept(
    pair: ServerPair, tool: str, servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """The old primary took writes after the replica was promoted. MariaDB: they are saved and
    undone with the flashback, then it replicates. MySQL (no flashback): rejoin refuses,
    naming the exact GTID set and the saved file (with the rows); after the step it names
    (apply the file on the new primary), rejoin goes on and both have the same GTIDs."""
    primary, replica = servers
    p, r = pair.primary, pair.replica
    old_name, new_name = CONFIG.node_names  # the config's names for (old, new) primary
    p.sql(f"CREATE TABLE {APP_DB}.e1 (id INT PRIMARY KEY, v VARCHAR(40))")
    p.sql(f"INSERT INTO {APP_DB}.e1 VALUES (1, 'one'), (2, 'two')")
    pair.wait_replicated(30)
    nodes = Nodes(
        runners={old_name: LocalRunner(), new_name: LocalRunner()},
        mysql={old_name: primary, new_name: replica},
        sources={new_name: ReplicationSource("127.0.0.1", r.port, REPL_USER, REPL_PASSWORD)},
    )
    promoted = await run_step(Step(StepKind.PROMOTE, new_name, 30.0), nodes)
    assert promoted.ok, promoted
    facts = dict(promoted.data)
    r.sql(f"INSERT INTO {APP_DB}.e1 VALUES (10, 'on the new primary')")
    # Errant: written on the old primary after the promotion (row events: what a flashback
    # can invert; MySQL's default, MariaDB's sandbox logs MIXED).
    _session(
        p,
        "SET SESSION binlog_format = ROW",
        f"INSERT INTO {APP_DB}.e1 VALUES (100, 'errant'), (101, 'errant too')",
        f"UPDATE {APP_DB}.e1 SET v = 'errant update' WHERE id = 1",
    )
    before = parse_gtid_state(_gtids(pair, p))
    cfg = _config(pair, tool, tmp_path, p)

    undo = await failback.undo_errant(cfg, nodes, new_name, old_name, facts)
    answer = undo.answer
    assert answer["checked"] and answer["count"] == 2, undo
    saved = _read(answer["sql_file"])
    assert b"INSERT INTO `labdb`.`e1`" in saved  # the rows, as the tool prints them (--verbose)
    if pair.flavor == "mysql":
        uuid = str(p.sql("SELECT @@server_uuid")[0][0])
        seq = max(hi for _, hi in before.intervals[uuid])
        errant = f"{uuid}:{seq - 1}-{seq}"
        assert not undo.ok and answer["gtid_set"] == errant and answer["unsaved"] == "", undo
        assert errant in undo.error and answer["sql_file"] in undo.error, undo.error
        assert "apply it on" in undo.error and "rejoin" in undo.error, undo.error
        # With the rows, as pseudo-SQL comments, for the operator's review.
        assert b"### INSERT INTO `labdb`.`e1`" in saved and b"### UPDATE `labdb`.`e1`" in saved
        # The step the refusal names, run as it is written: apply the file on the new primary.
        step = undo.error.split("`")[1]
        assert step == f"{shlex.join(cfg.salvage.apply_command)} < {answer['sql_file']}", step
        # On a node the client reaches its own server; here both share one machine.
        step = step.replace(str(p.socket), str(r.socket))
        res = await LocalRunner().run(["/bin/sh", "-c", step], 60.0)
        assert res.ok, res.summary()
        undo = await failback.undo_errant(cfg, nodes, new_name, old_name, facts)
        assert undo.ok and undo.answer["count"] == 0, undo
    else:
        assert undo.ok and answer["flashback"].startswith("applied"), undo
        assert undo.rejoin_gtid
        facts["rejoin_gtid"] = undo.rejoin_gtid
    rejoined = await run_step(
        Step(StepKind.MAKE_REPLICA, old_name, 30.0, OnFailure.CONTINUE, (("source", new_name),)),
        nodes,
        facts,
    )
    assert rejoined.ok, rejoined
    deadline = time.monotonic() + 30

    def converged() -> bool:
        # MySQL: the same GTIDs on both. (MariaDB's binary log keeps what the flashback undid.)
        same = pair.flavor == "mariadb" or _gtids(pair, p) == _gtids(pair, r)
        return same and _rows(p, "e1") == _rows(r, "e1")

    while not converged():
        assert time.monotonic() < deadline, (_rows(p, "e1"), _rows(r, "e1"))
        await asyncio.sleep(0.1)
    ids = [row[0] for row in _rows(p, "e1")]
    # MySQL kept the errant rows (now on both); MariaDB undid them on the old primary.
    assert ids == ([1, 2, 10, 100, 101] if pair.flavor == "mysql" else [1, 2, 10])
    st = await primary.replica_status()
    assert st.io_running == "Yes" and st.sql_running == "Yes" and not st.last_sql_errno
    pair.replication("STOP", db=p)  # the pair stops the new primary first: no reconnecting
