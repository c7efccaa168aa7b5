"""Binlog salvage and errant transactions, the I/O: run the binlog tool on the old primary over
SSH, apply its output here, and save what only the old primary has.

Job: `salvage` (the plan's SALVAGE_BINLOG step) and `find_errant` (for `monha-ctl rejoin`,
issue 5). Both read the old primary's binary logs by path from the configured index (its
mysqld may be dead), run the server's own binlog tool there as an argv (each argument quoted
by the SSH runner; no remote pipes or shells), bring the output back in memory, and let
`monha.salvage` decide what to do with it.

The output is bounded while it is read, not afterwards: the runner stops the tool once it has
printed more than `max_output_mib` (`CommandResult.truncated`), so a replica days behind costs
that much memory and a clean "not salvaged", not gigabytes and an OOM-killed daemon.

The replica is read-only until it is promoted. Where that also stops the replaying admin (MySQL's
super_read_only, MariaDB 12's NO_LOCK_NO_ADMIN, which monha sets), it is lowered to plain
read_only for the replay only, so applications still cannot write, and the strongest form is
raised again by the script's last statement and, whatever happened (a failed client, a cancelled
step, a rerun after a daemon killed mid-replay), by `_after_replay`. That also ends the replay's
server session should it outlive the client (found by the user-level lock the script takes
first): no replay statement survives the salvage to hold locks behind the promotion.

Must not: apply anything `monha.salvage` did not select (it never replays a partial
transaction or anything the new primary already has), build a shell string, log (the
executor logs the step's outcome), or raise from `salvage`: every problem (a lost SSH
connection, a failed tool, an unexpected error) becomes a `SalvageReport` with ok=False and the
reason, because the failover goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from monha.mysql import MySQLError, Server
from monha.runners import CommandResult, Runner, RunnerError
from monha.salvage import (
    Dump,
    GtidState,
    SalvageError,
    applied_to,
    check_start,
    errant_of,
    files_from,
    gate_variables,
    parse_dump,
    parse_gtid_state,
    parse_index,
    replay_script,
    restart_point,
    script_for,
    select,
    subtract,
    tool_argv,
    truncated_tail,
    write_gate,
)


@dataclass(frozen=True, slots=True)
class SalvageReport:
    ok: bool
    detail: str
    transactions: int = 0
    data: dict[str, str] = field(default_factory=dict)


class _Clock:
    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s

    def left(self) -> float:
        return max(0.1, self.deadline - time.monotonic())


async def _read_index(old: Runner, index: str, clock: _Clock, max_bytes: int) -> list[str]:
    res = await old.run(["cat", index], clock.left(), max_output_bytes=max_bytes)
    if res.truncated:
        raise SalvageError(f"the binlog index {index} is larger than {_mib(max_bytes)} MiB")
    if not res.ok:
        raise SalvageError(f"cannot read the binlog index {index}: {res.summary()}")
    files = parse_index(res.stdout.decode("utf-8", "replace"), index)
    if not files:
        raise SalvageError(f"the binlog index {index} lists no files")
    return files


async def _run_tool(
    old: Runner,
    flavor: str,
    tool: str,
    start: int,
    files: list[str],
    clock: _Clock,
    max_bytes: int,
    **flags: bool,
) -> tuple[Dump, CommandResult]:
    argv = tool_argv(flavor, tool, start, files, **flags)
    res = await old.run(argv, clock.left(), max_output_bytes=max_bytes)
    if res.timed_out:
        raise SalvageError(f"the binlog tool did not finish in time: {res.summary()}")
    if res.truncated:
        raise SalvageError(
            f"the binlog tool's output exceeded max_output_mib ({_mib(max_bytes)} MiB); "
            "it was stopped there and nothing was applied"
        )
    dump = parse_dump(res.stdout)
    if not res.ok and not (truncated_tail(res.stderr) and res.stdout):
        check_start(dump, start, res.stderr)  # the likelier reason, said precisely
        raise SalvageError(f"the binlog tool failed: {res.summary()}")
    check_start(dump, start, res.stderr)
    return dump, res


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _mib(n: int) -> int:
    return n // 2**20


async def salvage(
    new: Server,
    local: Runner,
    old: Runner,
    *,
    binlog_index: str,
    binlog_tool: str,
    apply_argv: list[str] | tuple[str, ...],
    timeout_s: float,
    max_output_mib: int = 256,
) -> SalvageReport:
    """Apply to `new` (this node, still a replica) what the old primary's binary log holds
    beyond what `new` applied. Never raises (cancellation aside); see `_salvage`."""
    try:
        return await _salvage(
            new,
            local,
            old,
            binlog_index=binlog_index,
            binlog_tool=binlog_tool,
            apply_argv=apply_argv,
            timeout_s=timeout_s,
            max_output_mib=max_output_mib,
        )
    except Exception as exc:
        # The expected problems are reported inside with what was learnt so far; this is the
        # net for the rest (a bug, a driver error nobody foresaw): still a failed salvage, so
        # the failover goes on.
        text = f"unexpected {type(exc).__name__}: {exc}"
        return SalvageReport(False, f"not salvaged: {text}", 0, {"salvage_error": text})


async def _salvage(
    new: Server,
    local: Runner,
    old: Runner,
    *,
    binlog_index: str,
    binlog_tool: str,
    apply_argv: list[str] | tuple[str, ...],
    timeout_s: float,
    max_output_mib: int,
) -> SalvageReport:
    """The salvage itself; every problem it expects becomes a SalvageReport with ok=False.

    Replication is stopped first, so the applier's position is final; salvaging from the
    position the SQL thread APPLIED (not the one the IO thread read) also recovers what sat
    unapplied in the relay log, which promotion discards. Every transaction carries its GTID
    and those `new` already has are left out, so a repeated run (a daemon killed mid-salvage)
    applies nothing twice.
    """
    clock = _Clock(timeout_s)
    data: dict[str, str] = {}
    try:
        await new.stop_replica(clock.left())
        status = await new.replica_status(clock.left())
        if not status.configured or status.exec_position is None:
            return SalvageReport(True, "not a replica (already promoted?): nothing to salvage")
        start = status.exec_position
        data["salvage_from_file"], data["salvage_from_pos"] = start.file, str(start.position)
        if status.read_position is not None and status.read_position != start:
            data["salvage_relay_unapplied_to"] = (
                f"{status.read_position.file}:{status.read_position.position}"
            )
        flavor = "mariadb" if (await new.dialect(clock.left())).is_mariadb else "mysql"
        target = parse_gtid_state(*await new.gtid_state(clock.left()))
        max_bytes = max_output_mib * 2**20
        files = files_from(await _read_index(old, binlog_index, clock, max_bytes), start.file)
        dump, res = await _run_tool(
            old, flavor, binlog_tool, start.position, files, clock, max_bytes
        )
        again = restart_point(dump, target)
        if again is not None:  # a repeated salvage: start at the first transaction new lacks
            files = files[again[0] :]
            dump, res = await _run_tool(old, flavor, binlog_tool, again[1], files, clock, max_bytes)
        sel = select(dump, target)
    except (SalvageError, MySQLError, RunnerError, OSError) as exc:
        data["salvage_error"] = str(exc)
        return SalvageReport(False, f"not salvaged: {exc}", 0, data)
    data.update(
        salvage_incomplete_dropped=str(sel.incomplete),
        salvage_already_present=str(sel.already_present),
        old_binlog_end_file=_name(files[sel.end_file_index]),
        old_binlog_end_pos=str(sel.end_pos),
    )
    notes = []
    if res.stderr.strip() and sel.end_file_index < len(files) - 1:
        # The tool stopped before the last file: a damaged log in the middle. What came
        # before is complete and contiguous, so it is still applied; the rest is reported.
        notes.append(
            f"the binlog tool stopped in {_name(files[sel.end_file_index])} before "
            f"{_name(files[-1])}: later events were not read"
        )
        data["salvage_error"] = notes[-1]
    if not sel.transactions:
        data.update(salvaged_transactions="0", salvaged_events="0")
        if sel.already_present:
            # Everything read is on the new primary already (a rerun after a daemon killed
            # between the replay's commit and the step's record): its copy of the old
            # primary's log ends where the range ends, which is where rejoin must look from;
            # without this it looked from the applier's position and took the salvaged
            # transactions for errant ones (MariaDB has no GTID set to tell).
            data.update(
                salvaged_to_file=_name(files[sel.end_file_index]),
                salvaged_to_pos=str(sel.end_pos),
                salvaged_to_gtid=target.render(),
            )
        return SalvageReport(not notes, "; ".join([sel.summary(), *notes]), 0, data)
    try:
        dialect = await new.dialect(clock.left())
        variables = await new.global_variables(gate_variables(flavor), clock.left())
        gate = write_gate(flavor, variables, dialect.read_only_blocks_admins)
    except MySQLError as exc:
        data["salvage_error"] = f"cannot read read_only: {exc}"
        return SalvageReport(False, f"not salvaged: {data['salvage_error']}", 0, data)
    # The client's server session holds this user-level lock from its first statement on:
    # found by it, the session is ended should it outlive the client (see `_after_replay`).
    lock = f"monha_salvage_{secrets.token_hex(8)}"
    script = replay_script(sel.script, gate, lock)
    try:
        # What ending the replay's session, putting read-only back and re-reading the GTIDs
        # may take comes out of the salvage's own time, so that a replay that runs into the
        # bound still leaves time to report what it did.
        reserve = min(_AFTER_REPLAY_S, timeout_s / 2)
        applied = await local.run(list(apply_argv), max(0.1, clock.left() - reserve), input=script)
        apply_error = "" if applied.ok else applied.summary()
    except RunnerError as exc:
        # The client could not run (or its connection broke midway): what reached the server
        # is counted from its GTIDs below, like a client that failed.
        apply_error = str(exc)
    finally:
        # Also after a failure or a cancellation: no replay statement may outlive the
        # salvage, and the replica must not stay open to admins.
        for note in await _after_replay(new, lock, gate is not None):
            notes.append(note)
            if note.startswith(_NOT_RAISED):
                data["salvage_read_only"] = note
    try:
        after = parse_gtid_state(*await new.gtid_state(max(clock.left(), _REREAD_S)))
    except MySQLError as exc:
        after = GtidState()
        notes.append(f"could not re-read GTIDs after applying: {exc}")
    # Count from the server's own state: a client that failed midway applied a prefix (each
    # transaction is atomic), and only the server knows how long it was.
    done = sum(1 for tx in dump.transactions() if tx.gtid and tx.complete and after.has(tx.gtid))
    done -= sel.already_present
    data.update(
        salvaged_transactions=str(max(done, 0)),
        salvaged_events=str(0 if apply_error else sel.events),
        salvaged_first_gtid=sel.first_gtid,
        salvaged_last_gtid=sel.last_gtid,
        salvaged_to_file=_name(files[sel.end_file_index]),
        salvaged_to_pos=str(sel.end_pos),
        salvaged_to_gtid=sel.target_after,
    )
    if apply_error:
        data["salvage_error"] = f"applying failed: {apply_error}"
        data["salvaged_to_gtid"] = after.render()
        # Where the new primary's copy of the old primary's binary log ends: after the last
        # transaction that landed (the errant check at rejoin reads from here, so what was
        # selected but not applied is in its range), not after the whole selection.
        reached = applied_to(dump, target, after)
        if reached is not None:
            data["salvaged_to_file"] = _name(files[reached[0]])
            data["salvaged_to_pos"] = str(reached[1])
        head = f"applied {done} of {sel.transactions} transaction(s), then: {apply_error}"
        return SalvageReport(False, "; ".join([head, *notes]), max(done, 0), data)
    return SalvageReport(
        not notes, "salvaged " + "; ".join([sel.summary(), *notes]), sel.transactions, data
    )


# After a replay: ending its session if it outlived the client (KILL, then until it is gone),
# putting read-only back (the server gives up waiting for its lock after _LOCK_WAIT_S, well
# before the client-side bound), and re-reading the GTIDs. Their sum is kept out of the time
# the client gets.
_KILL_S = 3.0
_LOCK_WAIT_S = 3
_RESTORE_S = 5.0
_REREAD_S = 2.0
_AFTER_REPLAY_S = _KILL_S + _RESTORE_S + _REREAD_S
_NOT_RAISED = "read-only was lowered for the replay and not raised again"
# Clean-ups still running after their caller was cancelled (a task needs a strong reference).
_restoring: set[asyncio.Task[list[str]]] = set()


async def _after_replay(new: Server, lock: str, restore: bool) -> list[str]:
    """End what is left of the replay's server session, then (`restore`) put the replica's
    strongest read-only back; what could not be done, as notes ([] when all is done).

    The session first: a replay statement still running on the server after its client was
    killed (the salvage's bound, a cancellation; say, waiting on a row lock) would otherwise
    go on holding its locks, and `SET GLOBAL super_read_only = ON` waits for it; a SET that
    outlived monha's bound would stay queued on the server and, once the promotion turned
    read_only off, block every application write until the orphan ended.

    Shielded: a cancelled salvage (the step's timeout, a daemon stopping) still waits for
    it, and a second cancellation leaves it running rather than half done.
    """
    task = asyncio.ensure_future(_end_and_restore(new, lock, restore))
    _restoring.add(task)
    task.add_done_callback(_restoring.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


async def _end_and_restore(new: Server, lock: str, restore: bool) -> list[str]:
    notes = []
    try:
        if left := await _end_session(new, lock):
            notes.append(left)
    except MySQLError as exc:  # the restore below is bounded on the server all the same
        notes.append(f"could not look for the replay's server session: {exc}")
    if restore:
        try:
            await _raise_read_only(new)
        except MySQLError as exc:
            notes.append(
                f"{_NOT_RAISED} ({exc}): plain read_only still refuses ordinary users, but "
                "admins can write until it is set"
            )
    return notes


# Ending a session nobody needs any more: "Unknown thread id" (it ended by itself meanwhile).
_UNKNOWN_THREAD = 1094


async def _end_session(new: Server, lock: str) -> str:
    """KILL the session holding the user-level lock `lock` and wait until it is gone; "" when
    none is left, else what is. (Server has no method for this: its statement runner is
    used, as by its own methods.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _KILL_S
    killed: set[int] = set()
    while True:
        rows = (
            await new._run(
                "find the replay's session",
                [("SELECT IS_USED_LOCK(%s) AS id", (lock,))],
                max(0.5, deadline - loop.time()),
            )
        )[0]
        holder = rows[0]["id"] if rows else None
        if holder is None:
            return ""
        if int(holder) not in killed:
            try:
                await new._run(
                    "end the replay's session",
                    [(f"KILL CONNECTION {int(holder)}", None)],
                    max(0.5, deadline - loop.time()),
                )
            except MySQLError as exc:
                if exc.code != _UNKNOWN_THREAD:
                    return f"the replay's server session {holder} could not be ended: {exc}"
            killed.add(int(holder))
        if loop.time() >= deadline:
            return (
                f"the replay's server session {holder} was killed but is still there after "
                f"{_KILL_S:g} s (rolling back?)"
            )
        await asyncio.sleep(0.05)


async def _raise_read_only(new: Server) -> None:
    """The strongest read-only, with the server's own wait for the global read lock bounded
    (lock_wait_timeout) well below monha's, so that a SET that cannot get the lock ends on
    the server too instead of staying queued there behind whatever holds it."""
    dialect = await new.dialect(_RESTORE_S)
    statements: list[tuple[str, None]] = [
        (f"SET SESSION lock_wait_timeout = {_LOCK_WAIT_S}", None),
        *((sql, None) for sql in dialect.set_read_only_sql(True)),
    ]
    try:
        await new._run("put read-only back", statements, _RESTORE_S)
    finally:
        with contextlib.suppress(MySQLError):  # the shared connection keeps its default
            await new._run(
                "reset lock_wait_timeout",
                [("SET SESSION lock_wait_timeout = DEFAULT", None)],
                _RESTORE_S,
            )


# --- errant transactions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrantReport:
    """What only the old primary has, and where it was saved.

    `rejoin_gtid`: the old primary's position that the new primary also has; on MariaDB the
    old primary replicates from the new one with gtid_slave_pos set to it (after the errant
    transactions were undone with `flashback_file`, or accepted as lost). `sql_file`: the
    errant transactions as a replayable script (with the rows as comments), for an operator
    who decides to re-apply them on the new primary. Empty lists/paths when there are none.
    """

    errant: tuple[str, ...]
    events: int
    from_file: str
    from_pos: int
    old_end_file: str
    old_end_pos: int
    rejoin_gtid: str
    sql_file: str = ""
    flashback_file: str = ""
    incomplete_dropped: int = 0
    # MySQL: the errant GTID set (the old primary's gtid_executed minus the new one's), and
    # the part of it that is not in the range read (purged, or older): not in `sql_file`.
    gtid_set: str = ""
    unsaved: str = ""

    @property
    def count(self) -> int:
        return len(self.errant)


class ErrantError(RuntimeError):
    """The errant transactions could not be determined; nothing was saved."""


async def find_errant(
    old: Server,
    old_runner: Runner,
    new: Server,
    flag_failback: dict[str, str],
    out_dir: Path,
    *,
    binlog_index: str,
    binlog_tool: str,
    timeout_s: float = 60.0,
    max_output_mib: int = 256,
) -> ErrantReport:
    """Find the transactions in the old primary's binary log that the new primary lacks, and
    save them under `out_dir` (errant-<time>.sql, and errant-<time>.flashback.sql on MariaDB).

    The range starts where the new primary stopped taking the old one's events: the salvage's
    end when a salvage ran, else the position its applier had reached at promotion (both are
    in the flag's failback data). The old primary's files are read by path over
    `old_runner`. `new` gives the flavor and, on MySQL, its gtid_executed; on MySQL `old`'s
    gtid_mode and gtid_executed are read too (not being able to is an ErrantError: the
    rejoin made it read-only just before, so it answers), giving the exact errant set. When
    that is empty on an old primary with gtid_mode=ON, nothing is errant whatever the binary
    logs hold (a rebuilt old primary); with GTIDs off (or only permissive) its transactions
    may be anonymous, which no GTID set holds, so the binary log is read all the same.
    """
    clock = _Clock(timeout_s)
    fb = flag_failback
    file = fb.get("salvaged_to_file") or fb.get("applied_from_old_file", "")
    pos = fb.get("salvaged_to_pos") or fb.get("applied_from_old_pos", "")
    if not file or not pos.isdigit():
        raise ErrantError(
            "the flag's failback data has no position in the old primary's binary log "
            "(applied_from_old_file/pos): cannot tell what only the old primary has"
        )
    # What the new primary shares with the old one: where the salvage ended, or where its
    # applier stood at promotion.
    rejoin = fb.get("salvaged_to_gtid") or fb.get("applied_from_old_gtid", "")
    try:
        flavor = "mariadb" if (await new.dialect(clock.left())).is_mariadb else "mysql"
        new_state = old_state = None
        if flavor == "mysql":
            new_state = parse_gtid_state(*await new.gtid_state(clock.left()))
            try:
                mode = (await old.global_variables(["gtid_mode"], clock.left())).get("gtid_mode")
                old_state = parse_gtid_state(*await old.gtid_state(clock.left()))
            except MySQLError as exc:
                raise ErrantError(f"cannot read the old primary's GTID state: {exc}") from None
            if (
                str(mode).upper() == "ON"
                and not old_state.is_empty
                and subtract(old_state, new_state).is_empty
            ):
                return ErrantReport((), 0, file, int(pos), file, int(pos), rejoin)
        max_bytes = max_output_mib * 2**20
        files = files_from(await _read_index(old_runner, binlog_index, clock, max_bytes), file)
        dump, _ = await _run_tool(
            old_runner, flavor, binlog_tool, int(pos), files, clock, max_bytes, verbose=True
        )
        # From that point on the new primary took nothing more from the old one (it was
        # promoted). Output it does not understand is a refusal like any other.
        found = errant_of(dump, new_state, old_state)
    except (SalvageError, MySQLError, RunnerError, OSError) as exc:
        raise ErrantError(str(exc)) from None
    errant = found.transactions
    incomplete = sum(1 for tx in dump.transactions() if not tx.complete)
    events = dump.events()
    end = events[-1] if events else None
    report = ErrantReport(
        errant=tuple(str(tx.gtid) if tx.gtid else f"anonymous@{tx.events[0].at}" for tx in errant),
        events=sum(len(tx.events) for tx in errant),
        from_file=file,
        from_pos=int(pos),
        old_end_file=_name(files[end.file_index]) if end else file,
        old_end_pos=end.end if end else int(pos),
        rejoin_gtid=rejoin,
        incomplete_dropped=incomplete,
        gtid_set=found.gtid_set,
        unsaved=found.unsaved,
    )
    if not errant:
        return report
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    sql_path = out_dir / f"errant-{stamp}.sql"
    try:
        _save(sql_path, script_for(dump, errant))
    except OSError as exc:
        raise ErrantError(f"cannot save the errant transactions to {sql_path}: {exc}") from None
    flashback = ""
    if flavor == "mariadb":
        first = errant[0].events[0]
        # The inverse of every errant row event, newest first; not parsed (the tool prints
        # it in its own layout), only checked to have run to the end.
        argv = tool_argv(flavor, binlog_tool, first.at, files[first.file_index :], flashback=True)
        try:
            fb_res = await old_runner.run(argv, clock.left(), max_output_bytes=max_bytes)
        except RunnerError as exc:
            raise ErrantError(f"saved {sql_path}, but the flashback failed: {exc}") from None
        if fb_res.truncated:
            raise ErrantError(
                f"saved {sql_path}, but the flashback printed more than max_output_mib "
                f"({max_output_mib} MiB)"
            )
        if not fb_res.ok:
            raise ErrantError(f"saved {sql_path}, but the flashback failed: {fb_res.summary()}")
        fb_path = out_dir / f"errant-{stamp}.flashback.sql"
        try:
            _save(fb_path, fb_res.stdout)
        except OSError as exc:
            raise ErrantError(f"saved {sql_path}, but not the flashback: {exc}") from None
        flashback = str(fb_path)
    return replace(report, sql_file=str(sql_path), flashback_file=flashback)


def _save(path: Path, data: bytes) -> None:
    # A few MiB at most, written once by an operator command: not worth a thread. Mode 0600:
    # these are rows of the monitored application.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)


async def apply_script(
    runner: Runner, apply_argv: list[str] | tuple[str, ...], script: bytes, timeout_s: float
) -> CommandResult:
    """Feed a script to the server client on the runner's node (used to undo errant
    transactions on the old primary with the flashback file)."""
    async with asyncio.timeout(timeout_s + 1):
        return await runner.run(apply_argv, timeout_s, input=script)


# --- a command line, for operators and the lab -------------------------------------------------


def _main(argv: list[str] | None = None) -> int:
    """`python -m monha.binlog_io errant --config FILE --node NAME --out DIR`: run on the new
    primary after a failover; prints the ErrantReport as JSON (exit 1 with a reason if the
    errant transactions cannot be determined)."""
    import argparse
    import json
    import sys
    from dataclasses import asdict

    from monha import handles
    from monha.config import load_config
    from monha.journal import read_flag

    parser = argparse.ArgumentParser(prog="python -m monha.binlog_io")
    parser.add_argument("command", choices=["errant"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--node", required=True, help="this node (the new primary)")
    parser.add_argument("--out", required=True, help="directory for the saved transactions")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    me, peer = cfg.node(args.node), cfg.peer_of(args.node)
    if not cfg.salvage.binlog_index:
        print("salvage.binlog_index is not configured", file=sys.stderr)
        return 1
    flag = read_flag(Path(cfg.failover.flag_file)) or {}
    password = cfg.mysql.monitor_secret().get_secret_value()

    async def run() -> ErrantReport:
        new = handles.local_server(cfg, me.name, password)
        old = handles.remote_server(cfg, peer.name, password)
        ssh = handles.ssh_runner(cfg, peer.name)
        try:
            return await find_errant(
                old,
                ssh,
                new,
                dict(flag.get("failback", {})),
                Path(args.out),
                binlog_index=cfg.salvage.binlog_index or "",
                binlog_tool=cfg.salvage.binlog_tool,
                max_output_mib=cfg.salvage.max_output_mib,
            )
        finally:
            await ssh.close()
            await new.close()
            await old.close()

    try:
        report = asyncio.run(run())
    except ErrantError as exc:
        print(f"errant transactions: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({**asdict(report), "count": report.count}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
