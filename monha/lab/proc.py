"""Processes for the lab: run a command, start a detached daemon, find and end processes by PID.

Ending a process always names it by PID (and, where recorded, its start time, so a reused PID
is never hit). A zombie counts as gone: PID 1 of some sandboxes reaps orphans only every ~2 s.
This module never matches processes by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

# Forks once: the child starts a new session and execs the daemon with its output in a log,
# the parent prints the child's PID and exits, so the daemon is reparented to init and never
# becomes a zombie of a long-lived caller (a test process, say).
_LAUNCHER = r"""
import os, sys
log, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0); os.dup2(fd, 1); os.dup2(fd, 2)
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
print(pid, flush=True)
"""


class CommandError(RuntimeError):
    """A command the lab ran failed."""


def run(
    argv: Sequence[str],
    *,
    timeout: float = 30.0,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion, capturing text output; raise CommandError if `check` and it fails."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        if check:
            raise CommandError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
        return subprocess.CompletedProcess(list(argv), 124, "", f"timed out after {timeout} s")
    if check and done.returncode != 0:
        output = done.stderr.strip() or done.stdout.strip()
        raise CommandError(f"exit {done.returncode}: {' '.join(argv)}\n{output}")
    return done


def spawn(argv: Sequence[str], log: Path) -> int:
    """Start argv detached (own session, output appended to `log`) and return its PID."""
    done = run([sys.executable, "-c", _LAUNCHER, str(log), *argv], timeout=10)
    return int(done.stdout.strip())


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """The one-letter state of the process (R, S, T, Z, ...) or None when there is none."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, start: int | None = None) -> bool:
    """True when the PID is a live process (not a zombie) and, if given, started at `start`.

    A killed multi-threaded process (mysqld) shows its leader as a zombie while its other
    threads are still exiting, and until the last one is gone its files, the listening socket
    among them, stay open: it counts as alive until then."""
    fields = _stat_fields(pid)
    if not fields:
        return False
    if fields[0] in ("Z", "X", "x") and not _other_threads_running(pid):
        return False
    return start is None or int(fields[19]) == start


def _other_threads_running(pid: int) -> bool:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        if tid == str(pid):
            continue
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if raw.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"], ["x"]):
            return True
    return False


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() else None


def ns_inode(path: Path) -> int | None:
    """The inode of a namespace file (a bind mount under /run/netns or a /proc/PID/ns link)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in_namespaces(inodes: Iterable[int]) -> list[int]:
    """Every live process whose net or mount namespace is one of `inodes`, except ourselves."""
    wanted = set(inodes)
    found: list[int] = []
    if not wanted:
        return found
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        for kind in ("net", "mnt"):
            try:
                ino = os.stat(f"/proc/{pid}/ns/{kind}").st_ino
            except OSError:
                continue
            if ino in wanted:
                if is_alive(pid):
                    found.append(pid)
                break
    return found


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of `pids` is alive; return those still alive at the deadline."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [p for p in remaining if is_alive(p)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return remaining


def kill_now(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL `pids` (after a SIGCONT, harmless to running ones) and wait; return survivors."""
    targets = [p for p in pids if is_alive(p)]
    signal_pids(targets, signal.SIGKILL)
    return wait_gone(targets, timeout)
