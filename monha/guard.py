"""A primary's watch over its own right to serve, across ticks (issue 12).

Job: for the daemon on a node that is the primary (or was, and stepped down), decide with the
pure rules of monha.split_brain and act through monha.fencing:
- step down when the peer took over: its completion flag, its VIP, or an epoch naming it
  newer than this node's own;
- step down when this node heard neither its peer nor any witness for `isolation_fence_s`
  (only with witnesses configured: without one, a dead standby looks the same, and stepping
  down then would turn the loss of the standby into the loss of the service);
- after stepping down for isolation, serve again once the peer is seen not promoted.
It also keeps the peer's completion flag, read over SSH now and then, for the standby's state
machine: the flag is cluster-wide.

Must not: step down on a guess (a peer out of sight is no sign it took over; silence counts
only from the first tick, never from an assumed start), serve again while anything says the
peer was promoted, or block a tick for longer than its SSH and MySQL timeouts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from monha import cluster_files, fencing, log, split_brain
from monha.config import Config
from monha.journal import RecordError, read_flag, read_json, write_json_atomically
from monha.model import Observation, ProbeStatus
from monha.mysql import MySQLError
from monha.observe import Peers
from monha.plan import PlanInputs
from monha.split_brain import Epoch
from monha.steps import Nodes

# The peer's flag changes only through a failover, a rejoin or resume: reading it this often
# (at most) is enough, and keeps an SSH round trip out of most ticks.
PEER_FLAG_EVERY_S = 5.0
# Beside the flag: why this node stepped down for isolation, while it is stepped down.
ISOLATION_NAME = "isolated.json"
# Beside the flag: when this node last heard anyone and when its last tick ended, so that a
# restarted daemon counts its silence and its time away from before the restart.
HEARD_NAME = "heard.json"
# Beside the flag: the peer's flag as last read, so that a daemon restarted while the peer is
# out of reach still knows the cluster is flagged (a flag goes only by resume).
PEER_FLAG_NAME = "peer-flag.json"


class StallMeter:
    """Time this process did not run (its host frozen, its VM suspended): a task that sleeps
    PERIOD_S and adds up how much later than that it woke, beyond SLACK_S. A tick slowed by
    SSH to a lossy peer, or an operator's command holding the daemon, stalls nothing: the
    loop runs meanwhile. CLOCK_BOOTTIME counts a suspend too, where the system has it."""

    PERIOD_S = 0.25
    SLACK_S = 0.5

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or _boottime
        self._stalled = 0.0

    async def run(self) -> None:
        while True:
            before = self.clock()
            await asyncio.sleep(self.PERIOD_S)
            self.woke(before, self.clock())

    def woke(self, before: float, after: float) -> None:
        """One sleep of PERIOD_S, from `before` to `after` on the meter's clock."""
        late = after - before - self.PERIOD_S
        if late > self.SLACK_S:
            self._stalled += late

    def take(self) -> float:
        """The stall since the last take."""
        stalled, self._stalled = self._stalled, 0.0
        return stalled


def _boottime() -> float:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def next_heard_at(
    obs: Observation,
    last_heard_at: float | None,
    away: float,
    limit_s: float,
    counted: Collection[str] | None = None,
) -> float | None:
    """`split_brain.heard_at` with this tick's answers: from the peer (its MySQL, SSH or ICMP:
    under heavy loss its echoes are often all that gets through, and a primary that steps
    down for that loss makes things worse; a frozen primary is caught by time away, a cut
    that lets only echoes through by the peer's plan, read over SSH), from a witness."""
    peer = (
        obs.primary_mysql.answered
        or obs.primary_ssh.status is ProbeStatus.OK
        or obs.primary_icmp.status is ProbeStatus.OK
    )
    # A witness counts when it answered at all (its ICMP, or its check over SSH): under loss a
    # check may time out while the witness is plainly in reach. `counted`: which witnesses
    # (Config.heard_witnesses); None: all.
    witness = any(
        w.answered or w.reached for w in obs.witnesses if counted is None or w.target in counted
    )
    return split_brain.heard_at(obs.at, last_heard_at, away, limit_s, peer=peer, witness=witness)


async def _none() -> None:
    return None


