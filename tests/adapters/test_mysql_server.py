"""Contract tests of monha.mysql against a real primary and replica on loopback, on MariaDB and
on MySQL (the `pair` fixture runs each test on both)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pymysql
import pytest

from monha.dialect import Flavor
from monha.model import OnFailure, ProbeStatus, Step, StepKind
from monha.mysql import MySQLError, MySQLTimeout, Server, probe_alive
from monha.runners import LocalRunner
from monha.steps import Nodes, run_step
from tests.adapters.sandbox import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    APP_DB,
    APP_PASSWORD,
    APP_USER,
    HEARTBEAT_S,
    REPL_PASSWORD,
    REPL_USER,
    ServerPair,
)

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(120)]


def _server(db_port: int, **kw: object) -> Server:
    return Server(host="127.0.0.1", port=db_port, user=ADMIN_USER, password=ADMIN_PASSWORD, **kw)  # type: ignore[arg-type]


async def _eventually(pred, timeout_s: float = 30.0, seen=None) -> None:  # type: ignore[no-untyped-def]
    # 30 s: a full CI run on two cores once took more than 10 s for an IO thread to reconnect.
    deadline = time.monotonic() + timeout_s
    while not await pred():
        if time.monotonic() >= deadline:
            last = await seen() if seen is not None else None
            raise AssertionError(f"condition not reached in {timeout_s} s; last seen: {last}")
        await asyncio.sleep(0.1)


# --- probe_alive ------------------------------------------------------------------------------


async def test_probe_ok(pair: ServerPair) -> None:
    r = await probe_alive("127.0.0.1", pair.primary.port, ADMIN_USER, ADMIN_PASSWORD, 2.0)
    assert r.status is ProbeStatus.OK, r
    assert r.answered and r.latency_s is not None and r.latency_s < 2


async def test_probe_access_denied_is_alive(pair: ServerPair) -> None:
    secret = "wrong-secret-Zq9"
    r = await probe_alive("127.0.0.1", pair.primary.port, ADMIN_USER, secret, 2.0)
    assert r.status is ProbeStatus.ALIVE_ERROR, r
    assert r.error_code == 1045 and r.answered
    assert secret not in r.detail


async def test_probe_nothing_listening_fails(closed_port: int) -> None:
    r = await probe_alive("127.0.0.1", closed_port, "u", "p", 2.0)
    assert r.status is ProbeStatus.FAILED, r
    assert not r.answered and r.error_code == 2003


async def test_probe_silent_listener_times_out(silent_listener: int) -> None:
    start = time.monotonic()
    r = await probe_alive("127.0.0.1", silent_listener, "u", "p", 0.5)
    assert r.status is ProbeStatus.TIMEOUT, r
    assert time.monotonic() - start < 1.5


def _aborted_clients(pair: ServerPair) -> int:
    # pymysql's close() sends COM_QUIT, so reading the counter does not move it.
    rows = pair.primary.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
    return int(str(rows[0][1]))


async def test_probe_says_goodbye_no_aborted_clients(pair: ServerPair) -> None:
    """Regression: every probe closed its socket without COM_QUIT, so the primary counted
    about two Aborted_clients a second (one per probe) and logged each one."""
    before = _aborted_clients(pair)
    for _ in range(20):
        r = await probe_alive("127.0.0.1", pair.primary.port, ADMIN_USER, ADMIN_PASSWORD, 2.0)
        assert r.status is ProbeStatus.OK, r
    server = _server(pair.primary.port)
    assert await server.server_id() == 1
    await server.close()  # a short-lived Server handle says goodbye too
    # The server counts an abort when its connection thread notices the closed socket.
    await asyncio.sleep(0.5)
    assert _aborted_clients(pair) == before


async def test_probe_over_unix_socket(pair: ServerPair) -> None:
    r = await probe_alive("", 0, "root", "", 2.0, unix_socket=str(pair.primary.socket))
    assert r.status is ProbeStatus.OK, r
    assert r.target == str(pair.primary.socket)


# --- Server -----------------------------------------------------------------------------------


async def test_dialect_and_server_id(pair: ServerPair) -> None:
    s = _server(pair.replica.port)
    try:
        d = await s.dialect()
        assert d.flavor is Flavor(pair.flavor)
        assert d.version >= ((10, 0, 0) if pair.flavor == "mariadb" else (8, 0, 0))
        assert await s.server_id() == 2
        assert "password" not in repr(s) and ADMIN_PASSWORD not in repr(s)
    finally:
        await s.close()


async def test_unix_socket_server(pair: ServerPair) -> None:
    s = Server(unix_socket=str(pair.primary.socket), user="root", password="")
    try:
        assert await s.server_id() == 1
        assert s.describe() == str(pair.primary.socket)
    finally:
        await s.close()


async def test_wrong_password_error_hides_it(pair: ServerPair) -> None:
    secret = "nope-Secret-77"
    s = Server(host="127.0.0.1", port=pair.primary.port, user=ADMIN_USER, password=secret)
    with pytest.raises(MySQLError) as err:
        await s.read_only()
    assert err.value.code == 1045
    assert secret not in str(err.value)


async def test_silent_server_times_out(silent_listener: int) -> None:
    s = Server(host="127.0.0.1", port=silent_listener, user="u", password="p", timeout_s=0.4)
    with pytest.raises(MySQLError, match="no answer"):
        await s.read_only()


async def test_replica_status_on_real_servers(pair: ServerPair) -> None:
    r, p = _server(pair.replica.port), _server(pair.primary.port)
    try:
        st = await r.replica_status()
        assert st.configured and st.io_ok and st.sql_running == "Yes"
        assert (st.source_host, st.source_port) == ("127.0.0.1", pair.primary.port)
        assert st.heartbeat_period_s == pytest.approx(HEARTBEAT_S)
        assert st.gtid_io_pos and st.read_position is not None
        assert not (await p.replica_status()).configured
    finally:
        await r.close()
        await p.close()


async def test_read_only(pair: ServerPair) -> None:
    s = _server(pair.primary.port)
    try:
        assert await s.read_only() is False
        await s.set_read_only(True)
        await s.set_read_only(True)  # idempotent
        assert await s.read_only() is True
        # An application user is refused (1290) while read_only is on.
        with pytest.raises(pymysql.err.MySQLError) as err:
            pair.primary.sql(
                f"CREATE TABLE {APP_DB}.ro_probe (id INT)", user=APP_USER, password=APP_PASSWORD
            )
        assert err.value.args[0] == 1290
        await s.set_read_only(False)
        assert await s.read_only() is False
    finally:
        await s.close()


async def test_binlog_coordinates(pair: ServerPair) -> None:
    s = _server(pair.primary.port)
    try:
        c = await s.binlog_coordinates()
        assert c.file.startswith("bin.") and c.position > 4
        assert c.gtid == pair.gtid_executed()
    finally:
        await s.close()


async def test_wait_caught_up_and_what_is_left(pair: ServerPair) -> None:
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE IF NOT EXISTS {APP_DB}.catchup (id INT PRIMARY KEY)")
    pair.wait_replicated()
    s = _server(r.port)
    try:
        ok, detail = await s.wait_caught_up(5.0)
        assert ok, detail
        # The SQL thread stops: what the IO thread reads is left unapplied.
        pair.replication("STOP", "SQL_THREAD")
        for i in range(20):
            p.sql(f"INSERT INTO {APP_DB}.catchup VALUES ({i})")

        async def read_all() -> bool:
            st = await s.replica_status()
            return st.gtid_io_pos == pair.gtid_executed()

        await _eventually(read_all)
        start = time.monotonic()
        ok, detail = await s.wait_caught_up(0.5)
        assert not ok
        assert "SQL thread not running" in detail and "bytes left" in detail, detail
        assert time.monotonic() - start < 1.5
        # Running again, it applies what it had and reports success within the bound.
        pair.replication("START", "SQL_THREAD")
        ok, detail = await s.wait_caught_up(10.0)
        assert ok, detail
        assert r.sql(f"SELECT COUNT(*) FROM {APP_DB}.catchup")[0][0] == 20
    finally:
        await s.close()


async def test_heard_from_primary(pair: ServerPair) -> None:
    s = _server(pair.replica.port)
    try:
        t0 = time.time()
        assert await s.heard_from_primary_s_ago(t0) is None  # one sample: unknown yet
        await asyncio.sleep(HEARTBEAT_S * 2.5)
        t1 = time.time()
        heard = await s.heard_from_primary_s_ago(t1)
        assert heard is not None and heard < 0.1  # a heartbeat arrived between the samples
        # The IO thread stops: nothing more is heard; the silence grows with the caller's clock.
        pair.replication("STOP", "IO_THREAD")
        await asyncio.sleep(HEARTBEAT_S * 2)
        await s.heard_from_primary_s_ago(time.time())
        await asyncio.sleep(HEARTBEAT_S * 2)
        t3 = time.time()
        view = await s.observe_replica(t3)
        assert view.probe.status is ProbeStatus.OK
        assert view.status is not None and view.status.io_running == "No"
        assert view.heard_from_primary_s_ago is not None
        assert view.heard_from_primary_s_ago >= HEARTBEAT_S * 2
    finally:
        pair.replication("START", "IO_THREAD")
        await s.close()


async def test_observe_replica_of_dead_server_reports_failure(closed_port: int) -> None:
    s = Server(host="127.0.0.1", port=closed_port, user="u", password="p", timeout_s=1)
    view = await s.observe_replica(time.time())
    assert view.probe.status is ProbeStatus.FAILED and view.status is None
    assert view.heard_from_primary_s_ago is None


async def test_set_heartbeat(pair: ServerPair) -> None:
    s = _server(pair.replica.port)
    try:
        # Both threads run first: set_heartbeat restarts only the threads that ran, and the
        # previous test's START of the IO thread may not show in the status yet (seen in CI).
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        await s.set_heartbeat(0.75)
        st = await s.replica_status()
        assert st.heartbeat_period_s == pytest.approx(0.75)
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        await s.set_heartbeat(HEARTBEAT_S)
        assert (await s.replica_status()).heartbeat_period_s == pytest.approx(HEARTBEAT_S)
        with pytest.raises(MySQLError, match="not configured"):
            await _server(pair.primary.port).set_heartbeat(1.0)
    finally:
        await s.close()


async def test_stop_replica_never_ends_a_busy_applier(pair: ServerPair) -> None:
    """An applier that waits for a row lock is busy: it is never killed (a statement killed
    midway can leave non-transactional changes behind while the position says they were not
    applied). The stop then reports a timeout, and nothing is lost."""
    p, r = pair.primary, pair.replica
    p.sql(f"CREATE TABLE {APP_DB}.lockwait (id INT PRIMARY KEY, v INT)")
    p.sql(f"INSERT INTO {APP_DB}.lockwait VALUES (1, 1)")
    pair.wait_replicated()
    holder = pymysql.connect(unix_socket=str(r.socket), user="root", password="")
    s = _server(r.port)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM {APP_DB}.lockwait WHERE id = 1 FOR UPDATE")
        p.sql(f"UPDATE {APP_DB}.lockwait SET v = 2 WHERE id = 1")
        await asyncio.sleep(1.0)  # the applier now waits for the row lock
        with pytest.raises(MySQLTimeout, match="stop"):
            await s.stop_replica(3.0)
        assert s.applier_killed == ()
        holder.rollback()
        await _eventually(lambda: _sql_stopped(s), seen=s.replica_status)
        await s.start_replica()
        pair.wait_replicated()
        assert r.sql(f"SELECT v FROM {APP_DB}.lockwait WHERE id = 1")[0][0] == 2
    finally:
        holder.close()
        await s.close()


async def _sql_stopped(s: Server) -> bool:
    return (await s.replica_status()).sql_running != "Yes"


@pytest.mark.timeout(600)
async def test_stop_replica_ends_an_idle_applier_inside_a_transaction(pair: ServerPair) -> None:
    """Regression (issue 13): the source dies while sending a transaction; the replica's relay
    log ends inside it, its applier has read all of it, and MySQL's STOP waits 60 s for the
    rest, which never comes (seen on the lab after a kill -9 of a lagging primary: the salvage
    ran out of time and 335 acknowledged rows were lost). The applier, idle in every thread,
    is now ended at once; what it had committed stays. Here the source is frozen (SIGSTOP)
    while it sends one 400 MB row; a few tries catch it mid-way."""
    if pair.flavor != "mysql":
        return  # MariaDB's STOP does not wait for such a transaction, nor is its applier ended
    p, r = pair.primary, pair.replica
    p.sql("SET GLOBAL max_allowed_packet = 1073741824")
    p.sql(f"CREATE TABLE {APP_DB}.big (id INT PRIMARY KEY, b LONGBLOB)")
    pair.wait_replicated()
    assert p.proc is not None
    s = _server(r.port)
    try:
        for attempt, pause in enumerate((0.05, 0.1, 0.2, 0.4, 0.8)):
            conn = pymysql.connect(unix_socket=str(p.socket), user="root", password="")
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {APP_DB}.big VALUES ({attempt}, REPEAT('x', 400 << 20))")
                conn.commit()
            await asyncio.sleep(pause)
            os.kill(p.proc.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(1.0)
                st = await s.replica_status()
                inside = st.read_position != st.exec_position and st.sql_idle
                if inside:
                    start = time.monotonic()
                    await s.stop_replica(20.0)
                    took = time.monotonic() - start
                    assert took < 5.0, f"stop_replica took {took:.1f} s"
                    after = await s.replica_status()
                    assert after.sql_running != "Yes" and after.exec_position == st.exec_position
                    if s.applier_killed:
                        return  # the case: a STOP that would have waited 60 s, ended at once
                    # Frozen before the transaction's first event (a GTID event alone does
                    # not hold the STOP): not the case, try again.
                    pair.replication("START")
            finally:
                os.kill(p.proc.pid, signal.SIGCONT)
                conn.close()
            pair.wait_replicated(120)
        raise AssertionError("no try froze the source inside the transaction's events")
    finally:
        await s.close()
        pair.replication("START")
        pair.wait_replicated(120)


async def test_replica_status_for_a_monitor_user_without_performance_schema(
    pair: ServerPair,
) -> None:
    """Regression (issue 13, review): with only SUPER and REPLICATION CLIENT (what the docs ask
    of the monitor user), reading MySQL's heartbeat period from performance_schema is denied;
    that failed the whole replica status, and with it catch-up, salvage and promote."""
    pair.primary.sql("CREATE USER IF NOT EXISTS 'mon'@'%' IDENTIFIED BY 'mon-pw'")
    pair.primary.sql("GRANT SUPER, REPLICATION CLIENT ON *.* TO 'mon'@'%'")
    pair.wait_replicated()
    s = Server(host="127.0.0.1", port=pair.replica.port, user="mon", password="mon-pw")
    try:
        st = await s.replica_status()
        assert st.configured and st.io_ok, st
        if pair.flavor == "mysql":
            assert st.heartbeat_period_s is None  # unknown, not an error
        else:
            assert st.heartbeat_period_s == pytest.approx(HEARTBEAT_S)
    finally:
        await s.close()


async def test_replica_without_tls_logs_in_to_a_cold_source(pair: ServerPair) -> None:
    """Regression (issue 13): on MySQL, caching_sha2_password over a replication connection
    without TLS failed with error 2061 after FLUSH PRIVILEGES (or a restart) of the source;
    change_source now asks for the source's public key. MariaDB: the same calls work."""
    p, r = pair.primary, pair.replica
    s = _server(r.port)
    try:
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        await s.change_source(
            "127.0.0.1",
            p.port,
            REPL_USER,
            REPL_PASSWORD,
            heartbeat_period_s=HEARTBEAT_S,
            use_gtid=True,
            ssl=False,
        )
        p.sql("FLUSH PRIVILEGES")  # the source forgets every cached login
        await s.start_replica()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        st = await s.replica_status()
        assert st.last_io_errno == 0, st.last_io_error
        if pair.flavor == "mysql":
            # A source away for long is retried for a day, not 10 times (9.7's default).
            rows = r.sql(
                "SELECT CONNECTION_RETRY_COUNT FROM performance_schema."
                "replication_connection_configuration WHERE CHANNEL_NAME = ''"
            )
            assert rows[0][0] == 86400, rows
        p.sql(f"CREATE TABLE {APP_DB}.after_cold_login (id INT PRIMARY KEY)")
        pair.wait_replicated()
    finally:
        await s.close()


