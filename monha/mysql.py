"""MySQL/MariaDB adapter: the alive probe and a thin wrapper around one server connection.

Job: run the few statements monha needs (probe, replica status, read_only, promote, change
source, wait for the applier) against one server, each bounded by `asyncio.timeout`, and turn
replies into `model` values through `monha.dialect`.

Must not: decide anything (whether to promote is the core's call), retry on its own (a retry is
the next tick or the next plan step), log, or put a password into an exception, a log line or a
statement string (passwords only ever travel as bound parameters or in the login handshake),
or drop a healthy connection without saying goodbye: a connection closed without COM_QUIT
counts in the server's Aborted_clients (and its error log, with log_warnings >= 2), and a
probe every half second would make that counter useless to the DBA. `_quit` sends COM_QUIT,
bounded; only a connection in an unknown state (after a timeout or error) is just closed.

"Heard from the primary": MariaDB 10.11 has no column or status variable that says when the
replica last received something (no Slave_last_heartbeat; 11.6 added Master_last_event_time).
What it has is the default connection's Slave_received_heartbeats counter (SHOW ALL SLAVES
STATUS) and Read_Master_Log_Pos, which advances with every received event. A `Server` keeps the
previous sample and, with the caller's timestamps, `dialect.update_contact` turns two samples
into "heard at". On MySQL the counter is performance_schema.replication_connection_status.
COUNT_RECEIVED_HEARTBEATS. The heartbeat period must be shorter than the sampling interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiomysql
import pymysql

from monha import semisync
from monha.dialect import (
    Contact,
    ContactSample,
    Dialect,
    DialectError,
    detect,
    parse_binlog_status,
    parse_bool_variable,
    parse_replica_status,
    pick_default_row,
    received_heartbeats,
    seconds_since_heard,
    update_contact,
)
from monha.model import BinlogCoordinates, ProbeResult, ProbeStatus, ReplicaStatus, ReplicaView
from monha.semisync import SemiSyncState

# Errors that prove a server answered (MHA's list): too many connections, bad handshake, access
# denied, host blocked/not allowed, user limits, auth protocol. The server is up; we were refused.
ALIVE_ERRORS: frozenset[int] = frozenset(
    {1040, 1042, 1043, 1044, 1045, 1129, 1130, 1203, 1226, 1251, 1275}
)

# How often wait_caught_up re-reads the replica status. Short: a failover waits on it.
_POLL_S = 0.1


class _QuietCursor(aiomysql.DictCursor):  # type: ignore[misc]
    """A DictCursor that does not turn server notes into Python warnings.

    aiomysql answers every statement that has warnings with an extra SHOW WARNINGS round trip
    and `warnings.warn` ("Slave already has been stopped" on an idempotent STOP). Neither is
    wanted: the notes are expected, and the extra round trip eats into the step's timeout.
    """

    async def _show_warnings(self, conn: Any) -> None:
        return None


class MySQLError(Exception):
    """A statement or connection failed. `code` is the server/client error number, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


# How long the applier may take to stop before an idle one is ended (see Server.stop_replica). An
# idle or InnoDB-only applier stops in milliseconds; only one that waits is killed, and that
# wait is then all this costs the failover.
STOP_APPLIER_GRACE_S = 0.5


def _idle_applier_state(state: str) -> bool:
    """The applier thread waits for events and runs no statement: the coordinator or the
    single SQL thread "has read all relay log", a worker waits "for an event from
    Coordinator" (MySQL 8.0.26+ and the older spellings alike)."""
    s = state.lower()
    return "has read all relay log" in s or "waiting for an event from coordinator" in s


class MySQLTimeout(MySQLError):
    """An operation did not finish within its timeout; the connection was dropped."""


def _scrub(text: str, password: str) -> str:
    # Server messages do not echo passwords, but a driver or a future server might: never let
    # one through into an error that gets logged.
    return text.replace(password, "***") if password else text


