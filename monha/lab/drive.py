"""Driving the lab: the real monha daemon and the write load run inside it, and what an
operator would look at (used by the demo, the benchmarks and the scenario tests).

Everything is observed from outside: the daemon's control socket through monha-ctl, the flag
file on the node, the VIP's holder, HTTP through the VIP from the client, rows on the final
primary. Processes are started through the lab (which records their PIDs) and ended by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monha.lab.lab import Lab
from monha.lab.load import Record, lost_rows, read_record, write_outage

BIN = Path(sys.executable).parent
CONFIG = "/etc/monha/monha.toml"  # inside each node (the lab mounts each node's own)


def wait_for(
    what: str, predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def end_pid(pid: int, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    if not alive(pid):
        return
    os.kill(pid, sig)
    try:
        wait_for(f"pid {pid} to exit", lambda: not alive(pid), timeout_s)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_for(f"pid {pid} to die", lambda: not alive(pid), 5.0)


@dataclass
class Monha:
    """One monha daemon running inside a lab node."""

    lab: Lab
    node: str
    pid: int
    log: Path

    @classmethod
    def start(
        cls,
        lab: Lab,
        node: str = "node2",
        *extra: str,
        env: dict[str, str] | None = None,
        timeout_s: float = 20.0,  # the benchmark allows more on a machine under load
    ) -> Monha:
        log = lab.paths.node(node).logs / f"monha-{secrets.token_hex(3)}.log"
        argv = [str(BIN / "monha"), "run", "--config", CONFIG, "--log-format", "json", *extra]
        if env:  # env(1) execs monha: the recorded PID stays the daemon's
            argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items()), *argv]
        pid = lab.spawn_in(node, argv, "monha", log)
        m = cls(lab, node, pid, log)
        wait_for("monha to answer on its control socket", m.try_status, timeout_s, 0.2)
        return m

    def ctl(self, *args: str, timeout: float = 20.0) -> Any:
        argv = [str(BIN / "monha-ctl"), "--config", CONFIG, *args]
        return self.lab.run_in(self.node, argv, timeout=timeout)

    def try_status(self, *, cluster: bool = False) -> dict[str, Any] | None:
        """The daemon's status, or None if monha-ctl failed. Without `cluster` the daemon does
        not ask the nodes (what a test polls during a fault must answer at once)."""
        if not alive(self.pid):
            raise AssertionError(f"monha exited; its log:\n{self.log.read_text()[-3000:]}")
        done = self.ctl("status", "--json", *(() if cluster else ("--no-cluster",)))
        if done.returncode != 0:
            return None
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def status(self, *, cluster: bool = False) -> dict[str, Any]:
        s = self.try_status(cluster=cluster)
        if s is None:
            done = self.ctl("status", "--json", *(() if cluster else ("--no-cluster",)))
            raise AssertionError(f"monha-ctl status failed: {done.stdout}{done.stderr}")
        return s

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def stop(self) -> None:
        end_pid(self.pid)
        self.keep_log()

    def kill(self) -> None:
        end_pid(self.pid, signal.SIGKILL)
        self.keep_log()

    def keep_log(self) -> None:
        """Copy the log out of the lab, which `down` removes, for a post-mortem."""
        keep = Path("/tmp/monha-lab-logs")
        keep.mkdir(exist_ok=True)
        (keep / f"{self.lab.prefix}-{self.log.name}").write_bytes(self.log.read_bytes())


def event_time(event: dict[str, Any]) -> float:
    """A monha log event's time (its ISO 8601 UTC timestamp) as seconds since the epoch."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def flag_path(lab: Lab, node: str) -> Path:
    return lab.paths.node(node).var_lib_monha / "failover.flag"


def read_flag(lab: Lab, node: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(flag_path(lab, node).read_text())
    except FileNotFoundError:
        return None
    return data


def reset_monha_state(lab: Lab) -> None:
    """Remove flags and journals left by an earlier scenario of the same module."""
    for node in ("node1", "node2"):
        for name in ("failover.flag", "journal.json"):
            (lab.paths.node(node).var_lib_monha / name).unlink(missing_ok=True)


@dataclass
class Load:
    """The lab's write-load generator, running in the client namespace through the VIP."""

    lab: Lab
    pid: int
    out: Path
    run_id: str

    @classmethod
    def start(cls, lab: Lab, rate: float = 200.0) -> Load:
        run_id = "s" + secrets.token_hex(4)
        out = lab.paths.root / f"load-{run_id}.jsonl"
        argv = [
            sys.executable, "-m", "monha.lab.load",
            "--rate", str(rate), "--run-id", run_id, "--out", str(out),
        ]  # fmt: skip
        pid = lab.spawn_in("client", argv, f"load-{run_id}")
        load = cls(lab, pid, out, run_id)
        wait_for("the load to acknowledge rows", lambda: len(load.record().acked) > 20, 20.0)
        return load

    def record(self) -> Record:
        if not self.out.exists():
            return Record()
        return read_record(self.out)

    def stop(self) -> Record:
        end_pid(self.pid)
        return self.record()

    def rows_on(self, node: str) -> set[int]:
        out = self.lab.sql(
            node, f"SELECT id FROM labdb.load_rows WHERE run_id = '{self.run_id}'", timeout=30
        )
        return {int(x) for x in out.split()}


@dataclass
class LoadReport:
    acked: int
    lost: list[int]
    outage_s: float
    failed_attempts: int

    def line(self) -> str:
        return (
            f"acknowledged {self.acked}, lost {len(self.lost)}, "
            f"longest write outage {self.outage_s:.2f} s, failed attempts {self.failed_attempts}"
        )


def load_report(load: Load, final_primary: str) -> LoadReport:
    record = load.stop()
    lost = lost_rows(record.acked, load.rows_on(final_primary))
    _, _, outage = write_outage(record)
    return LoadReport(len(record.acked), lost, outage, len(record.failed))


def http_via_vip(lab: Lab) -> str:
    done = lab.run_in("client", ["curl", "-s", "-m", "2", "http://192.168.10.10/"], timeout=10)
    return done.stdout.strip()


def zabbix_running(lab: Lab) -> list[str]:
    return [
        n for n in ("node1", "node2") if lab.service(n, "zabbix-server", "status").returncode == 0
    ]


def read_only(lab: Lab, node: str) -> bool:
    return lab.sql(node, "SELECT @@global.read_only").strip() == "1"
