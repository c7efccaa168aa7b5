"""The Lab: bring a two-node lab up, tear it down, run things inside its nodes.

`up` records every effect in the state file as soon as it happens, so `down` can undo a
complete or a partial `up`. `down` ends processes by PID only: the ones it recorded and any
process living in the lab's own namespaces (those can only belong to the lab's "machines"),
then unmounts, deletes the namespaces and removes its files. It is idempotent.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monha.lab import config_writer, netns, services, sshd
from monha.lab.faults import Faults
from monha.lab.names import (
    ADDRESSES,
    CACHE_ROOT,
    LAB_ROOT,
    NETNS_ROLES,
    NODE_IFACE,
    NODES,
    SUBNET_PREFIXLEN,
    VIP,
    VIP_LABEL,
    LabPaths,
    default_prefix,
    validate_prefix,
)
from monha.lab.proc import (
    CommandError,
    is_alive,
    kill_now,
    pids_in_namespaces,
    run,
    spawn,
    start_time,
)
from monha.lab.server import DEFAULT_SERVER, Server, for_name
from monha.lab.state import LabState, StateStore
from monha.lab.status import collect

Log = Callable[[str], None]


class LabError(RuntimeError):
    """The lab cannot do what was asked (already up, not up, a step failed)."""


class Lab:
    """One lab, named by its prefix. Cheap to construct; all state is on disk."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = validate_prefix(prefix if prefix is not None else default_prefix())
        self.paths = LabPaths(self.prefix)
        self.store = StateStore(self.paths.state_file, self.paths.lock_file)

    # --- inspection and helpers ---------------------------------------------------------

    def state(self) -> LabState | None:
        return self.store.load()

    def is_up(self) -> bool:
        """True if anything of this lab exists (a record or one of its namespaces)."""
        if self.paths.state_file.exists():
            return True
        return any(self.paths.netns_path(r).exists() for r in NETNS_ROLES)

    def node_argv(self, node: str, argv: list[str]) -> list[str]:
        """argv prefixed with nsenter into the node's net+mount+UTS namespaces (or, for "lan"
        and "client", their network namespace). Inside a node, /etc/monha, /var/lib/monha,
        /run, /root/.ssh and /etc/hosts are the node's own; the working directory is /."""
        return netns.node_argv(self.paths, node, argv)

    def run_in(
        self, node: str, argv: list[str], *, timeout: float = 30.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run(self.node_argv(node, argv), timeout=timeout, check=check)

    def spawn_in(self, node: str, argv: list[str], name: str, log: Path | None = None) -> int:
        """Start a detached daemon inside `node`, record its PID (down ends it); return it."""
        logs = self.paths.node(node).logs if node in NODES else self.paths.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        pid = spawn(self.node_argv(node, argv), log or logs / f"{name}.log")
        self.record_proc(pid, name, node)
        return pid

    def record_proc(self, pid: int, name: str, node: str) -> None:
        with self.store.edit(self.prefix) as state:
            state.add_proc(pid, start_time(pid), name, node)

    def socket(self, node: str) -> Path:
        """The node's MariaDB/MySQL socket as a root-namespace path."""
        return self.paths.socket(node)

    @property
    def server_name(self) -> str:
        """The server the lab runs, "mariadb" or "mysql", as `up` recorded it (MariaDB when
        there is no record)."""
        state = self.state()
        return state.server if state else DEFAULT_SERVER

    @property
    def db(self) -> Server:
        """The module that speaks to this lab's server (monha.lab.mariadb or mysql_server)."""
        return for_name(self.server_name)

    def sql(self, node: str, statement: str, *, timeout: float = 10.0) -> str:
        """Run SQL on the node's server as its root over the socket (MariaDB: unix socket
        authentication; MySQL: the chrooted mysql client, root with an empty password)."""
        return self.db.sql(self.socket(node), statement, timeout=timeout)

    def node_config(self, node: str) -> Path:
        """The node's /etc/monha/monha.toml as a root-namespace path."""
        return self.paths.node(node).etc_monha / "monha.toml"

    @property
    def config_copy(self) -> Path:
        return self.paths.config_copy

    def vip_holders(self) -> list[str]:
        holders = []
        for node in NODES:
            out = run(
                ["ip", "-n", self.paths.netns(node), "-4", "addr", "show", "dev", NODE_IFACE],
                check=False,
                timeout=5,
            ).stdout
            if f" {VIP}/" in out:
                holders.append(node)
        return holders

    def status(self) -> dict[str, Any]:
        """What runs where (the dict `monha-lab status --json` prints)."""
        return collect(self)

    @property
    def faults(self) -> Faults:
        """The fault injector: lab.faults.freeze("node1"), lab.faults.cut_link(), ..."""
        return Faults(self)

    # --- up -----------------------------------------------------------------------------

    def up(
        self,
        *,
        supervised: bool = False,
        semi_sync: bool = False,
        server: str = DEFAULT_SERVER,
        replace: bool = False,
        keep_on_failure: bool = False,
        heartbeat_period_s: float | None = 1.0,
        log: Log = print,
    ) -> float:
        """Build and start the lab; return how many seconds it took.

        `heartbeat_period_s`: node2's replication heartbeat, set by the lab's CHANGE MASTER;
        None leaves it to the server's default (half of slave_net_timeout: 1.5 s on the lab,
        mariadb.SERVER_DEFAULT_HEARTBEAT_S). It holds until monha sets its own
        mysql.heartbeat_period_s: whenever it points a replica at a primary (rejoin,
        switchover), and a daemon that cares for its standby's replica at once.

        `server`: "mariadb" (the host's MariaDB) or "mysql" (Oracle MySQL from the cached
        root filesystem, gtid_mode=ON); recorded, so later commands use the right client."""
        db = for_name(server)
        t0 = time.monotonic()
        if self.is_up():
            if not replace:
                raise LabError(
                    f"lab {self.prefix!r} is already up (or left over): "
                    f"run `monha-lab down --prefix {self.prefix}` or use `up --replace`"
                )
            log(f"replacing lab {self.prefix!r}")
            self.down(log=log)
        try:
            self._up(
                db, supervised, log, semi_sync=semi_sync, heartbeat_period_s=heartbeat_period_s
            )
        except BaseException as exc:
            if keep_on_failure:
                log(f"up failed ({exc}); left as is: `monha-lab down --prefix {self.prefix}`")
            else:
                log(f"up failed ({exc}); undoing what was done")
                self.down(log=log)
            raise
        seconds = time.monotonic() - t0
        with self.store.edit(self.prefix) as state:
            state.phase = "up"
            state.up_seconds = round(seconds, 2)
        return seconds

    def _up(
        self,
        db: Server,
        supervised: bool,
        log: Log,
        *,
        semi_sync: bool = False,
        heartbeat_period_s: float | None = 1.0,
    ) -> None:
        p = self.paths
        LAB_ROOT.mkdir(mode=0o755, exist_ok=True)
        p.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        with self.store.edit(self.prefix) as state:
            state.started_at = time.time()
            state.mysqld_safe = supervised
            state.server = db.NAME
        template, built = db.ensure_template(log)
        if built:
            log("template built and cached under /var/cache/monha-lab")
        netns.register_lab(p)
        with self.store.edit(self.prefix) as state:
            netns.build_network(p, state)
            netns.make_ns_dir(p, state)
            for node in NODES:
                self._prepare_node_dirs(node)
                netns.create_node_ns(p, state, node)
        for node in NODES:
            db.install_node(p, node, template, semi_sync=semi_sync)
            services.write_files(p, node)
        sshd.make_identity(p)
        config_writer.write(p, db.NAME)

        db_pids = {
            node: self.spawn_in(
                node,
                db.server_argv(p, node, supervised=supervised),
                "mysqld_safe" if supervised else db.DAEMON,
            )
            for node in NODES
        }
        sshd_pids = {node: self.spawn_in(node, sshd.sshd_argv(p, node), "sshd") for node in NODES}
        witness_pid = self.spawn_in("lan", sshd.witness_argv(p), "witness-sshd")
        run(
            [
                "ip", "-n", p.netns("node1"), "addr", "add", f"{VIP}/{SUBNET_PREFIXLEN}",
                "dev", NODE_IFACE, "label", VIP_LABEL,
            ]
        )  # fmt: skip
        arping = subprocess.Popen(
            self.node_argv("node1", ["arping", "-U", "-c", "1", "-I", NODE_IFACE, VIP]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for node in NODES:
            self._service(node, "apache", "start")
        for node in NODES:
            db.wait_ready(p.socket(node), None if supervised else db_pids[node])
        db.start_replication(p, "node2", "node1", heartbeat_period_s)
        for name in ("zabbix-server", "getperf-agent"):
            self._service("node1", name, "start")
        for node in NODES:
            sshd.wait_listening(p, node, sshd_pids[node])
        sshd.wait_witness_listening(p, witness_pid)
        db.wait_replicating(p, "node2")
        try:
            arping.wait(timeout=5)
        except subprocess.TimeoutExpired:
            arping.kill()
            arping.wait()

    def _prepare_node_dirs(self, node: str) -> None:
        d = self.paths.node(node)
        for sub in (
            d.run, d.mysql, d.conf, d.etc_monha, d.var_lib_monha, d.var_log_monha, d.opt, d.logs,
        ):  # fmt: skip
            sub.mkdir(parents=True, exist_ok=True)
        d.root_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (d.run / "mysqld").mkdir(exist_ok=True)  # the mount point of the socket dir
        hosts = ["127.0.0.1\tlocalhost"]
        hosts += [f"{ADDRESSES[n]}\t{n}" for n in NODES]
        hosts += [f"{VIP}\tvip", f"{ADDRESSES['lan']}\twitness", f"{ADDRESSES['client']}\tclient"]
        d.hosts.write_text("\n".join(hosts) + "\n")
        d.bashrc.write_text("# the lab node's root: nothing to set up\n")

    def _service(self, node: str, name: str, action: str) -> None:
        done = self.service(node, name, action)
        if done.returncode != 0:
            raise LabError(f"{name} {action} on {node} failed: {done.stdout}{done.stderr}")

    def service(self, node: str, name: str, action: str) -> subprocess.CompletedProcess[str]:
        """Run `/opt/monha-lab/init.d/<name> <action>` inside the node and return the result
        (LSB codes: status 0 running, 3 stopped). A started daemon is recorded for `down`."""
        done = self.run_in(node, [services.init_script_path(name), action], timeout=30)
        if action in ("start", "restart") and done.returncode == 0:
            pid = services.wait_pid_file(self.paths, node, name)
            if pid is not None:
                self.record_proc(pid, name, node)
        return done

    # --- down ---------------------------------------------------------------------------

    def down(self, *, purge_cache: bool = False, log: Log = print) -> list[str]:
        """Undo everything the lab did; return the problems met (empty when clean)."""
        p = self.paths
        problems: list[str] = []
        state = self.store.load()
        problems += self._end_processes(state)
        problems += netns.remove_namespaces_and_mounts(p, state)
        problems += netns.unregister_lab(p)
        leftover = [m for m in netns.mountpoints() if m.startswith(str(p.root) + "/")]
        if leftover:
            problems.append(f"not removing {p.root}: still mounted: {leftover}")
        elif p.root.exists():
            shutil.rmtree(p.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            LAB_ROOT.rmdir()
        if purge_cache:
            shutil.rmtree(CACHE_ROOT, ignore_errors=True)
        for problem in problems:
            log(f"down: {problem}")
        return problems

    def _end_processes(self, state: LabState | None) -> list[str]:
        inodes = netns.namespace_inodes(self.paths)
        recorded = state.procs if state else []
        # Supervisors first, so nothing restarts what is being ended.
        supervisors = [
            r.pid for r in recorded if r.name == "mysqld_safe" and is_alive(r.pid, r.start)
        ]
        kill_now(supervisors)
        survivors: list[int] = []
        for _ in range(5):
            pids = set(pids_in_namespaces(inodes))
            pids |= {r.pid for r in recorded if is_alive(r.pid, r.start)}
            if not pids:
                return []
            survivors = kill_now(pids)
        return [f"processes still alive: {survivors}"] if survivors else []


def lab_exists(prefix: str) -> bool:
    return Lab(prefix).is_up()


__all__ = ["CommandError", "Lab", "LabError", "lab_exists"]
