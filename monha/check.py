"""What the cluster looks like right now, and what is wrong with it: `monha-ctl check`, the
cluster part of `status`, `plan` and `is-active`.

Job: `survey` asks every node, at once and each question under a timeout, what an operator
would check by hand (the seed's masterha_check_ssh and masterha_check_repl, and more): SSH in
both directions with host keys verified, MySQL's role, read_only, server_id, binary log,
replication threads, heartbeat and grants, who holds the VIP, where the cold-standby services
run. `problems` turns a survey into the list of things to fix (pure); `failover_plan_now`
builds the plan a failover would run if the primary failed now. It works with or without the
daemon: the daemon passes its own connections, monha-ctl opens its own (`Handles`).

Must not: change anything on any node. Every question is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monha import handles
from monha.config import Config, fill_placeholders
from monha.dialect import CLIENT_TOOLS, Flavor, tool_flavor, version_tuple
from monha.journal import Journal, RecordError, read_flag
from monha.model import ProbeStatus, ReplicaStatus, Step
from monha.mysql import MySQLError, Server, probe_alive
from monha.observe import REMOTE_TIMEOUT_EXIT, check_bound
from monha.plan import build_failover_plan
from monha.runners import CommandResult, LocalRunner, Runner, RunnerError, as_root, unprivileged
from monha.server_options import refused_options

DEFAULT_TIMEOUT_S = 5.0

# Privileges the monitor user needs on *.*: read_only and replica changes (SUPER, or ALL),
# and reading replica and binary log status. Any one name of a group is enough.
NEEDED_PRIVILEGES: tuple[tuple[str, ...], ...] = (
    ("SUPER",),
    ("REPLICATION CLIENT", "BINLOG MONITOR"),
    ("REPLICATION CLIENT", "SLAVE MONITOR", "REPLICA MONITOR", "SUPER"),
)


@dataclass(slots=True)
class NodeFacts:
    """What one node answered. None: the question could not be asked (see the details)."""

    name: str
    address: str
    local: bool
    ssh_ok: bool | None = None  # from this node to it (None for this node itself)
    ssh_detail: str = ""
    mysql_ok: bool = False
    mysql_detail: str = ""
    server_id: int | None = None
    log_bin: bool | None = None
    read_only: bool | None = None
    replica: ReplicaStatus | None = None
    holds_vip: bool | None = None
    vip_detail: str = ""
    services: dict[str, bool | None] = field(default_factory=dict)
    missing_privileges: list[str] = field(default_factory=list)
    replication_login: bool | None = None
    replication_login_detail: str = ""
    # SemiSyncState.as_dict(); None when it could not be read (see semi_sync_detail).
    semi_sync: dict[str, Any] | None = None
    semi_sync_detail: str = ""
    # Privileged commands that the node's privilege prefix does not let through (empty: all
    # passed, or no prefix is configured for it).
    privilege_problems: list[str] = field(default_factory=list)
    flavor: str = ""  # "mariadb" or "mysql", from the server's own version
    version: str = ""
    # The commands monha runs on this node (the SSH-side MySQL check, the binlog tools) that do
    # not work there, and my.cnf options its server version refuses: one sentence each.
    tool_problems: list[str] = field(default_factory=list)
    tool_notes: list[str] = field(default_factory=list)

    @property
    def replicates(self) -> bool | None:
        return None if self.replica is None else self.replica.configured

    @property
    def role(self) -> str:
        if not self.mysql_ok or self.replica is None:
            return "unknown"
        return "replica" if self.replica.configured else "primary"


@dataclass(slots=True)
class Survey:
    me: str
    nodes: dict[str, NodeFacts]
    ssh_back_ok: bool | None = None  # the peer's SSH to this node, host key checked
    ssh_back_detail: str = ""
    flag: dict[str, Any] | None = None
    flag_error: str = ""
    journal_open: dict[str, str] | None = None

    @property
    def primary(self) -> str | None:
        """The node whose MySQL answers and replicates from nobody, if exactly one does."""
        primaries = [n.name for n in self.nodes.values() if n.role == "primary"]
        return primaries[0] if len(primaries) == 1 else None

    @property
    def vip_holders(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.holds_vip]

    def running(self, service: str) -> list[str]:
        return [n.name for n in self.nodes.values() if n.services.get(service)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["primary"] = self.primary
        data["vip_holders"] = self.vip_holders
        for name, node in self.nodes.items():
            data["nodes"][name]["role"] = node.role
        return data


@dataclass(slots=True)
class Handles:
    """How this node reaches every node: the daemon's own, or opened by monha-ctl."""

    runners: dict[str, Runner]
    mysql: dict[str, Server]

    @classmethod
    def open(cls, cfg: Config, me: str) -> Handles:
        peer = cfg.peer_of(me)
        pw = cfg.mysql.monitor_secret().get_secret_value()
        local = handles.local_server(cfg, me, pw)
        remote = handles.remote_server(cfg, peer.name, pw)
        ssh = handles.ssh_runner(cfg, peer.name)
        return cls({me: handles.local_runner(cfg), peer.name: ssh}, {me: local, peer.name: remote})

    async def close(self) -> None:
        for closer in [
            *(s.close for s in self.mysql.values()),
            *(r.close for r in self.runners.values()),
        ]:
            with contextlib.suppress(Exception):
                await closer()


