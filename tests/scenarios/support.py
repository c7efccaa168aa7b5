"""Scenario tests share one lab per module; the helpers that drive it live in monha.lab.drive.

Here too: the `both` fixture (monha on node1 AND node2, for a module that imports it) and the
one-primary checks such a module asserts after every step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from monha.lab.drive import (
    Load,
    Monha,
    alive,
    event_time,
    http_via_vip,
    load_report,
    read_flag,
    read_only,
    wait_for,
    zabbix_running,
)
from monha.lab.lab import Lab
from monha.lab.proc import CommandError
from tests.lab.support import lab_for_module

__all__ = [
    "Load",
    "Monha",
    "alive",
    "both",
    "event_time",
    "http_via_vip",
    "load_report",
    "one_primary",
    "read_flag",
    "read_only",
    "scenario_lab",
    "stays_one_primary",
    "wait_for",
    "writable",
    "zabbix_running",
]


def scenario_lab(**up_kwargs: object) -> Iterator[Lab]:
    """One lab for the module; `up_kwargs` go to Lab.up (e.g. heartbeat_period_s=None)."""
    yield from lab_for_module(**up_kwargs)


@pytest.fixture(scope="module")
def both(lab: Lab) -> Iterator[dict[str, Monha]]:
    """monha on node1 and on node2 (one config, as on a real pair), stopped at the module's end."""
    daemons = {"node1": Monha.start(lab, "node1"), "node2": Monha.start(lab, "node2")}
    yield daemons
    for m in daemons.values():
        m.stop()


def writable(lab: Lab, node: str) -> bool:
    """A MySQL that does not answer takes no writes."""
    try:
        return not read_only(lab, node)
    except CommandError:
        return False


def one_primary(lab: Lab, node: str) -> str:
    """'' when `node` alone is writable, holds the VIP and runs Zabbix; else what is wrong."""
    seen = (
        lab.vip_holders(),
        [n for n in ("node1", "node2") if writable(lab, n)],
        zabbix_running(lab),
    )
    return "" if seen == ([node], [node], [node]) else f"VIP, writable, zabbix: {seen}"


def stays_one_primary(lab: Lab, node: str, seconds: float) -> None:
    """Exactly one primary, `node`, at every look for `seconds` (a self-fence shows within a
    few ticks)."""
    wait_for(f"{node} alone primary", lambda: one_primary(lab, node) == "", 30, 0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wrong = one_primary(lab, node)
        assert wrong == "", f"{node} is no longer the one primary: {wrong}"
        time.sleep(0.5)
