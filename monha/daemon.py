"""The daemon's lifecycle: startup, the tick loop, the control server, signals, teardown.

Each tick: observe (all probes at once) → `fsm.decide` (pure) → log and export the decision →
run its plan, if any, through the executor (a new plan, the journal's plan replayed, or the
journal's plan closed unrun). The shutdown trigger is an Event that tests set directly;
SIGTERM/SIGINT set it too, and a second signal forces the exit. SIGHUP reloads the
configuration between ticks, only if the new file and everything built from it validate.

One daemon per cluster and node: an exclusive lock on a file beside the journal is taken
before anything else (`DaemonLock`). The systemd watchdog proves the event loop lives: it is
fed after each good tick and, while a plan or an operator command runs (the tick lock is
held), by a task of its own, so a long step never gets the daemon killed into the same step.

The node's I/O (probes, MySQL handles, runners) comes from a `Wiring`, built from the config
by `real_wiring`; tests pass their own to run the whole daemon in-process against fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monha import (
    __version__,
    check,
    cluster_files,
    fencing,
    fsm,
    handles,
    log,
    loss_bound,
    replica_care,
)
from monha.config import Config, ConfigError, check_config_file, load_config
from monha.executor import Executor
from monha.guard import PrimaryGuard
from monha.journal import DISCARD_HINT, Journal, RecordError, read_flag
from monha.metrics import Metrics
from monha.model import (
    Decision,
    Event,
    MonitorState,
    Observation,
    PlanKind,
    ProbeResult,
    ProbeStatus,
    ReasonCode,
    State,
    StepKind,
)
from monha.mysql import MySQLError
from monha.observe import Observer, Peers, local_node
from monha.operations import Operations
from monha.plan import describe
from monha.runners import RunnerError
from monha.sdnotify import Notifier
from monha.split_brain import isolation_fencing
from monha.steps import Nodes, ReplicationSource, drain_background

# The VIP holder metric is refreshed every few ticks, each question bounded.
VIP_EXPORT_EVERY_TICKS = 5
VIP_EXPORT_TIMEOUT_S = 1.0

# While a plan or a command holds the tick lock, the watchdog is fed this often (the unit's
# WatchdogSec is 30 s).
WATCHDOG_KEEPALIVE_S = 5.0


class DaemonLockError(Exception):
    """Another monha daemon holds this cluster's lock on this node."""


class DaemonLock:
    """An exclusive flock on `path`, held for the daemon's life; the holder's PID inside.

    Taken before the control socket or anything else, so a second `monha run` for the same
    cluster on the same node changes nothing: it names the running one and exits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DaemonLockError(
                f"another monha daemon (pid {holder}) already runs for this cluster on this "
                f"node: it holds {self.path}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            # The file was removed (or replaced) after we opened it: a lock on it would guard
            # nothing that a second daemon opens by path. Try again on the file now there.
            os.close(fd)
            self.acquire()
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor; the file stays
            self._fd = None


def lock_path(cfg: Config) -> Path:
    journal = Path(cfg.failover.journal_file)
    return journal.with_name(journal.name + ".lock")


@dataclass(slots=True)
class Wiring:
    """This node's I/O: how it probes (observer), and the handles its steps use."""

    peers: Peers
    observer: Observer
    nodes: Nodes


