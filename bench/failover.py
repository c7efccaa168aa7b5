"""monha's own failover figures on the lab: detection time, time until writes through the VIP
succeed again, and acknowledged rows lost, for kill -9 of the primary's mysqld and for the
primary's host dying. Each run gets a fresh lab (MariaDB, or MySQL with --server mysql), with
monha on both nodes as deployed; a write load of 200 rows/s runs throughout.

    .venv/bin/python bench/failover.py --runs 5 [--server mysql]

Prints one line per run, then median / min / max per scenario. Run as root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monha.lab.drive import Load, Monha, event_time, load_report, read_flag, wait_for
from monha.lab.lab import Lab


@dataclass
class Run:
    scenario: str
    detection_s: float
    writes_back_s: float
    lost: int
    acked: int


def _faults(lab: Lab) -> dict[str, Callable[[], object]]:
    return {
        "kill9": lambda: lab.faults.kill_mysqld("node1"),
        "host-death": lambda: lab.faults.host_down("node1"),
    }


def one_run(scenario: str, prefix: str, server: str = "mariadb") -> Run:
    lab = Lab(prefix)
    lab.up(server=server, log=lambda _m: None)
    peer: Monha | None = None
    try:
        peer = Monha.start(lab, "node1")  # the primary's own daemon, as on a real pair
        monha = Monha.start(lab, "node2")
        wait_for("healthy", lambda: monha.status()["state"] == "healthy", 15)
        load = Load.start(lab, rate=200)
        time.sleep(2.0)  # a steady load before the fault
        fault_at = time.time()
        _faults(lab)[scenario]()
        wait_for("the flag", lambda: read_flag(lab, "node2"), 60)
        back = wait_for("writes acknowledged by node2", lambda: first_ack_from(load, 102), 30)
        decided = event_time(monha.events("failover_started")[0])
        report = load_report(load, "node2")
        monha.stop()
        return Run(scenario, decided - fault_at, back - fault_at, len(report.lost), report.acked)
    finally:
        if peer is not None:
            peer.stop()
        lab.down(log=lambda _m: None)


def first_ack_from(load: Load, server_id: int) -> float | None:
    """When the first row acknowledged by `server_id` was acknowledged, if one was."""
    record = load.record()
    times = [t for i, t in record.acked.items() if record.acked_server.get(i) == server_id]
    return min(times) if times else None


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.2f}  min {min(values):6.2f}  max {max(values):6.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per scenario (default 5)")
    p.add_argument(
        "--scenarios", default="kill9,host-death", help="comma-separated: kill9, host-death"
    )
    p.add_argument("--prefix", default="bf", help="lab prefix (default bf)")
    p.add_argument("--server", default="mariadb", choices=("mariadb", "mysql"))
    args = p.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - {"kill9", "host-death"}
    if unknown or args.runs < 1:
        p.error(f"unknown scenario(s) {sorted(unknown)}" if unknown else "--runs must be >= 1")
    runs: list[Run] = []
    header = ("scenario", "run", "detect s", "writes back s", "lost", "acked")
    print("{:<11} {:>3} {:>9} {:>14} {:>5} {:>6}".format(*header))
    for n in range(args.runs):
        for scenario in scenarios:  # alternate, so drift hits both alike
            r = one_run(scenario, args.prefix, args.server)
            runs.append(r)
            print(
                f"{scenario:<11} {n + 1:>3} {r.detection_s:9.2f} {r.writes_back_s:14.2f} "
                f"{r.lost:5d} {r.acked:6d}",
                flush=True,
            )
    print()
    for scenario in scenarios:
        mine = [r for r in runs if r.scenario == scenario]
        print(f"{scenario}: detection      {summary([r.detection_s for r in mine])}")
        print(f"{scenario}: writes back    {summary([r.writes_back_s for r in mine])}")
        print(
            f"{scenario}: rows lost      total {sum(r.lost for r in mine)} of "
            f"{sum(r.acked for r in mine)} acknowledged"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
