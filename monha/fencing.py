"""Fencing outside a failover plan: the new primary re-fences an old one that came back, and an
old primary fences itself when it learns its peer took over (split brain on two nodes).

Both look at the same facts about the peer (is its MySQL writable, does it hold the VIP, does
it hold a completion flag) and run the same idempotent steps as a failover plan, so they
cannot diverge from it. The rules that decide whether to self-fence are pure (monha.split_brain).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from monha import cluster_files, log
from monha.config import Config
from monha.model import Observation, ProbeStatus, Step, StepKind
from monha.mysql import MySQLError, Server
from monha.plan import PlanInputs, build_failover_plan
from monha.runners import Runner, RunnerError
from monha.split_brain import Epoch
from monha.steps import Nodes, Outcome, run_step

_log = log.get("monha.fencing")


@dataclass(frozen=True, slots=True)
class PeerFacts:
    """What could be learnt about the peer this tick; None where it could not be asked."""

    writable: bool | None
    holds_vip: bool | None
    flag: dict[str, Any] | None
    problems: tuple[str, ...] = ()
    epoch: Epoch | None = None


def vip_query(cfg: Config, node: str) -> list[str]:
    vip, iface = cfg.vip.address, cfg.node(node).interface
    return ["ip", "-o", "-4", "addr", "show", "dev", iface, "to", f"{vip}/32"]


async def holds_vip(runner: Runner, cfg: Config, node: str) -> bool:
    res = await runner.run(vip_query(cfg, node), cfg.probe.ssh_timeout_s)
    if not res.ok:
        raise RunnerError(f"listing {node}'s addresses: {res.summary()}")
    return bool(res.stdout.strip())


async def peer_facts(
    cfg: Config, peer: str, obs: Observation, mysql: Server, ssh: Runner, *, want_flag: bool
) -> PeerFacts:
    """Ask the peer what this tick's probes say can be asked, all at once."""
    problems: list[str] = []

    async def writable() -> bool | None:
        if obs.primary_mysql.status is not ProbeStatus.OK:
            return None
        try:
            return not await mysql.read_only(cfg.probe.mysql_timeout_s)
        except MySQLError as exc:
            problems.append(f"its read_only could not be read ({exc})")
            return None

    ssh_ok = obs.primary_ssh.status is ProbeStatus.OK

    async def vip() -> bool | None:
        if not ssh_ok:
            return None
        try:
            return await holds_vip(ssh, cfg, peer)
        except RunnerError as exc:
            problems.append(str(exc))
            return None

    async def flag() -> dict[str, Any] | None:
        if not (ssh_ok and want_flag):
            return None
        try:
            return await cluster_files.read_json_on(
                ssh, peer, cfg.failover.flag_file, cfg.probe.ssh_timeout_s
            )
        except cluster_files.ClusterFileError as exc:
            problems.append(str(exc))  # unreadable: no evidence either way, and said
            return None

    async def epoch() -> Epoch | None:
        if not (ssh_ok and want_flag):
            return None
        path = cluster_files.epoch_path(cfg.failover.flag_file)
        try:
            return await cluster_files.read_epoch_on(ssh, peer, path, cfg.probe.ssh_timeout_s)
        except cluster_files.ClusterFileError as exc:
            problems.append(str(exc))
            return None

    w, v, f, e = await asyncio.gather(writable(), vip(), flag(), epoch())
    return PeerFacts(w, v, f, tuple(problems), e)


def fence_steps(inputs: PlanInputs, target: str, other: str) -> dict[tuple[StepKind, str], Step]:
    """The failover plan's own steps against `target`, keyed by (kind, node)."""
    plan = build_failover_plan(inputs, target, other, ssh_reachable=True)
    return {(s.kind, s.node): s for s in plan}


async def refence_old_primary(
    inputs: PlanInputs, nodes: Nodes, old: str, me: str, facts: PeerFacts
) -> None:
    """The old primary is back and still writable or holding the VIP: fence it now."""
    _log.warning("old_primary_alive", node=old, writable=facts.writable, holds_vip=facts.holds_vip)
    steps = fence_steps(inputs, old, me)
    # read_only and the VIP at once: those two stop split-brain writes.
    urgent = [steps[(k, old)] for k in (StepKind.FENCE_MYSQL, StepKind.VIP_DOWN)]
    for step, outcome in zip(
        urgent, await asyncio.gather(*(run_step(s, nodes) for s in urgent)), strict=True
    ):
        _report("old_primary_refenced", step, outcome)
    # The old primary may have answered ARP for the VIP while it was back: announce the VIP
    # again from here so that clients' caches point at this node.
    await announce_vip(inputs, nodes, old, me, "old_primary_refenced")
    for (kind, node), step in steps.items():
        if kind is StepKind.STOP_SERVICE and node == old:
            _report("old_primary_refenced", step, await run_step(step, nodes))


async def announce_vip(
    inputs: PlanInputs, nodes: Nodes, old: str, me: str, event: str = "vip_announced"
) -> None:
    """The VIP up here again (it is: the step is idempotent) with its gratuitous ARP: clients
    whose caches learnt the old primary's address for it (it answered ARP while it was back,
    before it stepped down by itself) turn to this node."""
    announce = fence_steps(inputs, old, me)[(StepKind.VIP_UP, me)]
    _report(event, announce, await run_step(announce, nodes))


async def self_fence(inputs: PlanInputs, nodes: Nodes, me: str, peer: str, why: str) -> bool:
    """This node was the primary and its peer took over: give up the VIP, refuse writes, stop
    the cold-standby services here. True when read_only and the VIP removal both succeeded."""
    _log.warning("self_fence_started", node=me, peer=peer, reason=why)
    steps = fence_steps(inputs, me, peer)
    urgent = [steps[(k, me)] for k in (StepKind.FENCE_MYSQL, StepKind.VIP_DOWN)]
    outcomes = await asyncio.gather(*(run_step(s, nodes) for s in urgent))
    for step, outcome in zip(urgent, outcomes, strict=True):
        _report("self_fenced", step, outcome)
    for (kind, node), step in steps.items():
        if kind is StepKind.STOP_SERVICE and node == me:
            _report("self_fenced", step, await run_step(step, nodes))
    return all(o.ok for o in outcomes)


async def return_to_service(inputs: PlanInputs, nodes: Nodes, me: str, peer: str, why: str) -> bool:
    """This node stepped down for isolation and its peer was found not promoted: serve again
    (read_only off, the VIP, the cold-standby services), with the failover plan's own steps.
    No new epoch: this node's claim is still the newest. True when all of them succeeded."""
    _log.warning("return_to_service_started", node=me, peer=peer, reason=why)
    plan = build_failover_plan(inputs, peer, me, ssh_reachable=True)
    kinds = (StepKind.PROMOTE, StepKind.VIP_UP, StepKind.START_SERVICE, StepKind.RESTART_AGENT)
    ok = True
    for step in (s for s in plan if s.node == me and s.kind in kinds):
        outcome = await run_step(step, nodes)
        _report("returned_to_service", step, outcome)
        ok = ok and outcome.ok
        if not outcome.ok and step.kind in (StepKind.PROMOTE, StepKind.VIP_UP):
            break  # no VIP on a node that is not writable, no services without the VIP
    return ok


def _report(event: str, step: Step, outcome: Outcome) -> None:
    _log.log(
        20 if outcome.ok else 40,
        event,
        node=step.node,
        step=step.key,
        ok=outcome.ok,
        detail=outcome.detail,
    )