def vip_argv(cfg: Config, node: str) -> list[str]:
    iface = cfg.node(node).interface
    return ["ip", "-o", "-4", "addr", "show", "dev", iface, "to", f"{cfg.vip.address}/32"]


async def holds_vip(cfg: Config, runner: Runner, node: str, timeout_s: float) -> bool:
    """Raises RunnerError when the node cannot be asked."""
    result = await runner.run(vip_argv(cfg, node), timeout_s)
    if not result.ok:
        raise RunnerError(f"ip addr show: {result.summary()}")
    return bool(result.stdout.strip())


async def _mysql_facts(cfg: Config, facts: NodeFacts, server: Server, t: float) -> None:
    try:
        async with asyncio.timeout(t):
            values = await server.global_variables(["server_id", "log_bin", "read_only"], t)
            d = await server.dialect(t)
            facts.flavor, facts.version = d.flavor.value, d.version_string
            facts.server_id = int(values["server_id"])
            facts.log_bin = str(values["log_bin"]) in ("1", "ON")
            facts.read_only = str(values["read_only"]) in ("1", "ON")
            facts.replica = await server.replica_status(t)
            grants = " ".join(await server.grants(t)).upper()
            facts.mysql_ok = True
    except (MySQLError, TimeoutError, KeyError, ValueError) as exc:
        facts.mysql_detail = str(exc) or "no answer"
        return
    try:
        async with asyncio.timeout(t):
            facts.semi_sync = (await server.semi_sync_state(t)).as_dict()
    except (MySQLError, TimeoutError) as exc:
        facts.semi_sync_detail = str(exc) or "no answer"
    if "ALL PRIVILEGES ON *.*" not in grants:
        for group in NEEDED_PRIVILEGES:
            if not any(p in grants for p in group):
                facts.missing_privileges.append(group[0])