async def _io_yes(s: Server) -> bool:
    return (await s.replica_status()).io_ok


async def test_promote_twice_then_replicate_again(pair: ServerPair) -> None:
    p, r = pair.primary, pair.replica
    s = _server(r.port)
    primary = _server(p.port)
    try:
        assert await s.read_only() is True
        c1 = await s.promote()
        assert not (await s.replica_status()).configured
        assert await s.read_only() is False
        c2 = await s.promote()  # harmless the second time
        assert c2 == c1 and c1.file and c1.gtid
        # Back to a replica, by GTID (its own replica position continues).
        await s.set_read_only(True)
        await s.change_source(
            "127.0.0.1",
            p.port,
            REPL_USER,
            REPL_PASSWORD,
            heartbeat_period_s=HEARTBEAT_S,
            use_gtid=True,
        )
        st = await s.replica_status()
        assert st.configured and st.io_running == "No"  # change_source leaves it stopped
        await s.start_replica()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        p.sql(f"CREATE TABLE {APP_DB}.after_promote (id INT)")
        pair.wait_replicated()
        assert r.sql(f"SHOW TABLES FROM {APP_DB} LIKE 'after_promote'")
        # And by file/position: start exactly at the primary's current end.
        coords = await primary.binlog_coordinates()
        await s.change_source(
            "127.0.0.1",
            p.port,
            REPL_USER,
            REPL_PASSWORD,
            heartbeat_period_s=HEARTBEAT_S,
            coordinates=coords,
        )
        await s.start_replica()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        p.sql(f"CREATE TABLE {APP_DB}.after_position (id INT)")

        async def has_table() -> bool:
            return bool(r.sql(f"SHOW TABLES FROM {APP_DB} LIKE 'after_position'"))

        await _eventually(has_table)
        st = await s.replica_status()
        assert st.read_position is not None and st.read_position.file == coords.file
        # Leave it replicating by GTID, as the fixture made it.
        await s.change_source(
            "127.0.0.1",
            p.port,
            REPL_USER,
            REPL_PASSWORD,
            heartbeat_period_s=HEARTBEAT_S,
            use_gtid=True,
        )
        await s.start_replica()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
    finally:
        await s.close()
        await primary.close()


