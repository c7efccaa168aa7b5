"""Gathers one Observation per tick: every probe at once, each under its own timeout.

It also works out, from the live topology, which node this is and which node is the primary.
It decides nothing: it reports what it saw, including its own failures, as values.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monha import probes
from monha.config import Config, Witness, fill_placeholders
from monha.journal import DISCARD_HINT, Journal, RecordError, read_flag
from monha.model import BinlogCoordinates, Observation, ProbeResult, ProbeStatus
from monha.mysql import MySQLError, MySQLTimeout, Server, probe_alive
from monha.runners import Runner, RunnerError, RunnerTimeout, SshRunner


class IdentityError(Exception):
    """This machine holds neither node's address, or both."""


def local_node(cfg: Config) -> str:
    """The configured node whose address is on this host: an address we can bind to is ours."""
    mine = []
    for node in cfg.nodes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((node.address, 0))
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                continue
            mine.append(node.name)
    if len(mine) != 1:
        addrs = ", ".join(f"{n.name}={n.address}" for n in cfg.nodes)
        found = "none" if not mine else "both"
        raise IdentityError(
            f"this host holds {found} of the node addresses ({addrs}); "
            "run monha on one of the two nodes, or pass --node NAME"
        )
    return mine[0]


@dataclass(slots=True)
class Peers:
    """Long-lived handles: connections are reused across ticks."""

    local: Server  # this node's MySQL, through its socket (or TCP)
    primary: Server  # the peer's MySQL over TCP, for fencing
    ssh: SshRunner  # the peer over SSH
    witnesses: dict[str, SshRunner] = field(default_factory=dict)  # by name, those with SSH


