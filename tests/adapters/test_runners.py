"""Contract tests of LocalRunner (real subprocesses) and SshRunner (a real sshd on loopback)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monha.model import ProbeStatus
from monha.runners import (
    _READ_CHUNK,
    CommandResult,
    HostKeyError,
    LocalRunner,
    Runner,
    RunnerError,
    RunnerLost,
    SshRunner,
)
from tests.adapters.sandbox import Sshd, _keypair

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(120)]

# Arguments a shell would mangle: each must arrive as one literal argument.
HOSTILE = [
    "two words",
    "it's",
    'say "hi"',
    "a;b",
    "$(touch /tmp/monha-pwned)",
    "`id`",
    "$HOME",
    "*",
    "back\\slash",
    "new\nline",
    "",
    "-n",
    "ünïcödé",
]
PRINT_ARGS = ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"]


def _pwned() -> bool:
    """True if some shell ran the `$(touch ...)` argument instead of passing it on."""
    return Path("/tmp/monha-pwned").exists()


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie is gone for our purposes (see LAB-NOTES)


async def _within(timeout_s: float, pred: Callable[[], bool]) -> bool:
    """Poll `pred` until it holds or `timeout_s` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


# --- LocalRunner ------------------------------------------------------------------------------


async def test_local_exit_codes_and_output() -> None:
    r = LocalRunner()
    assert isinstance(r, Runner)
    ok = await r.run(["sh", "-c", "echo out; echo err >&2; exit 0"], 5)
    assert ok.ok and ok.exit_status == 0 and ok.stdout == b"out\n" and ok.stderr == b"err\n"
    bad = await r.run(["sh", "-c", "exit 3"], 5)
    assert bad.exit_status == 3 and not bad.ok and not bad.timed_out
    assert "exit 3" in bad.summary()


async def test_local_input_is_fed() -> None:
    res = await LocalRunner().run(["cat"], 5, input=b"hello\x00world")
    assert res.stdout == b"hello\x00world"


async def test_local_argv_passes_literally() -> None:
    res = await LocalRunner().run([*PRINT_ARGS, *HOSTILE], 5)
    import json

    assert json.loads(res.stdout) == HOSTILE
    assert not _pwned()


async def test_local_missing_program_raises() -> None:
    with pytest.raises(RunnerError, match="no-such-program"):
        await LocalRunner().run(["/nonexistent/no-such-program"], 5)


async def test_local_rejects_a_shell_string() -> None:
    with pytest.raises(TypeError):
        await LocalRunner().run("echo hi", 5)  # type: ignore[arg-type]


async def test_local_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # A shell whose background child would outlive a kill of the shell alone.
    script = f"sleep 100 & echo $! > {pidfile}; echo started; wait"
    start = time.monotonic()
    res = await LocalRunner().run(["sh", "-c", script], 0.5)
    assert res.timed_out and res.exit_status is None and not res.ok
    assert time.monotonic() - start < 3
    assert res.stdout == b"started\n"  # partial output is kept
    child = int(pidfile.read_text())
    assert await _within(3, lambda: not _pid_alive(child)), "the background child survived"


async def test_local_cancel_kills_the_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = asyncio.ensure_future(
        LocalRunner().run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 100"], 30)
    )
    assert await _within(5, lambda: pidfile.exists() and bool(pidfile.read_text().strip()))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int(pidfile.read_text())
    await asyncio.sleep(0.1)
    assert not _pid_alive(pid)


MIB = 2**20


async def test_local_output_over_the_limit_stops_the_command() -> None:
    # Regression: output was read whole and checked afterwards (a salvage of a replica days
    # behind pulled gigabytes into the daemon). Now reading stops at the limit.
    start = time.monotonic()
    res = await LocalRunner().run(["head", "-c", "200M", "/dev/zero"], 30, max_output_bytes=MIB)
    assert res.truncated and not res.ok and res.exit_status is None and not res.timed_out
    assert MIB < len(res.stdout) <= MIB + _READ_CHUNK
    assert time.monotonic() - start < 5
    assert "over its limit" in res.summary()
    # stderr is bounded the same way; output under the limit is untouched.
    err = await LocalRunner().run(
        ["sh", "-c", "head -c 50M /dev/zero >&2"], 30, max_output_bytes=MIB
    )
    assert err.truncated and len(err.stderr) <= MIB + _READ_CHUNK
    small = await LocalRunner().run(["echo", "hi"], 5, max_output_bytes=MIB)
    assert small.ok and not small.truncated and small.stdout == b"hi\n"


