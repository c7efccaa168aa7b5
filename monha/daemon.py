"""The daemon's lifecycle: startup, the tick loop, the control server, signals, teardown.

Each tick: observe (all probes at once) → `fsm.decide` (pure) → log and export the decision →
run its plan, if any, through the executor. The shutdown trigger is an Event that tests set
directly; SIGTERM/SIGINT set it too, and a second signal forces the exit. SIGHUP reloads the
configuration, only if the new file validates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monha import __version__, check, fencing, fsm, handles, log
from monha.config import Config, ConfigError, load_config
from monha.executor import Executor
from monha.journal import Journal, RecordError, read_flag
from monha.metrics import Metrics
from monha.model import (
    Decision,
    MonitorState,
    Observation,
    ProbeStatus,
    ReasonCode,
    State,
    StepKind,
)
from monha.mysql import MySQLError
from monha.observe import Observer, Peers, local_node
from monha.operations import Operations
from monha.plan import describe
from monha.runners import LocalRunner, RunnerError
from monha.sdnotify import Notifier
from monha.steps import Nodes, ReplicationSource, drain_background

# The VIP holder metric is refreshed every few ticks, each question bounded.
VIP_EXPORT_EVERY_TICKS = 5
VIP_EXPORT_TIMEOUT_S = 1.0

# After a plan stopped on a failed step, wait this long before the next attempt: the journal
# keeps what finished, and hammering a failing step every tick helps nobody.
RETRY_AFTER_FAILED_PLAN_S = 5.0


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        node: str | None = None,
        shutdown: asyncio.Event | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.config_path = config_path
        self.cfg: Config = load_config(config_path)
        self.me = node or local_node(self.cfg)
        self.cfg.node(self.me)  # an unknown --node fails here, before anything starts
        self.shutdown = shutdown or asyncio.Event()
        self.metrics = Metrics(
            registry,
            step_names=[k.value for k in StepKind],
            reason_codes=[c.value for c in ReasonCode],
        )
        self.serve_metrics = serve_metrics
        self.notifier = Notifier()
        self.log = log.get("monha.daemon")
        self.state = MonitorState()
        self.last_decision: Decision | None = None
        self.last_observation: Observation | None = None
        self.role = "unknown"
        self.idle_primary = False
        self.self_fenced_because: str | None = None
        self._reload_requested = False
        self._signals = 0
        self._next_plan_at = 0.0
        # Held by each tick and by each operator command (switchover, rejoin, ...): a command
        # never runs while a tick decides, nor a tick while a command changes the topology.
        self.busy = asyncio.Lock()
        self._ticks = 0
        self._build()

    # --- wiring ---------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.cfg
        peer = cfg.peer_of(self.me)
        monitor_pw = cfg.mysql.monitor_secret().get_secret_value()
        local = handles.local_server(cfg, self.me, monitor_pw, cfg.failover.promote_timeout_s)
        remote = handles.remote_server(cfg, peer.name, monitor_pw, cfg.failover.fence_timeout_s)
        ssh = handles.ssh_runner(cfg, peer.name)
        self.peers = Peers(
            local=local, primary=remote, ssh=ssh, witnesses=handles.witness_runners(cfg)
        )
        self.observer = Observer(cfg, self.me, self.peers, monitor_pw)
        self.policy = fsm.Policy.from_config(cfg)
        self.nodes = Nodes(
            runners={self.me: LocalRunner(), peer.name: ssh},
            mysql={self.me: local, peer.name: remote},
        )
        self.executor = Executor(
            Journal(Path(cfg.failover.journal_file)),
            self.nodes,
            self.metrics,
            cluster=cfg.cluster.name,
        )
        repl_pw = cfg.mysql.replication_secret().get_secret_value()
        self.nodes.sources = {
            n.name: ReplicationSource(
                n.address,
                n.mysql_port,
                cfg.mysql.replication_user,
                repl_pw,
                cfg.mysql.heartbeat_period_s,
            )
            for n in cfg.nodes
        }
        self.operations = Operations(
            cfg,
            self.me,
            self.nodes,
            self.executor,
            self.metrics,
            self.busy,
            self.notifier.watchdog,
        )

    async def _close_handles(self) -> None:
        await drain_background(self.nodes, 5.0)
        closers = [self.peers.ssh.close, self.peers.local.close, self.peers.primary.close]
        closers += [w.close for w in self.peers.witnesses.values()]
        for closer in closers:
            with contextlib.suppress(Exception):
                await closer()

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        installed = []
        if _main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
                installed.append(sig)
            loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
            installed.append(signal.SIGHUP)
        from monha.control import ControlServer  # the shell's own layer

        control = ControlServer(Path(self.cfg.control.socket), self.handle_request)
        metrics_server = None
        self.log.info(
            "daemon_started",
            version=__version__,
            node=self.me,
            peer=self.cfg.peer_of(self.me).name,
            config=str(self.config_path),
            pid=os.getpid(),
        )
        try:
            await control.start()
            if self.serve_metrics:
                m = self.cfg.metrics
                metrics_server = self.metrics.serve(m.listen_address, m.listen_port)
            await self._loop()
        finally:
            self.notifier.stopping()
            await control.close()
            if metrics_server is not None:
                metrics_server.shutdown()
            await self._close_handles()
            for sig in installed:
                loop.remove_signal_handler(sig)
            self.log.info("daemon_stopped", node=self.me)
        return 0

    def _on_stop_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            self.log.warning("daemon_forced_exit", signal=signal.Signals(sig).name)
            os._exit(1)
        self.log.info("stop_requested", signal=signal.Signals(sig).name)
        self.shutdown.set()

    def _on_reload_signal(self) -> None:
        self._reload_requested = True

    def _reload(self) -> None:
        self._reload_requested = False
        try:
            cfg = load_config(self.config_path)
        except ConfigError as exc:
            self.log.error("reload_refused", problems=exc.lines)
            return
        self.cfg = cfg
        self._build()
        log.setup(cfg.log.format, cfg.log.level)
        self.log.info("config_reloaded", config=str(self.config_path))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while not self.shutdown.is_set():
            started = loop.time()
            if self._reload_requested:
                self._reload()
            try:
                async with self.busy:
                    await self.tick()
            except Exception:
                # A bug met in one tick must not take monitoring down at night: log it with
                # its traceback and go on. The watchdog is fed only after good ticks, so a
                # daemon failing every tick is still restarted by systemd.
                self.log.exception("tick_failed")
            else:
                self._ticks += 1
                if self._ticks % VIP_EXPORT_EVERY_TICKS == 1:
                    await self._export_vip()
                if first:
                    self.notifier.ready(f"{self.state.state}: {self._reason()}")
                    first = False
                self.notifier.watchdog()
                self.metrics.last_tick.set(time.time())
            delay = max(0.0, started + self.cfg.probe.interval_s - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.shutdown.wait()

    # --- one tick -------------------------------------------------------------------------

    async def tick(self) -> None:
        obs = await self.observer.observe()
        self.last_observation = obs
        self._export(obs)
        self.role = await self._role(obs)
        self.metrics.local_role.state(self.role)
        self.idle_primary = self.role in ("primary", "fenced") and not (
            obs.flag_present or obs.journal_open
        )
        if self.idle_primary and self.role == "fenced":
            self.state = MonitorState(state=State.HEALTHY, since=self.state.since or obs.at)
            self.metrics.state.state(self.state.state.value)
            return
        if self.idle_primary:
            await self._watch_peer_as_primary(obs)
            return
        decision = fsm.decide(self.state, obs, self.policy)
        self._log_decision(decision)
        self.state = decision.state
        self.last_decision = decision
        self.metrics.state.state(self.state.state.value)
        self.metrics.consecutive_failures.set(self.state.consecutive_failures)
        self.metrics.decisions.labels(decision.reason_code.value).inc()
        self.metrics.partition_suspected.set(
            1 if decision.reason_code is ReasonCode.HOLD_PARTITION else 0
        )
        if self.state.state is State.DONE_FLAGGED:
            await self._refence(obs)
        if decision.plan and time.monotonic() >= self._next_plan_at:
            ok = await self.executor.run(
                decision.plan,
                decision.plan_kind,
                decision.reason,
                obs.primary,
                obs.replica,
                on_progress=self.notifier.watchdog,
            )
            if not ok:
                self._next_plan_at = time.monotonic() + RETRY_AFTER_FAILED_PLAN_S

    async def _refence(self, obs: Observation) -> None:
        """After a failover, fence the old primary again the moment it shows up alive.

        A supervisor may restart its mysqld writable, or a frozen host may thaw still holding
        the VIP (its kernel answers ARP for it). Only the node that the flag names as the new
        primary does this, and only against the old primary.
        And only while this node IS the primary: after a rejoin and a switchover back (the
        failback), the flag is still here until `resume`, and the old primary is the
        primary again by the operator's will.
        """
        if self.role != "primary":
            return
        try:
            flag = read_flag(Path(self.cfg.failover.flag_file)) or {}
        except RecordError:
            return
        if flag.get("new_primary") != self.me or flag.get("old_primary") != obs.primary:
            return
        if not (obs.primary_mysql.answered or obs.primary_ssh.status is ProbeStatus.OK):
            return
        facts = await fencing.peer_facts(
            self.cfg, obs.primary, obs, self.peers.primary, self.peers.ssh, want_flag=False
        )
        if facts.writable or facts.holds_vip:
            await fencing.refence_old_primary(
                self.policy.plan, self.nodes, obs.primary, self.me, facts
            )

    async def _role(self, obs: Observation) -> str:
        """The role, from the live topology: "standby" while the local MySQL replicates,
        "primary" when it replicates from nobody and takes writes, "fenced" when it
        replicates from nobody and is read_only (an old primary waiting to be rejoined).

        A primary or fenced node with no failover recorded (no journal, no flag) has nothing
        to decide: the peer's monha watches it. With a flag or an open journal the state
        machine still runs, so that the flag's reason is reported and an unfinished failover
        is finished.
        """
        rv = obs.replica_view
        if rv.probe.status is not ProbeStatus.OK or rv.status is None or rv.status.configured:
            return "standby"
        try:
            read_only = await self.peers.local.read_only(self.cfg.probe.mysql_timeout_s)
        except MySQLError:
            return "standby"  # unclear: the state machine holds when evidence is missing
        return "fenced" if read_only else "primary"

    async def _watch_peer_as_primary(self, obs: Observation) -> None:
        """This node is the primary: watch the peer, and fence this node the moment the peer
        shows it took over (its flag, or the VIP): two primaries must not both take writes."""
        if self.last_decision is None or self.state.state is not State.HEALTHY:
            self.state = MonitorState(state=State.HEALTHY, since=obs.at)
        self.metrics.state.state(self.state.state.value)
        if not (obs.primary_mysql.answered or obs.primary_ssh.status is ProbeStatus.OK):
            return  # the peer is out of sight: nothing says it took over
        facts = await fencing.peer_facts(
            self.cfg, obs.primary, obs, self.peers.primary, self.peers.ssh, want_flag=True
        )
        why = fsm.peer_took_over(
            obs.primary, holds_vip=facts.holds_vip, writable=facts.writable, flag=facts.flag
        )
        if why is None:
            if facts.writable:
                self.log.warning("peer_writable", peer=obs.primary, detail="no VIP, no flag there")
            return
        await fencing.self_fence(self.policy.plan, self.nodes, self.me, obs.primary, why)
        self.self_fenced_because = why

    def _export(self, obs: Observation) -> None:
        m = self.metrics
        m.observe_probe("mysql", obs.primary_mysql)
        m.observe_probe("icmp", obs.primary_icmp)
        m.observe_probe("ssh", obs.primary_ssh)
        m.observe_probe("replica", obs.replica_view.probe)
        for w in obs.witnesses:
            m.observe_probe("witness", w)
        m.observe_replica(obs.replica_view.status)
        m.flag_present.set(1 if obs.flag_present else 0)
        for probe in (obs.primary_mysql, obs.primary_icmp, obs.primary_ssh, obs.replica_view.probe):
            if not probe.answered and probe.status is not ProbeStatus.SKIPPED:
                self.log.info(
                    "probe_failed",
                    probe=probe.name,
                    target=probe.target,
                    status=str(probe.status),
                    latency_s=round(probe.latency_s or 0.0, 3),
                    detail=probe.detail,
                    error_code=probe.error_code,
                )

    def _log_decision(self, d: Decision) -> None:
        prev = self.last_decision
        changed = (
            prev is None
            or prev.state.state is not d.state.state
            or prev.reason_code is not d.reason_code
        )
        if d.state.state is not self.state.state:
            self.log.info(
                "state_changed",
                from_state=str(self.state.state),
                to_state=str(d.state.state),
                reason_code=str(d.reason_code),
                reason=d.reason,
            )
        if changed or d.plan:
            self.log.info(
                "decision_made",
                state=str(d.state.state),
                observed=str(d.event),
                reason_code=str(d.reason_code),
                reason=d.reason,
                consecutive_failures=d.state.consecutive_failures,
                plan=[describe(s) + f" on {s.node}" for s in d.plan],
            )

    def _reason(self) -> str:
        if self.idle_primary and self.role == "fenced":
            why = f" ({self.self_fenced_because})" if self.self_fenced_because else ""
            return (
                f"this node is fenced: read_only, replicating from nobody{why}; "
                "make it a replica of the primary (monha-ctl rejoin)"
            )
        if self.idle_primary:
            return "this node is the primary; the peer's monha watches it"
        return self.last_decision.reason if self.last_decision else "starting"

    # --- control API ----------------------------------------------------------------------

    async def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """The control API's commands; what they do lives in monha.operations."""
        cmd = request["cmd"]
        ops = self.operations
        if cmd == "status":
            answer = {"ok": True, **self.status()}
            if request.get("cluster", True):
                answer["cluster"] = (await ops.survey()).to_dict()
            return answer
        if cmd == "check":
            return await ops.check()
        if cmd == "switchover":
            to = request.get("to")
            return await ops.switchover(to if isinstance(to, str) else None)
        if cmd == "failover":
            return await ops.failover(request.get("force") is True)
        if cmd == "rejoin":
            node = request.get("node")
            if not isinstance(node, str):
                return {"ok": False, "error": "rejoin needs a node name"}
            return await ops.rejoin(node)
        if cmd == "resume":
            return await ops.resume()
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def _export_vip(self) -> None:
        """Who holds the VIP, for monha_vip_held: locally each time, the peer only while SSH
        reached it on the last tick (a hung SSH must not stretch the ticks)."""
        obs = self.last_observation
        ssh_up = obs is not None and obs.primary_ssh.status is ProbeStatus.OK
        for name, runner in self.nodes.runners.items():
            if name != self.me and not ssh_up:
                continue
            try:
                held = await check.holds_vip(self.cfg, runner, name, VIP_EXPORT_TIMEOUT_S)
            except (RunnerError, TimeoutError):
                continue
            self.metrics.vip_holder.labels(name).set(1 if held else 0)

    def status(self) -> dict[str, Any]:
        obs = self.last_observation
        try:
            flag = read_flag(Path(self.cfg.failover.flag_file))
        except RecordError as exc:
            flag = {"error": str(exc)}
        d = self.last_decision
        return {
            "node": self.me,
            "peer": self.cfg.peer_of(self.me).name,
            "role": self.role,
            "state": str(self.state.state),
            "since": self.state.since,
            "consecutive_failures": self.state.consecutive_failures,
            "reason_code": str(d.reason_code) if d and not self.idle_primary else None,
            "reason": self._reason(),
            "observation": asdict(obs) if obs else None,
            "flag": flag,
            "operation_running": self.operations.running,
            "journal": _journal_summary(Path(self.cfg.failover.journal_file)),
        }


def _journal_summary(path: Path) -> dict[str, Any] | None:
    """The last plan in the journal, in a few fields (an unfinished switchover shows here)."""
    try:
        record = Journal(path).load()
    except RecordError as exc:
        return {"error": str(exc)}
    if record is None:
        return None
    return {
        "id": record.failover_id,
        "kind": record.kind,
        "old_primary": record.old_primary,
        "new_primary": record.new_primary,
        "finished": record.finished,
        "started_at": record.started_at,
        "steps_done": len(record.done),
        "rolled_back": bool(record.data.get("rolled_back")),
    }


def _main_thread() -> bool:
    # Signal handlers can only be installed from the main thread (tests may run elsewhere).
    return threading.current_thread() is threading.main_thread()
