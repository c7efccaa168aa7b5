"""A simulated two-node world behind the same protocols the daemon uses (layer 3 of STYLE.md).

node1 is the primary, node2 the replica that runs the daemon under test. The fakes keep the
state an operator would check (who holds the VIP, who is writable, which services run) and
record every command, so tests assert on effects, not on calls to mocks. Faults are plain
attributes: `node1.mysql_up`, `node1.host_up`, `node1.ssh_up`, `fail[...]`, `hang[...]`.

The observer is the real `Observer` with its network probes answered from this world; the
journal, the flag, the control socket and the executor are the real ones.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from monha.config import Config, load_config
from monha.daemon import Wiring
from monha.model import (
    BinlogCoordinates,
    ProbeResult,
    ProbeStatus,
    ReplicaStatus,
    ReplicaView,
)
from monha.mysql import MySQLError
from monha.observe import Observer, Peers
from monha.runners import CommandResult, RunnerError
from monha.steps import Nodes, ReplicationSource

VIP = "192.168.10.10"
WITNESS_ADDRESS = "192.168.10.254"


class Clock:
    """Wall-clock seconds running `speed` times faster than real time, from a fixed start:
    back-offs of seconds pass in a fraction of one."""

    def __init__(self, speed: float = 20.0) -> None:
        self.speed = speed
        self._t0 = time.monotonic()
        self._base = 1_800_000_000.0

    def __call__(self) -> float:
        return self._base + (time.monotonic() - self._t0) * self.speed


@dataclass
class FakeNode:
    name: str
    address: str
    primary: bool
    mysql_up: bool = True
    host_up: bool = True
    ssh_up: bool = True
    read_only: bool = False
    replicating: bool = False
    vip: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    promotions: int = 0
    # The peer's own files (epoch, flag copy) as `sh -c` scripts over SSH see them: path ->
    # content. The local node's are real files (its runner runs those scripts for real).
    files: dict[str, bytes] = field(default_factory=dict)
    commands: list[tuple[str, ...]] = field(default_factory=list)
    # step or command name -> how many more times it fails / hangs
    fail: dict[str, int] = field(default_factory=dict)
    hang: dict[str, float] = field(default_factory=dict)
    lose_connection: int = 0  # the next N SSH commands lose their connection mid-way
    lose_after_delete: int = 0  # the next N `ip addr del` do delete, then lose the connection
    # The replica's own settings and faults (replica_care): its heartbeat period, its net
    # timeout, an IO thread that failed and stays failed until restarted.
    heartbeat_s: float | None = None
    net_timeout_s: int = 60
    io_failed: bool = False
    io_restarts: int = 0
    sql_stopped: bool = False  # STOP SLAVE SQL_THREAD by an operator

    def take(self, table: dict[str, int], key: str) -> bool:
        left = table.get(key, 0)
        if left > 0:
            table[key] = left - 1
            return True
        return False


@dataclass
class World:
    node1: FakeNode
    node2: FakeNode
    closed: list[str] = field(default_factory=list)  # handles closed, by name
    witness_up: bool = True  # the ICMP-only witness at WITNESS_ADDRESS answers

    def node(self, name: str) -> FakeNode:
        return self.node1 if name == "node1" else self.node2

    def vip_holders(self) -> list[str]:
        """The nodes that answer for the VIP (a dead host answers nothing)."""
        return [n.name for n in (self.node1, self.node2) if VIP in n.vip and n.host_up]

    def writable(self) -> list[str]:
        return [
            n.name for n in (self.node1, self.node2) if n.mysql_up and n.host_up and not n.read_only
        ]


def new_world() -> World:
    n1 = FakeNode("node1", "192.168.10.1", True, vip={VIP}, services={"zabbix-server"})
    n2 = FakeNode("node2", "192.168.10.2", False, read_only=True, replicating=True)
    return World(n1, n2)


class FakeRunner:
    """Runs argv against a FakeNode: `ip addr`, arping and service commands."""

    def __init__(self, world: World, node: str, *, remote: bool, label: str = "") -> None:
        self.world, self.name, self.remote = world, node, remote
        self.label = label or f"runner:{node}"

    def describe(self) -> str:
        return f"fake {'ssh' if self.remote else 'local'} {self.name}"

    async def close(self) -> None:
        self.world.closed.append(self.label)

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        n = self.world.node(self.name)
        args = tuple(argv)
        if self.remote and not (n.host_up and n.ssh_up):
            await asyncio.sleep(min(timeout_s, 0.05))
            raise RunnerError(f"{self.describe()}: cannot connect: host unreachable")
        if self.remote and n.lose_connection > 0:
            n.lose_connection -= 1
            raise asyncssh.ConnectionLost("connection lost mid-command")
        n.commands.append(args)
        if args[:2] == ("sh", "-c"):
            return await self._file_script(n, args, timeout_s, input)
        name = Path(args[0]).name
        delay = n.hang.get(name, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if n.take(n.fail, name):
            return CommandResult(args, 1, b"", f"{name}: failed on purpose".encode(), 0.01)
        out = b""
        if args[:2] == ("ip", "-o") and "show" in args:
            out = "".join(
                f"2: eth0    inet {a}/24 brd 192.168.10.255 scope global secondary eth0:1\\"
                "       valid_lft forever preferred_lft forever\n"
                for a in sorted(n.vip)
            ).encode()
        elif args[:3] == ("ip", "addr", "add"):
            n.vip.add(args[3].split("/")[0])
        elif args[:3] == ("ip", "addr", "del"):
            address = args[3].split("/")[0]
            if address not in n.vip:
                return CommandResult(
                    args, 2, b"", b"RTNETLINK answers: Cannot assign requested address", 0.01
                )
            n.vip.discard(address)
            if self.remote and n.lose_after_delete > 0:
                n.lose_after_delete -= 1
                raise asyncssh.ConnectionLost("connection lost after the delete")
        elif name in ("zabbix-start", "zabbix-stop"):
            (n.services.add if name == "zabbix-start" else n.services.discard)("zabbix-server")
        return CommandResult(args, 0, out, b"", 0.01)

    async def _file_script(
        self, n: FakeNode, args: tuple[str, ...], timeout_s: float, data: bytes | None
    ) -> CommandResult:
        """monha.cluster_files' read, write and remove scripts: for real on the local node,
        against `n.files` on the remote one."""
        if not self.remote:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(data), timeout_s)
            return CommandResult(args, proc.returncode, out, err, 0.01)
        script, path = args[2], args[-1]
        if "cat >" in script:
            n.files[path] = data or b""
            return CommandResult(args, 0, b"", b"", 0.01)
        if path not in n.files:
            return CommandResult(args, 3, b"", b"", 0.01)
        if "rm -f" in script:
            del n.files[path]
            return CommandResult(args, 0, b"", b"", 0.01)
        return CommandResult(args, 0, n.files[path], b"", 0.01)


class FakeServer:
    """A node's MySQL, as the steps and the observer use it."""

    def __init__(self, world: World, node: str, label: str = "") -> None:
        self.world, self.name = world, node
        self.label = label or f"mysql:{node}"
        self.applier_killed: tuple[int, ...] = ()  # as Server: its applier always stops

    @property
    def n(self) -> FakeNode:
        return self.world.node(self.name)

    def describe(self) -> str:
        return f"fake mysql {self.name}"

    async def close(self) -> None:
        self.world.closed.append(self.label)

    async def _answer(self, what: str, timeout_s: float | None) -> None:
        n = self.n
        delay = n.hang.get(what, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if not (n.mysql_up and n.host_up):
            await asyncio.sleep(min(timeout_s or 0.05, 0.05))
            raise MySQLError(f"{self.describe()}: (2003) Can't connect")
        if n.take(n.fail, what):
            raise MySQLError(f"{self.describe()}: {what} failed on purpose")

    async def read_only(self, timeout_s: float | None = None) -> bool:
        await self._answer("read_only", timeout_s)
        return self.n.read_only

    async def set_read_only(self, on: bool, timeout_s: float | None = None) -> None:
        await self._answer("set_read_only", timeout_s)
        self.n.read_only = on

    async def replica_status(self, timeout_s: float | None = None) -> ReplicaStatus:
        await self._answer("replica_status", timeout_s)
        n = self.n
        if not n.replicating:
            return ReplicaStatus(configured=False)
        source = self.world.node("node2" if self.name == "node1" else "node1")
        up = source.mysql_up and source.host_up
        pos = BinlogCoordinates("bin.000001", 1000)
        io = "Yes" if up else "Connecting"
        if n.io_failed:
            io = "No"
        return ReplicaStatus(
            configured=True,
            io_running=io,
            last_io_errno=2013 if n.io_failed else 0,
            heartbeat_period_s=n.heartbeat_s,
            sql_running="No" if n.sql_stopped else "Yes",
            sql_state="Replica has read all relay log; waiting for more updates",
            source_host=source.address,
            read_position=pos,
            exec_position=pos,
        )

    async def set_net_timeout(self, seconds: int, timeout_s: float | None = None) -> bool:
        await self._answer("set_net_timeout", timeout_s)
        changed, self.n.net_timeout_s = self.n.net_timeout_s != seconds, seconds
        return changed

    async def set_heartbeat(self, period_s: float, timeout_s: float | None = None) -> None:
        await self._answer("set_heartbeat", timeout_s)
        self.n.heartbeat_s = period_s

    async def restart_io_thread(self, timeout_s: float | None = None) -> None:
        await self._answer("restart_io_thread", timeout_s)
        self.n.io_failed = False
        self.n.io_restarts += 1

    async def binlog_coordinates(self, timeout_s: float | None = None) -> BinlogCoordinates:
        await self._answer("binlog_coordinates", timeout_s)
        return BinlogCoordinates("bin.000002", 4, "0-102-1")

    async def wait_caught_up(
        self, timeout_s: float, target: BinlogCoordinates | None = None
    ) -> tuple[bool, str]:
        await self._answer("wait_caught_up", timeout_s)
        return True, "caught up at bin.000001:1000"

    async def promote(self, timeout_s: float | None = None) -> BinlogCoordinates:
        await self._answer("promote", timeout_s)
        n = self.n
        if n.replicating or n.read_only:
            n.promotions += 1
        n.replicating, n.read_only, n.primary = False, False, True
        return BinlogCoordinates("bin.000002", 4, "0-102-1")

    async def observe_replica(self, now: float, timeout_s: float | None = None) -> ReplicaView:
        try:
            st = await self.replica_status(timeout_s)
        except MySQLError as exc:
            return ReplicaView(ProbeResult("replica", self.name, ProbeStatus.FAILED, 0.0, str(exc)))
        heard = 0.2 if st.io_ok else 30.0
        return ReplicaView(ProbeResult("replica", self.name, ProbeStatus.OK, 0.001), st, heard)


class WorldObserver(Observer):
    """The real observer, its network probes answered by the world."""

    def __init__(self, world: World, cfg: Config, me: str, peers: Peers) -> None:
        super().__init__(cfg, me, peers, "pw")
        self.world = world

    def _peer(self) -> FakeNode:
        return self.world.node(self.peer.name)

    async def _icmp(self, address: str, timeout_s: float) -> ProbeResult:
        up = self._peer().host_up if address == self.peer.address else True
        if address == WITNESS_ADDRESS:
            up = self.world.witness_up
        if not up:
            await asyncio.sleep(min(timeout_s, 0.05))
            return ProbeResult("icmp", address, ProbeStatus.TIMEOUT, timeout_s, "no reply")
        return ProbeResult("icmp", address, ProbeStatus.OK, 0.001)

    async def _mysql(self, timeout_s: float) -> ProbeResult:
        n = self._peer()
        if n.host_up and n.mysql_up:
            return ProbeResult("mysql", n.name, ProbeStatus.OK, 0.001)
        status = ProbeStatus.FAILED if n.host_up else ProbeStatus.TIMEOUT
        return ProbeResult("mysql", n.name, status, 0.01, "connection refused")

    async def _ssh(self, timeout_s: float) -> tuple[ProbeResult, ProbeResult]:
        n = self._peer()
        if not (n.host_up and n.ssh_up):
            return (
                ProbeResult("ssh", n.address, ProbeStatus.TIMEOUT, timeout_s, "no session"),
                ProbeResult("ssh_mysql", n.name, ProbeStatus.SKIPPED),
            )
        local = ProbeStatus.OK if n.mysql_up else ProbeStatus.FAILED
        return (
            ProbeResult("ssh", n.address, ProbeStatus.OK, 0.001),
            ProbeResult("ssh_mysql", n.name, local, 0.001),
        )


def wiring_for(world: World, *, label: str = "") -> Callable[[Config, str], Wiring]:
    """A `Daemon(wiring=...)` factory: the world's handles instead of the real ones."""

    def wire(cfg: Config, me: str) -> Wiring:
        # As the real wiring does: the password files are read (and their modes checked) here.
        cfg.mysql.monitor_secret()
        cfg.mysql.replication_secret()
        peer = cfg.peer_of(me).name
        local = FakeServer(world, me, f"{label}mysql:{me}")
        remote = FakeServer(world, peer, f"{label}mysql:{peer}")
        ssh = FakeRunner(world, peer, remote=True, label=f"{label}ssh:{peer}")
        peers = Peers(local=local, primary=remote, ssh=ssh)  # type: ignore[arg-type]
        nodes = Nodes(
            runners={me: FakeRunner(world, me, remote=False), peer: ssh},
            mysql={me: local, peer: remote},  # type: ignore[dict-item]
        )
        nodes.sources = {
            n.name: ReplicationSource(n.address, n.mysql_port, "repl", "pw") for n in cfg.nodes
        }
        return Wiring(peers, WorldObserver(world, cfg, me, peers), nodes)

    return wire


CONFIG = """\
[cluster]
name = "middle"

[[nodes]]
name = "node1"
address = "192.168.10.1"
interface = "eth0"

[[nodes]]
name = "node2"
address = "192.168.10.2"
interface = "eth0"

[ssh]
key_file = "{d}/id"
known_hosts = "{d}/known_hosts"

[vip]
address = "192.168.10.10"
prefix = 24
label = "eth0:1"
arp_count = 0

[mysql]
monitor_user = "mha"
monitor_password_file = "{d}/monitor.pw"
replication_user = "repl"
replication_password_file = "{d}/repl.pw"
stop_command = ["/usr/sbin/mysql-stop"]

[probe]
interval_s = {interval}
mysql_timeout_s = 0.2
icmp_timeout_s = 0.2
ssh_timeout_s = 0.2
replica_silence_s = 2.0

[failover]
flag_file = "{d}/failover.flag"
journal_file = "{d}/journal.json"
fence_timeout_s = {fence_timeout}
catchup_timeout_s = 1.0
promote_timeout_s = 1.0
vip_timeout_s = 1.0
{failover_extra}

[[services.cold_standby]]
name = "zabbix-server"
start = ["/usr/sbin/zabbix-start"]
stop = ["/usr/sbin/zabbix-stop"]
status = ["/usr/sbin/zabbix-status"]
timeout_s = {service_timeout}

[control]
socket = "{d}/control.sock"

[metrics]
listen_address = "127.0.0.1"
listen_port = 1
"""


def write_config(
    d: Path,
    *,
    interval: float = 0.05,
    fence_timeout: float = 1.0,
    service_timeout: float = 1.0,
    failover_extra: str = "",
) -> Path:
    for name in ("monitor.pw", "repl.pw"):
        p = d / name
        p.write_text("pw\n")
        os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)
    path = d / "monha.toml"
    path.write_text(
        CONFIG.format(
            d=d,
            interval=interval,
            fence_timeout=fence_timeout,
            service_timeout=service_timeout,
            failover_extra=failover_extra,
        )
    )
    os.chmod(path, 0o600)
    load_config(path)  # fail here, not in the daemon, on a typo in the template
    return path


def read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data