class PrimaryGuard:
    def __init__(
        self,
        cfg: Config,
        me: str,
        peers: Peers,
        nodes: Nodes,
        inputs: PlanInputs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.me = me
        self.now = clock
        self.log = log.get("monha.guard")
        self.last_heard_at: float | None = None
        # Time away (split_brain.heard_at): the process's stalls, measured by `meter` (the
        # daemon runs it; from its start, so a freeze before the first tick counts), and the
        # time a previous run of the daemon was down (HEARD_NAME), added at the first tick.
        self.meter = StallMeter()
        self.restart_away = 0.0
        self.last_tick_end: float | None = None
        # Why this node fenced itself (None: it did not); `for_isolation` tells the two kinds
        # apart: only a node that stepped down for isolation may come back by itself.
        self.fenced_because: str | None = None
        self.for_isolation = False
        self._peer_flag: dict[str, Any] | None = None
        self._peer_flag_at: float | None = None
        self._heard_unwritable = False  # said once, not every tick
        self.rewire(cfg, peers, nodes, inputs)
        self._load_isolation()
        self._load_peer_flag()
        self._load_heard()

    def rewire(self, cfg: Config, peers: Peers, nodes: Nodes, inputs: PlanInputs) -> None:
        self.cfg, self.peers, self.nodes, self.inputs = cfg, peers, nodes, inputs
        self.peer = cfg.peer_of(self.me).name
        self.epoch_file = cluster_files.epoch_path(cfg.failover.flag_file)
        self.isolation_file = str(Path(cfg.failover.flag_file).parent / ISOLATION_NAME)
        self.peer_flag_file = Path(cfg.failover.flag_file).parent / PEER_FLAG_NAME
        self.heard_file = Path(cfg.failover.flag_file).parent / HEARD_NAME

    # --- every tick ----------------------------------------------------------------------

    def heard(self, obs: Observation) -> None:
        """Right after the tick's observation: time away is the process's stall since the
        last tick (a freeze during the probes included), and, at the first tick after a
        restart, the time the daemon was down if the peer could have failed over meanwhile."""
        limit = split_brain.isolation_limit(self.cfg)
        away, self.restart_away = self.meter.take() + self.restart_away, 0.0
        counted = self.cfg.heard_witnesses()
        self.last_heard_at = next_heard_at(obs, self.last_heard_at, away, limit, counted)

    def tick_ended(self) -> None:
        self.last_tick_end = self.now()
        heard = self.last_heard_at
        data: dict[str, Any] = {
            "monha_heard": 1,
            "tick_end": self.last_tick_end,
            "last_heard_at": None if heard is None else "never" if math.isinf(heard) else heard,
        }
        try:
            write_json_atomically(self.heard_file, data, sync=False)
        except OSError as exc:
            if not self._heard_unwritable:
                self.log.error("heard_state_unwritable", path=str(self.heard_file), error=str(exc))
            self._heard_unwritable = True
        else:
            self._heard_unwritable = False

    def _load_heard(self) -> None:
        """What the previous run of the daemon knew: when it last heard anyone, and when its
        last tick ended. The time since then counts as time away only when it was long enough
        for the peer to fail over (`Config.peer_step_down_s`): a quick restart is not a
        freeze, and stepping down for it while the peer is dead would leave no primary. A file
        that exists but cannot be read counts as a long time away."""
        try:
            data = read_json(self.heard_file)
        except (RecordError, OSError, ValueError):
            self.restart_away = math.inf
            return
        if not data:
            return
        end, heard = data.get("tick_end"), data.get("last_heard_at")
        if not isinstance(end, int | float) or isinstance(end, bool):
            self.restart_away = math.inf
            return
        down = self.now() - float(end)
        if heard == "never":
            self.last_heard_at = -math.inf
        elif isinstance(heard, int | float) and not isinstance(heard, bool):
            self.last_heard_at = min(float(heard), self.now())
        # Already silent when it stopped: had it run on, it would have stepped down once the
        # silence and the downtime reached the limit.
        limit = split_brain.isolation_limit(self.cfg)
        last = self.last_heard_at
        silent_before = float(end) - last if last is not None else 0.0
        already_silent = silent_before > self.cfg.probe.interval_s
        if down >= self.cfg.peer_step_down_s():
            self.restart_away = down
        elif already_silent and silent_before + down >= limit:
            self.restart_away = max(down, limit)  # as long away as its limit: only the peer counts

    def own_epoch(self) -> Epoch | None:
        try:
            data = read_json(Path(self.epoch_file))
            return Epoch.from_dict(data) if data is not None else None
        except (RecordError, OSError, ValueError) as exc:
            self.log.error("epoch_unreadable", path=self.epoch_file, error=str(exc))
            return None

    async def peer_flag(self, obs: Observation) -> dict[str, Any] | None:
        """The peer's completion flag as last read (every PEER_FLAG_EVERY_S at most, while
        SSH reaches it). Kept while the peer is out of reach: a flag goes only by resume."""
        due = self._peer_flag_at is None or obs.at - self._peer_flag_at >= PEER_FLAG_EVERY_S
        if due and obs.primary_ssh.status is ProbeStatus.OK:
            self._peer_flag_at = obs.at
            try:
                flag = await cluster_files.read_json_on(
                    self.peers.ssh, self.peer, self.cfg.failover.flag_file,
                    self.cfg.probe.ssh_timeout_s,
                )  # fmt: skip
            except cluster_files.ClusterFileError as exc:
                self.log.warning("peer_flag_unreadable", peer=self.peer, error=str(exc))
            else:
                if (flag is None) != (self._peer_flag is None):
                    self.log.info("peer_flag_seen", peer=self.peer, present=flag is not None)
                self._peer_flag = flag
                self._keep_peer_flag(flag)
        return self._peer_flag

    def _keep_peer_flag(self, flag: dict[str, Any] | None) -> None:
        try:
            if flag is None:
                self.peer_flag_file.unlink(missing_ok=True)
            else:
                write_json_atomically(self.peer_flag_file, {"monha_peer_flag": 1, "flag": flag})
        except OSError as exc:
            self.log.error("peer_flag_unwritable", path=str(self.peer_flag_file), error=str(exc))

    def _load_peer_flag(self) -> None:
        try:
            data = read_json(self.peer_flag_file)
        except (RecordError, OSError) as exc:
            # Unreadable: assume flagged (the safe side) until the peer is read again.
            self._peer_flag = {"unreadable": str(exc)}
            return
        if data is not None:
            flag = data.get("flag")
            self._peer_flag = flag if isinstance(flag, dict) else {"unreadable": "not a flag"}

    # --- as the primary ------------------------------------------------------------------

    async def as_primary(self, obs: Observation, *, flagged: bool) -> None:
        """This node is the primary (no plan open): step down when the peer took over, or,
        unless a completion flag is set (`flagged`), when this node is isolated. With the
        flag set the peer does not promote by itself (the flag is cluster-wide), so stepping
        down for silence would only leave no primary."""
        self.replicating()  # serving again (a switchover made it primary): nothing to keep
        if flagged and self._own_flag_names_me():
            return  # this node's failover made it primary: the re-fence watches the peer
        why = None if flagged else self._isolated(obs)
        if why is not None:
            await self._fence(why, isolation=True)
            return
        if not (obs.primary_mysql.answered or obs.primary_ssh.status is ProbeStatus.OK):
            return  # the peer is out of sight: nothing says it took over
        # The peer's journal is read beside its facts, in the same round of SSH commands.
        want_plan = not flagged and obs.primary_ssh.status is ProbeStatus.OK
        plan, facts = await asyncio.gather(
            self._peer_plan_or_none() if want_plan else _none(),
            fencing.peer_facts(
                self.cfg, self.peer, obs, self.peers.primary, self.peers.ssh, want_flag=True
            ),
        )
        why = split_brain.peer_plan_against(self.me, plan, self.now())
        if why is not None:
            # As for isolation: it comes back by itself once that plan ends without promoting.
            await self._fence(why, isolation=True)
            return
        why = split_brain.peer_took_over(
            self.peer,
            holds_vip=facts.holds_vip,
            writable=facts.writable,
            flag=facts.flag,
            epochs=[self.own_epoch(), facts.epoch],
        )
        if why is None:
            if facts.writable:
                self.log.warning("peer_writable", peer=self.peer, detail="no newer claim there")
            return
        await self._fence(why, isolation=False)

    async def _peer_plan(self) -> dict[str, Any] | None:
        return await cluster_files.read_json_on(
            self.peers.ssh, self.peer, self.cfg.failover.journal_file, self.cfg.probe.ssh_timeout_s
        )

    async def _peer_plan_or_none(self) -> dict[str, Any] | None:
        try:
            return await self._peer_plan()
        except cluster_files.ClusterFileError as exc:
            self.log.info("peer_journal_unreadable", peer=self.peer, error=str(exc))
            return None

    def replicating(self) -> None:
        """This node serves or replicates again: whatever made it step down is over."""
        if self.for_isolation:
            self._keep_isolation(None)
        self.fenced_because, self.for_isolation = None, False

    def _own_flag_names_me(self) -> bool:
        try:
            flag = read_flag(Path(self.cfg.failover.flag_file))
        except RecordError:
            return False
        return flag is not None and flag.get("new_primary") == self.me

    def _isolated(self, obs: Observation) -> str | None:
        if self.cfg.failover.self_fence_on_isolation == "off" or not self.cfg.witness:
            return None
        # Now, not when the tick began: a freeze during the probes is silence too.
        return split_brain.isolated(
            self.now(), self.last_heard_at, split_brain.isolation_limit(self.cfg)
        )

    async def _fence(self, why: str, *, isolation: bool) -> None:
        # Said first: status tells why while the steps run (stopping services takes seconds).
        self.fenced_because, self.for_isolation = why, isolation
        await fencing.self_fence(self.inputs, self.nodes, self.me, self.peer, why)
        if isolation:
            # Kept on disk: a daemon restarted while stepped down may still come back by
            # itself; otherwise it would wait for a rejoin that needs a primary to run on.
            self._keep_isolation(why)

    def _keep_isolation(self, why: str | None) -> None:
        path = Path(self.isolation_file)
        try:
            if why is None:
                path.unlink(missing_ok=True)
            else:
                write_json_atomically(path, {"monha_isolation": 1, "reason": why})
        except OSError as exc:
            self.log.error("isolation_state_unwritable", path=str(path), error=str(exc))

    def _load_isolation(self) -> None:
        try:
            data = read_json(Path(self.isolation_file))
        except (RecordError, OSError):
            return
        if data is not None:
            self.fenced_because = str(data.get("reason", "stepped down for isolation"))
            self.for_isolation = True

    # --- fenced --------------------------------------------------------------------------

    async def as_fenced(self, obs: Observation) -> bool:
        """This node is read_only and replicates from nobody. If it stepped down for
        isolation, serve again once the peer is seen not promoted. True when it did."""
        if not self.for_isolation or not obs.primary_mysql.answered:
            return False
        if obs.primary_ssh.status is not ProbeStatus.OK:
            return False  # its journal, flag and epoch cannot be read: no return on half the facts
        # The journal first: every fact read after it is newer, so a plan that starts on the
        # peer meanwhile has not promoted it when those facts say it has not.
        try:
            plan = await self._peer_plan()
        except cluster_files.ClusterFileError as exc:
            self.log.info("return_to_service_waits", reason=f"peer's journal: {exc}")
            return False
        held = split_brain.plan_holds_return(self.me, plan, self.now())
        if held is not None:
            self.log.info("return_to_service_waits", reason=held)
            return False
        peer_sql = self.peers.primary
        try:
            status = await peer_sql.replica_status(self.cfg.probe.mysql_timeout_s)
            peer_ro = await peer_sql.read_only(self.cfg.probe.mysql_timeout_s)
        except MySQLError as exc:
            self.log.info("return_to_service_waits", reason=f"peer's MySQL: {exc}")
            return False
        facts = await fencing.peer_facts(
            self.cfg, self.peer, obs, peer_sql, self.peers.ssh, want_flag=True
        )
        if facts.problems or facts.holds_vip is not False:
            return False
        me_addr = self.cfg.node(self.me).address
        why = split_brain.may_return(
            self.me,
            peer_answers=True,
            peer_replicates_from_me=status.configured and status.source_host == me_addr,
            peer_writable=not peer_ro,
            peer_flag=facts.flag,
            epochs=[self.own_epoch(), facts.epoch],
        )
        if why is None:
            return False
        ok = await fencing.return_to_service(self.inputs, self.nodes, self.me, self.peer, why)
        if ok:
            self.fenced_because, self.for_isolation = None, False
            self.last_heard_at = obs.at
            self._keep_isolation(None)
        return ok
