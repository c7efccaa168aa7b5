"""Contract tests of monha.steps (and the salvage's output bound) against real things: a real
MariaDB frozen with SIGSTOP, real `ip` in a network namespace of the test's own, real
subprocesses. Tiny fake runners only where the step logic itself is under test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncssh
import pytest

from monha import binlog_io
from monha.model import OnFailure, Step, StepKind
from monha.mysql import Server
from monha.runners import _READ_CHUNK, CommandResult, LocalRunner, Runner
from monha.steps import Nodes, run_step
from tests.adapters.sandbox import ADMIN_PASSWORD, ADMIN_USER, ServerPair
from tests.conftest import require, require_root_and_binaries

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(120)]

MIB = 2**20


# --- run_step never raises ---------------------------------------------------------------------


class _Raising:
    """A runner whose every command fails with `exc`: an error nobody converted."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def describe(self) -> str:
        return "raising"

    async def close(self) -> None:
        return None

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        await asyncio.sleep(0)
        raise self.exc


def _vip_step(prefix: str = "24", interface: str = "d0") -> Step:
    args = (
        ("address", "10.254.0.10"),
        ("prefix", prefix),
        ("interface", interface),
        ("label", f"{interface}:1"),
    )
    return Step(StepKind.VIP_DOWN, "old", 5.0, OnFailure.STOP, args)


@pytest.mark.parametrize(
    "exc",
    [ValueError("garbled reply"), asyncssh.ConnectionLost("Connection lost"), KeyError("x")],
    ids=["ValueError", "ConnectionLost", "KeyError"],
)
async def test_run_step_turns_any_exception_into_a_failed_outcome(exc: Exception) -> None:
    """Regression: an exception other than MySQLError/RunnerError/OSError escaped run_step
    (and with it the executor's plan loop)."""
    runner = _Raising(exc)
    assert isinstance(runner, Runner)
    nodes = Nodes(runners={"old": runner}, mysql={})
    command = Step(StepKind.STOP_SERVICE, "old", 2.0, OnFailure.STOP, (("name", "app"),), ("true",))
    for step in (command, _vip_step()):
        outcome = await run_step(step, nodes)
        assert not outcome.ok
        assert type(exc).__name__ in outcome.detail, outcome


async def test_run_step_lets_cancellation_through() -> None:
    class _Hanging(_Raising):
        async def run(self, *args: object, **kw: object) -> CommandResult:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    nodes = Nodes(runners={"old": _Hanging(ValueError())}, mysql={})
    step = Step(StepKind.STOP_SERVICE, "old", 60.0, OnFailure.STOP, (), ("true",))
    task = asyncio.ensure_future(run_step(step, nodes))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- fence_mysql: a hung mysqld is stopped ------------------------------------------------------


