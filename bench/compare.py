"""monha vs MHA 0.58, side by side on the namespace lab: `python -m bench.compare`.

For each run and scenario, MHA then monha (A B A B ...), each on a freshly built lab of each
server asked for (`--servers mariadb,mysql`: the same scenario on MariaDB and on MySQL): start
the system on node2, start the 200 rows/s write load through the VIP, watch the manager
process for a monitoring window (RSS, CPU), inject the fault, watch until the system has
failed over and writes land on node2 again (or, where no failover is expected, for the
scenario's watch time), then measure and tear the lab down. Results go to a JSON-lines file
as they come, and the summary tables are printed at the end (`--from FILE` re-prints them).

Must not: treat the two systems differently in anything but how each is started and how its
decision is read from its log; leave a lab up (every run downs its lab in `finally`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bench.measure import ProcUsage, final_primary, ratio, sample_proc, summarize, writes_back
from bench.mha import DECIDED, FAILOVER_DONE, Mha
from bench.scenarios import BY_NAME, SCENARIOS, Scenario
from monha.lab.drive import Load, Monha, alive, read_only, wait_for
from monha.lab.lab import Lab
from monha.lab.load import lost_rows
from monha.lab.names import LAB_ROOT

SYSTEMS = ("mha", "monha")
SERVERS = ("mariadb", "mysql")
SERVER_NAMES = {"mariadb": "MariaDB", "mysql": "MySQL"}
LOGS = Path("/tmp/monha-bench-logs")
FAILOVER_TIMEOUT_S = 90.0  # MHA needs ~30 s for a dead host; leave it room
START_TIMEOUT_S = 120.0  # generous: the machine may be shared with other labs
SETTLE_S = 3.0  # after the outcome, so the record shows writes flowing again


class System(Protocol):
    """What the runner needs from a failover manager running in node2."""

    pid: int

    def poll(self) -> None: ...
    def decided_at(self) -> float | None: ...
    def finished_at(self) -> float | None: ...
    def stop(self) -> None: ...
    def save_log(self, name: str) -> Path: ...


@dataclass
class MonhaSystem:
    m: Monha

    @classmethod
    def start(cls, lab: Lab) -> MonhaSystem:
        m = Monha.start(lab, "node2", timeout_s=START_TIMEOUT_S)
        wait_for(
            "monha healthy",
            lambda: (m.try_status() or {}).get("state") == "healthy",
            START_TIMEOUT_S,
            0.2,
        )
        return cls(m)

    @property
    def pid(self) -> int:
        return self.m.pid

    def poll(self) -> None:
        """monha's log carries sub-second timestamps: nothing to track while waiting."""

    def _at(self, event: str) -> float | None:
        found = self.m.events(event)
        return datetime.fromisoformat(found[0]["timestamp"]).timestamp() if found else None

    def decided_at(self) -> float | None:
        return self._at("failover_started")

    def finished_at(self) -> float | None:
        return self._at("failover_finished")

    def stop(self) -> None:
        self.m.stop()

    def save_log(self, name: str) -> Path:
        dest = LOGS / f"{name}.monha.log"
        dest.write_bytes(self.m.log.read_bytes())
        return dest


@dataclass
class MhaSystem:
    m: Mha
    seen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, lab: Lab) -> MhaSystem:
        return cls(Mha.start(lab, START_TIMEOUT_S))

    @property
    def pid(self) -> int:
        return self.m.pid

    def poll(self) -> None:
        # MHA stamps its log to the second; noting when a line first appears (polled every
        # 0.1-0.5 s) narrows that down. The estimate is clipped into the stamped second.
        now = time.time()
        for needle in (DECIDED, FAILOVER_DONE):
            if needle not in self.seen and self.m.first(needle) is not None:
                self.seen[needle] = now

    def _at(self, needle: str) -> float | None:
        stamp = self.m.first(needle)
        if stamp is None:
            return None
        seen = self.seen.get(needle, stamp + 0.999)
        return min(max(seen, stamp), stamp + 0.999)

    def decided_at(self) -> float | None:
        return self._at(DECIDED)

    def finished_at(self) -> float | None:
        return self._at(FAILOVER_DONE)

    def stop(self) -> None:
        self.m.stop()

    def save_log(self, name: str) -> Path:
        LOGS.mkdir(exist_ok=True)
        return self.m.keep_log(name)


