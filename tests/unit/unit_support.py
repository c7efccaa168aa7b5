"""Builders shared by the pure unit tests: the example config, a policy, and observations."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from monha.config import Config, load_config
from monha.fsm import Policy
from monha.model import (
    Observation,
    ProbeResult,
    ProbeStatus,
    ReplicaStatus,
    ReplicaView,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
CONFIG: Config = load_config(EXAMPLE)
POLICY = Policy.from_config(CONFIG)
WITNESS = "zabbix-external"


def example_data() -> dict[str, Any]:
    """A fresh, mutable copy of config.example.toml as parsed TOML."""
    with EXAMPLE.open("rb") as f:
        return tomllib.load(f)


def probe(name: str, target: str, status: ProbeStatus = ProbeStatus.OK, **kw: Any) -> ProbeResult:
    return ProbeResult(name=name, target=target, status=status, **kw)


def witness(
    status: ProbeStatus = ProbeStatus.OK, sees_primary: bool | None = False, name: str = WITNESS
) -> ProbeResult:
    return probe("witness", name, status, sees_primary=sees_primary)


def view(
    io: str = "Yes",
    heard: float | None = 0.5,
    status: ProbeStatus = ProbeStatus.OK,
    configured: bool = True,
) -> ReplicaView:
    replica = ReplicaStatus(configured=configured, io_running=io, sql_running="Yes")
    return ReplicaView(
        probe=probe("replica", "node2", status),
        status=replica if status is ProbeStatus.OK else None,
        heard_from_primary_s_ago=heard,
    )


def _obs(**changes: Any) -> Observation:
    """A healthy tick as node2 sees node1, with `changes` applied (field names of Observation,
    plus the shortcuts mysql=, icmp=, ssh= taking a ProbeStatus)."""
    base = Observation(
        at=1000.0,
        primary="node1",
        replica="node2",
        primary_mysql=probe("mysql", "node1"),
        primary_icmp=probe("icmp", "node1"),
        primary_ssh=probe("ssh", "node1"),
        replica_view=view(),
        witnesses=(witness(),),
    )
    for short in ("mysql", "icmp", "ssh"):
        field = f"primary_{short}"
        if short in changes:
            status = changes.pop(short)
            changes[field] = probe(short, "node1", status, detail=f"{short} {status}")
    return dataclasses.replace(base, **changes)


def lost_obs(**changes: Any) -> Observation:
    """Scenario 1 as the standby sees it: mysqld on node1 killed, the host still up, the replica's
    IO thread reconnecting, the witness answering and not reaching node1's MySQL."""
    base: dict[str, Any] = {"replica_view": view(io="Connecting", heard=4.0)}
    if "primary_mysql" not in changes:
        base["mysql"] = ProbeStatus.FAILED
    return _obs(**{**base, **changes})


def policy(**changes: Any) -> Policy:
    return dataclasses.replace(POLICY, **changes)
