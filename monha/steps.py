"""What each kind of plan step does, against real nodes: the thin I/O behind `executor`.

Every step is idempotent, because a daemon killed mid-failover runs the rest of the plan again
after a restart: removing an absent VIP, adding a present one, promoting a primary, stopping a
stopped service all succeed. Each step is bounded by its own timeout (the executor enforces it);
commands are argv lists, run locally or quoted argument by argument over SSH.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monha import probes
from monha.model import Step, StepKind
from monha.mysql import MySQLError, Server
from monha.runners import CommandResult, Runner, RunnerError


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Nodes:
    """How to reach each node: a runner for commands and a MySQL server handle."""

    runners: Mapping[str, Runner]
    mysql: Mapping[str, Server]
    background: set[asyncio.Task[Any]] = field(default_factory=set)


# What `ip` says when the address is already absent (older and newer iproute2) or already
# present: the step's goal is reached either way.
_ABSENT = ("Cannot assign requested address", "Address not found")
_PRESENT = ("File exists", "Address already assigned")


def _text(result: CommandResult) -> str:
    return (result.stderr or result.stdout).decode(errors="replace").strip()


async def _run(nodes: Nodes, step: Step, argv: list[str] | tuple[str, ...]) -> CommandResult:
    runner = nodes.runners[step.node]
    return await runner.run(list(argv), step.timeout_s)


def _command_outcome(result: CommandResult, what: str) -> Outcome:
    if result.ok:
        return Outcome(True, f"{what}: exit 0 in {result.duration_s:.2f} s")
    return Outcome(False, f"{what}: {result.summary()}")


async def vip_down(step: Step, nodes: Nodes) -> Outcome:
    vip = f"{step.arg('address')}/{step.arg('prefix')}"
    result = await _run(nodes, step, ["ip", "addr", "del", vip, "dev", step.arg("interface")])
    if result.ok:
        return Outcome(True, f"removed {vip} from {step.arg('interface')}")
    if any(text in _text(result) for text in _ABSENT):
        return Outcome(True, f"{vip} was not on {step.arg('interface')}")
    return Outcome(False, f"removing {vip}: {result.summary()}")


async def vip_up(step: Step, nodes: Nodes) -> Outcome:
    vip = f"{step.arg('address')}/{step.arg('prefix')}"
    iface = step.arg("interface")
    argv = ["ip", "addr", "add", vip, "dev", iface, "label", step.arg("label")]
    result = await _run(nodes, step, argv)
    if not result.ok and not any(text in _text(result) for text in _PRESENT):
        return Outcome(False, f"adding {vip}: {result.summary()}")
    count = int(step.arg("arp_count", "0") or 0)
    detail = f"{vip} up on {iface} as {step.arg('label')}"
    if count > 0:
        detail += "; " + await _start_arping(step, nodes, iface, count)
    return Outcome(True, detail)


async def _start_arping(step: Step, nodes: Nodes, iface: str, count: int) -> str:
    """Send gratuitous ARP without waiting for it: iputils arping paces one packet a second.

    The first packet leaves at once; the rest are sent by a background process whose end is
    awaited by a tracked task (the executor drains those at shutdown).
    """
    argv = ["arping", "-U", "-c", str(count), "-I", iface, step.arg("address")]
    runner = nodes.runners[step.node]
    task = asyncio.get_running_loop().create_task(runner.run(argv, count + 5.0))
    nodes.background.add(task)
    task.add_done_callback(nodes.background.discard)
    # A broken arping (wrong package, no such device) fails at once: report it if so.
    done, _ = await asyncio.wait({task}, timeout=0.3)
    if done:
        result = task.result()
        if not result.ok:
            return f"gratuitous ARP failed: {result.summary()}"
    return f"sending {count} gratuitous ARP (1/s)"


async def command_step(step: Step, nodes: Nodes) -> Outcome:
    name = step.arg("name") or step.arg("target") or str(step.kind)
    return _command_outcome(await _run(nodes, step, step.argv), f"{step.kind} {name}")


async def fence_mysql(step: Step, nodes: Nodes) -> Outcome:
    """read_only on the old primary; if its MySQL does not answer, stop it for good if we can."""
    server = nodes.mysql[step.node]
    try:
        await server.set_read_only(True, step.timeout_s)
        return Outcome(True, f"read_only on at {server.describe()}")
    except MySQLError as exc:
        reason = str(exc)
    if step.argv:
        result = await _run(nodes, step, step.argv)
        return _command_outcome(result, f"MySQL did not answer ({reason}); stop command")
    # Nothing to set: the server is down. If a supervisor restarts it writable, the re-fence
    # watch after the failover sets read_only then.
    return Outcome(False, f"MySQL did not answer ({reason}); no mysql.stop_command configured")


async def set_read_only(step: Step, nodes: Nodes) -> Outcome:
    server = nodes.mysql[step.node]
    await server.set_read_only(True, step.timeout_s)
    coords = await server.binlog_coordinates(step.timeout_s)
    return Outcome(
        True,
        f"read_only on; binlog at {coords.file}:{coords.position}",
        {"old_primary_final_file": coords.file, "old_primary_final_pos": str(coords.position)},
    )


async def catch_up(step: Step, nodes: Nodes) -> Outcome:
    ok, detail = await nodes.mysql[step.node].wait_caught_up(step.timeout_s)
    return Outcome(ok, detail)


async def promote(step: Step, nodes: Nodes) -> Outcome:
    server = nodes.mysql[step.node]
    before = await server.replica_status(step.timeout_s)
    coords = await server.promote(step.timeout_s)
    data = {
        "new_primary_binlog_file": coords.file,
        "new_primary_binlog_pos": str(coords.position),
        "new_primary_gtid": coords.gtid,
    }
    if before.configured and before.exec_position is not None:
        # Where the replica stopped in the old primary's binary log: what failback compares.
        data["applied_from_old_file"] = before.exec_position.file
        data["applied_from_old_pos"] = str(before.exec_position.position)
        data["applied_from_old_gtid"] = before.gtid_slave_pos
    return Outcome(True, f"writable; binlog at {coords.file}:{coords.position}", data)


async def make_replica(step: Step, nodes: Nodes) -> Outcome:
    raise NotImplementedError("switchover's make_replica is issue 5")


async def check_hot(step: Step, nodes: Nodes) -> Outcome:
    result = await probes.http_get(
        step.arg("url"), int(step.arg("expect_status", "200")), step.timeout_s
    )
    return Outcome(result.answered, f"{step.arg('url')}: {result.status} {result.detail}")


STEPS = {
    StepKind.VIP_DOWN: vip_down,
    StepKind.VIP_UP: vip_up,
    StepKind.STOP_SERVICE: command_step,
    StepKind.START_SERVICE: command_step,
    StepKind.RESTART_AGENT: command_step,
    StepKind.FENCE_COMMAND: command_step,
    StepKind.FENCE_MYSQL: fence_mysql,
    StepKind.SET_READ_ONLY: set_read_only,
    StepKind.CATCH_UP: catch_up,
    StepKind.PROMOTE: promote,
    StepKind.MAKE_REPLICA: make_replica,
    StepKind.CHECK_HOT: check_hot,
}


async def run_step(step: Step, nodes: Nodes) -> Outcome:
    """Run one step within its timeout; every failure becomes an Outcome, never an exception."""
    impl = STEPS[step.kind]
    try:
        async with asyncio.timeout(step.timeout_s):
            return await impl(step, nodes)
    except TimeoutError:
        return Outcome(False, f"timed out after {step.timeout_s:g} s")
    except (MySQLError, RunnerError, OSError) as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")


async def drain_background(nodes: Nodes, timeout_s: float) -> None:
    if not nodes.background:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*nodes.background, return_exceptions=True)
    for task in list(nodes.background):
        task.cancel()
