"""Gathers one Observation per tick: every probe at once, each under its own timeout.

It also works out, from the live topology, which node this is and which node is the primary.
It decides nothing: it reports what it saw, including its own failures, as values.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from monha import probes
from monha.config import Config
from monha.journal import Journal, RecordError, read_flag
from monha.model import Observation, ProbeResult, ProbeStatus
from monha.mysql import Server, probe_alive
from monha.runners import SshRunner


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


class Observer:
    def __init__(self, cfg: Config, me: str, peers: Peers, monitor_password: str) -> None:
        self.cfg = cfg
        self.me = me
        self.peer = cfg.peer_of(me)
        self.peers = peers
        self._password = monitor_password
        self.journal = Journal(Path(cfg.failover.journal_file))

    async def observe(self) -> Observation:
        at = time.time()
        p = self.cfg.probe

        # No probe may outlast the tick: a dead host would otherwise stretch every tick to
        # the slowest timeout and delay detection by that much per counted failure.
        def bounded(timeout_s: float) -> float:
            return min(timeout_s, p.interval_s)

        peer = self.peer
        mysql, icmp, ssh, replica, *witnesses = await asyncio.gather(
            probe_alive(
                peer.address,
                peer.mysql_port,
                self.cfg.mysql.monitor_user,
                self._password,
                bounded(p.mysql_timeout_s),
                target=peer.name,
            ),
            probes.icmp(peer.address, bounded(p.icmp_timeout_s)),
            self.peers.ssh.reachable(bounded(p.ssh_timeout_s)),
            self.peers.local.observe_replica(at, bounded(p.mysql_timeout_s)),
            *(probes.icmp(w.address, bounded(p.icmp_timeout_s)) for w in self.cfg.witness),
        )
        witness_results = tuple(
            ProbeResult("witness", w.name, r.status, r.latency_s, r.detail)
            for w, r in zip(self.cfg.witness, witnesses, strict=True)
        )
        journal_open = False
        try:
            journal_open = self.journal.open_record() is not None
        except RecordError:
            journal_open = True  # unreadable: treat as unfinished, so nothing starts afresh
        return Observation(
            at=at,
            primary=peer.name,
            replica=self.me,
            primary_mysql=mysql,
            primary_icmp=icmp,
            primary_ssh=ssh,
            replica_view=replica,
            witnesses=witness_results,
            flag_present=self.flag_present(),
            journal_open=journal_open,
        )

    def flag_present(self) -> bool:
        try:
            return read_flag(Path(self.cfg.failover.flag_file)) is not None
        except RecordError:
            return True  # a damaged flag still blocks: the operator must look at it


def skipped(name: str, target: str) -> ProbeResult:
    return ProbeResult(name, target, ProbeStatus.SKIPPED)