def real_wiring(cfg: Config, me: str) -> Wiring:
    """The handles to the real nodes, from the config (reads the password files)."""
    peer = cfg.peer_of(me)
    monitor_pw = cfg.mysql.monitor_secret().get_secret_value()
    local = handles.local_server(cfg, me, monitor_pw, cfg.failover.promote_timeout_s)
    remote = handles.remote_server(cfg, peer.name, monitor_pw, cfg.failover.fence_timeout_s)
    ssh = handles.ssh_runner(cfg, peer.name)
    peers = Peers(local=local, primary=remote, ssh=ssh, witnesses=handles.witness_runners(cfg))
    nodes = Nodes(
        runners={me: handles.local_runner(cfg), peer.name: ssh},
        mysql={me: local, peer.name: remote},
    )
    repl_pw = cfg.mysql.replication_secret().get_secret_value()
    nodes.sources = {
        n.name: ReplicationSource(
            n.address,
            n.mysql_port,
            cfg.mysql.replication_user,
            repl_pw,
            cfg.mysql.heartbeat_period_s,
            cfg.mysql.replication_ssl,
        )
        for n in cfg.nodes
    }
    return Wiring(peers, Observer(cfg, me, peers, monitor_pw), nodes)


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        node: str | None = None,
        shutdown: asyncio.Event | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool = True,
        wiring: Callable[[Config, str], Wiring] = real_wiring,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        lock: DaemonLock | None = None,
    ) -> None:
        self.config_path = config_path
        self.lock = lock  # already held by the caller (monha run takes it before building)
        self.wire = wiring
        self.clock = clock
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
        self.notifier = notifier or Notifier()
        self.log = log.get("monha.daemon")
        self.state = MonitorState()
        self.last_decision: Decision | None = None
        self.last_observation: Observation | None = None
        self.role = "unknown"
        self.idle_primary = False
        self.guard: PrimaryGuard | None = None
        self._reload_requested = False
        self._signals = 0
        # The last failing state of each probe that was logged: log changes, not repeats.
        self._probe_logged: dict[str, str] = {}
        self._check_broken = False  # the SSH-side MySQL check was last seen unusable
        # Held by each tick and by each operator command (switchover, rejoin, ...): a command
        # never runs while a tick decides, nor a tick while a command changes the topology.
        self.busy = asyncio.Lock()
        self._ticks = 0
        self._net_timeout_checked_at = float("-inf")
        self._io_restarted_at: float | None = None
        # The failover whose old primary was last seen answering (see _refence): its first
        # sighting after each failover announces the VIP again (after a restart too, which
        # costs nothing).
        self._announced_for: str | None = None
        self._build()

    # --- wiring ---------------------------------------------------------------------------

    def _build(self) -> None:
        self._apply(self.cfg, self.wire(self.cfg, self.me))

    def _apply(self, cfg: Config, w: Wiring) -> None:
        self.cfg = cfg
        self.peers, self.observer, self.nodes = w.peers, w.observer, w.nodes
        self.observer.clock = self.clock
        self.nodes.recheck = self._recheck
        self.policy = fsm.Policy.from_config(cfg)
        self.journal = Journal(Path(cfg.failover.journal_file))
        self.executor = Executor(
            self.journal,
            self.nodes,
            self.metrics,
            cluster=cfg.cluster.name,
            epoch_file=cluster_files.epoch_path(cfg.failover.flag_file),
            peer_timeout_s=cfg.probe.ssh_timeout_s,
        )
        # What the guard learnt across ticks (silence, why it stepped down) outlives a reload.
        if self.guard is None:
            self.guard = PrimaryGuard(
                cfg, self.me, self.peers, self.nodes, self.policy.plan, self.clock
            )
        else:
            self.guard.rewire(cfg, self.peers, self.nodes, self.policy.plan)
        self.operations = Operations(
            cfg,
            self.me,
            self.nodes,
            self.executor,
            self.metrics,
            self.busy,
            self.notifier.watchdog,
        )

    async def _close_handles(self, peers: Peers | None = None, nodes: Nodes | None = None) -> None:
        peers, nodes = peers or self.peers, nodes or self.nodes
        await drain_background(nodes, 5.0)
        closers = [peers.ssh.close, peers.local.close, peers.primary.close]
        closers += [w.close for w in peers.witnesses.values()]
        for closer in closers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await closer()

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until shut down. DaemonLockError (before anything else happened) when
        another daemon runs for this cluster on this node."""
        lock = self.lock or DaemonLock(lock_path(self.cfg))
        if self.lock is None:
            lock.acquire()
        try:
            return await self._serve()
        finally:
            lock.release()

    async def _serve(self) -> int:
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
        background: list[asyncio.Task[None]] = []
        try:
            if self.guard is not None:  # time away, from the start (see guard.StallMeter)
                background.append(loop.create_task(self.guard.meter.run()))
            await control.start()
            if self.serve_metrics:
                m = self.cfg.metrics
                metrics_server = self.metrics.serve(m.listen_address, m.listen_port)
            background.append(loop.create_task(self._keep_watchdog()))
            await self._loop()
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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

    async def _keep_watchdog(self) -> None:
        """Feed the watchdog while a plan or an operator command holds the tick lock: that
        this task runs proves the event loop is alive; every step has its own timeout."""
        while True:
            await asyncio.sleep(WATCHDOG_KEEPALIVE_S)
            if self.busy.locked():
                self.notifier.watchdog()

    async def _reload(self) -> None:
        """Load, validate and wire the new config; on any error keep the running one and say
        why. Called with the tick lock held: no plan and no command runs meanwhile."""
        if self.operations.running is not None:
            # A command holds (or waits for) the old wiring: reload when it has ended.
            return
        self._reload_requested = False
        self.notifier.reloading()
        try:
            cfg = load_config(self.config_path)
            problems = check_config_file(self.config_path, cfg)
            if problems:
                raise ConfigError(problems)
            cfg.node(self.me)  # this node must still be in it
            fixed = _fixed_at_start(self.cfg, cfg)
            if fixed:
                raise ConfigError([f"{key}: takes effect only at a restart" for key in fixed])
            wiring = self.wire(cfg, self.me)
        except ConfigError as exc:
            self.log.error("reload_refused", config=str(self.config_path), problems=exc.lines)
            return
        except Exception as exc:
            self.log.error(
                "reload_refused",
                config=str(self.config_path),
                problems=[f"{type(exc).__name__}: {exc}"],
            )
            return
        finally:
            self.notifier.ready()
        old_peers, old_nodes = self.peers, self.nodes
        self._apply(cfg, wiring)
        await self._close_handles(old_peers, old_nodes)
        log.setup(cfg.log.format, cfg.log.level)
        self.log.info("config_reloaded", config=str(self.config_path))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while not self.shutdown.is_set():
            started = loop.time()
            try:
                async with self.busy:
                    if self._reload_requested:
                        await self._reload()
                    try:
                        await self.tick()
                    finally:
                        if self.guard is not None:
                            self.guard.tick_ended()
            except Exception:
                # A bug met in one tick must not take monitoring down at night: log it with
                # its traceback and go on. The watchdog is fed only after good ticks, so a
                # daemon failing every tick is still restarted by systemd.
                self.log.exception("tick_failed")
            else:
                self._ticks += 1
                if self._ticks % VIP_EXPORT_EVERY_TICKS == 1:
                    try:
                        await self._export_vip()
                    except Exception:  # a metric must never end the daemon
                        self.log.exception("vip_export_failed")
                if first:
                    self.notifier.status(f"{self.state.state}: {self._reason()}")
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
        first = self.last_observation is None
        self.last_observation = obs
        if first:
            # READY after the first observation, before any plan it leads to: a failover
            # resumed at start may run longer than the unit's start timeout.
            self.notifier.ready(f"observing {obs.primary}")
        self._export(obs)
        guard = self._guard()
        guard.heard(obs)
        self.role = await self._role(obs)
        self.metrics.local_role.state(self.role)
        self.idle_primary = self.role in ("primary", "fenced") and not (
            obs.flag_present or obs.journal_open
        )
        if self.idle_primary and self.role == "fenced":
            self.state = MonitorState(state=State.HEALTHY, since=self.state.since or obs.at)
            self.metrics.state.state(self.state.state.value)
            await guard.as_fenced(obs)
            return
        if self.idle_primary:
            if self.last_decision is None or self.state.state is not State.HEALTHY:
                self.state = MonitorState(state=State.HEALTHY, since=obs.at)
            self.metrics.state.state(self.state.state.value)
            await guard.as_primary(obs, flagged=False)
            return
        if self.role == "primary" and not obs.journal_open:
            # A primary holding the flag (a copy, after a switchover back) still steps down
            # for a newer claim on the peer; the state machine then reports the flag.
            await guard.as_primary(obs, flagged=True)
        rs = obs.replica_view.status
        if rs is not None and rs.configured:
            guard.replicating()
        if not obs.flag_present and not obs.journal_open:
            # The completion flag is cluster-wide: the peer's copy blocks this node as well.
            peer_flag = await guard.peer_flag(obs)
            if peer_flag is not None:
                obs = replace(obs, flag_present=True)
                self.last_observation = obs
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
        elif self.state.state is State.HEALTHY and not obs.journal_open:
            await self._care_for_replica(obs)
        await self._carry_out(decision, obs)

    async def _care_for_replica(self, obs: Observation) -> None:
        """The heartbeat and net timeout this node's replica needs, and a restart of its IO
        thread when it failed while the primary answers (see replica_care). Bounded; a failure
        is logged and tried again later, never fatal to the tick."""
        m, now = self.cfg.mysql, self.clock()
        server, bound = self.peers.local, max(2.0, self.cfg.probe.mysql_timeout_s * 3)
        try:
            # Two bounded calls at most (the net timeout, then the heartbeat or the restart).
            async with asyncio.timeout(2 * bound + 1.0):
                if now - self._net_timeout_checked_at >= replica_care.RESTART_INTERVAL_S:
                    self._net_timeout_checked_at = now
                    if await server.set_net_timeout(m.replica_net_timeout_s, bound):
                        self.log.info("replica_net_timeout_set", seconds=m.replica_net_timeout_s)
                todo = replica_care.care(
                    obs.replica_view.status,
                    heartbeat_s=m.heartbeat_period_s,
                    primary_answers=obs.primary_mysql.answered,
                    now=now,
                    last_restart_at=self._io_restarted_at,
                )
                if todo.set_heartbeat:
                    await server.set_heartbeat(m.heartbeat_period_s, bound)
                    self.log.info(
                        "replica_heartbeat_set", period_s=m.heartbeat_period_s, why=todo.why
                    )
                elif todo.restart_io:
                    self._io_restarted_at = now
                    self.log.warning("replica_io_thread_restarted", why=todo.why)
                    await server.restart_io_thread(bound)
        except (MySQLError, TimeoutError) as exc:
            self.log.warning("replica_care_failed", error=str(exc) or "timed out")

    async def _carry_out(self, decision: Decision, obs: Observation) -> None:
        """Run what the decision says: a new plan, the journal's plan replayed, or the
        journal's plan closed unrun. A plan that stopped gets its back-off from the core."""
        kind = decision.plan_kind
        if kind is PlanKind.ABANDON:
            # Put back what a failed fence took only when the primary is back in service,
            # never right before a fresh failover (PLAN_SUPERSEDED).
            restore = decision.event is Event.PLAN_ABANDONED
            await self.executor.abandon(decision.reason, restore=restore)
            return
        if kind is PlanKind.FAILOVER:
            bound = loss_bound.unreceived(self.state.primary_position, obs.replica_view.status)
            self.log.warning("failover_loss_bound", old_primary=obs.primary, bound=bound.text)
            self.metrics.unreceived.set(-1 if bound.transactions is None else bound.transactions)
            ok = await self.executor.run(
                decision.plan,
                kind,
                decision.reason,
                obs.primary,
                obs.replica,
                reason_code=decision.reason_code.value,
                facts={"lost_at_most": bound.text},
                on_progress=self.notifier.watchdog,
            )
        elif kind is PlanKind.RESUME:
            ok = await self.executor.resume(on_progress=self.notifier.watchdog)
        else:
            return
        if not ok:
            heard = self.executor.heard_again_at
            if heard is not None:
                # The plan's wait heard the old primary again and closed it unrun.
                self.executor.heard_again_at = None
                self.state = fsm.plan_heard_again(self.state, self.clock())
                return
            self.state = fsm.plan_stopped(self.state, self.clock())
            self.executor.stopped(self.state.next_attempt_at)
            self.log.warning(
                "plan_retry_scheduled",
                attempts=self.state.plan_attempts,
                next_attempt_at=self.state.next_attempt_at,
            )

    async def _recheck(self) -> str | None:
        """For a failover's wait for the old primary's step-down: one fresh observation, and
        why the old primary may have been heard in it (see fsm.heard_why)."""
        obs = await self.observer.observe()
        why = fsm.heard_why(obs, self.policy)
        if why is not None:
            self.log.warning("failover_wait_heard_primary", old_primary=obs.primary, why=why)
        return why

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
        fid = str(flag.get("failover_id", ""))
        first_sight, self._announced_for = self._announced_for != fid, fid
        facts = await fencing.peer_facts(
            self.cfg, obs.primary, obs, self.peers.primary, self.peers.ssh, want_flag=False
        )
        if facts.writable or facts.holds_vip:
            await fencing.refence_old_primary(
                self.policy.plan, self.nodes, obs.primary, self.me, facts
            )
        elif first_sight:
            # Back, and already stepped down by itself (its own monha): it may still have
            # answered ARP for the VIP meanwhile.
            await fencing.announce_vip(self.policy.plan, self.nodes, obs.primary, self.me)

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

    def _guard(self) -> PrimaryGuard:
        assert self.guard is not None  # built with the wiring
        return self.guard

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
            self._log_probe(probe)
        self._log_local_check(obs)

    def _log_local_check(self, obs: Observation) -> None:
        """Say it loudly, once, when the SSH-side MySQL check cannot work: not installed (126,
        127: MariaDB 11 no longer ships mysqladmin), or failing while the primary's MySQL
        answers this node directly. Either way it no longer stops a false failover."""
        local = obs.primary_local_mysql
        if local is None or not obs.primary_ssh.answered:
            return
        broken = (local.status is ProbeStatus.SKIPPED and bool(local.detail)) or (
            local.status is ProbeStatus.FAILED and obs.primary_mysql.answered
        )
        if broken and not self._check_broken:
            self.log.error(
                "ssh_mysql_check_broken",
                target=local.target,
                detail=local.detail,
                command=list(self.cfg.probe.ssh_mysql_check),
                hint="fix probe.ssh_mysql_check (monha-ctl check runs it on both nodes)",
            )
        elif local.status is ProbeStatus.OK and self._check_broken:
            self.log.info("ssh_mysql_check_recovered", target=local.target)
        if broken or local.status is ProbeStatus.OK:
            self._check_broken = broken

    def _log_probe(self, probe: ProbeResult) -> None:
        """Log a probe's failure when it starts or changes, and its recovery: a peer dead for
        a day must not write a line per tick."""
        failing = not probe.answered and probe.status is not ProbeStatus.SKIPPED
        key = f"{probe.name}@{probe.target}"
        was = self._probe_logged.get(key)
        now = f"{probe.status}:{probe.error_code}" if failing else None
        if now == was:
            return
        if now is None:
            self._probe_logged.pop(key, None)
            if probe.answered:
                self.log.info("probe_recovered", probe=probe.name, target=probe.target)
            return
        self._probe_logged[key] = now
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
            because = self._guard().fenced_because
            why = f" ({because})" if because else ""
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
        if cmd == "journal":
            action = request.get("action")
            return await ops.journal_command(action if isinstance(action, str) else "")
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
            "plan_attempts": self.state.plan_attempts,
            "next_attempt_at": self.state.next_attempt_at,
            "reason_code": str(d.reason_code) if d and not self.idle_primary else None,
            "reason": self._reason(),
            "observation": asdict(obs) if obs else None,
            "flag": flag,
            "operation_running": self.operations.running,
            "isolation_fencing": isolation_fencing(self.cfg),
            "self_fenced_because": self._guard().fenced_because,
            "journal": _journal_summary(self.journal),
        }


