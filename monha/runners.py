"""Run commands: locally as an asyncio subprocess, or on a peer over SSH (asyncssh).

Job: run one argv with a timeout and report exactly what happened (`CommandResult`): exit
status, output, duration, whether it was cut off by the timeout. Both runners share the
`Runner` protocol so the executor does not care where a step runs.

Must not: go through a shell locally (argv is exec'd as given); send an unquoted argument over
SSH (every remote command is `shlex.join(argv)`, so the remote shell sees each argument as one
literal word); trust an unknown or changed host key; retry a command that may have started
(only a session that could not even be opened is retried, once, on a fresh connection); log.

"Could not run at all" (no such program, SSH unreachable, host key refused) raises
`RunnerError`; so does an SSH connection lost while the command ran (`RunnerLost`: the command
may or may not have done its work, and the runner reconnects on the next call). Everything
else after the command started is a `CommandResult`: no asyncssh error escapes `run`.

Output is read as it arrives. `max_output_bytes` bounds what is kept of each stream: once
stdout or stderr exceeds it the command is stopped and its result is marked `truncated`, so
a command that prints gigabytes (a binlog dump of a replica days behind) costs at most the
limit plus one read chunk of memory, not the whole output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import asyncssh

from monha.model import ProbeResult, ProbeStatus

_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one command ended. `exit_status` is None when it was killed by the timeout, or
    stopped because it printed more than `max_output_bytes` (`truncated`: the output kept is
    only its start, at most the limit plus one read chunk).

    Locally a command killed by a signal has a negative exit status (-signal number); over SSH
    such a command reports -1, as asyncssh does.
    """

    argv: tuple[str, ...]
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and not self.truncated

    def summary(self, limit: int = 200) -> str:
        """One line for a journal or log: how it ended and the start of stderr (or stdout)."""
        if self.timed_out:
            how = f"timed out after {self.duration_s:.1f} s"
        elif self.truncated:
            size = max(len(self.stdout), len(self.stderr))
            how = f"stopped after {size} bytes of output (over its limit)"
        else:
            how = f"exit {self.exit_status}"
        # The start of a cut-off stdout is a fragment of some bulk output: not worth a line.
        shown = self.stderr if self.truncated else (self.stderr or self.stdout)
        text = shown.decode("utf-8", "replace").strip().replace("\n", " | ")
        return f"{how}: {text[:limit]}" if text else how


class RunnerError(Exception):
    """The command could not be run at all (it never started)."""


class RunnerTimeout(RunnerError):
    """No connection or session could be opened within the time allowed."""


class RunnerLost(RunnerError):
    """The SSH connection broke while the command ran: it may or may not have done its work.

    Unlike the other RunnerErrors the command may have started, so a caller must not assume
    it did nothing; the broken connection is dropped and the next call connects afresh.
    """


class HostKeyError(RunnerError):
    """The peer's SSH host key is not the one recorded in known_hosts (or none is recorded)."""

    def __init__(self, host: str, port: int, known_hosts: str, reason: str) -> None:
        self.host, self.port, self.known_hosts, self.reason = host, port, known_hosts, reason
        super().__init__(
            f"host key of {host} port {port} {reason} (checked against {known_hosts}); "
            "refusing to connect"
        )


@runtime_checkable
class Runner(Protocol):
    """Where a plan step's commands run."""

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult: ...

    def describe(self) -> str: ...

    async def close(self) -> None: ...


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes):
        # A string here is almost certainly a shell command line: refuse rather than split.
        raise TypeError("argv must be a sequence of arguments, not a string")
    if not argv:
        raise ValueError("argv is empty")
    out = tuple(argv)
    for a in out:
        if not isinstance(a, str):
            raise TypeError(f"argv elements must be str, got {type(a).__name__}")
    return out


