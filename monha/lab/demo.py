"""The README's demo: bring the lab up, start monha on the standby, kill the primary's MariaDB
under a write load, and show what an operator would see. `python -m monha.lab.demo [--keep]`.

It prints as it goes; nothing here is needed by monha itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from monha.lab.drive import (
    Load,
    Monha,
    event_time,
    http_via_vip,
    load_report,
    read_flag,
    wait_for,
)
from monha.lab.lab import Lab, LabError


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def show(text: str) -> None:
    print("    " + text.replace("\n", "\n    "), flush=True)


def run(lab: Lab) -> None:
    say("bringing up the two-node lab (network namespaces: node1, node2, client, lan)")
    took = lab.up(log=lambda m: show(m))
    show(f"up in {took:.1f} s")
    say("monha-lab status")
    show(_lab_status(lab))

    say("starting monha on the standby (node2) and a write load of 200 rows/s through the VIP")
    monha = Monha.start(lab, "node2")
    load = Load.start(lab, rate=200)
    wait_for("monha to report healthy", lambda: monha.status()["state"] == "healthy", 15)
    show(monha.ctl("status").stdout.rstrip())

    say("fault: kill -9 of node1's mariadbd")
    fault_at = time.time()
    lab.faults.kill_mysqld("node1")
    flag = wait_for("the completion flag", lambda: read_flag(lab, "node2"), 60)
    wait_for(
        "writes through the VIP to land on node2",
        lambda: 102 in load.record().acked_server.values(),
        20,
    )
    started = monha.events("failover_started")[0]
    decided = event_time(started)
    say("what monha did (from its completion flag)")
    show(f"decision {decided - fault_at:.2f} s after the fault: {started['reason']}")
    for step in flag["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        show(f"{mark} {step['duration_s']:6.3f} s  {step['step']:<36} {step['detail']}")
    report = load_report(load, "node2")
    say("what an operator sees now")
    show(f"VIP held by: {', '.join(lab.vip_holders())}")
    show(f"HTTP through the VIP answers: {http_via_vip(lab)}")
    show(f"write load: {report.line()}")
    show(monha.ctl("status").stdout.rstrip())
    monha.stop()


def _lab_status(lab: Lab) -> str:
    from monha.lab.status import render

    return render(lab.status())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="monha-demo", description=__doc__)
    p.add_argument("--prefix", default="demo", help="lab prefix (default: demo)")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = p.parse_args(argv)
    lab = Lab(args.prefix)
    if lab.is_up():
        print(f"monha-demo: a lab '{args.prefix}' exists; `monha-lab down --prefix {args.prefix}`")
        return 1
    try:
        run(lab)
    except (LabError, AssertionError) as exc:
        print(f"monha-demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            say(f"the lab stays up: `monha-lab status --prefix {args.prefix}`, then `down`")
        else:
            say("removing the lab")
            problems = lab.down(log=lambda _m: None)
            show("done" if not problems else "problems: " + "; ".join(problems))
    return 0


if __name__ == "__main__":
    sys.exit(main())
