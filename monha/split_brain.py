"""Split brain on two nodes: when a primary must step down, and when it may come back. Pure.

Job: `peer_took_over` says whether this node, a primary, must fence itself because of what its
peer shows; `isolated` whether it must step down because it heard neither its peer nor any
witness for too long; `may_return` whether a node that stepped down for isolation may serve
again. The shell (monha.daemon, monha.fencing) gathers the facts and runs the steps.

Epochs (issue 12). Every promotion raises a cluster epoch and records it, with the promoted
node's name, on the promoted node before it turns writable (and on the peer when reachable).
The newest epoch a node knows of says who the primary is meant to be: a claim older than that
is no reason to step down. That is what lets a switchover back to the old primary stand while
the other node still holds the completion flag of the failover before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monha.config import Config
from monha.plan import (
    PLAN_STALE_S,
    PLAN_STALE_SKEW_S,
    changed_a_node,
    journal_done,
    last_active_at,
    waits_for_step_down,
)


@dataclass(frozen=True, slots=True)
class Epoch:
    """One promotion: the cluster epoch it raised and the node it made primary."""

    number: int
    primary: str
    at: float = 0.0
    by: str = ""  # "failover" or "switchover"
    plan: str = ""  # the journal record's id

    def to_dict(self) -> dict[str, Any]:
        return {
            "monha_epoch": 1,
            "epoch": self.number,
            "primary": self.primary,
            "at": self.at,
            "by": self.by,
            "plan": self.plan,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Epoch:
        """Raises ValueError naming the field that is wrong."""
        number, primary = data.get("epoch"), data.get("primary")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"'epoch' must be a non-negative integer, not {number!r}")
        if not isinstance(primary, str) or not primary:
            raise ValueError(f"'primary' must be a node name, not {primary!r}")
        at = data.get("at", 0.0)
        return cls(
            number,
            primary,
            float(at) if isinstance(at, int | float) else 0.0,
            str(data.get("by", "")),
            str(data.get("plan", "")),
        )


def newest(epochs: Iterable[Epoch | None]) -> Epoch | None:
    """The newest of the epochs known (None when none is). Two promotions that could not read
    each other's epoch may share a number: the tie goes to the greater node name, the same on
    both nodes, so exactly one of the two claims stands."""
    known = [e for e in epochs if e is not None]
    return max(known, key=lambda e: (e.number, e.primary)) if known else None


def flag_epoch(flag: Mapping[str, Any] | None) -> Epoch | None:
    """The epoch a completion flag records (flags written before epochs existed have none)."""
    if not flag or not isinstance(flag.get("epoch"), dict):
        return None
    try:
        return Epoch.from_dict(flag["epoch"])
    except ValueError:
        return None


def next_epoch(known: Iterable[Epoch | None], primary: str, at: float, by: str, plan: str) -> Epoch:
    """The epoch a promotion of `primary` raises: one above every epoch known."""
    top = newest(known)
    return Epoch((top.number if top else 0) + 1, primary, at, by, plan)


def peer_took_over(
    peer: str,
    *,
    holds_vip: bool | None,
    writable: bool | None,
    flag: Mapping[str, Any] | None,
    epochs: Iterable[Epoch | None] = (),
) -> str | None:
    """Why this node, a primary, must fence itself now; None when it must not.

    `epochs` are the epoch records this node could read (its own, the peer's; the flag's is
    added here). When the newest names this node, nothing the peer shows is a reason: its flag
    or VIP belong to an older claim (the peer's own monha steps down for ours). When the newest
    names the peer, any sign of it serving is enough: its flag, its VIP, or its being writable.
    With no epoch anywhere (a cluster that never failed over under epochs) the older rule holds:
    a flag naming the peer or the VIP on it, but not mere writability — with two writable
    nodes and no other sign, fencing here could leave no primary, and monitoring comes first.
    """
    top = newest([*epochs, flag_epoch(flag)])
    flag_names_peer = flag is not None and flag.get("new_primary") == peer
    if top is not None and top.primary != peer:
        return None
    if flag_names_peer:
        assert flag is not None
        return (
            f"{peer} holds a completion flag naming it the new primary "
            f"(failover {flag.get('failover_id', '?')}"
            + (f", epoch {top.number}" if top else "")
            + ")"
        )
    if holds_vip:
        return (
            f"{peer} holds the VIP"
            + (" and is writable" if writable else "")
            + (f" (epoch {top.number} names it)" if top else "")
        )
    if top is not None and writable:
        return f"{peer} is writable and epoch {top.number} ({top.by or 'promotion'}) names it"
    return None


def isolation_limit(cfg: Config) -> float:
    """How long a primary may hear nobody before it steps down: `failover.isolation_fence_s`,
    or by default the standby's detection time. The standby's failover, when SSH cannot reach
    the old primary, waits until this much (plus slack) after it last heard it before it
    promotes (`Config.peer_step_down_s`): the isolated side is read_only first."""
    return cfg.isolation_limit_s()


def isolation_fencing(cfg: Config) -> str:
    """One line for check-config and status: whether and when this primary steps down."""
    if cfg.failover.self_fence_on_isolation == "off":
        return "off (failover.self_fence_on_isolation): an isolated primary keeps serving"
    if not cfg.witness:
        return (
            "inactive: no witness configured, and without one a dead standby cannot be told "
            "from isolation (configure two witnesses)"
        )
    return (
        f"on: a primary that hears neither its peer nor any of {len(cfg.witness)} witness(es) "
        f"for {isolation_limit(cfg):g} s steps down"
        + (
            f" (the default: the standby's detection time, {cfg.probe.failures_before_failover}"
            f" failed probes x {cfg.probe.interval_s:g} s)"
            if cfg.failover.isolation_fence_s is None
            else " (failover.isolation_fence_s)"
        )
        + (
            " (one witness: its loss plus a cut link stops the service; use two)"
            if len(cfg.witness) == 1
            else ""
        )
        + (
            "; no witness has ssh_user and no fence command is configured: a primary SSH "
            "cannot reach (a dead host, a cut link) is never failed over automatically"
            if cfg.fence is None and not any(w.ssh_user for w in cfg.witness)
            else ""
        )
        + (
            "; witness(es) without ssh_user not counted beside those with it: "
            + ", ".join(w.name for w in cfg.witness if not w.ssh_user)
            if any(w.ssh_user for w in cfg.witness) and not all(w.ssh_user for w in cfg.witness)
            else ""
        )
    )


def heard_at(
    now: float,
    last_heard_at: float | None,
    away_s: float,
    limit_s: float,
    *,
    peer: bool,
    witness: bool,
) -> float | None:
    """When this node last heard anyone, as the isolation rule counts it, after this tick
    (`peer`, `witness`: whether the peer, a witness answered now). `away_s` is how long this
    node was away since its last tick (frozen, suspended: time its own work and its sleep
    between ticks do not account for). After `limit_s` or more away a witness's answer does
    not count at the first tick: what the peer did meanwhile only the peer can say, and it may
    have promoted while this node could not step down; so a primary that comes back and
    reaches only a witness steps down at once."""
    if peer:
        return now
    counts = witness and away_s < limit_s
    if last_heard_at is None:
        # A daemon that starts hearing nobody (or was away since it started) cannot know how
        # long that has lasted (its host may just have thawed): the silence counts as longer
        # than any limit.
        return now if counts else -math.inf
    return now if counts else last_heard_at


def isolated(now: float, last_heard_at: float | None, limit_s: float) -> str | None:
    """Why a primary must step down for isolation now; None when it must not. `last_heard_at`
    is when any probe of the peer or of a witness last got an answer, as `heard_at` counts
    it (None: no tick yet; -inf: nobody answered since the daemon started)."""
    if last_heard_at is None:
        return None
    silent = now - last_heard_at
    if silent < limit_s:
        return None
    if math.isinf(silent):
        return (
            "heard neither the peer nor any witness since this daemon started: this node may "
            "be the isolated one"
        )
    return (
        f"heard neither the peer nor any witness for {silent:.1f} s "
        f"(isolation_fence_s {limit_s:g}): this node may be the isolated one"
    )


def peer_plan_against(me: str, plan: Mapping[str, Any] | None, now: float) -> str | None:
    """Why a primary must step down because of the peer's journal; None when it need not.

    Only an open failover plan there that names this node as the old primary, waits for this
    node's step-down (it could not fence it over SSH: plan step await_peer_step_down), and is
    running (its wait ahead, or a step or attempt recent, see plan.PLAN_STALE_S): it promotes
    the peer once its wait ends. A plan that fences this node over SSH does so itself; a plan
    not run for long (its daemon stopped, the plan blocked) would only leave no primary."""
    if plan is None or plan.get("finished", False) or plan.get("kind") != "failover":
        return None
    if plan.get("old_primary") != me or not waits_for_step_down(plan):
        return None
    if now - last_active_at(plan) > PLAN_STALE_S + PLAN_STALE_SKEW_S:
        return None
    return (
        f"the peer's failover plan {plan.get('failover_id', '?')} against this node is "
        "running and waits for this node to step down before it promotes the peer"
    )


def plan_holds_return(me: str, plan: Mapping[str, Any] | None, now: float) -> str | None:
    """Why a node that stepped down for isolation may not serve again because of the peer's
    journal; None when the journal is no reason. Any open plan not stale holds it (it may be
    about to fence this node, or to promote the peer), and so does one that changed a node
    (only finishing it restores one primary): a plan stale and unchanged the standby decides
    afresh, and it is no reason to leave the cluster without a primary."""
    if plan is None or plan.get("finished", False):
        return None
    fid = plan.get("failover_id", "?")
    if now - last_active_at(plan) <= PLAN_STALE_S + PLAN_STALE_SKEW_S:
        return f"the peer's plan {fid} is open and running"
    if changed_a_node(journal_done(plan)):
        return f"the peer's plan {fid} is open and already changed a node"
    return None


def may_return(
    me: str,
    *,
    peer_answers: bool,
    peer_replicates_from_me: bool,
    peer_writable: bool | None,
    peer_flag: Mapping[str, Any] | None,
    epochs: Iterable[Epoch | None],
) -> str | None:
    """Why a node that stepped down for isolation may serve again; None while it may not.
    Only when the peer is seen again and was not promoted: it still replicates from this node,
    is read_only, holds no flag, and no epoch newer than this node's own names it."""
    if not peer_answers or not peer_replicates_from_me or peer_writable is not False:
        return None
    if peer_flag is not None:
        return None
    top = newest([*epochs, flag_epoch(peer_flag)])
    if top is not None and top.primary != me:
        return None
    return "the peer is back, was not promoted and still replicates from this node"
