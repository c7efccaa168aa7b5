"""Acknowledged rows lost on the lab (issue 4), under a write load of 200 rows/s:

- kill9-lagging: kill -9 of the primary's mysqld while the replica's IO thread lags (its link
  starved) -- the binlog salvage must recover everything;
- host-death-async: the primary's host dies, asynchronous replication -- rows are lost, and
  the errant transactions found on the old primary afterwards must account for them;
- host-death-semisync: the same with semi-sync (AFTER_SYNC) -- nothing may be lost.

    .venv/bin/python bench/data_loss.py --runs 10 [--scenarios kill9-lagging,host-death-async]
        [--server mysql]

Each run gets a fresh lab (prefix "dlb"); prints one line per run, then the totals. Run as root.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from monha.lab import dataloss
from monha.lab.lab import Lab

SCENARIOS: dict[str, Callable[[Lab], dataloss.RunResult]] = {
    "kill9-lagging": dataloss.run_kill9_lagging,
    "host-death-async": lambda lab: dataloss.run_host_death(lab, semi_sync=False),
    "host-death-semisync": lambda lab: dataloss.run_host_death(lab, semi_sync=True),
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/data_loss.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--prefix", default="dlb")
    p.add_argument("--server", default="mariadb", choices=("mariadb", "mysql"))
    args = p.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}")
    if args.server == "mysql" and "host-death-semisync" in names:
        # The lab sets semi-sync up on MariaDB only (MySQL needs its plugins installed).
        print("host-death-semisync: skipped on MySQL (the lab's semi-sync is MariaDB's)")
        names.remove("host-death-semisync")
    lab = Lab(args.prefix)
    # Each run brings the lab up afresh on the server recorded by this first `up`.
    lab.up(replace=True, server=args.server, log=lambda _m: None)
    totals: dict[str, list[dataloss.RunResult]] = {n: [] for n in names}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for name in names:
            for i in range(args.runs):
                try:
                    r = SCENARIOS[name](lab)
                except AssertionError as exc:
                    print(f"{name} run {i + 1}: FAILED: {exc}", flush=True)
                    continue
                totals[name].append(r)
                print(f"run {i + 1}: {r.line()}", flush=True)
    finally:
        lab.down(log=lambda _m: None)
    print(f"\nsummary ({started}, {args.server}, {args.runs} run(s) per scenario):")
    for name, results in totals.items():
        lost = [r.lost for r in results]
        zero = sum(1 for n in lost if n == 0)
        extra = ""
        if name == "kill9-lagging":
            extra = f", salvaged per run {[r.salvaged for r in results]}"
        if name == "host-death-async":
            ok = sum(1 for r in results if r.lost <= (r.errant_load_rows or 0) <= r.lost + 1)
            extra = f", lost rows found as errant on the old primary in {ok}/{len(results)}"
        print(
            f"  {name}: {len(results)} completed, 0 lost in {zero}/{len(results)}, "
            f"lost per run {lost}{extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