@dataclass
class RunResult:
    scenario: str
    system: str
    run: int
    started: str
    server: str = "mariadb"  # older result files have no such field: they ran on MariaDB
    detect_s: float | None = None
    writes_back_s: float | None = None
    outage_s: float | None = None
    done_s: float | None = None
    acked: int = 0
    lost: int | None = None
    failed_over: bool | None = None
    rss_mb: float | None = None
    rss_max_mb: float | None = None
    cpu_pct: float | None = None
    extra: dict[str, float] = field(default_factory=dict)
    log: str = ""
    error: str | None = None

    def line(self) -> str:
        def f(v: float | None) -> str:
            return "—" if v is None else f"{v:.2f}"

        text = (
            f"{self.scenario:9} {self.system:5} {self.server:7} run {self.run}: "
            f"detect {f(self.detect_s)} s, "
            f"writes back {f(self.writes_back_s)} s (outage {f(self.outage_s)}), "
            f"lost {self.lost}/{self.acked}, failed over {self.failed_over}, "
            f"RSS {f(self.rss_mb)} MB, CPU {f(self.cpu_pct)} %"
        )
        if self.extra:
            text += f", {self.extra}"
        return text + (f" ERROR {self.error}" if self.error else "")


def start_system(name: str, lab: Lab) -> System:
    return MhaSystem.start(lab) if name == "mha" else MonhaSystem.start(lab)


def watch(lab: Lab, system: System, load: Load, sc: Scenario, fault_at: float) -> None:
    """Wait for the outcome: failover finished and writes acknowledged by node2, or time."""
    if sc.expect_failover:
        deadline = fault_at + FAILOVER_TIMEOUT_S
        while time.time() < deadline:
            system.poll()
            if system.finished_at() is not None or not alive(system.pid):
                rec = load.record()
                if any(
                    at > fault_at and rec.acked_server.get(i) == 102 for i, at in rec.acked.items()
                ):
                    return
            time.sleep(0.1)
        return
    end = fault_at + sc.watch_s
    while time.time() < end:
        system.poll()
        time.sleep(0.1)


def one_run(
    sc: Scenario,
    system_name: str,
    run: int,
    prefix: str,
    window_s: float,
    server: str = "mariadb",
) -> RunResult:
    started = datetime.now().isoformat(timespec="seconds")
    result = RunResult(sc.name, system_name, run, started, server)
    name = f"{prefix}-{sc.name}-{system_name}-{server}-{run}"
    lab = Lab(prefix)
    system: System | None = None
    load: Load | None = None
    try:
        lab.up(replace=True, server=server, log=lambda _m: None)
        system = start_system(system_name, lab)
        load = Load.start(lab, rate=200)
        usage: ProcUsage = sample_proc(system.pid, window_s)
        result.rss_mb, result.rss_max_mb, result.cpu_pct = (
            round(usage.rss_mb, 1), round(usage.rss_max_mb, 1), round(usage.cpu_pct, 2),
        )  # fmt: skip
        result.extra.update(sc.prepare(lab))
        # Other labs or tests on the same machine skew every timing: record how busy it was.
        result.extra["loadavg_1m"] = round(os.getloadavg()[0], 1)
        result.extra["other_labs"] = len([p for p in LAB_ROOT.iterdir() if p.name != prefix])
        fault_at = time.time()
        undo = sc.inject(lab)
        result.extra["inject_s"] = round(time.time() - fault_at, 2)
        watch(lab, system, load, sc, fault_at)
        undo(lab)
        settle_until = time.time() + SETTLE_S
        while time.time() < settle_until:
            system.poll()
            time.sleep(0.1)
        end_at = time.time()
        record = load.stop()
        wb, gap = writes_back(record, fault_at, end_at)
        result.writes_back_s = None if wb is None else round(wb, 2)
        result.outage_s = round(gap, 2)
        decided, finished = system.decided_at(), system.finished_at()
        result.detect_s = None if decided is None else round(decided - fault_at, 2)
        result.done_s = None if finished is None else round(finished - fault_at, 2)
        system.stop()
        result.log = str(system.save_log(name))
        system = None
        result.failed_over = not read_only(lab, "node2")
        final = final_primary(record)
        if final == "node1":  # it must answer to be counted: heal it first
            lab.faults.clear_all()
            if "kill-mysqld" in (lab.state().faults if lab.state() else {}):
                lab.faults.start_mysqld("node1")
        result.acked = len(record.acked)
        result.lost = len(lost_rows(record.acked, load.rows_on(final)))
        load = None
    except Exception as exc:  # one failed run is a result to report, not the end of the bench
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if load is not None:
            load.stop()
        if system is not None:
            try:
                result.log = str(system.save_log(name))
                system.stop()
            except Exception:
                traceback.print_exc()
        problems = lab.down(log=lambda _m: None)
        if problems:
            result.error = (result.error or "") + f" down: {problems}"
    return result


# --- tables -------------------------------------------------------------------------------


