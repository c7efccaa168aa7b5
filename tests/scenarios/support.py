"""Scenario tests share one lab per module; the helpers that drive it live in monha.lab.drive."""

from __future__ import annotations

from collections.abc import Iterator

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
from tests.lab.support import lab_for_module

__all__ = [
    "Load",
    "Monha",
    "alive",
    "event_time",
    "http_via_vip",
    "load_report",
    "read_flag",
    "read_only",
    "scenario_lab",
    "wait_for",
    "zabbix_running",
]


def scenario_lab() -> Iterator[Lab]:
    yield from lab_for_module()