async def _tools(cfg: Config, facts: NodeFacts, runner: Runner, t: float) -> None:
    """Run, harmlessly, what monha itself runs on the node: each must work there."""
    n = facts.name

    async def ask(argv: list[str]) -> CommandResult | None:
        try:
            return await runner.run(argv, t)
        except RunnerError:
            return None  # the node cannot be asked: SSH's own problem says so

    # The SSH-side check tells a network fault from a dead MySQL; one that cannot succeed
    # (a missing mysqladmin on MariaDB 11, a client refusing the server's certificate) makes
    # a healthy server look dead and protects nothing, without a word, so it is run here.
    check = fill_placeholders(cfg.probe.ssh_mysql_check, mysql_port=cfg.node(n).mysql_port)
    # Bounded by this survey's time, not the probe's: whether it works at all is the question.
    bound = max(check_bound(cfg.probe.ssh_timeout_s), t * 0.6)
    argv = ["timeout", "-k", "0.2", f"{bound:.2f}", *check]
    res = await ask(argv)
    if res is not None and facts.mysql_ok and res.exit_status == 1:
        res = await ask(argv)  # a client that lost one race on a loaded host: once more
    if res is not None and facts.mysql_ok and not res.ok:
        # A slow answer (a loaded host, the runner's own bound) is worth a note; a check that
        # ran and failed twice while MySQL answers this survey, or could not run, is broken.
        if res.timed_out or res.exit_status == REMOTE_TIMEOUT_EXIT:
            facts.tool_notes.append(
                f"{n}: probe.ssh_mysql_check did not succeed there ({res.summary()}) although "
                "its MySQL answers this survey"
            )
        else:
            facts.tool_problems.append(
                f"{n}: probe.ssh_mysql_check fails there although its MySQL answers "
                f"({res.summary()}): it cannot tell a network fault from a dead MySQL"
            )
    flavor = Flavor(facts.flavor) if facts.flavor else None
    if cfg.salvage.binlog_index:
        tools = [("salvage.binlog_tool", cfg.salvage.binlog_tool)]
        tools.append(("salvage.apply_command", cfg.salvage.apply_command[0]))
        for key, path in tools:
            if Path(path).name not in CLIENT_TOOLS:
                continue  # a wrapper of the site's own: its arguments are not ours to guess
            res = await ask([path, "--help"])
            if res is None:
                continue
            said = "\n".join(res.stdout.decode(errors="replace").splitlines()[:3])
            if not res.ok:
                facts.tool_problems.append(f"{n}: {key} {path} does not run: {res.summary()}")
            elif flavor is not None and tool_flavor(said) not in (None, flavor):
                first = said.splitlines()[0] if said else ""
                facts.tool_problems.append(
                    f"{n}: {key} {path} is not {flavor.value}'s tool "
                    f"({first.strip()[:80]!r}) but the server is {facts.version}"
                )
    if flavor is Flavor.MYSQL:
        res = await ask(list(cfg.mysql.defaults_command))
        if res is None or not res.ok:
            facts.tool_notes.append(
                f"{n}: cannot read my.cnf with mysql.defaults_command "
                f"({'no answer' if res is None else res.summary()})"
            )
        else:
            lines = res.stdout.decode(errors="replace").splitlines()
            # A problem where this server's own version refuses the option (its next restart
            # fails); for an older server a note: an upgrade would not start.
            for r in refused_options(lines):
                now = r.refused_by(version_tuple(facts.version))
                (facts.tool_problems if now else facts.tool_notes).append(f"{n}: {r.sentence()}")


async def _mysql_then_tools(
    cfg: Config, facts: NodeFacts, server: Server, runner: Runner, t: float
) -> None:
    await _mysql_facts(cfg, facts, server, t)
    await _tools(cfg, facts, runner, t)


async def _commands(cfg: Config, facts: NodeFacts, runner: Runner, t: float) -> None:
    """The VIP and the cold-standby services, through the node's runner (local or SSH)."""
    try:
        result = await runner.run(["true"], t)
        facts.ssh_ok = result.ok if not facts.local else None
    except RunnerError as exc:
        facts.ssh_ok = False
        facts.ssh_detail = str(exc)
        return
    try:
        facts.holds_vip = await holds_vip(cfg, runner, facts.name, t)
    except RunnerError as exc:
        facts.vip_detail = str(exc)
    if as_root(runner) is not runner:
        facts.privilege_problems = await _privileged(cfg, facts.name, as_root(runner), t)
    for svc in cfg.services.cold_standby:
        try:
            res = await runner.run(list(svc.status), min(t, svc.timeout_s))
        except RunnerError:
            facts.services[svc.name] = None
            continue
        # LSB: 0 running, 3 stopped; anything else says nothing certain.
        status = res.exit_status
        facts.services[svc.name] = True if status == 0 else False if status == 3 else None


# An address no node holds (TEST-NET-1): deleting it is refused as absent when the command
# may run as root, and as "not permitted" (or by sudo) when it may not. Nothing changes.
_ABSENT_ADDRESS = "192.0.2.1/32"