class Observer:
    def __init__(self, cfg: Config, me: str, peers: Peers, monitor_password: str) -> None:
        self.cfg = cfg
        self.me = me
        self.peer = cfg.peer_of(me)
        self.peers = peers
        self._password = monitor_password
        self.journal = Journal(Path(cfg.failover.journal_file))
        self.clock: Callable[[], float] = time.time  # the daemon may set its own

    async def observe(self) -> Observation:
        at = self.clock()
        p = self.cfg.probe

        # No probe may outlast the tick: a dead host would otherwise stretch every tick to
        # the slowest timeout and delay detection by that much per counted failure.
        def bounded(timeout_s: float) -> float:
            return min(timeout_s, p.interval_s)

        peer = self.peer
        fixed = asyncio.gather(
            self._mysql(bounded(p.mysql_timeout_s)),
            self._pings(peer.address, bounded(p.icmp_timeout_s)),
            self._ssh(bounded(p.ssh_timeout_s)),
            self.peers.local.observe_replica(at, bounded(p.mysql_timeout_s)),
        )
        witnessed = asyncio.gather(
            *(self._witness(w, bounded(p.icmp_timeout_s)) for w in self.cfg.witness)
        )
        (
            (fresh, icmp, (ssh, local_mysql), replica),
            witnesses,
            (position, kept),
        ) = await asyncio.gather(fixed, witnessed, self._position(bounded(p.mysql_timeout_s)))
        # A fresh answer (an error code such as 1040 included) says more than the kept one.
        mysql = fresh if fresh.answered else best((fresh, kept))
        witness_results = tuple(witnesses)
        journal_open, committed, problem = False, False, ""
        active_at: float | None = None
        waits = False
        try:
            record = self.journal.open_record()
            # An unfinished switchover is the operator's to finish (`monha-ctl switchover`
            # resumes it): it must never make the state machine resume a *failover*.
            journal_open = record is not None and record.kind != "switchover"
            committed = journal_open and record is not None and record.committed
            active_at = record.last_active_at if journal_open and record is not None else None
            waits = journal_open and record is not None and record.waits_for_step_down
        except (RecordError, OSError) as exc:
            # Unreadable: nothing may start afresh, nor be replayed; an operator must look.
            problem = f"{exc}; resolve with {DISCARD_HINT}"
        return Observation(
            at=at,
            primary=peer.name,
            replica=self.me,
            primary_mysql=mysql,
            primary_icmp=icmp,
            primary_ssh=ssh,
            replica_view=replica,
            witnesses=witness_results,
            primary_local_mysql=local_mysql,
            flag_present=self.flag_present(),
            journal_open=journal_open,
            plan_committed=committed,
            plan_active_at=active_at,
            plan_waits=waits,
            journal_problem=problem,
            primary_position=position,
        )

    async def _position(self, timeout_s: float) -> tuple[BinlogCoordinates | None, ProbeResult]:
        """The primary's binlog end (and GTID position) this tick, None when it does not say,
        and what asking it proved: its MySQL answered (or refused) on the kept connection.

        The position last known before a fault bounds what a failover may lose. The answer
        counts as a MySQL probe: on an established connection a lossy link costs a
        retransmission of a fraction of a second, where a fresh connect waits out a lost SYN.
        """
        server, start = self.peers.primary, time.monotonic()
        where = self.peer.name
        try:
            async with asyncio.timeout(timeout_s):
                position = await server.binlog_coordinates(timeout_s)
        except (TimeoutError, MySQLError) as exc:
            # Only a position read counts as an answer here; what an error proves is the
            # fresh probe's to say (it knows which refusals prove a server alive).
            took = time.monotonic() - start
            timed_out = isinstance(exc, TimeoutError | MySQLTimeout)
            status = ProbeStatus.TIMEOUT if timed_out else ProbeStatus.FAILED
            why = f"kept connection: {exc or 'no answer'}"
            return None, ProbeResult("mysql", where, status, took, why)
        took = time.monotonic() - start
        return position, ProbeResult("mysql", where, ProbeStatus.OK, took, "kept connection")

    async def _witness(self, w: Witness, timeout_s: float) -> ProbeResult:
        """Whether the witness answers this node, and, for a witness asked over SSH, whether
        it gets a greeting from the primary's MySQL (`sees_primary`).

        A witness asked over SSH has three verdicts: it sees the primary; it checked and does
        not see it; it could not check (SSH refused or too slow, a host key changed, no bash).
        Only the second counts against the primary. The third counts as no answer at all, even
        if the witness answered ICMP: a partition check silently reduced to a ping is how a cut
        between the nodes becomes a failover without fencing.
        """
        runner = self.peers.witnesses.get(w.name)
        if runner is None:
            r = await self._pings(w.address, timeout_s)
            return ProbeResult(
                "witness", w.name, r.status, r.latency_s, r.detail, reached=r.answered
            )
        icmp, (sees, how) = await asyncio.gather(
            self._pings(w.address, timeout_s), self._witness_sees(runner, timeout_s)
        )
        detail = f"ICMP {icmp.status}; {how}"
        reached = icmp.answered
        if sees is None:
            return ProbeResult(
                "witness", w.name, ProbeStatus.FAILED, icmp.latency_s, detail, reached=reached
            )
        return ProbeResult(
            "witness",
            w.name,
            ProbeStatus.OK,
            icmp.latency_s,
            detail,
            sees_primary=sees,
            reached=reached,
        )

    async def _witness_sees(self, runner: Runner, timeout_s: float) -> tuple[bool | None, str]:
        """(the witness got the primary's MySQL greeting, in words); None: it could not check.

        A TCP connect alone is not enough: a frozen host's kernel completes handshakes. The
        witness must read the first byte MySQL sends (its greeting, or an error such as 1040,
        which also proves it alive). The script is constant; address and port are arguments.
        The witness bounds the whole check itself (coreutils `timeout`): a connect to a dead
        host hangs for TCP's retries, and must still end as "checked, no greeting" in time.
        """
        peer = self.peer
        wait = f"{max(0.1, timeout_s - 0.3):.1f}"
        script = 'exec 3<>"/dev/tcp/$0/$1" && read -r -t "$2" -n 1 -u 3 _'
        argv = ["timeout", wait, "bash", "-c", script, peer.address, str(peer.mysql_port), wait]
        try:
            result = await runner.run(argv, timeout_s)
        except RunnerError as exc:
            return None, f"could not check over SSH ({exc})"
        if result.timed_out:
            return None, "could not check: no answer over SSH in time"
        if result.exit_status == 0:
            return True, f"it reaches {peer.name}'s MySQL"
        status = result.exit_status
        # 1: the connect was refused or failed; 124: the witness's own bound hit (a dead host);
        # above 128: bash's read timed out (a handshake but no greeting: a frozen host).
        if status is not None and (status in (1, REMOTE_TIMEOUT_EXIT) or status > 128):
            why = "refused or unreachable" if status == 1 else "no greeting in time"
            return False, f"it does not reach {peer.name}'s MySQL ({why}, exit {status})"
        return None, f"could not check over SSH ({result.summary()})"

    async def _pings(self, address: str, timeout_s: float) -> ProbeResult:
        """`probe.icmp_attempts` echoes, any reply enough: on a lossy link one lost echo (or
        its reply) is likely, all of them in the same tick is not. They are spread over the
        first half of the timeout (a burst of loss takes one echo sent at once as it takes
        all), each still bounded by what is left of it."""
        n = self.cfg.probe.icmp_attempts
        spread = timeout_s / 2 / n

        async def attempt(i: int) -> ProbeResult:
            await asyncio.sleep(i * spread)
            return await self._icmp(address, timeout_s - i * spread)

        return best(await asyncio.gather(*(attempt(i) for i in range(n))))

    async def _icmp(self, address: str, timeout_s: float) -> ProbeResult:
        return await probes.icmp(address, timeout_s)

    async def _mysql(self, timeout_s: float) -> ProbeResult:
        """The primary's MySQL, by several connections at once: the best answer counts."""
        peer, m = self.peer, self.cfg.mysql
        results = await asyncio.gather(
            *(
                probe_alive(
                    peer.address,
                    peer.mysql_port,
                    m.monitor_user,
                    self._password,
                    timeout_s,
                    target=peer.name,
                )
                for _ in range(self.cfg.probe.mysql_attempts)
            )
        )
        return best(results)

    async def _ssh(self, timeout_s: float) -> tuple[ProbeResult, ProbeResult]:
        """One command over SSH gives two facts: SSH reaches the primary (any exit status came
        back), and whether its MySQL answers on its own host (exit 0 of the check).

        The check runs under its own, shorter `timeout` on the primary: a hung mysqld then ends
        it with exit 124 well inside the probe's bound, which reads "SSH works, MySQL hangs"
        (a host monha can fence over SSH), not "SSH timed out" (a host it cannot reach).
        """
        peer = self.peer.name
        check = fill_placeholders(self.cfg.probe.ssh_mysql_check, mysql_port=self.peer.mysql_port)
        argv = ["timeout", "-k", "0.2", f"{check_bound(timeout_s):.2f}", *check]
        start = time.monotonic()
        try:
            result = await self.peers.ssh.run(argv, timeout_s)
        except RunnerError as exc:
            status = ProbeStatus.TIMEOUT if isinstance(exc, RunnerTimeout) else ProbeStatus.FAILED
            took = time.monotonic() - start
            return (
                ProbeResult("ssh", self.peer.address, status, took, str(exc)),
                skipped("ssh_mysql", peer),
            )
        took = result.duration_s
        if result.timed_out:
            return (
                ProbeResult("ssh", self.peer.address, ProbeStatus.TIMEOUT, took, result.summary()),
                skipped("ssh_mysql", peer),
            )
        ssh = ProbeResult("ssh", self.peer.address, ProbeStatus.OK, took)
        if result.exit_status == REMOTE_TIMEOUT_EXIT:  # the check's own bound: MySQL hangs
            hung = f"no answer on its host within {check_bound(timeout_s):.2f} s"
            return ssh, ProbeResult("ssh_mysql", peer, ProbeStatus.TIMEOUT, took, hung)
        if result.exit_status == 0:
            return ssh, ProbeResult("ssh_mysql", peer, ProbeStatus.OK, took)
        if result.exit_status == 1:  # the check ran and its server did not answer
            return ssh, ProbeResult("ssh_mysql", peer, ProbeStatus.FAILED, took, result.summary())
        # 126/127 (no such program) and the like say nothing about MySQL.
        return ssh, ProbeResult("ssh_mysql", peer, ProbeStatus.SKIPPED, took, result.summary())

    def flag_present(self) -> bool:
        try:
            return read_flag(Path(self.cfg.failover.flag_file)) is not None
        except RecordError:
            return True  # a damaged flag still blocks: the operator must look at it


def skipped(name: str, target: str) -> ProbeResult:
    return ProbeResult(name, target, ProbeStatus.SKIPPED)


def check_bound(probe_timeout_s: float) -> float:
    """The remote bound of the SSH-side MySQL check: 60 % of the probe's, leaving the rest for
    the session to open and the exit status to come back."""
    return max(0.2, probe_timeout_s * 0.6)


# The exit status of coreutils' `timeout`, with which the SSH runner bounds remote commands.
REMOTE_TIMEOUT_EXIT = 124

_RANK = {
    ProbeStatus.OK: 0,
    ProbeStatus.ALIVE_ERROR: 1,
    ProbeStatus.FAILED: 2,
    ProbeStatus.TIMEOUT: 3,
    ProbeStatus.SKIPPED: 4,
}


def best(results: Sequence[ProbeResult]) -> ProbeResult:
    """The most telling of several attempts at the same probe: an answer beats a refusal,
    a refusal (the host said no) beats a timeout (nobody said anything)."""
    return min(results, key=lambda r: (_RANK[r.status], r.latency_s or 0.0))