async def test_interrupted_statement_drops_the_connection(pair: ServerPair) -> None:
    """A timeout mid-operation must not leave a half-read connection to be reused."""
    s = _server(pair.primary.port)
    try:
        await s.server_id()
        with pytest.raises(MySQLError, match="no answer"):
            await s._one("sleep", "SELECT SLEEP(2)", 0.2)
        assert await s.server_id() == 1  # a fresh connection, not the interrupted one
    finally:
        await s.close()


# --- replica care and relay logs (issue 12, defects 7 and 9) ------------------------------------


async def _received_not_applied(s: Server) -> bool:
    st = await s.replica_status()
    return bool(st.gtid_io_pos) and st.gtid_io_pos != st.gtid_slave_pos


async def test_defect9_net_timeout_and_io_restart_on_a_real_replica(pair: ServerPair) -> None:
    s = _server(pair.replica.port)
    try:
        before = (await s.global_variables(["slave_net_timeout"]))["slave_net_timeout"]
        assert await s.set_net_timeout(7) is True
        assert await s.set_net_timeout(7) is False  # already so: nothing done
        await s.restart_io_thread()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        assert (await s.replica_status()).sql_running == "Yes"
        await s.set_net_timeout(int(before))
    finally:
        await s.close()


async def test_defect7_catch_up_applies_what_a_stopped_sql_thread_left(
    pair: ServerPair,
) -> None:
    p, r = pair.primary, pair.replica
    s = _server(r.port)
    try:
        pair.replication("STOP", "SQL_THREAD")
        p.sql(f"CREATE TABLE {APP_DB}.unapplied_1 (id INT)")
        await _eventually(lambda: _received_not_applied(s))
        step = Step(StepKind.CATCH_UP, "r", 10.0, OnFailure.CONTINUE)
        outcome = await run_step(step, Nodes(runners={"r": LocalRunner()}, mysql={"r": s}))
        assert outcome.ok, outcome
        assert outcome.detail.startswith("started the stopped SQL thread"), outcome
        assert r.sql(f"SHOW TABLES FROM {APP_DB} LIKE 'unapplied_1'")
    finally:
        await s.close()


