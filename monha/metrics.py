"""Prometheus metrics: one registry per daemon, served over HTTP for scraping.

Names follow Prometheus practice: the `monha_` prefix, base units, counters ending in
`_total`, timestamps rather than "time since". Labels are bounded sets only (never a free-text
reason). Every known label set is initialised at start so that alerts see zeros, not gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Info,
    start_http_server,
)

from monha import __version__
from monha.model import ProbeResult, ReplicaStatus, State

PROBES = ("mysql", "icmp", "ssh", "replica", "witness")
FAILOVER_RESULTS = ("succeeded", "failed", "abandoned")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        step_names: Iterable[str] = (),
        reason_codes: Iterable[str] = (),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("monha_build", "monha's version", registry=r)
        self.build_info.info({"version": __version__})
        self.state = Enum(
            "monha_state",
            "The monitor's state",
            states=[s.value for s in State],
            registry=r,
        )
        self.state.state(State.HEALTHY.value)
        self.probe_up = Gauge(
            "monha_probe_up",
            "1 when the probe's target answered on the last tick",
            ["probe"],
            registry=r,
        )
        self.probe_duration = Gauge(
            "monha_probe_duration_seconds",
            "How long the probe took on the last tick",
            ["probe"],
            registry=r,
        )
        for p in PROBES:
            self.probe_up.labels(p).set(0)
            self.probe_duration.labels(p).set(0)
        self.consecutive_failures = Gauge(
            "monha_primary_consecutive_failures",
            "Consecutive failed MySQL probes of the primary",
            registry=r,
        )
        self.decisions = Counter(
            "monha_decisions_total",
            "Decisions taken, by reason code",
            ["reason_code"],
            registry=r,
        )
        for code in reason_codes:
            self.decisions.labels(code)
        self.failovers = Counter(
            "monha_failovers_total",
            "Failovers run to the end, by result",
            ["result"],
            registry=r,
        )
        for res in FAILOVER_RESULTS:
            self.failovers.labels(res)
        self.switchovers = Counter(
            "monha_switchovers_total",
            "Planned switchovers run through this daemon, by result",
            ["result"],
            registry=r,
        )
        for res in (*FAILOVER_RESULTS, "rolled_back"):
            self.switchovers.labels(res)
        self.switchover_write_block = Gauge(
            "monha_last_switchover_write_block_seconds",
            "How long the last switchover blocked writes (read_only on the old primary until "
            "the VIP was up on the new one)",
            registry=r,
        )
        self.vip_holder = Gauge(
            "monha_vip_held",
            "1 when the node holds the VIP, as last seen by this daemon",
            ["node"],
            registry=r,
        )
        self.local_role = Enum(
            "monha_role",
            "This node's role, from the live topology",
            states=["primary", "standby", "fenced", "unknown"],
            registry=r,
        )
        self.local_role.state("unknown")
        self.failover_duration = Gauge(
            "monha_last_failover_duration_seconds",
            "Duration of the last failover, from decision to flag",
            registry=r,
        )
        self.last_failover = Gauge(
            "monha_last_failover_timestamp_seconds",
            "When the last failover finished (Unix time); 0 if never",
            registry=r,
        )
        self.unreceived = Gauge(
            "monha_last_failover_unreceived_transactions",
            "Transactions the promoted node had not received at the last failover, as of the "
            "old primary's last known position (an upper bound of the loss); -1 if unknown",
            registry=r,
        )
        self.unreceived.set(-1)
        self.step_duration = Gauge(
            "monha_last_failover_step_duration_seconds",
            "Duration of each step of the last failover",
            ["step"],
            registry=r,
        )
        for name in step_names:
            self.step_duration.labels(name).set(0)
        self.flag_present = Gauge(
            "monha_flag_present",
            "1 while the completion flag blocks automatic failover",
            registry=r,
        )
        self.replication_lag = Gauge(
            "monha_replication_lag_seconds",
            "Seconds_Behind_Master of the local replica; -1 when unknown",
            registry=r,
        )
        self.replica_threads = Gauge(
            "monha_replica_thread_running",
            "1 when the local replica's thread runs",
            ["thread"],
            registry=r,
        )
        for t in ("io", "sql"):
            self.replica_threads.labels(t).set(0)
        self.partition_suspected = Gauge(
            "monha_partition_suspected",
            "1 while a witness still sees the primary this node has lost",
            registry=r,
        )
        self.salvaged = Counter(
            "monha_salvaged_transactions_total",
            "Transactions recovered from the old primary's binary log",
            registry=r,
        )
        self.last_tick = Gauge(
            "monha_last_tick_timestamp_seconds",
            "When the last tick finished (Unix time)",
            registry=r,
        )

    def init_nodes(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self.vip_holder.labels(node).set(0)

    def observe_probe(self, probe: str, result: ProbeResult) -> None:
        self.probe_up.labels(probe).set(1 if result.answered else 0)
        self.probe_duration.labels(probe).set(result.latency_s or 0.0)

    def observe_replica(self, status: ReplicaStatus | None) -> None:
        if status is None or not status.configured:
            self.replication_lag.set(-1)
            self.replica_threads.labels("io").set(0)
            self.replica_threads.labels("sql").set(0)
            return
        lag = status.seconds_behind
        self.replication_lag.set(-1 if lag is None else lag)
        self.replica_threads.labels("io").set(1 if status.io_running == "Yes" else 0)
        self.replica_threads.labels("sql").set(1 if status.sql_running == "Yes" else 0)

    def serve(self, address: str, port: int) -> Any:
        """Start the scrape endpoint in a thread; returns the server (call .shutdown())."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
