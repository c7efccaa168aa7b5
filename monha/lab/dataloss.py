"""Data-loss runs on the lab (issue 4), shared by the scenario tests and bench/data_loss.py.

Each run starts from a fresh lab (node1 primary, node2 replica, monha on node2), puts the
write load on the VIP, injects one fault, waits for the completion flag and counts the
acknowledged rows the new primary lacks. What is compared with those counts is what monha
itself reported: the flag's salvage data, and (after a host death) the errant transactions
found on the old primary once it is back.

Must not: look inside monha (only its flag, its log and the databases, as an operator would).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from monha.lab.drive import Load, Monha, load_report, read_flag, wait_for
from monha.lab.lab import Lab

# How far (bytes of binary log) the replica must have fallen behind before the fault, and the
# rate that makes it fall behind: node2's ACKs are starved, so node1's binlog stream slows.
LAG_BYTES = 100_000
LAG_THROTTLE = "4kbit"
# node1's TCP send buffer is capped for these runs: otherwise the kernel holds (and, after
# mysqld dies, still delivers) a few MB of binlog stream, and the replica's lag would sit in
# socket buffers rather than in the binary log file, where only a salvage can reach it.
SEND_BUFFER = "4096 16384 32768"


@dataclass
class RunResult:
    scenario: str
    acked: int
    lost: int
    salvaged: int | None  # transactions the flag says were salvaged (None: no salvage step)
    lag_bytes: int  # how far the replica's IO thread was behind at the fault
    errant_load_rows: int | None = None  # load rows found only on the old primary afterwards
    detail: str = ""
    flag: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        parts = [
            f"{self.scenario}: acked {self.acked}, lost {self.lost}",
            f"replica behind {self.lag_bytes} B at the fault",
            f"salvaged {self.salvaged if self.salvaged is not None else '-'}",
        ]
        if self.errant_load_rows is not None:
            parts.append(f"errant load rows on the old primary {self.errant_load_rows}")
        return ", ".join(parts) + (f" ({self.detail})" if self.detail else "")


def fresh(lab: Lab, *, semi_sync: bool = False) -> None:
    """The lab brought up again on the same server (MariaDB or MySQL) as before."""
    lab.up(replace=True, semi_sync=semi_sync, server=lab.server_name, log=lambda _m: None)


def replica_lag_bytes(lab: Lab, primary: str = "node1", replica: str = "node2") -> int:
    """How far (bytes of the primary's binary log) the replica's IO thread is behind."""
    db = lab.db
    binlog = lab.sql(primary, db.BINLOG_STATUS_SQL).split()
    view = db.replica_view(lab.socket(replica))
    if binlog[0] != view.get("source_log_file"):
        return 10**9  # a whole file behind
    return int(binlog[1]) - int(view.get("read_source_log_pos") or 0)


def _start(lab: Lab, rate: float, *, peer: bool = False) -> tuple[Monha, Load, Monha | None]:
    """monha on node2 (and, with `peer`, on node1 too), then the load once node2's daemon
    judges the primary healthy; returns (node2's daemon, the load, node1's daemon or None)."""
    on_node1 = Monha.start(lab, "node1") if peer else None
    monha = Monha.start(lab)
    wait_for("a healthy decision", lambda: monha.status()["state"] == "healthy", 20)
    return monha, Load.start(lab, rate=rate), on_node1


def _finish(lab: Lab, monha: Monha, load: Load, scenario: str, lag: int) -> RunResult:
    flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 90)
    wait_for(
        "acknowledged writes from node2 (server_id 102)",
        lambda: 102 in load.record().acked_server.values(),
        30,
    )
    report = load_report(load, "node2")
    fb = flag.get("failback", {})
    salvaged = fb.get("salvaged_transactions")
    detail = next(
        (s["detail"] for s in flag["steps"] if s["step"].startswith("salvage_binlog")), ""
    )
    return RunResult(
        scenario,
        report.acked,
        len(report.lost),
        int(salvaged) if salvaged is not None else None,
        lag,
        detail=detail,
        flag=flag,
    )


def run_kill9_lagging(lab: Lab, rate: float = 200.0, *, peer: bool = False) -> RunResult:
    """kill -9 of the primary's mysqld while the replica's IO thread lags behind (`peer`:
    monha runs on node1 as well)."""
    fresh(lab)
    lab.run_in("node1", ["sysctl", "-q", "-w", f"net.ipv4.tcp_wmem={SEND_BUFFER}"], check=True)
    # A new connection for the replica, under the capped buffer (MariaDB has the REPLICA
    # synonyms since 10.5, MySQL 8.4 has nothing else).
    lab.sql("node2", "STOP REPLICA IO_THREAD; START REPLICA IO_THREAD")
    monha, load, on_node1 = _start(lab, rate, peer=peer)
    try:
        lab.faults.throttle("node2", LAG_THROTTLE)
        lag = wait_for(
            "the replica to fall behind",
            lambda: (n := replica_lag_bytes(lab)) > LAG_BYTES and n,
            60,
        )
        lab.faults.kill_mysqld("node1")
        # The link recovers at once: what the replica never received is only in node1's
        # binary log, and monha's SSH must work to fetch it.
        lab.faults.throttle_clear("node2")
        return _finish(lab, monha, load, "kill9-lagging", lag)
    finally:
        lab.faults.throttle_clear("node2")
        load.stop()
        monha.stop()
        if on_node1 is not None:
            on_node1.stop()


def run_host_death(lab: Lab, *, semi_sync: bool, rate: float = 200.0) -> RunResult:
    """The primary's host dies (frozen, link down) under load; then it comes back and the
    transactions only it has are looked for (they are the rows lost)."""
    fresh(lab, semi_sync=semi_sync)
    monha, load, _ = _start(lab, rate)
    try:
        time.sleep(2)
        lag = replica_lag_bytes(lab)
        lab.faults.host_down("node1")
        result = _finish(
            lab, monha, load, f"host-death-{'semisync' if semi_sync else 'async'}", lag
        )
        lab.faults.host_up("node1")
        wait_for("node1 fenced (read_only)", lambda: _read_only(lab, "node1"), 30)
        errant = errant_report(lab)
        result.errant_load_rows = errant.get("errant_load_rows")
        return result
    finally:
        lab.faults.clear_all()
        load.stop()
        monha.stop()


def _read_only(lab: Lab, node: str) -> bool:
    try:
        return lab.sql(node, "SELECT @@global.read_only").strip() == "1"
    except Exception:
        return False


def errant_report(lab: Lab, out_dir: str = "/var/lib/monha/errant") -> dict[str, Any]:
    """Run monha's errant-transaction finder inside node2 (the new primary) against node1."""
    argv = [
        sys.executable, "-m", "monha.binlog_io", "errant",
        "--config", "/etc/monha/monha.toml", "--node", "node2", "--out", out_dir,
    ]  # fmt: skip
    done = lab.run_in("node2", argv, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"errant finder failed: {done.stdout}{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    rows = 0
    if report.get("sql_file"):
        # The file is written inside node2: /var/lib/monha is the node's own directory.
        host = lab.paths.node("node2").var_lib_monha / report["sql_file"].removeprefix(
            "/var/lib/monha/"
        )
        rows = host.read_text(errors="replace").count("### INSERT INTO `labdb`.`load_rows`")
    report["errant_load_rows"] = rows
    return report
