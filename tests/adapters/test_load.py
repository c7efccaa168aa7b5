"""The lab's load generator against a real MariaDB, and its record analysis (pure)."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monha.lab import load
from monha.lab.load import (
    Record,
    Target,
    generate,
    ids_present,
    lost_rows,
    read_record,
    write_outage,
)
from tests.adapters.sandbox import APP_DB, APP_PASSWORD, APP_USER, ServerPair


def _target(db: ServerPair) -> Target:
    return Target("127.0.0.1", db.primary.port, APP_USER, APP_PASSWORD, APP_DB, 1.0)


# --- pure analysis ----------------------------------------------------------------------------


def test_lost_rows() -> None:
    assert lost_rows([1, 2, 3, 5], [1, 3, 4, 5, 6]) == [2]
    assert lost_rows([], [1]) == []
    assert lost_rows([7, 7, 8], []) == [7, 8]


def test_write_outage_longest_gap() -> None:
    r = Record(run_id="r", started_at=100.0, ended_at=110.0)
    r.acked = {1: 100.1, 2: 100.2, 3: 103.7, 4: 109.9}
    assert write_outage(r) == pytest.approx((103.7, 109.9, 6.2))


def test_write_outage_still_going_when_killed() -> None:
    r = Record(run_id="r", started_at=100.0, ended_at=None)
    r.acked = {1: 100.1, 2: 100.2}
    r.failed = [(3, 101.0, 2003), (4, 104.5, 2003)]
    start, end, seconds = write_outage(r)
    assert (start, end) == (100.2, 104.5) and seconds == pytest.approx(4.3)


def test_write_outage_without_any_ack() -> None:
    r = Record(run_id="r", started_at=50.0, ended_at=53.0)
    assert write_outage(r) == (50.0, 53.0, 3.0)


def test_read_record_ignores_a_torn_last_line(tmp_path: Path) -> None:
    f = tmp_path / "rec.jsonl"
    lines = [
        {
            "t": "start",
            "run_id": "x",
            "at": 1.0,
            "host": "h",
            "port": 1,
            "rate": 10,
            "duration": None,
        },
        {"t": "connect", "at": 1.1, "server_id": 1},
        {"t": "ack", "id": 11, "at": 1.2, "server_id": 1},
        {"t": "fail", "id": 12, "at": 1.3, "code": 1290, "error": "read-only"},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"t":"ack","id":13,"at"')
    r = read_record(f)
    assert r.run_id == "x" and r.acked == {11: 1.2} and r.acked_server == {11: 1}
    assert r.failed == [(12, 1.3, 1290)] and r.connects == [(1.1, 1)] and r.ended_at is None


def test_read_record_rejects_garbage_in_the_middle(tmp_path: Path) -> None:
    f = tmp_path / "rec.jsonl"
    f.write_text('{"t":"start","run_id":"x","at":1}\nnot json\n{"t":"end","at":2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_record(f)


# --- against the real server ------------------------------------------------------------------


@pytest.mark.adapter
@pytest.mark.timeout(60)
async def test_generator_records_every_ack_and_the_rows_are_there(
    pair: ServerPair, tmp_path: Path
) -> None:
    out = tmp_path / "rec.jsonl"
    with out.open("a") as fh:
        acked, failed = await generate(_target(pair), fh, rate=100, duration_s=1.5, run_id="basic")
    rec = read_record(out)
    assert failed == 0 and acked == len(rec.acked) >= 100
    assert rec.ended_at is not None and rec.run_id == "basic"
    assert [sid for _, sid in rec.connects] == [1]  # one connection, to the primary
    present = await ids_present(_target(pair), "basic")
    assert lost_rows(rec.acked, present) == []
    assert write_outage(rec)[2] < 0.5


@pytest.mark.adapter
@pytest.mark.timeout(60)
async def test_generator_survives_refusals_and_killed_connections(
    pair: ServerPair, tmp_path: Path
) -> None:
    p = pair.primary
    out = tmp_path / "rec.jsonl"
    stop = asyncio.Event()

    async def disturb() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(p.sql, "SET GLOBAL read_only = ON")  # app user: error 1290
        await asyncio.sleep(0.8)
        await asyncio.to_thread(p.sql, "SET GLOBAL read_only = OFF")
        await asyncio.sleep(0.4)
        # Kill the generator's connection under it: it must reconnect and go on.
        ids = await asyncio.to_thread(
            p.sql, f"SELECT id FROM information_schema.PROCESSLIST WHERE USER = '{APP_USER}'"
        )
        for (conn_id,) in ids:
            await asyncio.to_thread(p.sql, f"KILL CONNECTION {conn_id}")
        await asyncio.sleep(0.6)
        stop.set()

    with out.open("a") as fh:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(disturb())
            tg.create_task(
                generate(_target(pair), fh, rate=50, duration_s=None, run_id="disturbed", stop=stop)
            )
    rec = read_record(out)
    codes = {code for _, _, code in rec.failed}
    assert 1290 in codes
    assert len(rec.connects) >= 2  # reconnected after the errors
    start, end, seconds = write_outage(rec)
    assert 0.6 < seconds < 2.0
    assert any(start <= at <= end for _, at, code in rec.failed if code == 1290)
    present = await ids_present(_target(pair), "disturbed")
    assert lost_rows(rec.acked, present) == []
    assert not any(i in present for i, _, code in rec.failed if code == 1290)  # refused = not there


@pytest.mark.adapter
@pytest.mark.timeout(60)
def test_main_runs_for_a_duration(
    pair: ServerPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.jsonl"
    argv = [
        "--host=127.0.0.1",
        f"--port={pair.primary.port}",
        f"--user={APP_USER}",
        f"--password={APP_PASSWORD}",
        f"--db={APP_DB}",
        "--rate=40",
        "--duration=0.5",
        "--run-id=cli",
        f"--out={out}",
    ]
    assert load.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    rec = read_record(out)
    assert summary["run_id"] == "cli" and summary["acked"] == len(rec.acked) > 0


def test_generate_rejects_a_bad_rate() -> None:
    with pytest.raises(ValueError):
        asyncio.run(generate(Target(), io.StringIO(), rate=0, duration_s=1, run_id="x"))


@pytest.mark.adapter
@pytest.mark.timeout(60)
def test_module_stops_cleanly_on_sigterm(pair: ServerPair, tmp_path: Path) -> None:
    out = tmp_path / "sig.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monha.lab.load",
            "--host=127.0.0.1",
            f"--port={pair.primary.port}",
            f"--user={APP_USER}",
            f"--password={APP_PASSWORD}",
            f"--db={APP_DB}",
            "--rate=50",
            f"--out={out}",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (out.exists() and '"t":"ack"' in out.read_text()):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rec = read_record(out)
    assert rec.ended_at is not None and len(rec.acked) > 0