async def test_defect7_promote_says_what_it_had_not_applied_and_keeps_the_relay_logs(
    pair: ServerPair, tmp_path: Path
) -> None:
    p, r = pair.primary, pair.replica
    s = _server(r.port)
    try:
        pair.replication("STOP", "SQL_THREAD")
        p.sql(f"CREATE TABLE {APP_DB}.unapplied_2 (id INT)")
        await _eventually(lambda: _received_not_applied(s))
        keep = tmp_path / "kept"
        step = Step(StepKind.PROMOTE, "r", 10.0, OnFailure.STOP, (("relay_keep_dir", str(keep)),))
        outcome = await run_step(step, Nodes(runners={"r": LocalRunner()}, mysql={"r": s}))
        assert outcome.ok, outcome
        assert "GTID received" in outcome.data["not_applied"], outcome.data
        assert "relay logs kept in" in outcome.data["relay_logs"], outcome.data
        (kept,) = keep.iterdir()
        names = sorted(f.name for f in kept.iterdir())
        assert any(n.endswith(".index") for n in names) and len(names) >= 2, names
        # The kept relay log holds the transaction the reset threw away.
        relay = [f for f in kept.iterdir() if not f.name.endswith(".index")]
        assert any(b"unapplied_2" in f.read_bytes() for f in relay), names
    finally:
        # Back to a replica by GTID: it applies what it had not, from the primary.
        await s.set_read_only(True)
        await s.change_source(
            "127.0.0.1",
            p.port,
            REPL_USER,
            REPL_PASSWORD,
            heartbeat_period_s=HEARTBEAT_S,
            use_gtid=True,
        )
        await s.start_replica()
        await _eventually(lambda: _io_yes(s), seen=s.replica_status)
        pair.wait_replicated()
        await s.close()
    assert r.sql(f"SHOW TABLES FROM {APP_DB} LIKE 'unapplied_2'")