async def test_fence_mysql_answers_with_read_only(pair: ServerPair, tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    server = Server(
        host="127.0.0.1", port=pair.replica.port, user=ADMIN_USER, password=ADMIN_PASSWORD
    )
    nodes = Nodes(runners={"old": LocalRunner()}, mysql={"old": server})
    stop = ("sh", "-c", f"echo stopped > {marker}")
    try:
        step = Step(StepKind.FENCE_MYSQL, "old", 3.0, OnFailure.CONTINUE, (), stop)
        outcome = await run_step(step, nodes)
    finally:
        await server.close()
    assert outcome.ok and "read_only on" in outcome.detail, outcome
    assert not marker.exists()  # an answering server is not stopped


async def test_fence_mysql_stops_a_hung_mysqld(pair: ServerPair, tmp_path: Path) -> None:
    """Regression: read_only got the whole step timeout, so against a frozen mysqld the stop
    command never ran before the step timed out."""
    marker = tmp_path / "stopped"
    db = pair.primary
    assert db.proc is not None
    server = Server(
        host="127.0.0.1",
        port=db.port,
        user=ADMIN_USER,
        password=ADMIN_PASSWORD,
        connect_timeout_s=1.0,
        timeout_s=10.0,
    )
    nodes = Nodes(runners={"old": LocalRunner()}, mysql={"old": server})
    stop = ("sh", "-c", f"echo stopped > {marker}")
    step = Step(StepKind.FENCE_MYSQL, "old", 3.0, OnFailure.CONTINUE, (), stop)
    os.kill(db.proc.pid, signal.SIGSTOP)  # the kernel still accepts connections; no greeting
    try:
        start = time.monotonic()
        outcome = await run_step(step, nodes)
        took = time.monotonic() - start
    finally:
        os.kill(db.proc.pid, signal.SIGCONT)
        await server.close()
    assert marker.read_text() == "stopped\n", outcome
    assert outcome.ok, outcome
    assert "did not answer" in outcome.detail and "stop command sh: exit 0" in outcome.detail
    assert took < 3.0


# --- vip_down in a network namespace ------------------------------------------------------------


def _ip(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of this test's own with an interface d0 (nothing leaves it)."""
    require_root_and_binaries("ip")
    name = f"monha-t-vip-{os.getpid()}"
    # `ip netns add` mounts /run/netns on itself the first time: leave the machine as it was.
    netns_dir_existed = os.path.lexists("/run/netns")
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    require(made.returncode == 0, f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        # A dummy interface where the kernel has the module; else a veth pair, both of its
        # ends in the namespace (some kernels, e.g. in CI containers, have no dummy).
        if _ip(name, "link", "add", "d0", "type", "dummy").returncode != 0:
            veth = _ip(name, "link", "add", "d0", "type", "veth", "peer", "name", "d0p")
            require(veth.returncode == 0, f"cannot create an interface: {veth.stderr.strip()}")
        assert _ip(name, "link", "set", "d0", "up").returncode == 0
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        if not netns_dir_existed and not os.listdir("/run/netns"):
            # A bind mount on itself is no mount point to os.path.ismount: ask mountpoint(1).
            for _ in range(5):
                if subprocess.run(["mountpoint", "-q", "/run/netns"], timeout=10).returncode:
                    break
                subprocess.run(["umount", "/run/netns"], capture_output=True, timeout=10)
            os.rmdir("/run/netns")


class _InNetns:
    """The local runner, each command run inside the namespace (`ip netns exec`)."""

    def __init__(self, ns: str, *, deletes_do_nothing: bool = False) -> None:
        self.ns, self.inner = ns, LocalRunner()
        self.deletes_do_nothing = deletes_do_nothing

    def describe(self) -> str:
        return f"local in {self.ns}"

    async def close(self) -> None:
        return None

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        if self.deletes_do_nothing and list(argv[:3]) == ["ip", "addr", "del"]:
            argv = ["true"]  # `ip` "succeeds" and the address stays
        return await self.inner.run(
            ["ip", "netns", "exec", self.ns, *argv],
            timeout_s,
            input,
            max_output_bytes=max_output_bytes,
        )


def _addresses(ns: str) -> str:
    return _ip(ns, "-o", "-4", "addr", "show", "dev", "d0").stdout


async def test_vip_down_removes_the_vip_whatever_its_prefix(netns: str) -> None:
    """Regression: a VIP added with another prefix than the configured one (MHA's class /8,
    a script's /32) was reported "not on d0" while it stayed up."""
    for spec in (("10.254.0.2/8",), ("10.254.0.10/8", "label", "d0:1")):
        assert _ip(netns, "addr", "add", spec[0], "dev", "d0", *spec[1:]).returncode == 0
    assert _ip(netns, "addr", "add", "10.254.0.10/32", "dev", "d0", "label", "d0:2").returncode == 0
    nodes = Nodes(runners={"old": _InNetns(netns)}, mysql={})
    outcome = await run_step(_vip_step(prefix="24"), nodes)
    assert outcome.ok, outcome
    assert "10.254.0.10/8" in outcome.detail and "10.254.0.10/32" in outcome.detail
    assert "configured prefix /24" in outcome.detail
    left = _addresses(netns)
    assert "10.254.0.10" not in left
    assert "10.254.0.2/8" in left  # the node's own address stays
    # Idempotent: again, the VIP is absent and the step says so.
    again = await run_step(_vip_step(prefix="24"), nodes)
    assert again.ok and "was not on d0" in again.detail, again


async def test_vip_down_fails_when_the_vip_stays(netns: str) -> None:
    assert _ip(netns, "addr", "add", "10.254.0.10/8", "dev", "d0", "label", "d0:1").returncode == 0
    nodes = Nodes(runners={"old": _InNetns(netns, deletes_do_nothing=True)}, mysql={})
    outcome = await run_step(_vip_step(prefix="8"), nodes)
    assert not outcome.ok and "still on d0" in outcome.detail, outcome


async def test_vip_down_on_a_missing_interface_fails(netns: str) -> None:
    nodes = Nodes(runners={"old": _InNetns(netns)}, mysql={})
    outcome = await run_step(_vip_step(interface="nope0"), nodes)
    assert not outcome.ok and "nope0" in outcome.detail, outcome


# --- salvage: the output bound holds while reading ----------------------------------------------


class _Recording:
    """The local runner, keeping every result (to check how much output was ever held)."""

    def __init__(self) -> None:
        self.inner = LocalRunner()
        self.results: list[CommandResult] = []

    def describe(self) -> str:
        return "local (recording)"

    async def close(self) -> None:
        return None

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        res = await self.inner.run(argv, timeout_s, input, max_output_bytes=max_output_bytes)
        self.results.append(res)
        return res


async def test_salvage_stops_reading_at_max_output_mib(pair: ServerPair, tmp_path: Path) -> None:
    """Regression: the binlog tool's output was read whole, then compared with
    max_output_mib; a replica days behind pulled gigabytes and the daemon was OOM-killed."""
    tool = tmp_path / "binlog-tool"
    tool.write_text("#!/bin/sh\nexec head -c 200M /dev/zero\n")  # a dump far over the bound
    tool.chmod(0o755)
    applied = tmp_path / "applied"
    old = _Recording()
    new = Server(host="127.0.0.1", port=pair.replica.port, user=ADMIN_USER, password=ADMIN_PASSWORD)
    try:
        start = time.monotonic()
        report = await binlog_io.salvage(
            new,
            LocalRunner(),
            old,
            binlog_index=str(pair.primary.datadir / "bin.index"),
            binlog_tool=str(tool),
            apply_argv=("sh", "-c", f"cat > {applied}"),
            timeout_s=20.0,
            max_output_mib=1,
        )
        took = time.monotonic() - start
    finally:
        await new.close()
        pair.replication("START")  # the salvage stopped replication first
    # Never more than the bound (plus one read chunk) in memory, and a clean failure.
    assert all(len(r.stdout) <= MIB + _READ_CHUNK for r in old.results)
    assert any(r.truncated for r in old.results)
    assert not report.ok, report
    assert "max_output_mib (1 MiB)" in report.detail and "nothing was applied" in report.detail
    assert "max_output_mib" in report.data["salvage_error"]
    assert not applied.exists()
    assert took < 10


class _HungServer:
    """A MySQL that never answers (only what fence_mysql calls)."""

    def describe(self) -> str:
        return "hung-mysql@old"

    async def set_read_only(self, on: bool, timeout_s: float) -> None:
        await asyncio.sleep(3600)


@pytest.fixture
def fake_mysqld(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A SIGSTOPped process whose name is mysqld (a copy of sleep), and its pid file."""
    exe = tmp_path / "mysqld"
    exe.write_bytes(Path("/bin/sleep").read_bytes())
    exe.chmod(0o755)
    proc = subprocess.Popen([str(exe), "300"])
    os.kill(proc.pid, signal.SIGSTOP)
    pid_file = tmp_path / "mysqld.pid"
    pid_file.write_text(f"{proc.pid}\n")
    try:
        yield proc, pid_file
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _fence_step(pid_file: Path, stop: tuple[str, ...] = ()) -> Step:
    args = (("pid_file", str(pid_file)),)
    return Step(StepKind.FENCE_MYSQL, "old", 4.0, OnFailure.CONTINUE, args, stop)


async def test_defect4_fence_kills_a_hung_mysqld_whose_stop_command_hangs(
    fake_mysqld: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, pid_file = fake_mysqld
    nodes = Nodes(runners={"old": LocalRunner()}, mysql={"old": _HungServer()})  # type: ignore[dict-item]
    start = time.monotonic()
    outcome = await run_step(_fence_step(pid_file, ("/bin/sleep", "30")), nodes)
    took = time.monotonic() - start
    assert outcome.ok, outcome
    assert "did not answer" in outcome.detail and f"killed mysqld pid {proc.pid}" in outcome.detail
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert took < 4.0


@pytest.fixture
def stray() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["/bin/sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_defect4_fence_never_kills_a_pid_that_is_not_a_mysqld(
    tmp_path: Path, stray: subprocess.Popen[bytes]
) -> None:
    pid_file = tmp_path / "mysqld.pid"
    pid_file.write_text(f"{stray.pid}\n")  # stale: the pid now belongs to something else
    nodes = Nodes(runners={"old": LocalRunner()}, mysql={"old": _HungServer()})  # type: ignore[dict-item]
    outcome = await run_step(_fence_step(pid_file), nodes)
    assert not outcome.ok and "not a mysqld" in outcome.detail, outcome
    assert stray.poll() is None