async def _privileged(cfg: Config, node: str, root: Runner, t: float) -> list[str]:
    """Run the privileged commands a failover needs, harmlessly, through the privilege prefix
    (`sudo -n`): the VIP's `ip addr del` (of an absent address), the flag directory's shell
    (is it writable?), and, with sudo, whether `arping` is allowed. A problem per refusal."""
    out: list[str] = []
    iface = cfg.node(node).interface
    flag_dir = str(Path(cfg.failover.flag_file).parent)
    prefix = tuple(getattr(root, "prefix", ()))
    absent = ("Cannot assign", "Address not found")
    tries: list[tuple[str, Runner, list[str], Callable[[CommandResult], bool]]] = [
        (
            "ip addr del",
            root,
            ["ip", "addr", "del", _ABSENT_ADDRESS, "dev", iface],
            lambda r: any(x in _output(r) for x in absent),
        ),
        (f"writing in {flag_dir}", root, ["sh", "-c", 'test -w "$0"', flag_dir], _ok),
    ]
    if prefix and Path(prefix[0]).name == "sudo":
        # arping sends packets: ask sudo whether it would run it (-l), without running it.
        tries.append(("arping", unprivileged(root), [prefix[0], "-n", "-l", "arping"], _ok))
    via = " ".join(prefix)
    for what, runner, argv, allowed in tries:
        try:
            result = await runner.run(argv, t)
        except RunnerError as exc:
            out.append(f"{node}: {what} through {via}: {exc}")
            continue
        if not allowed(result):
            said = _output(result) or result.summary()
            out.append(f"{node}: {what} through {via} is refused: {said}")
    return out


def _ok(result: CommandResult) -> bool:
    return result.ok


def _output(result: CommandResult) -> str:
    return (result.stderr or result.stdout).decode(errors="replace").strip()


async def _replication_login(cfg: Config, facts: NodeFacts, t: float) -> None:
    # The replication user must be able to log in on both nodes: the replica of today is
    # the primary of tomorrow.
    try:
        pw = cfg.mysql.replication_secret().get_secret_value()
    except Exception as exc:  # ConfigError: an unreadable password file
        facts.replication_login, facts.replication_login_detail = False, str(exc)
        return
    node = cfg.node(facts.name)
    probe = await probe_alive(node.address, node.mysql_port, cfg.mysql.replication_user, pw, t)
    facts.replication_login = probe.status is ProbeStatus.OK
    facts.replication_login_detail = probe.detail


