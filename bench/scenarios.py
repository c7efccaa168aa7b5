"""The fault scenarios of the benchmark: what each injects, how it is undone, what is expected.

A scenario is plain data plus two callables on the lab, so the runner treats both systems
exactly alike. "Expected failover" is what an operator would want: a real primary failure
should fail over; a short or partial fault, or a fault of the standby itself, should not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monha.lab.lab import Lab

Undo = Callable[[Lab], None]


def _nothing(_lab: Lab) -> None:
    """No undo needed (the lab is torn down after each run)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expect_failover: bool
    inject: Callable[[Lab], Undo]  # applies the fault at t0; returns how to heal it
    watch_s: float  # how long to watch after the fault when no failover is expected
    prepare: Callable[[Lab], dict[str, float]] = field(default=lambda _lab: {})


def _kill9(lab: Lab) -> Undo:
    lab.faults.kill_mysqld("node1")
    return _nothing


def _host_down(lab: Lab) -> Undo:
    lab.faults.host_down("node1")
    return _nothing


def _freeze(lab: Lab) -> Undo:
    lab.faults.freeze("node1")
    return _nothing


def rows_behind(lab: Lab) -> int:
    """How many committed load rows node1 has that node2 has not applied yet."""
    q = "SELECT COUNT(*) FROM labdb.load_rows"
    return int(lab.sql("node1", q, timeout=10).strip()) - int(
        lab.sql("node2", q, timeout=10).strip()
    )


# tc tbf on node2's egress: the replica's TCP acknowledgements to the primary are starved, so
# the binlog stream falls behind the 200 rows/s load (measured as rows_behind before the fault).
LAG_RATE = "24kbit"
LAG_BUILD_S = 6.0


def _lag_prepare(lab: Lab) -> dict[str, float]:
    lab.faults.throttle("node2", LAG_RATE)
    time.sleep(LAG_BUILD_S)
    return {"rows_behind_at_fault": float(rows_behind(lab))}


def _lag_host_down(lab: Lab) -> Undo:
    lab.faults.host_down("node1")
    # The primary is gone, nothing more can arrive: lift the throttle at once so that it
    # does not slow the new primary's answers to the client (that is not what is measured).
    lab.faults.throttle_clear("node2")
    return _nothing


def _short(lab: Lab) -> Undo:
    # kill -9 and restart at once, as mysqld_safe or systemd would: the outage lasts about
    # as long as MariaDB's start (about 1 s here), below both systems' thresholds.
    lab.faults.kill_mysqld("node1")
    lab.faults.start_mysqld("node1")
    return _nothing


def _loss(lab: Lab) -> Undo:
    # Arriving packets at node2 (monitor and replica): the node1 <-> node2 path is lossy in
    # both directions for TCP, while the client's writes to node1 are not touched.
    lab.faults.loss("node2", 30)
    return lambda lab: lab.faults.loss_clear("node2")


def _isolate(lab: Lab) -> Undo:
    lab.faults.isolate("node2")
    return lambda lab: lab.faults.unisolate("node2")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("kill9", "kill -9 of the primary's mysqld", True, _kill9, 0),
    Scenario("host_down", "primary host death (frozen, link down)", True, _host_down, 0),
    Scenario("hung", "primary hung (every process SIGSTOPped)", True, _freeze, 0),
    Scenario(
        "lagging",
        f"replica lagging ({LAG_RATE} egress) when the primary's host dies",
        True,
        _lag_host_down,
        0,
        _lag_prepare,
    ),
    Scenario("short", "kill -9 and immediate restart of mysqld", False, _short, 20),
    Scenario("loss30", "30 % loss at node2 (between the nodes)", False, _loss, 40),
    Scenario("isolated", "the standby (node2) isolated", False, _isolate, 40),
)
BY_NAME = {s.name: s for s in SCENARIOS}
