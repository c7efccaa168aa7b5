"""The lab's write-load generator, and the analysis of what it recorded.

Job: insert numbered rows at a steady rate through one address (the VIP), one short-timeout
INSERT at a time on an autocommit connection, reconnecting after any error; write a JSON-lines
record of every ACKNOWLEDGED row (the server's OK to the autocommit INSERT came back) and every
failed attempt, flushed line by line so a generator killed at any moment leaves a valid record.
The analysis helpers turn a record plus the rows found on the final primary into "acknowledged
rows lost" and "longest window without an acknowledged write".

Must not: retry a row id (a failed attempt may still have committed; the next attempt uses the
next id, so an acknowledged id is never ambiguous), burst to catch up after an outage (that
would distort the outage it measures), or touch any table but `load_rows`.

Record lines (one JSON object each, "t" says which):
  start   {run_id, at, host, port, rate, duration}
  connect {at, server_id}                     one per new connection: which server answered
  ack     {id, at, server_id}
  fail    {id, at, code, error}               code: MySQL error number, or null
  end     {at, acked, failed}                 absent when the generator was killed
Row ids are `run_base + n`: a random 31-bit run base in the high bits, so runs sharing the
table never collide on the primary key; `run_id` tells the rows of one run apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiomysql
import pymysql

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS load_rows ("
    "id BIGINT PRIMARY KEY, run_id VARCHAR(64) NOT NULL, written_at DOUBLE NOT NULL, "
    "KEY run_id (run_id))"
)


@dataclass(frozen=True, slots=True)
class Target:
    host: str = "192.168.10.10"
    port: int = 3306
    user: str = "app"
    password: str = "app"
    db: str = "labdb"
    timeout_s: float = 1.0


# --- generating -------------------------------------------------------------------------------


class _Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def line(self, kind: str, **values: Any) -> None:
        self._out.write(json.dumps({"t": kind, **values}, separators=(",", ":")) + "\n")
        self._out.flush()


async def _connect(t: Target) -> aiomysql.Connection:
    # Built by hand so that a connect cut off by our timeout closes its socket (aiomysql's
    # connect() only closes it on ordinary errors, not on cancellation).
    conn = aiomysql.Connection(
        host=t.host,
        port=t.port,
        user=t.user,
        password=t.password,
        db=t.db,
        autocommit=True,
        connect_timeout=t.timeout_s,
        program_name="monha-load",
    )
    ok = False
    try:
        async with asyncio.timeout(t.timeout_s):
            await conn._connect()
        ok = True
        return conn
    finally:
        if not ok:
            conn.close()


def _error(exc: BaseException) -> tuple[int | None, str]:
    if isinstance(exc, TimeoutError):
        return None, "timeout"
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    return None, f"{type(exc).__name__}: {exc}"


async def generate(
    target: Target,
    out: IO[str],
    *,
    rate: float,
    duration_s: float | None,
    run_id: str,
    stop: asyncio.Event | None = None,
) -> tuple[int, int]:
    """Write rows until `duration_s` passed or `stop` is set; return (acked, failed)."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    stop = stop or asyncio.Event()
    rec = _Recorder(out)
    base = secrets.randbits(31) << 32
    interval = 1.0 / rate
    loop = asyncio.get_running_loop()
    started = loop.time()
    rec.line(
        "start",
        run_id=run_id,
        at=time.time(),
        host=target.host,
        port=target.port,
        rate=rate,
        duration=duration_s,
    )
    conn: aiomysql.Connection | None = None
    server_id: int | None = None
    table_ready = False
    acked = failed = 0
    n = 0
    next_at = started
    try:
        while not stop.is_set() and (duration_s is None or loop.time() - started < duration_s):
            delay = next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                if stop.is_set():
                    break
            # After a slow attempt, do not burst to catch up: the schedule restarts from now.
            next_at = max(next_at + interval, loop.time())
            n += 1
            row_id = base + n
            try:
                if conn is None:
                    conn = await _connect(target)
                    async with asyncio.timeout(target.timeout_s), conn.cursor() as cur:
                        await cur.execute("SELECT @@server_id")
                        server_id = int((await cur.fetchone())[0])
                        if not table_ready:
                            # Asked first: CREATE ... IF NOT EXISTS on an existing table
                            # answers with a warning the driver would print.
                            await cur.execute(
                                "SELECT COUNT(*) FROM information_schema.TABLES"
                                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'load_rows'"
                            )
                            if not (await cur.fetchone())[0]:
                                await cur.execute(CREATE_TABLE)
                            table_ready = True
                    rec.line("connect", at=time.time(), server_id=server_id)
                async with asyncio.timeout(target.timeout_s), conn.cursor() as cur:
                    await cur.execute(
                        "INSERT INTO load_rows (id, run_id, written_at) VALUES (%s, %s, %s)",
                        (row_id, run_id, time.time()),
                    )
                acked += 1
                rec.line("ack", id=row_id, at=time.time(), server_id=server_id)
            except Exception as exc:  # any error: record it, reconnect, go on
                failed += 1
                code, text = _error(exc)
                rec.line("fail", id=row_id, at=time.time(), code=code, error=text[:200])
                if conn is not None:
                    conn.close()  # its state is unknown after an error: start afresh
                conn = None
    finally:
        if conn is not None:
            conn.close()
    rec.line("end", at=time.time(), acked=acked, failed=failed)
    return acked, failed