def _error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return str(exc.args[1])
    return f"{type(exc).__name__}: {exc}"


async def _open(
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    unix_socket: str | None,
    connect_timeout_s: float,
    db: str | None = None,
) -> aiomysql.Connection:
    """Open a connection; on any failure or cancellation the socket is closed at once.

    aiomysql.connect() closes its socket on errors but not when the caller's timeout cancels it
    (CancelledError is not an Exception), which would leak one socket per hung probe; so the
    Connection object is built here and closed in `finally`. `_connect` is aiomysql's own
    entry point behind `connect()`.
    """
    conn = aiomysql.Connection(
        host=host,
        port=port,
        user=user,
        password=password,
        db=db,
        unix_socket=unix_socket,
        connect_timeout=connect_timeout_s,
        autocommit=True,
        charset="utf8mb4",
        program_name="monha",
    )
    ok = False
    try:
        await conn._connect()
        ok = True
        return conn
    finally:
        if not ok:
            conn.close()


# How long a goodbye may take: COM_QUIT is one small write, so this only matters when the
# server stopped reading (then the connection is closed anyway).
_QUIT_S = 0.5


async def _quit(conn: aiomysql.Connection) -> None:
    """Close a connection the polite way (COM_QUIT), falling back to a plain close."""
    try:
        async with asyncio.timeout(_QUIT_S):
            await conn.ensure_closed()
    except Exception:  # a failed goodbye changes nothing: the socket is closed below
        pass
    finally:
        conn.close()  # idempotent; closes the socket if the goodbye did not get through


async def probe_alive(
    host: str,
    port: int,
    user: str,
    password: str,
    timeout_s: float,
    *,
    unix_socket: str | None = None,
    name: str = "mysql",
    target: str | None = None,
) -> ProbeResult:
    """Connect and run SELECT 1. Errors from ALIVE_ERRORS count as ALIVE_ERROR (it answered)."""
    tgt = target or (unix_socket or f"{host}:{port}")
    start = time.monotonic()
    conn: aiomysql.Connection | None = None
    clean = False  # the protocol is between commands: COM_QUIT may be sent
    try:
        async with asyncio.timeout(timeout_s):
            conn = await _open(
                host=host,
                port=port,
                user=user,
                password=password,
                unix_socket=unix_socket,
                connect_timeout_s=timeout_s,
            )
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                row = await cur.fetchone()
            clean = True
        latency = time.monotonic() - start
        if row is None or row[0] != 1:
            return ProbeResult(name, tgt, ProbeStatus.FAILED, latency, f"unexpected reply {row!r}")
        return ProbeResult(name, tgt, ProbeStatus.OK, latency)
    except TimeoutError:
        return ProbeResult(
            name,
            tgt,
            ProbeStatus.TIMEOUT,
            time.monotonic() - start,
            f"no answer in {timeout_s:g} s",
        )
    except Exception as exc:  # a probe reports every failure; it never raises
        latency = time.monotonic() - start
        code = _error_code(exc)
        detail = _scrub(_error_text(exc), password)
        # aiomysql reports its own connect timeout as 2003 with a TimeoutError cause.
        if isinstance(exc.__cause__, TimeoutError):
            return ProbeResult(name, tgt, ProbeStatus.TIMEOUT, latency, detail, code)
        status = ProbeStatus.ALIVE_ERROR if code in ALIVE_ERRORS else ProbeStatus.FAILED
        return ProbeResult(name, tgt, status, latency, detail, code)
    finally:
        if conn is not None:
            # After a timeout or cancellation the server may be mid-reply (or frozen): close
            # at once, and never make a cancelled probe wait for a goodbye.
            if clean:
                await _quit(conn)
            else:
                conn.close()