async def _ssh_back(cfg: Config, me: str, runner: Runner, t: float) -> tuple[bool, str]:
    """From the peer to this node with OpenSSH, strict host key checking: after a failover the
    peer's monha needs it."""
    node = cfg.node(me)
    argv = [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={cfg.ssh.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={max(1, int(cfg.ssh.connect_timeout_s))}",
        "-i", cfg.ssh.key_file, "-p", str(node.ssh_port), "-F", "/dev/null",
        f"{node.ssh_user}@{node.address}", "true",
    ]  # fmt: skip
    try:
        result = await runner.run(argv, t)
    except RunnerError as exc:
        return False, str(exc)
    return result.ok, "" if result.ok else result.summary()


async def survey(
    cfg: Config, me: str, handles: Handles, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Survey:
    """Ask every node everything, concurrently; never raises for an unreachable node."""
    peer = cfg.peer_of(me).name
    nodes = {n.name: NodeFacts(n.name, n.address, local=n.name == me) for n in cfg.nodes}
    jobs = []
    for name, facts in nodes.items():
        jobs.append(
            _mysql_then_tools(cfg, facts, handles.mysql[name], handles.runners[name], timeout_s)
        )
        jobs.append(_commands(cfg, facts, handles.runners[name], timeout_s))
        jobs.append(_replication_login(cfg, facts, timeout_s))
    back = _ssh_back(cfg, me, handles.runners[peer], timeout_s)
    (back_ok, back_detail), _ = await asyncio.gather(back, asyncio.gather(*jobs))
    out = Survey(me, nodes, back_ok, back_detail)
    try:
        out.flag = read_flag(Path(cfg.failover.flag_file))
    except RecordError as exc:
        out.flag_error = str(exc)
    try:
        record = Journal(Path(cfg.failover.journal_file)).open_record()
    except RecordError as exc:
        out.journal_open = {"error": str(exc)}
    else:
        if record is not None:
            out.journal_open = {
                "id": record.failover_id,
                "kind": record.kind,
                "old_primary": record.old_primary,
                "new_primary": record.new_primary,
            }
    return out


def problems(cfg: Config, s: Survey) -> list[str]:
    """Everything that would make a failover fail or unsafe, one sentence each (pure)."""
    out: list[str] = []
    me, peer = s.me, cfg.peer_of(s.me).name
    p = s.nodes[peer]
    if p.ssh_ok is False:
        out.append(f"ssh {me} -> {peer}: {p.ssh_detail or 'failed'}")
    if s.ssh_back_ok is False:
        out.append(f"ssh {peer} -> {me} (run on {peer}): {s.ssh_back_detail or 'failed'}")
    for n in s.nodes.values():
        if not n.mysql_ok:
            out.append(f"{n.name}: MySQL does not answer the monitor user: {n.mysql_detail}")
            continue
        if n.log_bin is False:
            out.append(f"{n.name}: the binary log is off (log_bin): it could not serve a replica")
        if n.missing_privileges:
            out.append(
                f"{n.name}: monitor user {cfg.mysql.monitor_user!r} lacks "
                + ", ".join(n.missing_privileges)
            )
        if n.replication_login is False:
            out.append(
                f"{n.name}: replication user {cfg.mysql.replication_user!r} cannot log in: "
                f"{n.replication_login_detail}"
            )
    answered = [n for n in s.nodes.values() if n.mysql_ok]
    ids = [n.server_id for n in answered]
    if len(ids) == 2 and ids[0] == ids[1]:
        out.append(f"both nodes have server_id {ids[0]}: server ids must be unique")
    primaries = [n.name for n in answered if n.role == "primary"]
    if len(answered) == 2 and len(primaries) == 2:
        out.append("both nodes are primaries (neither replicates): split brain or no replication")
    if len(answered) == 2 and not primaries:
        out.append("both nodes are replicas: there is no primary")
    primary = s.primary
    if primary is not None:
        pf = s.nodes[primary]
        if pf.read_only:
            out.append(f"{primary} (primary): read_only is on: it refuses writes")
        for r in s.nodes.values():
            if r.name != primary and r.mysql_ok:
                out += _replica_problems(cfg, r, pf)
        holders = s.vip_holders
        if holders != [primary] and all(n.holds_vip is not None for n in s.nodes.values()):
            where = ", ".join(holders) or "no node"
            out.append(f"the VIP {cfg.vip.address} is on {where}; it must be on {primary} only")
        for svc in cfg.services.cold_standby:
            running = s.running(svc.name)
            if running != [primary] and all(
                n.services.get(svc.name) is not None for n in s.nodes.values()
            ):
                where = ", ".join(running) or "no node"
                out.append(f"{svc.name} runs on {where}; it must run on {primary} only")
    for n in s.nodes.values():
        out += n.privilege_problems
        out += n.tool_problems
        if n.holds_vip is None and n.vip_detail:
            out.append(f"{n.name}: cannot tell whether it holds the VIP: {n.vip_detail}")
    if s.flag_error:
        out.append(f"the completion flag is unreadable: {s.flag_error}")
    if s.journal_open:
        j = s.journal_open
        out.append(
            f"a {j.get('kind', '?')} is unfinished in the journal ({j.get('id', j.get('error'))})"
        )
    return out


def _replica_problems(cfg: Config, r: NodeFacts, primary: NodeFacts) -> list[str]:
    out: list[str] = []
    st = r.replica
    if st is None:
        return out
    if not r.read_only:
        out.append(f"{r.name} (replica): read_only is off: clients could write to it")
    if st.source_host != primary.address:
        out.append(f"{r.name} replicates from {st.source_host}, not from {primary.name}")
    if st.io_running != "Yes" or st.sql_running != "Yes":
        err = st.last_io_error or st.last_sql_error
        out.append(
            f"{r.name}: replication threads IO {st.io_running or '-'} SQL "
            f"{st.sql_running or '-'}" + (f" ({err})" if err else "")
        )
    return out


def notes(cfg: Config, s: Survey) -> list[str]:
    """Facts worth saying that are not problems."""
    out = []
    if s.flag is not None:
        out.append(
            f"the completion flag is present ({cfg.failover.flag_file}): automatic failover is "
            f"blocked until `monha-ctl resume`"
        )
    for n in s.nodes.values():
        out += n.tool_notes
        st = n.replica
        if st is not None and st.configured and st.seconds_behind:
            out.append(f"{n.name}: replication lag {st.seconds_behind} s")
        if st is not None and st.configured:
            # Not a problem: the daemon on the replica sets both (replica_care), and logs it.
            m, hb = cfg.mysql, st.heartbeat_period_s
            now = "unknown" if hb is None else f"{hb:g} s"
            out.append(
                f"{n.name}: replication heartbeat {now}; monha running there keeps it at "
                f"mysql.heartbeat_period_s = {m.heartbeat_period_s:g} s and the net timeout "
                f"at mysql.replica_net_timeout_s = {m.replica_net_timeout_s} s"
            )
    if s.primary is not None:
        out += semi_sync_notes(s.nodes[s.primary], [n for n in s.nodes.values() if n.replicates])
    return out


_PREFER = (
    "a host death can lose acknowledged writes; semi-sync with AFTER_SYNC prevents it "
    "(docs/data-loss.md)"
)


def semi_sync_notes(primary: NodeFacts, replicas: list[NodeFacts]) -> list[str]:
    """Semi-sync is preferred (issue 4), not required: when it does not protect a failover,
    a note says why; never a problem (pure)."""
    ss, name = primary.semi_sync, primary.name
    if ss is None:
        detail = primary.semi_sync_detail or "no answer"
        return [f"{name} (primary): semi-sync state unknown: {detail}"] if primary.mysql_ok else []
    if not ss.get("available"):
        return [f"{name} (primary): semi-sync is not available (no plugin): {_PREFER}"]
    if not ss.get("primary_enabled"):
        return [f"{name} (primary): semi-sync is off (asynchronous replication): {_PREFER}"]
    out = []
    if not ss.get("primary_active"):
        out.append(
            f"{name} (primary): semi-sync is enabled but not active: no replica acknowledged "
            f"within {ss.get('timeout_ms')} ms, so it runs asynchronously now"
        )
    elif not ss.get("protects_failover"):
        out.append(
            f"{name} (primary): semi-sync waits {ss.get('wait_point') or 'at an unknown point'}, "
            "not AFTER_SYNC: an acknowledged commit may not have reached the replica"
        )
    for r in replicas:
        rs = r.semi_sync
        if rs is not None and rs.get("available") and not rs.get("replica_enabled"):
            out.append(f"{r.name} (replica): semi-sync is off on the replica side")
    return out


def failover_plan_now(cfg: Config, s: Survey) -> tuple[str, str, tuple[Step, ...], str]:
    """(old primary, new primary, plan, why) for a failover if the primary failed now, with
    SSH to it as it is now. Raises ValueError when there is no single primary to fail over."""
    old = s.primary
    if old is None:
        raise ValueError("cannot tell which node is the primary: " + "; ".join(problems(cfg, s)))
    new = cfg.peer_of(old).name
    # The failover runs on the standby: its SSH to the primary is what counts.
    ssh = s.nodes[old].ssh_ok if old != s.me else s.ssh_back_ok
    reachable = bool(ssh)
    why = (
        f"{new} fences {old} over SSH"
        if reachable
        else f"SSH from {new} to {old} fails now"
        + (": the fence command runs instead" if cfg.fence else ": no fence step")
    )
    return old, new, build_failover_plan(cfg, old, new, ssh_reachable=reachable), why


async def is_active(cfg: Config, me: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """This node holds the primary role (its MySQL answers, replicates from nobody, is
    writable) and the VIP. Local questions only: cron jobs call it every minute."""
    handles = Handles.open(cfg, me)
    try:
        server = handles.mysql[me]
        try:
            async with asyncio.timeout(timeout_s):
                status = await server.replica_status(timeout_s)
                ro = await server.read_only(timeout_s)
        except (MySQLError, TimeoutError) as exc:
            return False, f"{me}: MySQL does not answer: {exc}"
        if status.configured:
            return False, f"{me} is a replica (of {status.source_host})"
        if ro:
            return False, f"{me} replicates from nobody but is read_only"
        try:
            vip = await holds_vip(cfg, LocalRunner(), me, timeout_s)
        except RunnerError as exc:
            return False, f"{me}: cannot list its addresses: {exc}"
        if not vip:
            return False, f"{me} is the primary but does not hold the VIP {cfg.vip.address}"
        return True, f"{me} is the primary and holds the VIP {cfg.vip.address}"
    finally:
        await handles.close()
