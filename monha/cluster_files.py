"""The small files monha keeps on both nodes: the cluster epoch and the completion flag.

Job: read and write them on a node through its runner (the local one, or SSH to the peer), so
one daemon can raise the epoch where a promotion happens, copy the flag to the peer, and read
or clear the peer's. Writes are atomic (a temporary file, fsync, rename) with mode 0600 in a
0700 directory; the path travels as a positional argument of a fixed script, never as text
spliced into a shell command.

Must not: treat an unreadable or corrupt file as absent (that would turn "an epoch we cannot
read" into "no epoch" and weaken the split-brain rule: it raises instead), or wait without a
timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from monha import log
from monha.runners import CommandResult, Runner, RunnerError, as_root
from monha.split_brain import Epoch, next_epoch
from monha.steps import Nodes

EPOCH_NAME = "epoch.json"

# $1: the file. Written beside itself, synced, then renamed over it.
_WRITE = (
    'set -e; umask 077; d=$(dirname -- "$1"); mkdir -p -- "$d"; t="$1.monha-tmp"; '
    'cat > "$t"; sync -- "$t" 2>/dev/null || sync; mv -f -- "$t" "$1"'
)
# $1: the file. Exit 3 when it is absent, so "absent" is never confused with "unreadable".
_READ = 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi'
_REMOVE = 'if [ -e "$1" ]; then rm -f -- "$1"; else exit 3; fi'


class ClusterFileError(Exception):
    """A node's copy could not be read, parsed or written; the message names node and file."""


async def _run(
    runner: Runner, argv: list[str], timeout_s: float, data: bytes | None = None
) -> CommandResult:
    """The runner's call, bounded here as well: a runner that does not keep its own
    timeout (a hung connection) must not hold a failover step or a tick."""
    try:
        async with asyncio.timeout(timeout_s + 1.0):
            return await runner.run(argv, timeout_s, input=data)
    except TimeoutError:
        raise RunnerError(f"{runner.describe()}: no answer in {timeout_s + 1.0:g} s") from None
    except RunnerError:
        raise
    except Exception as exc:
        # A runner that let a library error through (a connection lost mid-command): the
        # file is as unreadable as on any other failure, and the tick that asked goes on.
        # Said at error level: the runner should have kept it in.
        log.get("monha.cluster_files").error(
            "runner_unexpected_error", runner=runner.describe(), error=repr(exc)
        )
        raise RunnerError(f"{runner.describe()}: unexpected {type(exc).__name__}: {exc}") from exc


def epoch_path(flag_file: str) -> str:
    """The epoch lives beside the completion flag (both under /var/lib/monha)."""
    return str(Path(flag_file).parent / EPOCH_NAME)


async def _script(
    runner: Runner,
    node: str,
    doing: str,
    script: str,
    path: str,
    timeout_s: float,
    data: bytes | None = None,
) -> CommandResult | None:
    """Run one of the fixed scripts on `path`; None when it said the file is absent (3)."""
    try:
        res = await _run(as_root(runner), ["sh", "-c", script, "sh", path], timeout_s, data)
    except RunnerError as exc:
        raise ClusterFileError(f"{doing} {path} on {node}: {exc}") from None
    if res.exit_status == 3:
        return None
    if not res.ok:
        raise ClusterFileError(f"{doing} {path} on {node}: {res.summary()}")
    return res


async def read_json_on(
    runner: Runner, node: str, path: str, timeout_s: float
) -> dict[str, Any] | None:
    """The JSON object in `path` on `node`; None when the file does not exist."""
    res = await _script(runner, node, "reading", _READ, path, timeout_s)
    if res is None:
        return None
    try:
        data = json.loads(res.stdout)
    except ValueError:
        raise ClusterFileError(f"{path} on {node} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ClusterFileError(f"{path} on {node} does not hold a JSON object")
    return data


async def write_json_on(
    runner: Runner, node: str, path: str, data: dict[str, Any], timeout_s: float
) -> None:
    body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    if await _script(runner, node, "writing", _WRITE, path, timeout_s, body) is None:
        raise ClusterFileError(f"writing {path} on {node}: exit 3")  # no "absent" for a write


async def remove_on(runner: Runner, node: str, path: str, timeout_s: float) -> bool:
    """Remove `path` on `node`; True when it was there."""
    return await _script(runner, node, "removing", _REMOVE, path, timeout_s) is not None


async def read_epoch_on(runner: Runner, node: str, path: str, timeout_s: float) -> Epoch | None:
    data = await read_json_on(runner, node, path, timeout_s)
    if data is None:
        return None
    try:
        return Epoch.from_dict(data)
    except ValueError as exc:
        raise ClusterFileError(f"{path} on {node}: {exc}") from None


async def raise_epoch(
    nodes: Nodes,
    path: str,
    promoted: str,
    other: str,
    *,
    by: str,
    plan: str,
    timeout_s: float,
    other_timeout_s: float,
) -> tuple[Epoch, str]:
    """Record a new epoch naming `promoted`, before it turns writable: on `promoted` it must
    succeed (ClusterFileError otherwise), on `other` it is tried within `other_timeout_s`
    (0: not tried) and reported. The new number is one above every epoch that could be read;
    an unreadable copy on `promoted` stops it (its number could be the highest)."""

    if other not in nodes.runners:
        other_timeout_s = 0.0  # no way to reach it: not tried

    async def theirs() -> tuple[Epoch | None, str]:
        if other_timeout_s <= 0:
            return None, ""
        try:
            return await read_epoch_on(nodes.runners[other], other, path, other_timeout_s), ""
        except ClusterFileError as exc:
            return None, f"; {other}'s epoch not read ({exc})"

    (mine, (peer, note)) = await asyncio.gather(
        read_epoch_on(nodes.runners[promoted], promoted, path, timeout_s), theirs()
    )
    epoch = next_epoch([mine, peer], promoted, time.time(), by, plan)
    await write_json_on(nodes.runners[promoted], promoted, path, epoch.to_dict(), timeout_s)
    where = f"on {promoted} only"
    if other_timeout_s > 0:
        try:
            await write_json_on(nodes.runners[other], other, path, epoch.to_dict(), other_timeout_s)
            where = f"on {promoted} and {other}"
        except ClusterFileError as exc:
            where = f"on {promoted} only ({exc})"
    return epoch, f"epoch {epoch.number} ({promoted}) recorded {where}{note}"
