"""Reversible faults: each one does one thing an operator could see, and has an undo.

| fault                       | how                                                          |
|-----------------------------|--------------------------------------------------------------|
| kill-mysqld / start-mysqld  | SIGKILL the server by PID / start it again (same datadir)    |
| freeze / thaw               | SIGSTOP / SIGCONT every process in the node's namespaces     |
| freeze-mysqld / thaw-mysqld | SIGSTOP / SIGCONT the node's server only (a hung mysqld)     |
| host-down / host-up         | freeze + the node's bridge port down / port up + thaw        |
| cut-link / heal-link        | nftables on the bridge drops node1 <-> node2 frames only     |
| loss / loss-clear           | nftables in the node: drop N % of arriving packets, or of    |
|                             | sent ones, or both ways; ARP too if asked (`both arp`)       |
| throttle / throttle-clear   | tc tbf on the node's eth0                                    |
| isolate / unisolate         | nftables in the node: drop everything but loopback          |
| too-many-connections / ...  | a holder process takes every slot: new clients get 1040      |

A frozen node keeps a live kernel (it answers ping and ARP, completes TCP handshakes) like a
hung host; host-down also takes its link away. Active faults are recorded in the state file.
Processes are signalled by PID only. "The server" is the lab's mariadbd or (`up --server
mysql`) its mysqld, whichever the lab's record names.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import time
from typing import TYPE_CHECKING

from monha.lab.names import NODE_IFACE, NODES
from monha.lab.netns import namespace_inodes
from monha.lab.proc import (
    CommandError,
    is_alive,
    kill_now,
    ns_inode,
    pids_in_namespaces,
    run,
    signal_pids,
    spawn,
    start_time,
    wait_gone,
)

if TYPE_CHECKING:
    from monha.lab.lab import Lab

_TABLE_CUT = "monha_cut"
_TABLE_LOSS = "monha_loss"
_TABLE_LOSS_ARP = "monha_loss_arp"
_LOSS_HOOKS: dict[str, tuple[str, ...]] = {
    "in": ("input",), "out": ("output",), "both": ("input", "output"),
}  # fmt: skip
LOSS_DIRECTIONS: tuple[str, ...] = tuple(_LOSS_HOOKS)
_TABLE_ISOLATE = "monha_isolate"
_HOLDER = "conn-holder"
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
_RATE_BYTES = {
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    "bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9,
}  # fmt: skip

FAULT_NAMES: tuple[str, ...] = (
    "kill-mysqld", "start-mysqld", "freeze", "thaw", "freeze-mysqld", "thaw-mysqld",
    "host-down", "host-up",
    "cut-link", "heal-link", "loss", "loss-clear", "throttle", "throttle-clear",
    "isolate", "unisolate", "too-many-connections", "restore-connections", "clear-all",
)  # fmt: skip


class FaultError(RuntimeError):
    """A fault could not be applied or undone."""


def _check_node(node: str) -> str:
    if node not in NODES:
        raise FaultError(f"unknown node {node!r}: use one of {', '.join(NODES)}")
    return node


def rate_bytes_per_s(rate: str) -> float:
    match = _RATE_RE.fullmatch(rate.lower())
    if not match:
        raise FaultError(f"bad rate {rate!r}: write e.g. 1mbit, 500kbit, 100kbps")
    return float(match.group(1)) * _RATE_BYTES[match.group(2)]


class Faults:
    """The fault injector of one lab."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.paths = lab.paths

    # --- bookkeeping ----------------------------------------------------------------------

    def _mark(self, fault: str, item: str, active: bool) -> None:
        with self.lab.store.edit(self.lab.prefix) as state:
            items = [i for i in state.faults.get(fault, []) if i != item]
            if active:
                items.append(item)
            if items:
                state.faults[fault] = items
            else:
                state.faults.pop(fault, None)

    def _nft(self, role: str, script: str) -> None:
        """Load an nftables script in the network namespace of `role` (lan or a node)."""
        run(self._net_argv(role, ["nft", "-f", "-"]), input=script)

    def _nft_delete(self, role: str, family: str, table: str) -> None:
        run(self._net_argv(role, ["nft", "delete", "table", family, table]), check=False)

    def _net_argv(self, role: str, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.paths.netns_path(role)}", "--", *argv]

    # --- MariaDB ----------------------------------------------------------------------------

    def kill_mysqld(self, node: str) -> int:
        """SIGKILL the node's server; return its PID. Under mysqld_safe it comes back."""
        _check_node(node)
        db = self.lab.db
        pid = db.server_pid(self.paths, node)
        if pid is None:
            raise FaultError(f"{db.DAEMON} on {node} is not running")
        kill_now([pid])
        self._mark("kill-mysqld", node, True)
        return pid

    def start_mysqld(self, node: str, timeout: float = 60.0) -> int:
        """Start the node's server again (same datadir and my.cnf); return its PID."""
        _check_node(node)
        state = self.lab.state()
        db = self.lab.db
        supervised = bool(state and state.mysqld_safe)
        sock = self.lab.socket(node)
        pid = db.server_pid(self.paths, node)
        if pid is None:
            supervisor_alive = (
                supervised
                and state is not None
                and any(is_alive(r.pid, r.start) for r in state.procs_named("mysqld_safe", node))
            )
            if not supervisor_alive:
                name = "mysqld_safe" if supervised else db.DAEMON
                with self.lab.store.edit(self.lab.prefix) as st:
                    st.procs = [
                        r
                        for r in st.procs
                        if not (r.name == name and r.node == node) or is_alive(r.pid, r.start)
                    ]
                db.before_start(self.paths, node)
                spawned = self.lab.spawn_in(
                    node, db.server_argv(self.paths, node, supervised=supervised), name
                )
                db.wait_ready(sock, None if supervised else spawned, timeout)
            else:
                db.wait_ready(sock, None, timeout)
            pid = db.server_pid(self.paths, node)
        self._mark("kill-mysqld", node, False)
        if pid is None:
            raise FaultError(f"{db.DAEMON} on {node} did not come back")
        return pid

    def too_many_connections(self, node: str, timeout: float = 15.0) -> str:
        """Take every connection slot of the node's server (the mha user then gets 1040)."""
        _check_node(node)
        self.restore_connections(node)
        old = self.lab.sql(node, "SELECT @@global.max_connections").strip()
        ready = self.paths.node(node).root / "conn-holder.ready"
        ready.unlink(missing_ok=True)
        self._mark("too-many-connections", f"{node}:{old}", True)
        log = self.paths.node(node).logs / "conn-holder.log"
        pid = spawn(
            [sys.executable, "-m", "monha.lab.holder", str(self.lab.socket(node)), str(ready)], log
        )
        self.lab.record_proc(pid, _HOLDER, node)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if not is_alive(pid) or time.monotonic() > deadline:
                raise FaultError(f"connection holder failed on {node}; see {log}")
            time.sleep(0.05)
        return ready.read_text().strip()

    def restore_connections(self, node: str) -> None:
        _check_node(node)
        state = self.lab.state()
        if state is None:
            return
        holders = [r.pid for r in state.procs_named(_HOLDER, node) if is_alive(r.pid, r.start)]
        # SIGTERM: the holder restores max_connections over a slot it still holds.
        signal_pids(holders, signal.SIGTERM)
        kill_now(wait_gone(holders, 5.0))
        olds = [i.split(":", 1)[1] for i in state.faults.get("too-many-connections", [])
                if i.startswith(f"{node}:")]  # fmt: skip
        if olds:
            deadline = time.monotonic() + 10
            while True:
                try:
                    if self.lab.sql(node, "SELECT @@global.max_connections").strip() != olds[0]:
                        self.lab.sql(node, f"SET GLOBAL max_connections = {int(olds[0])}")
                    break
                except CommandError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for old in olds:
                self._mark("too-many-connections", f"{node}:{old}", False)
        with self.lab.store.edit(self.lab.prefix) as st:
            st.procs = [r for r in st.procs if not (r.name == _HOLDER and r.node == node)]

    # --- processes --------------------------------------------------------------------------

    def _node_pids(self, node: str) -> list[int]:
        inodes = [
            i
            for i in (ns_inode(self.paths.netns_path(node)), ns_inode(self.paths.mnt_file(node)))
            if i is not None
        ]
        return pids_in_namespaces(inodes)

    def freeze(self, node: str) -> list[int]:
        """SIGSTOP every process in the node (a hung host); return the PIDs."""
        _check_node(node)
        stopped: set[int] = set()
        for _ in range(5):  # again, in case one forked meanwhile
            new = [p for p in self._node_pids(node) if p not in stopped]
            if not new:
                break
            signal_pids(new, signal.SIGSTOP)
            stopped.update(new)
        self._mark("freeze", node, True)
        return sorted(stopped)

    def thaw(self, node: str) -> list[int]:
        _check_node(node)
        pids = self._node_pids(node)
        signal_pids(pids, signal.SIGCONT)
        self._mark("freeze", node, False)
        return pids

    def freeze_mysqld(self, node: str) -> int:
        """SIGSTOP the node's server alone (a hung mysqld: its host, sshd and everything else
        keep running; its port still completes TCP handshakes, but nothing answers); return
        its PID."""
        _check_node(node)
        db = self.lab.db
        pid = db.server_pid(self.paths, node)
        if pid is None:
            raise FaultError(f"{db.DAEMON} on {node} is not running")
        signal_pids([pid], signal.SIGSTOP)
        self._mark("freeze-mysqld", f"{node}:{pid}", True)
        return pid

    def thaw_mysqld(self, node: str) -> list[int]:
        """SIGCONT the server(s) freeze-mysqld stopped on the node (by the recorded PID, if it
        is still alive); return the PIDs continued."""
        _check_node(node)
        state = self.lab.state()
        items = state.faults.get("freeze-mysqld", []) if state else []
        mine = [i for i in items if i.startswith(f"{node}:")]
        pids = [int(i.split(":", 1)[1]) for i in mine]
        live = [p for p in pids if is_alive(p)]
        signal_pids(live, signal.SIGCONT)
        for item in mine:
            self._mark("freeze-mysqld", item, False)
        return live

    # --- links ------------------------------------------------------------------------------

    def _port(self, node: str, updown: str) -> None:
        run(["ip", "-n", self.paths.netns("lan"), "link", "set", node, updown])

    def host_down(self, node: str) -> None:
        """The host dies: its processes stop and its link goes down."""
        _check_node(node)
        self.freeze(node)
        self._port(node, "down")
        self._mark("host-down", node, True)

    def host_up(self, node: str) -> None:
        _check_node(node)
        self._port(node, "up")
        self.thaw(node)
        self._mark("host-down", node, False)

    def cut_link(self) -> None:
        """Drop only node1 <-> node2 traffic (on the bridge); both still reach the rest."""
        self._nft_delete("lan", "bridge", _TABLE_CUT)
        self._nft(
            "lan",
            f"""table bridge {_TABLE_CUT} {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    iifname "node1" oifname "node2" drop
    iifname "node2" oifname "node1" drop
  }}
}}
""",
        )
        self._mark("cut-link", "node1-node2", True)

    def heal_link(self) -> None:
        self._nft_delete("lan", "bridge", _TABLE_CUT)
        self._mark("cut-link", "node1-node2", False)

    def loss(self, node: str, percent: int, direction: str = "in", *, arp: bool = False) -> None:
        """Drop `percent` % of the IP packets arriving at the node ("in"), leaving it ("out"),
        or each way independently ("both": a round trip then fails with 1 - (1 - p)² — 51 %
        at 30 %); loopback excepted. With `arp`, ARP packets too, the same ways (the arp
        family's own table: the inet family never sees ARP)."""
        _check_node(node)
        if not 0 <= percent <= 100:
            raise FaultError("percent must be 0-100")
        if direction not in LOSS_DIRECTIONS:
            raise FaultError(f"direction must be one of {', '.join(LOSS_DIRECTIONS)}")
        # numgen's range is 0-99: 100 % is a plain drop.
        rule = "drop" if percent == 100 else f"numgen random mod 100 < {percent} drop"
        hooks = _LOSS_HOOKS[direction]
        self.loss_clear(node)
        self._nft(
            node,
            f"table inet {_TABLE_LOSS} {{\n"
            + "".join(
                f"  chain {hook} {{\n"
                f"    type filter hook {hook} priority 0; policy accept;\n"
                f'    {"iif" if hook == "input" else "oif"} "lo" accept\n'
                f"    {rule}\n"
                "  }\n"
                for hook in hooks
            )
            + "}\n",
        )
        if arp:
            self._nft(
                node,
                f"table arp {_TABLE_LOSS_ARP} {{\n"
                + "".join(
                    f"  chain {hook} {{\n"
                    f"    type filter hook {hook} priority 0; policy accept;\n"
                    f"    {rule}\n"
                    "  }\n"
                    for hook in hooks
                )
                + "}\n",
            )
        self._mark("loss", node, True)

    def loss_clear(self, node: str) -> None:
        _check_node(node)
        self._nft_delete(node, "inet", _TABLE_LOSS)
        self._nft_delete(node, "arp", _TABLE_LOSS_ARP)
        self._mark("loss", node, False)

    def throttle(self, node: str, rate: str) -> None:
        """Limit what the node sends on eth0 to `rate` (tc units: 1mbit, 500kbit, ...)."""
        _check_node(node)
        burst = max(4096, int(rate_bytes_per_s(rate) / 50))
        run(
            [
                "tc", "-n", self.paths.netns(node), "qdisc", "replace", "dev", NODE_IFACE,
                "root", "tbf", "rate", rate, "burst", str(burst), "latency", "200ms",
            ]
        )  # fmt: skip
        self._mark("throttle", node, True)

    def throttle_clear(self, node: str) -> None:
        _check_node(node)
        run(
            ["tc", "-n", self.paths.netns(node), "qdisc", "del", "dev", NODE_IFACE, "root"],
            check=False,
        )
        self._mark("throttle", node, False)

    def isolate(self, node: str) -> None:
        """The node reaches nobody and nobody reaches it; its processes keep running."""
        _check_node(node)
        self._nft_delete(node, "inet", _TABLE_ISOLATE)
        self._nft(
            node,
            f"""table inet {_TABLE_ISOLATE} {{
  chain input {{
    type filter hook input priority -10; policy drop;
    iif "lo" accept
  }}
  chain output {{
    type filter hook output priority -10; policy drop;
    oif "lo" accept
  }}
}}
""",
        )
        self._mark("isolate", node, True)

    def unisolate(self, node: str) -> None:
        _check_node(node)
        self._nft_delete(node, "inet", _TABLE_ISOLATE)
        self._mark("isolate", node, False)

    # --- everything -------------------------------------------------------------------------

    def clear_all(self) -> None:
        """Undo every network, freeze and connection fault. A killed server is NOT restarted
        (after a failover that would make a second writable primary): use start-mysqld."""
        self.heal_link()
        for node in NODES:
            self._port(node, "up")
            self._mark("host-down", node, False)
            self.thaw(node)
            self.thaw_mysqld(node)
            self.loss_clear(node)
            self.throttle_clear(node)
            self.unisolate(node)
            with contextlib.suppress(CommandError):
                self.restore_connections(node)

    def apply(self, name: str, args: list[str]) -> str:
        """Apply a fault by its command-line name; return a one-line report."""
        if name not in FAULT_NAMES:
            raise FaultError(f"unknown fault {name!r}: one of {', '.join(FAULT_NAMES)}")
        nodeless = {"cut-link": self.cut_link, "heal-link": self.heal_link,
                    "clear-all": self.clear_all}  # fmt: skip
        if name in nodeless:
            if args:
                raise FaultError(f"{name} takes no arguments")
            nodeless[name]()
            return f"{name}: done"
        if not args:
            raise FaultError(f"{name} needs a node: {', '.join(NODES)}")
        node, rest = _check_node(args[0]), args[1:]
        if name == "loss":
            usage = "usage: fault loss NODE PERCENT [in|out|both] [arp]"
            if not 1 <= len(rest) <= 3 or not rest[0].isdigit():
                raise FaultError(usage)
            direction = rest[1] if len(rest) > 1 else "in"
            arp = len(rest) > 2
            if direction not in LOSS_DIRECTIONS or (arp and rest[2] != "arp"):
                raise FaultError(usage)
            self.loss(node, int(rest[0]), direction, arp=arp)
            what = {"in": "arriving", "out": "sent", "both": "arriving and of sent"}[direction]
            also = ", ARP included" if arp else ""
            return f"loss: {node} drops {rest[0]} % of {what} packets{also}"
        if name == "throttle":
            if len(rest) != 1:
                raise FaultError("usage: fault throttle NODE RATE (e.g. 1mbit)")
            self.throttle(node, rest[0])
            return f"throttle: {node} sends at most {rest[0]}"
        if rest:
            raise FaultError(f"{name} takes only a node")
        result = getattr(self, name.replace("-", "_"))(node)
        return f"{name} {node}: done" + (f" ({result})" if result not in (None, []) else "")


def lab_pids(lab: Lab) -> list[int]:
    """Every live process in any of the lab's namespaces (for tests and status)."""
    return pids_in_namespaces(namespace_inodes(lab.paths))


__all__ = [
    "FAULT_NAMES",
    "LOSS_DIRECTIONS",
    "FaultError",
    "Faults",
    "lab_pids",
    "start_time",
    "wait_gone",
]
