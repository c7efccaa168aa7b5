"""Issue 12 on the lab with monha running on BOTH nodes (one config, as on a real pair), under
the faults where two daemons could each decide for themselves:

a. 30 % loss both ways (IP and ARP) on the primary's link, 60 s, five times: no failover, no
   self-fencing, never two writable nodes. This module's lab sets up node2's replication with
   the heartbeat the server leaves when CHANGE MASTER names none (half of slave_net_timeout:
   1.5 s, the lab's my.cnf setting slave_net_timeout = 3), not the 1 s the lab sets
   elsewhere: whatever heartbeat applies then is monha's doing (its own CHANGE MASTER at
   rejoin and switchover, or its care for the standby's replica, set
   mysql.heartbeat_period_s). The test prints the heartbeat in effect at each round; it runs
   first, before any rejoin or switchover of this module.
b. node1 cut from everything: it steps down (read_only, no VIP) after isolation_fence_s,
   node2 is promoted; healed, exactly one primary.
c. node1's mysqld alone hung (SIGSTOP; host and sshd alive), with the lab's witness: never two
   VIP holders, never two nodes taking writes; node1 fenced (mysql.pid_file: its mysqld killed)
   before node2 is promoted, or no failover.
d. a stale replica (SQL thread stopped) is not promoted when the primary dies; status says
   why; `failover --force` promotes it and says what it had not applied.

Between tests the cluster is brought back to node1 as an operator would: rejoin, switchover
back, resume.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monha.lab import mariadb
from monha.lab.lab import Lab
from monha.lab.proc import CommandError, proc_state
from tests.scenarios.support import (
    Monha,
    event_time,
    one_primary,
    read_flag,
    read_only,
    scenario_lab,
    stays_one_primary,
    wait_for,
    writable,
)
from tests.scenarios.test_operations import ctl

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

NODES = ("node1", "node2")
LOSS_PERCENT = 30
LOSS_S = 60.0
LOSS_ROUNDS = 5


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    labs = scenario_lab(heartbeat_period_s=None)
    lab = next(labs)
    try:
        # As the lab left it, before any monha runs.
        assert float(heartbeat_s(lab)) == mariadb.SERVER_DEFAULT_HEARTBEAT_S, heartbeat_s(lab)
        yield lab
    finally:
        labs.close()  # tears the lab down


@pytest.fixture(autouse=True)
def node1_primary_after(lab: Lab, both: dict[str, Monha]) -> Iterator[None]:
    """Each test leaves node1 the primary, without faults: a test that failed half-way (a
    failover it did not expect) must not fail the next ones for it."""
    yield
    lab.faults.clear_all()
    if mariadb.mariadbd_pid(lab.paths, "node1") is None:
        lab.faults.start_mysqld("node1")
    flagged = read_flag(lab, "node1") or read_flag(lab, "node2")
    replicating = mariadb.replica_status(lab.socket("node2")).get("Master_Host")
    if writable(lab, "node2") or not replicating:
        back_to_node1(lab, both)
    else:
        lab.sql("node2", "START SLAVE")  # a SQL thread a test stopped runs again
        if flagged:
            run_ok(lab, "node1", "resume")
    healthy_on_node1(lab, both)


def run_ok(lab: Lab, node: str, *args: str) -> str:
    done = ctl(lab, node, *args)
    assert done.returncode == 0, f"monha-ctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def healthy_on_node1(lab: Lab, both: dict[str, Monha]) -> None:
    wait_for(
        "node2 to judge node1 healthy", lambda: both["node2"].status()["state"] == "healthy", 30
    )
    stays_one_primary(lab, "node1", 3)


def back_to_node1(lab: Lab, both: dict[str, Monha]) -> None:
    """After a failover to node2: node1 rejoined as its replica, switched back, resumed."""
    if mariadb.mariadbd_pid(lab.paths, "node1") is None:
        lab.faults.start_mysqld("node1")
    wait_for("node1 read_only", lambda: read_only(lab, "node1"), 20, 0.2)
    stays_one_primary(lab, "node2", 3)
    run_ok(lab, "node2", "rejoin", "node1")
    wait_for("node1 to be the standby", lambda: both["node1"].status()["role"] == "standby", 20)
    run_ok(lab, "node2", "switchover", "--to", "node1", "--yes")
    stays_one_primary(lab, "node1", 3)
    run_ok(lab, "node1", "resume")
    assert (read_flag(lab, "node1"), read_flag(lab, "node2")) == (None, None)
    healthy_on_node1(lab, both)


def heartbeat_s(lab: Lab) -> str:
    row = mariadb.query_vertical(lab.socket("node2"), "SHOW ALL SLAVES STATUS")
    return row.get("Slave_heartbeat_period", "?")


def events_since(m: Monha, name: str, since: float) -> list[dict[str, Any]]:
    return [e for e in m.events(name) if event_time(e) >= since]


# --- a. loss ---------------------------------------------------------------------------------


# Defect 5's regression on the lab. Before the fix node2 failed over in 4 of 4 runs ("its host
# is down" outweighed "the replica still hears it"), both nodes writable for 0.7-1.7 s.
def test_loss_30pct_both_directions_no_failover(lab: Lab, both: dict[str, Monha]) -> None:
    m1, m2 = both["node1"], both["node2"]
    healthy_on_node1(lab, both)
    print(f"\nlab's heartbeat: the server default, {mariadb.SERVER_DEFAULT_HEARTBEAT_S:g} s")
    began = time.time()
    for round_ in range(1, LOSS_ROUNDS + 1):
        start, hb = time.time(), heartbeat_s(lab)
        lab.faults.loss("node1", LOSS_PERCENT, "both", arp=True)
        try:
            deadline = time.monotonic() + LOSS_S
            while time.monotonic() < deadline:
                takes = [n for n in NODES if writable(lab, n)]
                assert takes == ["node1"], f"round {round_}: writable {takes}"
                assert lab.vip_holders() == ["node1"], f"round {round_}: VIP {lab.vip_holders()}"
                assert read_flag(lab, "node2") is None, read_flag(lab, "node2")
                time.sleep(1.0)
        finally:
            lab.faults.loss_clear("node1")
        codes = sorted({str(e["reason_code"]) for e in events_since(m2, "decision_made", start)})
        print(f"round {round_}: heartbeat {hb} s; node2 decided {codes}")
        healthy_on_node1(lab, both)
        time.sleep(5)  # settle: any late decision shows now
    assert events_since(m2, "failover_started", began) == []
    assert events_since(m1, "failover_started", began) == []
    assert events_since(m1, "self_fence_started", began) == [], m1.events("self_fence_started")
    assert m2.status()["role"] == "standby" and read_only(lab, "node2")
    assert (read_flag(lab, "node1"), read_flag(lab, "node2")) == (None, None)
    stays_one_primary(lab, "node1", 3)


# --- b. isolation ----------------------------------------------------------------------------


# Defect 3's regression on the lab: node1 steps down before node2 promotes (the promote
# waits, `await_peer_step_down`, for an old primary SSH cannot reach to step down by itself).
def test_isolated_primary_fences_itself(lab: Lab, both: dict[str, Monha]) -> None:
    m1, m2 = both["node1"], both["node2"]
    healthy_on_node1(lab, both)
    fencing = m1.status()["isolation_fencing"]
    match = re.search(r"for ([\d.]+) s steps down", fencing)
    assert fencing.startswith("on:") and match, fencing
    limit_s = float(match.group(1))
    interval_s = 1.0  # probe.interval_s on the lab: the silence is seen at a tick
    isolated = time.time()
    lab.faults.isolate("node1")
    try:
        first: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(first) < 2:
            now = time.time() - isolated
            if (
                "fenced" not in first
                and read_only(lab, "node1")
                and "node1" not in lab.vip_holders()
            ):
                first["fenced"] = now
            if "promoted" not in first and writable(lab, "node2"):
                first["promoted"] = now
            time.sleep(0.1)
        print(
            f"\nisolation_fence_s {limit_s:g}: node1 read_only and without the VIP after "
            f"{first.get('fenced', -1):.2f} s, node2 writable after "
            f"{first.get('promoted', -1):.2f} s (polled)"
        )
        assert "fenced" in first, f"node1 never stepped down: {m1.status()['reason']}"
        # Silence counts from the last tick that heard anyone; the step-down runs at the tick
        # that sees it (plus the time read_only and the VIP take).
        assert first["fenced"] <= limit_s + interval_s + 2.0, first
        assert "promoted" in first, f"node2 never promoted: {m2.status()['reason']}"
        wait_for("node2's completion flag", lambda: read_flag(lab, "node2"), 60)
        assert lab.vip_holders() == ["node2"]
        assert events_since(m1, "self_fence_started", isolated), "node1 did not fence itself"
        # Set once the whole step-down (its services' stop too) is done.
        because = wait_for(
            "node1's reason for fencing itself",
            lambda: m1.status()["self_fenced_because"],
            20,
            0.5,
        )
        assert "heard neither the peer nor any witness" in because, because
    finally:
        lab.faults.unisolate("node1")
    stays_one_primary(lab, "node2", 10)
    assert one_primary(lab, "node2") == ""
    wait_for("node1 to report itself fenced", lambda: m1.status()["role"] == "fenced", 15)
    # From the daemons' own logs: node1 read_only (its self-fence's first step) and node2
    # writable (its promote step), same clock.
    read_only_at = next(
        event_time(e)
        for e in events_since(m1, "self_fenced", isolated)
        if e["step"] == "fence_mysql@node1" and e["ok"]
    )
    promoted_at = next(
        event_time(e)
        for e in events_since(m2, "step_finished", isolated)
        if e["step"] == "promote@node2"
    )
    print(
        f"node1 read_only {read_only_at - isolated:.3f} s after the isolation, node2 writable "
        f"{promoted_at - isolated:.3f} s after"
    )
    back_to_node1(lab, both)
    # docs/split-brain.md: "the isolated side is read_only by the time the other side can have
    # decided" (asserted last, once the cluster is back, so the next tests start healthy).
    assert read_only_at < promoted_at, (
        f"node2 was writable {read_only_at - promoted_at:.3f} s before the isolated node1 "
        "stepped down"
    )


# --- c. a hung mysqld ------------------------------------------------------------------------


def takes_writes(lab: Lab, node: str, known: dict[str, bool]) -> bool:
    """Whether the node's mysqld takes writes, or will the moment it runs again: a stopped
    (SIGSTOP) one counts as it was when it last answered; a dead one takes none."""
    pid = mariadb.mariadbd_pid(lab.paths, node)
    if pid is None:
        known[node] = False  # restarted, it reads my.cnf: a new process for the watch
        return False
    if proc_state(pid) in ("T", "t"):
        return known[node]
    try:
        out = mariadb.sql(lab.socket(node), "SELECT @@global.read_only", timeout=2.0)
    except CommandError:
        return known[node]
    known[node] = out.strip() != "1"
    return known[node]


def test_hung_mysqld_with_witness_never_two_vip_holders(lab: Lab, both: dict[str, Monha]) -> None:
    m1, m2 = both["node1"], both["node2"]
    healthy_on_node1(lab, both)
    known = {n: not read_only(lab, n) for n in NODES}
    assert known == {"node1": True, "node2": False}
    pid = lab.faults.freeze_mysqld("node1")
    assert proc_state(pid) in ("T", "t"), proc_state(pid)
    stopped = time.time()
    samples, thawed, flag_seen = 0, False, None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            vip = lab.vip_holders()
            takes = [n for n in NODES if takes_writes(lab, n, known)]
            t = time.time() - stopped
            assert len(vip) <= 1, f"{t:.1f} s after the SIGSTOP: VIP on {vip}"
            assert len(takes) <= 1, f"{t:.1f} s after the SIGSTOP: writable {takes}"
            samples += 1
            if flag_seen is None and read_flag(lab, "node2"):
                flag_seen = time.monotonic()
                deadline = min(deadline, flag_seen + 5)  # and a few seconds after
            time.sleep(0.2)
        lab.faults.thaw_mysqld("node1")
        thawed = True
        # A mysqld still there after the thaw must not serve beside node2 either.
        for _ in range(25):
            vip = lab.vip_holders()
            takes = [n for n in NODES if takes_writes(lab, n, known)]
            assert len(vip) <= 1 and len(takes) <= 1, f"after the thaw: VIP {vip}, writable {takes}"
            time.sleep(0.2)
    finally:
        if not thawed:
            lab.faults.thaw_mysqld("node1")
    steps = {e["step"]: e for e in events_since(m2, "step_finished", stopped)}
    failed = events_since(m2, "step_failed", stopped)
    started = events_since(m2, "failover_started", stopped)
    print(
        f"\nhung mysqld, {samples} samples at 0.2 s: failover "
        f"{'yes' if started else 'no'}; steps finished {sorted(steps)}; failed "
        f"{[(e['step'], e['detail']) for e in failed]}"
    )
    if started:
        assert flag_seen is not None, "a failover started but did not finish"
        fence, promote = steps.get("fence_mysql@node1"), steps.get("promote@node2")
        assert fence is not None, f"node1's mysqld was not fenced: {failed}"
        assert promote is not None and event_time(fence) <= event_time(promote), (fence, promote)
        assert mariadb.mariadbd_pid(lab.paths, "node1") is None, "the hung mysqld still runs"
        stays_one_primary(lab, "node2", 3)
        back_to_node1(lab, both)
    else:
        assert read_flag(lab, "node2") is None
        healthy_on_node1(lab, both)
    assert not m1.events("failover_started")


# --- d. a stale replica ----------------------------------------------------------------------


def test_stale_replica_is_not_promoted_automatically(lab: Lab, both: dict[str, Monha]) -> None:
    m2 = both["node2"]
    healthy_on_node1(lab, both)
    lab.sql("node2", "STOP SLAVE SQL_THREAD")
    lab.sql(
        "node1",
        "CREATE TABLE IF NOT EXISTS labdb.stale_rows (id INT PRIMARY KEY); "
        + "; ".join(f"INSERT INTO labdb.stale_rows VALUES ({i})" for i in range(1, 51)),
    )
    time.sleep(5)
    killed = time.time()
    lab.faults.kill_mysqld("node1")
    wait_for(
        "node2 to hold for its stale replica",
        lambda: m2.status()["reason_code"] == "hold_replica_stale",
        30,
    )
    time.sleep(10)  # well past detection: still holding
    s = m2.status()
    assert s["reason_code"] == "hold_replica_stale", s["reason"]
    assert read_flag(lab, "node2") is None and events_since(m2, "failover_started", killed) == []
    assert read_only(lab, "node2") and lab.vip_holders() == ["node1"]
    human = run_ok(lab, "node2", "status")
    print(f"\nmonha-ctl status on node2:\n{human}")
    assert "hold_replica_stale" in human and "SQL thread" in human, human
    answer = run_ok(lab, "node2", "failover", "--force", "--yes")
    print(f"monha-ctl failover --force --yes:\n{answer}")
    wait_for("node2 writable", lambda: writable(lab, "node2"), 10)
    assert lab.vip_holders() == ["node2"]
    try:
        rows = lab.sql("node2", "SELECT COUNT(*) FROM labdb.stale_rows").strip()
    except CommandError:
        rows = "none (no table)"
    print(f"rows of labdb.stale_rows on node2 after the forced failover: {rows} of 50")
    assert "SQL thread" in answer or "not applied" in answer, answer
