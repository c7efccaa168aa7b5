"""Helpers for the hardening tests: a lab that can be made fresh between cases, the real
failover plan's step keys, and samples of a daemon's resources from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from monha.config import config_from_toml
from monha.lab.config_writer import render
from monha.lab.lab import Lab
from monha.lab.names import LabPaths
from monha.plan import build_failover_plan
from tests.conftest import require_root_and_binaries
from tests.lab.support import BINARIES, new_prefix


def lab_plan_keys() -> list[str]:
    """The step keys of the plan the lab's daemon on node2 runs when node1's mysqld dies
    (SSH still reaches node1): computed from the lab's own config, so a new step is covered
    without editing the tests."""
    cfg = config_from_toml(render(LabPaths("tplan")))
    return [s.key for s in build_failover_plan(cfg, "node1", "node2", ssh_reachable=True)]


class FreshLab:
    """One lab per module, rebuilt (down, then a warm up) before every case but the first."""

    def __init__(self) -> None:
        self.lab = Lab(new_prefix())
        self.used = False
        self.ups: list[float] = []

    def fresh(self) -> Lab:
        if self.used:
            problems = self.lab.down(log=lambda _m: None)
            assert not problems, problems
            self.ups.append(self.lab.up(log=lambda _m: None))
        self.used = True
        return self.lab


def fresh_lab_for_module() -> Iterator[FreshLab]:
    require_root_and_binaries(*BINARIES)
    fl = FreshLab()
    try:
        fl.ups.append(fl.lab.up(log=lambda _m: None))
        yield fl
    finally:
        problems = fl.lab.down(log=lambda _m: None)
        assert not problems, problems


@dataclass(frozen=True)
class Sample:
    """One look at a process in /proc."""

    at: float  # monotonic seconds
    rss_kib: int
    cpu_s: float  # user + system
    fds: int
    tasks: int


def sample(pid: int) -> Sample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Sample(
        at=time.monotonic(),
        rss_kib=rss,
        cpu_s=cpu,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        tasks=len(os.listdir(f"/proc/{pid}/task")),
    )
