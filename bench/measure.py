"""Figures from what an operator could observe: /proc of the manager process, the load's
record of acknowledged writes, and summary statistics. Pure functions except `sample_proc`.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monha.lab.load import Record

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Below this, a gap between acknowledged writes is the load's own jitter, not an outage.
OUTAGE_FLOOR_S = 1.0


@dataclass(frozen=True)
class ProcUsage:
    rss_mb: float  # mean resident set size of the manager process over the window
    rss_max_mb: float
    cpu_pct: float  # CPU time (own + reaped children) per wall second, in % of one core


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime stime cutime cstime: fields 14-17 of stat(5); index 0 here is field 3 (state).
    # Children count once reaped: MHA forks one child per ping and waits for it.
    return sum(int(x) for x in fields[11:15])


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample_proc(pid: int, window_s: float, every_s: float = 0.25) -> ProcUsage:
    """Watch one process for `window_s` seconds (it is monitoring a healthy primary)."""
    t0, c0 = time.monotonic(), _ticks(pid)
    rss: list[int] = []
    while time.monotonic() - t0 < window_s:
        rss.append(_rss_kb(pid))
        time.sleep(every_s)
    t1, c1 = time.monotonic(), _ticks(pid)
    return ProcUsage(
        rss_mb=statistics.fmean(rss) / 1024,
        rss_max_mb=max(rss) / 1024,
        cpu_pct=100.0 * (c1 - c0) / CLK_TCK / (t1 - t0),
    )


def writes_back(record: Record, fault_at: float, end_at: float) -> tuple[float | None, float]:
    """(seconds from the fault until writes through the VIP succeed again, outage seconds).

    The outage is the longest window without an acknowledged write between the fault and the
    end of the observation. Writes are "back" at its end; (0, gap) if it is shorter than
    OUTAGE_FLOOR_S (writes never really stopped); (None, gap) if it lasts to the end.
    """
    acks = sorted(at for at in record.acked.values() if at > fault_at)
    points = [fault_at, *acks, max(end_at, acks[-1] if acks else end_at)]
    best = (fault_at, fault_at)
    for a, b in itertools.pairwise(points):
        if b - a > best[1] - best[0]:
            best = (a, b)
    gap = best[1] - best[0]
    if gap < OUTAGE_FLOOR_S:
        return 0.0, gap
    if not acks or best[1] > acks[-1]:
        return None, gap
    return best[1] - fault_at, gap


def final_primary(record: Record) -> str:
    """The node that acknowledged the last write (by @@server_id: 101 node1, 102 node2)."""
    if not record.acked:
        return "node1"
    last = max(record.acked, key=lambda i: record.acked[i])
    return "node2" if record.acked_server.get(last) == 102 else "node1"


@dataclass(frozen=True)
class Summary:
    median: float | None
    low: float | None
    high: float | None
    n: int  # values that exist
    missing: int  # runs where the figure did not exist (e.g. writes never came back)

    def cell(self, fmt: str = "{:.1f}", none: str = "never") -> str:
        """'median (min–max)'; `none` names a run without a value (no decision, never back)."""
        if self.median is None:
            return "—" if not self.missing else f"{none} ×{self.missing}"
        text = fmt.format(self.median)
        if self.n > 1:
            text += f" ({fmt.format(self.low)}–{fmt.format(self.high)})"
        if self.missing:
            text += f", {none} ×{self.missing}"
        return text


def summarize(values: Iterable[float | None]) -> Summary:
    values = list(values)
    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    if not present:
        return Summary(None, None, None, 0, missing)
    return Summary(statistics.median(present), min(present), max(present), len(present), missing)


def ratio(monha: Summary, mha: Summary) -> str:
    """monha's median over MHA's, as the issue asks (lower is better for every figure)."""
    if monha.median is None or mha.median is None:
        return "—"
    if mha.median == 0:
        return "equal" if monha.median == 0 else "∞"
    return f"{monha.median / mha.median:.2f}"


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