class Server:
    """One server, reached by TCP (host/port) or a unix socket, over one reused connection.

    Each method takes an optional `timeout_s` (default: the constructor's) that bounds the whole
    method, connecting included. After a timeout or a lost connection the connection is dropped
    and the next call reconnects, because its protocol state is unknown.
    """

    def __init__(
        self,
        *,
        user: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 3306,
        unix_socket: str | None = None,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self._user = user
        self._password = password
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._conn: aiomysql.Connection | None = None
        self._dialect: Dialect | None = None
        self._contact: Contact | None = None
        # The applier threads the last stop_replica had to kill (empty: it stopped by itself).
        self.applier_killed: tuple[int, ...] = ()
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never shows the password
        return f"Server({self.describe()!r}, user={self._user!r})"

    async def close(self) -> None:
        """Say goodbye (COM_QUIT) on the connection if there is one, then forget it.

        Not under the lock: close must not wait behind a statement hung on a frozen server. A
        statement still running is cut off, as a plain close would.
        """
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await _quit(conn)

    def _drop(self) -> None:
        # The protocol state of an interrupted connection is unknown: never reuse it.
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # --- plumbing -------------------------------------------------------------------------

    async def _connection(self) -> aiomysql.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = await _open(
                host=self.host,
                port=self.port,
                user=self._user,
                password=self._password,
                unix_socket=self.unix_socket,
                connect_timeout_s=self._connect_timeout_s,
            )
            async with self._conn.cursor() as cur:
                await cur.execute("SELECT VERSION(), @@version_comment")
                version, comment = await cur.fetchone()
            self._dialect = detect(str(version), str(comment or ""))
        return self._conn

    async def _run(
        self,
        what: str,
        statements: Sequence[tuple[str, Sequence[Any] | None]],
        timeout_s: float | None,
        secrets: Sequence[str] = (),
    ) -> list[list[dict[str, Any]]]:
        """Run statements in order on the shared connection; return each one's rows as dicts.

        `secrets` are passwords bound in `statements` (besides the login one) that must be
        scrubbed from any error text.
        """
        t = self._timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            try:
                async with asyncio.timeout(t):
                    conn = await self._connection()
                    out: list[list[dict[str, Any]]] = []
                    async with conn.cursor(_QuietCursor) as cur:
                        for sql, params in statements:
                            await cur.execute(sql, params)
                            out.append(list(await cur.fetchall()))
                    return out
            except asyncio.CancelledError:
                # An outer timeout (e.g. promote's) interrupted this statement.
                self._drop()
                raise
            except TimeoutError:
                self._drop()
                raise MySQLTimeout(f"{self.describe()}: {what}: no answer in {t:g} s") from None
            except DialectError as exc:
                raise MySQLError(f"{self.describe()}: {what}: {exc}") from None
            except pymysql.err.MySQLError as exc:
                code = _error_code(exc)
                if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError) and (
                    code is None or code >= 2000  # client-side: connection lost or never made
                ):
                    self._drop()
                text = _error_text(exc)
                for secret in (self._password, *secrets):
                    text = _scrub(text, secret)
                raise MySQLError(f"{self.describe()}: {what}: {text}", code) from None
            except Exception as exc:
                # OSError, or the driver tripping over a reply that is not MySQL's protocol.
                self._drop()
                text = _error_text(exc)
                for secret in (self._password, *secrets):
                    text = _scrub(text, secret)
                raise MySQLError(f"{self.describe()}: {what}: {text}") from None

    async def _one(
        self, what: str, sql: str, timeout_s: float | None, params: Sequence[Any] | None = None
    ) -> Any:
        rows = (await self._run(what, [(sql, params)], timeout_s))[0]
        if not rows:
            raise MySQLError(f"{self.describe()}: {what}: empty reply")
        return next(iter(rows[0].values()))

    # --- facts ----------------------------------------------------------------------------

    async def dialect(self, timeout_s: float | None = None) -> Dialect:
        """The server's flavour and version (read once per connection)."""
        if self._dialect is None or self._conn is None:
            await self._run("detect version", [], timeout_s)
        assert self._dialect is not None
        return self._dialect

    async def global_variables(
        self, names: Sequence[str], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Read global variables by name (for `monha-ctl check`); names are identifiers only."""
        for name in names:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"not a variable name: {name!r}")
        sql = "SELECT " + ", ".join(f"@@GLOBAL.{n} AS {n}" for n in names)
        rows = (await self._run("read variables", [(sql, None)], timeout_s))[0]
        return dict(rows[0]) if rows else {}

    async def grants(self, timeout_s: float | None = None) -> list[str]:
        """SHOW GRANTS for the connected user: one statement per line."""
        rows = (await self._run("show grants", [("SHOW GRANTS", None)], timeout_s))[0]
        return [str(next(iter(r.values()))) for r in rows]

    async def server_id(self, timeout_s: float | None = None) -> int:
        return int(await self._one("read server_id", "SELECT @@GLOBAL.server_id", timeout_s))

    async def _status_row(self, timeout_s: float | None) -> Mapping[str, Any] | None:
        d = await self.dialect(timeout_s)
        rows = (await self._run("read replica status", [(d.replica_status_sql, None)], timeout_s))[
            0
        ]
        return pick_default_row(rows)

    async def replica_status(self, timeout_s: float | None = None) -> ReplicaStatus:
        row = await self._status_row(timeout_s)
        try:
            status = parse_replica_status(row)
        except DialectError as exc:
            raise MySQLError(f"{self.describe()}: {exc}") from None
        d = await self.dialect(timeout_s)
        sql = d.heartbeat_period_sql
        if not status.configured or status.heartbeat_period_s is not None or sql is None:
            return status
        # MySQL has no heartbeat column in SHOW REPLICA STATUS: performance_schema has it.
        # Not being able to read it (no SELECT on performance_schema for the monitor user, or
        # performance_schema off) leaves the period unknown; the status itself still counts:
        # catch-up, salvage and promote all read it.
        try:
            rows = (await self._run("read the heartbeat period", [(sql, None)], timeout_s))[0]
        except MySQLTimeout:
            raise
        except MySQLError:
            return status
        value = next(iter(rows[0].values())) if rows else None
        try:
            period = float(value) if value is not None else None
        except (TypeError, ValueError):
            period = None
        return dataclasses.replace(status, heartbeat_period_s=period)

    async def read_only(self, timeout_s: float | None = None) -> bool:
        d = await self.dialect(timeout_s)
        value = await self._one("read read_only", d.read_only_sql, timeout_s)
        try:
            return parse_bool_variable(value, "read_only")
        except DialectError as exc:
            raise MySQLError(f"{self.describe()}: {exc}") from None

    async def set_read_only(self, on: bool, timeout_s: float | None = None) -> None:
        """Turn read-only on (the strongest form the server has) or off. Idempotent.

        On MariaDB < 12 this does not stop users holding READ_ONLY ADMIN (ALL PRIVILEGES
        includes it): see `Dialect.read_only_blocks_admins`.
        """
        d = await self.dialect(timeout_s)
        what = f"set read_only {'on' if on else 'off'}"
        await self._run(what, [(s, None) for s in d.set_read_only_sql(on)], timeout_s)

    async def binlog_coordinates(self, timeout_s: float | None = None) -> BinlogCoordinates:
        """This server's own binary log end: file/position and its GTID position."""
        d = await self.dialect(timeout_s)
        status, gtid = await self._run(
            "read binlog position",
            [(d.binlog_status_sql, None), (d.gtid_executed_sql, None)],
            timeout_s,
        )
        gtid_value = next(iter(gtid[0].values())) if gtid else ""
        try:
            return parse_binlog_status(
                status[0] if status else None, "".join(str(gtid_value or "").split())
            )
        except DialectError as exc:
            raise MySQLError(f"{self.describe()}: {exc}") from None

    async def gtid_state(self, timeout_s: float | None = None) -> list[str]:
        """Every GTID position this server has (MariaDB: binlog and replica positions, which
        `salvage.parse_gtid_state` merges; MySQL: gtid_executed)."""
        d = await self.dialect(timeout_s)
        sql = (
            "SELECT @@GLOBAL.gtid_binlog_pos AS b, @@GLOBAL.gtid_slave_pos AS s"
            if d.is_mariadb
            else "SELECT @@GLOBAL.gtid_executed AS b"
        )
        rows = (await self._run("read GTID positions", [(sql, None)], timeout_s))[0]
        return [str(v or "") for v in rows[0].values()] if rows else []

    async def semi_sync_state(self, timeout_s: float | None = None) -> SemiSyncState:
        """Semi-sync settings and live state (for status and check); see `monha.semisync`."""
        variables, status = await self._run(
            "read semi-sync state",
            [(semisync.VARIABLES_SQL, None), (semisync.STATUS_SQL, None)],
            timeout_s,
        )
        return semisync.parse_semi_sync(variables, status)

    async def stop_replica(self, timeout_s: float | None = None) -> None:
        """Stop both replica threads (idempotent); the replica settings stay.

        The IO thread first, then the applier. MySQL's applier, when it has read all its
        relay log but the transaction it started is not complete (the source died while
        sending it: seen on 9.7.4 after a kill -9 of a lagging primary), makes STOP wait 60 s
        for the rest, which the stopped IO thread can never bring: on the failover's critical
        path that cost the salvage its time and delayed promotion by a minute. Such an
        applier, idle in every thread, is ended after STOP_APPLIER_GRACE_S, which is what the
        server itself does after its 60 s. An applier that is busy (applying, or waiting for a
        lock) is never ended: killing a statement midway can leave non-transactional changes
        behind while the position says they were not applied. MariaDB's applier is not ended.
        """
        d = await self.dialect(timeout_s)
        loop = asyncio.get_running_loop()
        t = self._timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + t

        def left() -> float:
            return max(0.1, deadline - loop.time())

        self.applier_killed = ()
        await self._run("stop the IO thread", [(f"{d.stop_replica_sql} IO_THREAD", None)], left())
        sql = f"{d.stop_replica_sql} SQL_THREAD"
        if d.applier_threads_sql is None:
            await self._run("stop the SQL thread", [(sql, None)], left())
            return
        try:
            grace = min(STOP_APPLIER_GRACE_S, left())
            await self._run("stop the SQL thread", [(sql, None)], grace)
            return
        except MySQLTimeout:
            pass  # the STOP goes on waiting on the server: ending the applier ends it too
        said = "busy, not ended"
        while loop.time() < deadline:
            if not self.applier_killed:
                killed, said = await self._end_idle_applier(d.applier_threads_sql, left)
                self.applier_killed = tuple(killed)
            status = await self.replica_status(left())
            if status.sql_running != "Yes":
                return
            await asyncio.sleep(0.1)
        raise MySQLTimeout(
            f"{self.describe()}: stop the SQL thread: still running {t:g} s after STOP "
            f"(the applier: {said})"
        )

    async def _end_idle_applier(self, sql: str, left: Callable[[], float]) -> tuple[list[int], str]:
        """KILL the default channel's applier threads if every one of them only waits for
        events; ([], why not) otherwise."""
        try:
            rows = (await self._run("find the applier threads", [(sql, None)], left()))[0]
        except MySQLTimeout:
            raise
        except MySQLError as exc:
            return [], f"not ended: cannot read its threads ({exc})"
        threads = [tuple(r.values()) for r in rows]
        states = [str(s or "") for _, s in threads]
        if not threads or not all(_idle_applier_state(s) for s in states):
            return [], f"busy, not ended ({'; '.join(states) or 'no thread found'})"
        ids = [int(i) for i, _ in threads if i is not None]
        for thread_id in ids:
            try:
                await self._run("end the applier", [(f"KILL {thread_id}", None)], left())
            except MySQLTimeout:
                raise
            except MySQLError as exc:
                if exc.code != 1094:  # unknown thread id: it ended meanwhile
                    raise
        return ids, f"ended while idle ({'; '.join(states)})"

    # --- catching up ----------------------------------------------------------------------

    async def wait_caught_up(
        self, timeout_s: float, target: BinlogCoordinates | None = None
    ) -> tuple[bool, str]:
        """Wait, at most `timeout_s`, until the SQL thread applied everything the IO thread read.

        The target is the read position seen at the start: when the primary is gone it no
        longer moves, and when it is alive there is always more to read. A planned switchover
        passes `target`, the old primary's final position once it became read-only: the IO
        thread may not have received its last events yet, so the start's read position could
        fall short of them. Returns (caught_up, detail); on a miss the detail says how much was
        left. Never raises on a timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        def remaining() -> float:
            return max(0.001, deadline - loop.time())

        try:
            first = await self.replica_status(remaining())
        except MySQLTimeout:
            return False, f"no replica status within {timeout_s:g} s"
        if not first.configured:
            return True, "replication is not configured: nothing to apply"
        if target is None:
            target = first.read_position
        assert target is not None
        status = prev = first
        idle_polls = 0
        while True:
            if _applied_up_to(status, target):
                return True, f"applied up to {_pos(status.exec_position)}"
            # With the primary gone, the last transaction may have been cut off mid-way: the
            # read position then lies past anything the SQL thread can ever apply. Once the
            # IO thread is down and the SQL thread has consumed the whole relay log without
            # moving for two polls, every complete transaction is applied: waiting longer
            # would only delay the failover to its bound.
            idle_polls = idle_polls + 1 if _settled(status, prev) else 0
            if idle_polls >= 2:
                return True, (
                    f"applied every complete transaction received, up to "
                    f"{_pos(status.exec_position)}; the rest ({_left(status, target)}) is an "
                    "incomplete last transaction, cut off with the primary"
                )
            if status.sql_running != "Yes":
                return False, (
                    f"SQL thread not running (errno {status.last_sql_errno}: "
                    f"{status.last_sql_error or 'no error'}); {_left(status, target)}"
                )
            if loop.time() + _POLL_S >= deadline:
                return False, f"not caught up after {timeout_s:g} s; {_left(status, target)}"
            await asyncio.sleep(_POLL_S)
            prev = status
            try:
                status = await self.replica_status(remaining())
            except MySQLTimeout:
                return False, f"not caught up after {timeout_s:g} s; {_left(status, target)}"
            if not status.configured:
                return False, "replication was removed while waiting"

    # --- changing roles -------------------------------------------------------------------

    async def stop_and_reset_replica(self, timeout_s: float | None = None) -> None:
        """Stop replication (as `stop_replica`) and forget the source entirely. Harmless when
        not a replica."""
        d = await self.dialect(timeout_s)
        await self.stop_replica(timeout_s)
        await self._run("reset replica", [(d.reset_replica_all_sql, None)], timeout_s)

    async def promote(self, timeout_s: float | None = None) -> BinlogCoordinates:
        """Stop and reset replication, turn read_only off, return this server's coordinates.

        Idempotent: on a server that is already a primary it only re-asserts read_only off.
        """
        t = self._timeout_s if timeout_s is None else timeout_s
        async with asyncio.timeout(t):
            await self.stop_and_reset_replica(t)
            await self.set_read_only(False)
            return await self.binlog_coordinates()

    async def change_source(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        heartbeat_period_s: float,
        coordinates: BinlogCoordinates | None = None,
        gtid: str | None = None,
        use_gtid: bool = False,
        ssl: bool | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Point this server at a (new) source; replication is left stopped (see start_replica).

        Start from `coordinates` (file/position), or by GTID: `use_gtid=True` continues from the
        server's own replica position; on MariaDB `gtid` first sets gtid_slave_pos to it.
        """
        d = await self.dialect(timeout_s)
        if gtid is not None:
            if not d.is_mariadb:
                raise ValueError("setting a start GTID is only supported on MariaDB")
            use_gtid = True
        statements: list[tuple[str, Sequence[Any] | None]] = [(d.stop_replica_sql, None)]
        if use_gtid and d.gtid_enabled_sql is not None:
            on = await self._one("read gtid_mode", d.gtid_enabled_sql, timeout_s)
            if not on:
                raise MySQLError(f"{self.describe()}: change source by GTID: gtid_mode is not ON")
        if gtid is not None:
            statements.append(("SET GLOBAL gtid_slave_pos = %s", (gtid,)))
        sql, params = d.change_source_sql(
            host=host,
            port=port,
            user=user,
            password=password,
            heartbeat_period_s=heartbeat_period_s,
            coordinates=coordinates,
            use_gtid=use_gtid,
            ssl=ssl,
        )
        statements.append((sql, params))
        await self._run(
            f"change source to {host}:{port}", statements, timeout_s, secrets=(password,)
        )
        self._contact = None  # counters restart with the new source

    async def start_replica(self, timeout_s: float | None = None) -> None:
        d = await self.dialect(timeout_s)
        await self._run("start replica", [(d.start_replica_sql, None)], timeout_s)

    async def set_heartbeat(self, period_s: float, timeout_s: float | None = None) -> None:
        """Set the replication heartbeat period. Replication is briefly stopped if running."""
        d = await self.dialect(timeout_s)
        status = await self.replica_status(timeout_s)
        if not status.configured:
            raise MySQLError(f"{self.describe()}: set heartbeat: replication is not configured")
        if (
            status.heartbeat_period_s is not None
            and abs(status.heartbeat_period_s - period_s) < 0.0005
        ):
            return
        io = status.io_running in ("Yes", "Connecting") or status.last_io_errno != 0
        sql = status.sql_running == "Yes"
        statements: list[tuple[str, Sequence[Any] | None]] = [
            (d.stop_replica_sql, None),
            (d.set_heartbeat_sql(period_s), None),
        ]
        # Only the threads that ran (or failed) start again: a SQL thread the operator
        # stopped stays stopped, and says so to the stale-replica guard.
        if io and sql:
            statements.append((d.start_replica_sql, None))
        elif io or sql:
            statements.append((f"{d.start_replica_sql} {'IO' if io else 'SQL'}_THREAD", None))
        await self._run("set heartbeat", statements, timeout_s)

    async def start_sql_thread(self, timeout_s: float | None = None) -> None:
        d = await self.dialect(timeout_s)
        await self._run(
            "start the SQL thread", [(f"{d.start_replica_sql} SQL_THREAD", None)], timeout_s
        )

    async def restart_io_thread(self, timeout_s: float | None = None) -> None:
        """Stop and start the IO thread alone: it reconnects now, not after its retry wait."""
        d = await self.dialect(timeout_s)
        statements: list[tuple[str, Sequence[Any] | None]] = [
            (f"{d.stop_replica_sql} IO_THREAD", None),
            (f"{d.start_replica_sql} IO_THREAD", None),
        ]
        await self._run("restart the IO thread", statements, timeout_s)

    async def set_net_timeout(self, seconds: int, timeout_s: float | None = None) -> bool:
        """Set the replica's net timeout (slave_net_timeout / replica_net_timeout) if it
        differs; True when it was changed. It applies from the IO thread's next connect."""
        d = await self.dialect(timeout_s)
        name = d.net_timeout_variable
        current = (await self.global_variables([name], timeout_s)).get(name)
        if current is not None and int(current) == int(seconds):
            return False
        sql = f"SET GLOBAL {name} = {int(seconds)}"
        await self._run("set the net timeout", [(sql, None)], timeout_s)
        return True

    # --- the replica's view of its primary ------------------------------------------------

    async def _heartbeats(
        self, d: Dialect, row: Mapping[str, Any] | None, timeout_s: float | None
    ) -> int | None:
        if d.is_mariadb:
            return received_heartbeats(row)
        try:
            value = await self._one(
                "read heartbeat counter",
                "SELECT COUNT_RECEIVED_HEARTBEATS"
                " FROM performance_schema.replication_connection_status WHERE CHANNEL_NAME = ''",
                timeout_s,
            )
        except MySQLError:
            return None  # performance_schema off: read positions alone still show events
        return int(value) if value is not None else None

    async def observe_replica(self, now: float, timeout_s: float | None = None) -> ReplicaView:
        """The replica's own view of its primary, for one tick; never raises.

        `now` is the tick's clock reading: "heard from the primary" is measured on it.
        """
        start = time.monotonic()
        target = self.describe()
        try:
            t = self._timeout_s if timeout_s is None else timeout_s
            async with asyncio.timeout(t):
                d = await self.dialect()
                row = await self._status_row(None)
                status = parse_replica_status(row)
                beats = await self._heartbeats(d, row, None) if status.configured else None
        except TimeoutError:
            self._drop()
            probe = ProbeResult("replica", target, ProbeStatus.TIMEOUT, time.monotonic() - start)
            return ReplicaView(probe)
        except (MySQLError, DialectError) as exc:
            code = exc.code if isinstance(exc, MySQLError) else None
            status_ = ProbeStatus.TIMEOUT if isinstance(exc, MySQLTimeout) else ProbeStatus.FAILED
            probe = ProbeResult(
                "replica", target, status_, time.monotonic() - start, str(exc), code
            )
            return ReplicaView(probe)
        probe = ProbeResult("replica", target, ProbeStatus.OK, time.monotonic() - start)
        if not status.configured:
            self._contact = None
            return ReplicaView(probe, status, None)
        rp = status.read_position
        sample = ContactSample(
            now, beats, rp.file if rp else "", rp.position if rp else 0, status.io_running
        )
        self._contact = update_contact(self._contact, sample)
        return ReplicaView(probe, status, seconds_since_heard(self._contact, now))

    async def heard_from_primary_s_ago(
        self, now: float, timeout_s: float | None = None
    ) -> float | None:
        """Seconds since the replica last received an event or heartbeat; None while unknown.

        Needs two calls (two samples) before it knows anything; see `dialect.update_contact`.
        """
        return (await self.observe_replica(now, timeout_s)).heard_from_primary_s_ago


def _settled(status: ReplicaStatus, prev: ReplicaStatus) -> bool:
    """No more to apply, ever: the IO thread is not receiving, the SQL thread is idle and did
    not move since the previous poll."""
    return (
        status.io_running != "Yes"
        and status.sql_running == "Yes"
        and status.sql_idle
        and status.exec_position == prev.exec_position
    )


def _binlog_key(file: str) -> tuple[str, int]:
    # Binary log names are BASENAME.NNNNNN; order by the number, not the string.
    base, _, num = file.rpartition(".")
    return (base, int(num)) if num.isdigit() else (file, -1)


def _applied_up_to(status: ReplicaStatus, target: BinlogCoordinates) -> bool:
    e = status.exec_position
    if e is None:
        return False
    return (_binlog_key(e.file), e.position) >= (_binlog_key(target.file), target.position)


def _pos(c: BinlogCoordinates | None) -> str:
    return "unknown" if c is None else f"{c.file}:{c.position}"


def _left(status: ReplicaStatus, target: BinlogCoordinates) -> str:
    e = status.exec_position
    parts = [f"applied {_pos(e)} of {_pos(target)} read"]
    if e is not None and e.file == target.file:
        parts.append(f"{target.position - e.position} bytes left")
    if status.gtid_io_pos or status.gtid_slave_pos:
        parts.append(
            f"GTID read {status.gtid_io_pos or '-'} applied {status.gtid_slave_pos or '-'}"
        )
    return ", ".join(parts)