# --- analysing --------------------------------------------------------------------------------


@dataclass
class Record:
    """What one generator run wrote down."""

    run_id: str = ""
    started_at: float | None = None
    ended_at: float | None = None  # None when the generator was killed
    acked: dict[int, float] = field(default_factory=dict)  # id -> time of acknowledgement
    acked_server: dict[int, int | None] = field(default_factory=dict)  # id -> @@server_id
    failed: list[tuple[int, float, int | None]] = field(default_factory=list)  # (id, at, code)
    connects: list[tuple[float, int | None]] = field(default_factory=list)  # (at, server_id)


def read_record(path: str | Path) -> Record:
    """Parse a record file. A torn last line (the generator killed mid-write) is ignored."""
    r = Record()
    lines = Path(path).read_text().splitlines()
    for i, text in enumerate(lines):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON") from None
        kind = obj.get("t")
        if kind == "start":
            r.run_id, r.started_at = obj["run_id"], obj["at"]
        elif kind == "connect":
            r.connects.append((obj["at"], obj.get("server_id")))
        elif kind == "ack":
            r.acked[obj["id"]] = obj["at"]
            r.acked_server[obj["id"]] = obj.get("server_id")
        elif kind == "fail":
            r.failed.append((obj["id"], obj["at"], obj.get("code")))
        elif kind == "end":
            r.ended_at = obj["at"]
    return r


def lost_rows(acked_ids: Iterable[int], ids_present_on_final_primary: Iterable[int]) -> list[int]:
    """Acknowledged ids that the final primary does not have, in order."""
    present = set(ids_present_on_final_primary)
    return sorted(i for i in set(acked_ids) if i not in present)


def write_outage(record: Record) -> tuple[float, float, float]:
    """The longest window without an acknowledged write: (start, end, seconds).

    Windows are bounded by the run's start, each acknowledgement, and the run's end (or, for
    a killed run, its last recorded event), so an outage still going on when the run stopped
    counts too.
    """
    times = sorted(record.acked.values())
    events = [*times, *(at for _, at, _ in record.failed), *(at for at, _ in record.connects)]
    first = record.started_at if record.started_at is not None else (min(events) if events else 0.0)
    last = record.ended_at if record.ended_at is not None else (max(events) if events else first)
    points = [first, *times, max(last, times[-1] if times else last)]
    best = (first, first, 0.0)
    for a, b in itertools.pairwise(points):
        if b - a > best[2]:
            best = (a, b, b - a)
    return best


async def ids_present(target: Target, run_id: str) -> set[int]:
    """The ids of one run found on a server (the final primary)."""
    conn = await _connect(target)
    try:
        async with asyncio.timeout(max(target.timeout_s, 10.0)), conn.cursor() as cur:
            await cur.execute("SELECT id FROM load_rows WHERE run_id = %s", (run_id,))
            return {int(row[0]) for row in await cur.fetchall()}
    finally:
        conn.close()


# --- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m monha.lab.load", description=__doc__.split("\n\n")[0]
    )
    d = Target()
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--user", default=d.user)
    p.add_argument("--password", default=d.password)
    p.add_argument("--db", default=d.db)
    p.add_argument("--rate", type=float, default=200.0, help="rows per second (default 200)")
    p.add_argument(
        "--duration", type=float, default=None, help="seconds (default: until SIGTERM/SIGINT)"
    )
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help="seconds per connect/insert (default 1)"
    )
    p.add_argument("--run-id", default=None, help="tags this run's rows (default: generated)")
    p.add_argument("--out", required=True, help="record file (JSON lines, appended)")
    p.add_argument("--prefix", default=None, help=argparse.SUPPRESS)  # passed through by monha-lab
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    target = Target(args.host, args.port, args.user, args.password, args.db, args.timeout)
    run_id = args.run_id or f"run-{int(time.time())}-{secrets.token_hex(3)}"

    async def _main(out: IO[str]) -> tuple[int, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await generate(
            target, out, rate=args.rate, duration_s=args.duration, run_id=run_id, stop=stop
        )

    with open(args.out, "a", encoding="utf-8") as out:
        acked, failed = asyncio.run(_main(out))
    print(json.dumps({"run_id": run_id, "acked": acked, "failed": failed, "out": args.out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