async def _pump(stream: Any, buf: bytearray, limit: int | None) -> bool:
    """Read `stream` into `buf` until EOF, or until `buf` holds more than `limit` bytes.

    True when it stopped at the limit. Reading stops there, so the pipe (or the SSH window)
    fills and the writer blocks instead of the output piling up in this process.
    """
    while chunk := await stream.read(_READ_CHUNK):
        buf += chunk
        if limit is not None and len(buf) > limit:
            return True
    return False


async def _feed(stdin: Any, data: bytes | None) -> None:
    if stdin is None:
        return
    # The program may exit without reading its input: that is its business, not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, asyncssh.Error):
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()


class LocalRunner:
    """Runs argv on this machine, each command in its own process group.

    The process group is what a timeout kills, so a command's children (a shell script's
    pipeline, say) die with it and nothing keeps running after the step gave up on it.

    `privilege_prefix` is not applied by `run`: it is what `as_root` puts before a privileged
    command (see PrivilegedRunner).
    """

    def __init__(self, *, privilege_prefix: Sequence[str] = ()) -> None:
        self.privilege_prefix = tuple(privilege_prefix)

    def describe(self) -> str:
        return "local"

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
        args = _check_argv(argv)
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group (pgid == pid)
            )
        except OSError as exc:
            raise RunnerError(f"cannot run {args[0]!r}: {exc.strerror or exc}") from None
        out, err = bytearray(), bytearray()
        timed_out = truncated = False

        async def pump(stream: Any, buf: bytearray) -> None:
            nonlocal truncated
            if await _pump(stream, buf, max_output_bytes):
                # Over the limit: end the whole group now. Its pipes then reach EOF, so the
                # other stream's pump and proc.wait() finish at once.
                truncated = True
                _kill_group(proc.pid)

        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(
                    pump(proc.stdout, out), pump(proc.stderr, err), _feed(proc.stdin, input)
                )
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            # Also on cancellation from outside: never leave the command's tree running.
            if proc.returncode is None or timed_out:
                _kill_group(proc.pid)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await proc.wait()  # reap it
        return CommandResult(
            args,
            None if timed_out or truncated else proc.returncode,
            bytes(out),
            bytes(err),
            time.monotonic() - start,
            timed_out,
            truncated,
        )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class SshRunner:
    """Runs argv on one peer over SSH, reusing one connection and re-opening it when broken.

    The host key must be in `known_hosts` (OpenSSH format; `[host]:port` entries for a port
    other than 22). No agent, no ~/.ssh/config, no password: only `key_file`.

    Closing the channel on a timeout does not stop the remote command: OpenSSH's sshd leaves a
    pty-less command running and refuses "signal" requests ("session signalling requires
    privilege separation", seen with OpenSSH 9.2). So, with `remote_timeout` (the default),
    the remote argv is prefixed with coreutils' `timeout -k 1 T+1`: the peer itself ends the
    command's whole process group one second after the local timeout gave up on it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        key_file: str | Path,
        known_hosts: str | Path,
        connect_timeout_s: float,
        *,
        remote_timeout: bool = True,
        privilege_prefix: Sequence[str] = (),
    ) -> None:
        self.host, self.port, self.user = host, port, user
        self.privilege_prefix = tuple(privilege_prefix)  # for `as_root`, never applied by run
        self.remote_timeout = remote_timeout
        self.key_file, self.known_hosts = str(key_file), str(known_hosts)
        self.connect_timeout_s = connect_timeout_s
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        # asyncssh logs every connection and channel at INFO; routing stays with the log module.
        logging.getLogger("asyncssh").setLevel(logging.WARNING)

    def describe(self) -> str:
        return f"ssh {self.user}@{self.host}:{self.port}"

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.wait_closed()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                return await asyncssh.connect(
                    self.host,
                    self.port,
                    username=self.user,
                    client_keys=[self.key_file],
                    known_hosts=self.known_hosts,
                    agent_path=None,
                    config=[],  # ignore the machine's ~/.ssh/config
                    password=None,
                    kbdint_auth=False,
                    connect_timeout=self.connect_timeout_s,
                    # A silent peer is noticed in about three seconds, not TCP's minutes.
                    keepalive_interval=1,
                    keepalive_count_max=3,
                )
        except asyncssh.HostKeyNotVerifiable:
            raise HostKeyError(
                self.host, self.port, self.known_hosts, self._key_problem()
            ) from None
        except TimeoutError:
            raise RunnerTimeout(
                f"{self.describe()}: no SSH connection within {self.connect_timeout_s:g} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise RunnerError(f"{self.describe()}: cannot connect: {_ssh_error(exc)}") from None

    def _key_problem(self) -> str:
        """Why the key was refused: no entry for the host, or an entry with a different key."""
        try:
            known = asyncssh.read_known_hosts(self.known_hosts)
        except (OSError, ValueError):
            return "could not be checked: known_hosts is unreadable"
        port = None if self.port == 22 else self.port
        host_keys, ca_keys, *_ = known.match(self.host, self.host, port)
        if host_keys or ca_keys:
            return "CHANGED: it does not match the key recorded"
        return "is UNKNOWN: no key is recorded for it"

    def _forget(self, conn: asyncssh.SSHClientConnection) -> None:
        """Drop a broken connection (unless another call has already replaced it)."""
        if self._conn is conn:
            self._conn = None
        conn.abort()  # no orderly close over a connection that is gone

    async def _session(
        self, command: str
    ) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHClientProcess[bytes]]:
        async with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.is_closed():
                    self._conn = None
                    self._conn = await self._connect()
                try:
                    conn = self._conn
                    return conn, await conn.create_process(command, encoding=None)
                except (
                    asyncssh.ChannelOpenError,
                    asyncssh.ConnectionLost,
                    asyncssh.DisconnectError,
                    OSError,
                ):
                    # The session never opened, so the command never started: a fresh
                    # connection may be tried once (the old one was broken or closed by the peer).
                    stale, self._conn = self._conn, None
                    stale.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        args = _check_argv(argv)
        remote = (
            ["timeout", "-k", "1", f"{timeout_s + 1:.3f}", *args]
            if self.remote_timeout
            else list(args)
        )
        command = shlex.join(remote)
        start = time.monotonic()
        out, err = bytearray(), bytearray()
        timed_out = truncated = False
        proc: asyncssh.SSHClientProcess[bytes] | None = None

        async def pump(stream: Any, buf: bytearray) -> None:
            nonlocal truncated
            if await _pump(stream, buf, max_output_bytes):
                # Over the limit: close the channel. sshd then closes the command's pipes (it
                # dies of SIGPIPE at its next write) and both readers see EOF.
                truncated = True
                assert proc is not None
                proc.close()

        try:
            async with asyncio.timeout(timeout_s):
                try:
                    conn, proc = await self._session(command)
                except (asyncssh.Error, OSError) as exc:
                    raise RunnerError(
                        f"{self.describe()}: cannot start a session: {_ssh_error(exc)}"
                    ) from None
                lost = ""
                try:
                    stdin = proc.stdin if input is not None else None
                    if input is None:
                        proc.stdin.write_eof()
                    await asyncio.gather(
                        pump(proc.stdout, out), pump(proc.stderr, err), _feed_ssh(stdin, input)
                    )
                    if not truncated:
                        await proc.wait()
                        if proc.exit_status is None:
                            # The channel closed without saying how the command ended (its
                            # connection was closed on this side): that is a lost session too.
                            lost = "the session closed without an exit status"
                except (asyncssh.Error, OSError) as exc:
                    lost = _ssh_error(exc)
                if lost:
                    # The session was open, so the command may have run (or be running still,
                    # until the remote `timeout` wrapper ends it): say so, never retry it. The
                    # connection is useless now; the next call opens a fresh one.
                    self._forget(conn)
                    raise RunnerLost(
                        f"{self.describe()}: connection lost while running {args[0]!r} "
                        f"(it may or may not have run): {lost}"
                    )
        except TimeoutError:
            if proc is None:
                # No session in time: the connection is as good as dead (a cut link leaves it
                # hanging for minutes). Drop it, so the next call connects afresh: after a
                # partition heals, that is what reaches the peer again within a tick.
                stale, self._conn = self._conn, None
                if stale is not None:
                    stale.close()
                raise RunnerTimeout(
                    f"{self.describe()}: no session within {timeout_s:g} s"
                ) from None
            timed_out = True
        finally:
            if proc is not None and (timed_out or truncated or proc.exit_status is None):
                # Also on cancellation from outside. The remote `timeout` wrapper ends the
                # command itself (see the class docstring).
                proc.close()
        assert proc is not None
        return CommandResult(
            args,
            None if timed_out or truncated else proc.exit_status,
            bytes(out),
            bytes(err),
            time.monotonic() - start,
            timed_out,
            truncated,
        )

    async def reachable(self, timeout_s: float, *, name: str = "ssh") -> ProbeResult:
        """Connect (or reuse the connection) and run `true`; never raises."""
        start = time.monotonic()
        try:
            result = await self.run(["true"], timeout_s)
        except HostKeyError as exc:
            return ProbeResult(
                name, self.host, ProbeStatus.FAILED, time.monotonic() - start, str(exc)
            )
        except RunnerError as exc:
            status = ProbeStatus.TIMEOUT if isinstance(exc, RunnerTimeout) else ProbeStatus.FAILED
            return ProbeResult(name, self.host, status, time.monotonic() - start, str(exc))
        if result.timed_out:
            return ProbeResult(
                name, self.host, ProbeStatus.TIMEOUT, result.duration_s, result.summary()
            )
        if not result.ok:
            return ProbeResult(
                name, self.host, ProbeStatus.FAILED, result.duration_s, result.summary()
            )
        return ProbeResult(name, self.host, ProbeStatus.OK, result.duration_s)


class PrivilegedRunner:
    """A runner whose every command is prefixed with the node's privilege prefix (`sudo -n`).

    Made by `as_root` for the commands monha itself needs root for on a node reached as a
    user that is not root: the VIP (`ip addr add/del`, `arping`), stopping or killing mysqld,
    the flag, epoch and journal files, reading and applying binary logs. Commands the operator
    wrote (cold-standby services, agents, the fence command) run through the plain runner, as
    written: the operator chose their user and may have put `sudo` in them already.

    The prefix goes inside the SSH runner's `timeout` wrapper (`timeout ... sudo -n ip ...`),
    so sudoers needs rules for the commands themselves, never for `timeout`; sudo relays the
    wrapper's signals to the command.
    """

    def __init__(self, inner: Runner, prefix: Sequence[str]) -> None:
        if not prefix:
            raise ValueError("a privileged runner needs a non-empty prefix")
        self.inner, self.prefix = inner, tuple(prefix)

    def describe(self) -> str:
        return f"{self.inner.describe()} via {' '.join(self.prefix)}"

    async def close(self) -> None:
        await self.inner.close()

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        args = _check_argv(argv)
        return await self.inner.run(
            [*self.prefix, *args], timeout_s, input, max_output_bytes=max_output_bytes
        )


def as_root(runner: Runner) -> Runner:
    """The runner for a command that needs root on the runner's node: prefixed with its
    `privilege_prefix` when it has one, else the runner itself (root already, or a test's
    fake). Never prefixes twice."""
    if isinstance(runner, PrivilegedRunner):
        return runner
    prefix: tuple[str, ...] = getattr(runner, "privilege_prefix", ())
    return PrivilegedRunner(runner, prefix) if prefix else runner


def unprivileged(runner: Runner) -> Runner:
    """The runner for a command the operator wrote: never prefixed."""
    return runner.inner if isinstance(runner, PrivilegedRunner) else runner


async def _feed_ssh(stdin: Any, data: bytes | None) -> None:
    if stdin is None or data is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, asyncssh.Error):
        stdin.write(data)
        await stdin.drain()
        stdin.write_eof()


def _ssh_error(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__