def _fixed_at_start(old: Config, new: Config) -> list[str]:
    """Keys a reload must not change: the journal, flag, lock and socket of a running daemon
    (an open plan or a flag must never drop out of sight), and its cluster's name."""
    pairs = {
        "failover.journal_file": (old.failover.journal_file, new.failover.journal_file),
        "failover.flag_file": (old.failover.flag_file, new.failover.flag_file),
        "control.socket": (old.control.socket, new.control.socket),
        "cluster.name": (old.cluster.name, new.cluster.name),
    }
    return [key for key, (a, b) in pairs.items() if a != b]


def _journal_summary(journal: Journal) -> dict[str, Any] | None:
    """The last plan in the journal, in a few fields: for an open one, which step it stopped
    at, how often it ran, when it runs next and what an operator can do."""
    try:
        record = journal.load()
    except RecordError as exc:
        return {"error": str(exc), "path": str(journal.path), "resolve_with": DISCARD_HINT}
    if record is None:
        return None
    summary: dict[str, Any] = {
        "id": record.failover_id,
        "kind": record.kind,
        "old_primary": record.old_primary,
        "new_primary": record.new_primary,
        "finished": record.finished,
        "outcome": record.outcome,
        "started_at": record.started_at,
        "steps_done": len(record.done),
        "steps": len(record.plan),
        "attempts": record.attempts,
        "rolled_back": bool(record.data.get("rolled_back")),
    }
    failed = record.last_failure
    if not record.finished and failed is not None:
        summary["stopped_at"] = {"step": failed.get("step"), "detail": failed.get("detail")}
        summary["next_attempt_at"] = record.next_attempt_at
        summary["what_to_do"] = (
            "the daemon retries it by itself; fix what the step says, then "
            "`monha-ctl failover --force` retries at once"
            if record.kind == "failover"
            else f"`monha-ctl switchover --to {record.new_primary}` finishes it"
        )
    return summary


def _main_thread() -> bool:
    # Signal handlers can only be installed from the main thread (tests may run elsewhere).
    return threading.current_thread() is threading.main_thread()