def tables(results: Sequence[RunResult]) -> str:
    """The summary as Markdown: per scenario and figure, median (min–max) for each system on
    each server, and monha/MHA on each server where both ran."""
    cols = [(sy, sv) for sv in SERVERS for sy in SYSTEMS if _of(results, sy, sv)]
    servers = [sv for sv in SERVERS if any(c[1] == sv for c in cols)]
    pairs = [sv for sv in servers if ("mha", sv) in cols and ("monha", sv) in cols]
    one = len(servers) == 1

    def head(sy: str, sv: str) -> str:
        name = "MHA 0.58" if sy == "mha" else "monha"
        return name if one else f"{name} · {SERVER_NAMES[sv]}"

    ratio_heads = ["monha/MHA" if one else f"monha/MHA · {SERVER_NAMES[sv]}" for sv in pairs]
    heads = [head(*c) for c in cols] + ratio_heads
    out = ["| scenario | figure | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    names = [s.name for s in SCENARIOS if any(r.scenario == s.name for r in results)]
    for sc_name in names:
        sc = BY_NAME[sc_name]
        mine = [r for r in results if r.scenario == sc_name]
        figures: list[tuple[str, str, str, str]] = [
            ("detection (s)", "detect_s", "{:.1f}", "no decision"),
            ("writes back (s)", "writes_back_s", "{:.1f}", "never"),
            ("rows lost", "lost", "{:.0f}", "not counted"),
        ]
        for label, key, fmt, none in figures:
            cell = {
                c: summarize(getattr(r, key) for r in _of(mine, *c) if not r.error) for c in cols
            }
            cells = [cell[c].cell(fmt, none) for c in cols]
            cells += [ratio(cell[("monha", sv)], cell[("mha", sv)]) for sv in pairs]
            out.append(f"| {sc_name} | {label} | " + " | ".join(cells) + " |")
        label = "failovers" if sc.expect_failover else "false failovers"
        counts = []
        for c in cols:
            runs = _of(mine, *c)
            ok = [r for r in runs if not r.error]
            errors = len(runs) - len(ok)
            text = f"{sum(bool(r.failed_over) for r in ok)}/{len(ok)}"
            counts.append(text + (f" ({errors} errored)" if errors else ""))
        out.append(f"| {sc_name} | {label} | " + " | ".join(counts + [""] * len(pairs)) + " |")
    out += [
        "",
        "| while monitoring (all runs) | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for label, key, fmt in (
        ("manager RSS, mean (MB)", "rss_mb", "{:.1f}"),
        ("manager RSS, max (MB)", "rss_max_mb", "{:.1f}"),
        ("manager CPU (% of one core)", "cpu_pct", "{:.2f}"),
    ):
        cell = {c: summarize(getattr(r, key) for r in _of(results, *c)) for c in cols}
        cells = [cell[c].cell(fmt) for c in cols]
        cells += [ratio(cell[("monha", sv)], cell[("mha", sv)]) for sv in pairs]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _of(results: Sequence[RunResult], system: str, server: str) -> list[RunResult]:
    return [r for r in results if r.system == system and r.server == server]


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return (
        f"{os.cpu_count()} CPUs, {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"kernel {platform.release()}, Python {platform.python_version()}"
    )


def load_results(path: Path) -> list[RunResult]:
    return [RunResult(**json.loads(line)) for line in path.read_text().splitlines() if line]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per system and scenario")
    p.add_argument(
        "--scenarios",
        default="all",
        help=f"comma-separated, or all: {','.join(s.name for s in SCENARIOS)}",
    )
    p.add_argument("--systems", default="mha,monha", help="which systems, in run order")
    p.add_argument(
        "--servers", default="mariadb", help="comma-separated: mariadb, mysql (in run order)"
    )
    p.add_argument("--window", type=float, default=10.0, help="monitoring window (s)")
    p.add_argument("--out", type=Path, default=None, help="results file (JSON lines)")
    p.add_argument("--from", dest="from_", type=Path, default=None, help="only print tables")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.from_:
        print(tables(load_results(args.from_)))
        return 0
    if os.geteuid() != 0:
        print("bench.compare: run as root (the lab needs namespaces)", file=sys.stderr)
        return 1
    names = [s.name for s in SCENARIOS] if args.scenarios == "all" else args.scenarios.split(",")
    systems, servers = args.systems.split(","), args.servers.split(",")
    unknown = [n for n in names if n not in BY_NAME] + [s for s in systems if s not in SYSTEMS]
    unknown += [s for s in servers if s not in SERVERS]
    if unknown:
        p.error(f"unknown scenarios or systems: {unknown}")
    LOGS.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or Path(f"/tmp/monha-bench-results-{stamp}.jsonl")
    prefix = "b" + secrets.token_hex(2)  # a lab name no other lab on this machine uses
    print(f"machine: {machine()}\nresults: {out}\nlogs: {LOGS}/{prefix}-*", flush=True)
    results: list[RunResult] = []
    t0 = time.monotonic()
    for run in range(1, args.runs + 1):
        for sc_name in names:
            for server in servers:
                for system in systems:  # A B, A B, ...: the same lab recipe, back to back
                    r = one_run(BY_NAME[sc_name], system, run, prefix, args.window, server)
                    results.append(r)
                    with out.open("a") as f:
                        f.write(json.dumps(asdict(r)) + "\n")
                    print(r.line(), flush=True)
    print(f"\n{len(results)} runs in {(time.monotonic() - t0) / 60:.1f} min\n")
    print(tables(results))
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