# --- SshRunner --------------------------------------------------------------------------------


def _ssh(sshd: Sshd, known_hosts: Path | None = None, timeout: float = 3.0) -> SshRunner:
    return SshRunner(
        "127.0.0.1",
        sshd.port,
        "root",
        sshd.client_key,
        known_hosts or sshd.known_hosts,
        timeout,
    )


async def test_ssh_runs_with_verified_host_key(sshd: Sshd) -> None:
    r = _ssh(sshd)
    assert isinstance(r, Runner)
    try:
        res = await r.run(["sh", "-c", "echo out; echo err >&2; exit 4"], 5)
        assert isinstance(res, CommandResult)
        assert (res.exit_status, res.stdout, res.stderr) == (4, b"out\n", b"err\n")
        probe = await r.reachable(3)
        assert probe.status is ProbeStatus.OK, probe
        assert "127.0.0.1" in r.describe()
    finally:
        await r.close()


async def test_ssh_reuses_and_reestablishes_the_connection(sshd: Sshd) -> None:
    r = _ssh(sshd)
    try:
        await r.run(["true"], 5)
        first = r._conn
        await r.run(["true"], 5)
        assert r._conn is first  # reused
        assert first is not None
        first.close()  # the connection breaks under the runner
        await first.wait_closed()
        res = await r.run(["echo", "again"], 5)
        assert res.ok and res.stdout == b"again\n"
        assert r._conn is not first
    finally:
        await r.close()


async def test_ssh_arguments_pass_literally(sshd: Sshd) -> None:
    import json

    r = _ssh(sshd)
    try:
        res = await r.run([*PRINT_ARGS, *HOSTILE], 5)
        assert res.ok, res.summary()
        assert json.loads(res.stdout) == HOSTILE
        assert not _pwned()
        fed = await r.run(["cat"], 5, input=b"bytes\x00in")
        assert fed.stdout == b"bytes\x00in"
    finally:
        await r.close()


async def test_ssh_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = _ssh(sshd, empty)
    with pytest.raises(HostKeyError) as err:
        await r.run(["true"], 5)
    msg = str(err.value)
    assert "127.0.0.1" in msg and str(empty) in msg and "UNKNOWN" in msg
    probe = await r.reachable(3)
    assert probe.status is ProbeStatus.FAILED and "UNKNOWN" in probe.detail


async def test_ssh_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = _keypair(tmp_path / "other_key")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    r = _ssh(sshd, wrong)
    with pytest.raises(HostKeyError) as err:
        await r.run(["true"], 5)
    assert "CHANGED" in str(err.value) and str(wrong) in str(err.value)


async def test_ssh_timeout_closes_the_channel(sshd: Sshd) -> None:
    r = _ssh(sshd)
    try:
        marker = "100.4242"  # an unusual argument, to find this very sleep afterwards
        start = time.monotonic()
        res = await r.run(["sleep", marker], 0.7)
        assert res.timed_out and res.exit_status is None
        assert time.monotonic() - start < 3
        # The connection is still usable afterwards.
        assert (await r.run(["echo", "ok"], 5)).stdout == b"ok\n"
        # The peer ends the remote command itself, shortly after the local timeout.
        assert await _within(4, lambda: not _sleep_running(marker))
    finally:
        await r.close()
        for pid in _sleep_pids(marker):  # never leave our own sleep behind if the test failed
            os.kill(pid, 9)


def _sleep_running(marker: str) -> bool:
    return bool(_sleep_pids(marker))


def _sleep_pids(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [b"sleep", marker.encode()] and _pid_alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


async def test_ssh_nothing_listening(closed_port: int, sshd: Sshd) -> None:
    r = SshRunner("127.0.0.1", closed_port, "root", sshd.client_key, sshd.known_hosts, 2)
    with pytest.raises(RunnerError, match="cannot connect"):
        await r.run(["true"], 3)
    assert (await r.reachable(2)).status is ProbeStatus.FAILED


async def test_ssh_silent_listener_times_out(silent_listener: int, sshd: Sshd) -> None:
    r = SshRunner("127.0.0.1", silent_listener, "root", sshd.client_key, sshd.known_hosts, 0.5)
    start = time.monotonic()
    probe = await r.reachable(2)
    assert probe.status is ProbeStatus.TIMEOUT, probe
    assert time.monotonic() - start < 2


async def test_ssh_output_over_the_limit_stops_the_command(sshd: Sshd) -> None:
    r = _ssh(sshd)
    try:
        start = time.monotonic()
        res = await r.run(["head", "-c", "200M", "/dev/zero"], 30, max_output_bytes=MIB)
        assert res.truncated and not res.ok and res.exit_status is None and not res.timed_out
        assert MIB < len(res.stdout) <= MIB + _READ_CHUNK
        assert time.monotonic() - start < 5
        # The connection is fine for the next command.
        again = await r.run(["echo", "ok"], 5, max_output_bytes=MIB)
        assert again.ok and not again.truncated and again.stdout == b"ok\n"
    finally:
        await r.close()


def _ancestors(pid: int) -> list[tuple[int, str]]:
    """(pid, comm) of `pid` and its ancestors, nearest first."""
    out = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            break
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        out.append((pid, comm))
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return out


async def test_ssh_connection_lost_mid_command_is_a_runner_error(sshd: Sshd) -> None:
    """Regression: asyncssh.ConnectionLost escaped run() when the link broke mid-command.

    The sshd process serving this connection is killed while `sleep` runs: run() must raise
    RunnerError at once (not asyncssh's exception), and the next run() reconnects.
    """
    r = _ssh(sshd)
    marker = f"30.{os.getpid()}3"  # this run's own sleep, even with another run beside it
    try:
        await r.run(["true"], 5)
        task = asyncio.ensure_future(r.run(["sleep", marker], 20))
        assert await _within(5, lambda: bool(_sleep_pids(marker)))
        assert sshd.proc is not None
        chain = _ancestors(_sleep_pids(marker)[0])
        assert sshd.proc.pid in [pid for pid, _ in chain], "not our sandbox sshd's command"
        serving = [
            pid
            for pid, comm in chain
            if comm == "sshd" and pid != sshd.proc.pid  # never the listener itself
        ]
        assert serving, "no sshd process found serving the connection"
        for pid in serving:
            os.kill(pid, 9)
        start = time.monotonic()
        with pytest.raises(RunnerError) as err:
            await asyncio.wait_for(task, 5)
        assert time.monotonic() - start < 2
        assert isinstance(err.value, RunnerLost)
        assert "127.0.0.1" in str(err.value) and "may or may not have run" in str(err.value)
        assert r._conn is None  # the broken connection was dropped
        res = await r.run(["echo", "again"], 5)
        assert res.ok and res.stdout == b"again\n"
    finally:
        await r.close()
        for pid in _sleep_pids(marker):
            os.kill(pid, 9)


async def test_ssh_transport_aborted_mid_command_is_a_runner_error(sshd: Sshd) -> None:
    r = _ssh(sshd)
    marker = f"30.{os.getpid()}5"
    try:
        task = asyncio.ensure_future(r.run(["sleep", marker], 20))
        assert await _within(5, lambda: bool(_sleep_pids(marker)))
        assert r._conn is not None
        r._conn.abort()
        with pytest.raises(RunnerLost):
            await asyncio.wait_for(task, 5)
        probe = await r.reachable(3)
        assert probe.status is ProbeStatus.OK, probe
    finally:
        await r.close()
        for pid in _sleep_pids(marker):
            os.kill(pid, 9)
