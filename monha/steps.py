"""What each kind of plan step does, against real nodes: the thin I/O behind `executor`.

Every step is idempotent, because a daemon killed mid-failover runs the rest of the plan again
after a restart: removing an absent VIP, adding a present one, promoting a primary, stopping a
stopped service all succeed. Each step is bounded by its own timeout (the executor enforces it);
commands are argv lists, run locally or quoted argument by argument over SSH.

A step with several commands shares its timeout out between them (`_Budget`), so the last of
them still runs, and the outcome says what happened, instead of the step's own timeout cutting
everything off: `fence_mysql` gives read_only at most `_READ_ONLY_SHARE` of it and keeps the
rest for the stop command; `vip_down` lists, deletes and checks again within it.

Must not: raise. `run_step` turns every failure (and any unexpected exception) into a failed
`Outcome`; only cancellation passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monha import binlog_io, probes, relay_logs
from monha.model import BinlogCoordinates, Step, StepKind
from monha.mysql import STOP_APPLIER_GRACE_S, MySQLError, Server
from monha.plan import UNTOUCHED
from monha.runners import CommandResult, Runner, RunnerError, as_root


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplicationSource:
    """How a replica reaches a node as its source (for make_replica): the node's address as
    the other node sees it, and the replication credentials."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    heartbeat_period_s: float = 1.0
    ssl: bool | None = None  # SOURCE_SSL; None: the server's own setting


@dataclass(slots=True)
class Nodes:
    """How to reach each node: a runner for commands and a MySQL server handle."""

    runners: Mapping[str, Runner]
    mysql: Mapping[str, Server]
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    sources: Mapping[str, ReplicationSource] = field(default_factory=dict)
    # For a wait step that re-checks (await_peer_step_down, recheck = yes): one fresh look,
    # saying why the old primary may have been heard again (None: it was not). Unset: no look.
    recheck: Callable[[], Awaitable[str | None]] | None = None


# What `ip` says when the address is already absent (older and newer iproute2) or already
# present: the step's goal is reached either way.
_ABSENT = ("Cannot assign requested address", "Address not found")
_PRESENT = ("File exists", "Address already assigned")


def _text(result: CommandResult) -> str:
    return (result.stderr or result.stdout).decode(errors="replace").strip()


class _Budget:
    """What is left of one step's timeout, for the commands run one after another in it.

    `left()` keeps a small margin back, so the step reports its own outcome before the outer
    bound (`run_step`) cuts it off with a bare "timed out".
    """

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.deadline = self._loop.time() + timeout_s
        self._margin = min(0.5, timeout_s * 0.1)

    def left(self) -> float:
        return max(0.1, self.deadline - self._loop.time() - self._margin)


async def _run(
    nodes: Nodes,
    step: Step,
    argv: list[str] | tuple[str, ...],
    timeout_s: float | None = None,
    *,
    privileged: bool = False,
) -> CommandResult:
    """Run on the step's node: monha's own privileged commands (the VIP, ARP) through the
    node's privilege prefix; the operator's commands as written."""
    runner = nodes.runners[step.node]
    if privileged:
        runner = as_root(runner)
    return await runner.run(list(argv), step.timeout_s if timeout_s is None else timeout_s)


def _command_outcome(result: CommandResult, what: str) -> Outcome:
    if result.ok:
        return Outcome(True, f"{what}: exit 0 in {result.duration_s:.2f} s")
    return Outcome(False, f"{what}: {result.summary()}")


@dataclass(frozen=True, slots=True)
class IfAddress:
    """One IPv4 address as `ip -o -4 addr show` lists it."""

    address: str
    prefix: int
    label: str
    secondary: bool = False
    peer: str = ""  # "P/N" on a point-to-point address (then `prefix` is the peer's)

    def del_argv(self, iface: str) -> list[str]:
        """The `ip addr del` for exactly this address (its own prefix, its peer if any)."""
        if self.peer:
            return ["ip", "addr", "del", self.address, "peer", self.peer, "dev", iface]
        return ["ip", "addr", "del", f"{self.address}/{self.prefix}", "dev", iface]

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix} ({self.label})"


def parse_ip_addr(text: str) -> list[IfAddress]:
    """The IPv4 addresses in `ip -o -4 addr show` output; lines that are not one are skipped.

    A line reads `2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global secondary eth0:1`,
    then a backslash and `valid_lft forever preferred_lft forever`: iproute2 prints the label
    last before the backslash that ends the address part (without -o, before the line break).
    """
    found = []
    for line in text.splitlines():
        words = line.split("\\", 1)[0].split()
        if "inet" not in words:
            continue
        i = words.index("inet")
        if i + 1 >= len(words):
            continue
        addr, _, prefix = words[i + 1].partition("/")
        peer = words[i + 3] if i + 3 < len(words) and words[i + 2] == "peer" else ""
        if peer and not prefix:  # `inet 10.0.0.1 peer 10.0.0.2/32`: the prefix is the peer's
            prefix = peer.partition("/")[2]
        try:
            ipaddress.IPv4Address(addr)
            bits = int(prefix) if prefix else 32
        except ValueError:
            continue
        found.append(IfAddress(addr, bits, words[-1], "secondary" in words[i + 2 :], peer))
    return found


def _is(listed: IfAddress, address: str) -> bool:
    try:
        return ipaddress.IPv4Address(listed.address) == ipaddress.IPv4Address(address)
    except ValueError:
        return listed.address == address


async def _list_vip(
    nodes: Nodes, step: Step, iface: str, address: str, budget: _Budget
) -> list[IfAddress] | Outcome:
    argv = ["ip", "-o", "-4", "addr", "show", "dev", iface]
    result = await _run(nodes, step, argv, budget.left())
    if not result.ok:
        return Outcome(False, f"listing the addresses of {iface}: {result.summary()}")
    return [a for a in parse_ip_addr(result.stdout.decode(errors="replace")) if _is(a, address)]


async def vip_down(step: Step, nodes: Nodes) -> Outcome:
    """Remove the VIP from the interface, whatever prefix it was added with, and check it left.

    The configured prefix is not trusted: an MHA-era `ifconfig eth0:1 VIP` gives the address
    its class prefix (/8, /16, /24), some scripts use /32, and `ip addr del VIP/other` fails
    with the same "Cannot assign requested address" that an absent VIP gives. So the step
    lists the interface, deletes each entry of the VIP with its own prefix, and lists again:
    success only when the VIP is no longer there (an absent VIP is success, and says so).
    """
    address, iface = step.arg("address"), step.arg("interface")
    budget = _Budget(step.timeout_s)
    before = await _list_vip(nodes, step, iface, address, budget)
    if isinstance(before, Outcome):
        return before
    if not before:
        return Outcome(True, f"{address} was not on {iface}")
    problems = []
    for entry in before:
        result = await _run(nodes, step, entry.del_argv(iface), budget.left(), privileged=True)
        # "Absent" here means someone else removed it meanwhile: the listing below decides.
        if not result.ok and not any(text in _text(result) for text in _ABSENT):
            problems.append(f"removing {entry}: {result.summary()}")
    after = await _list_vip(nodes, step, iface, address, budget)
    if isinstance(after, Outcome):
        return Outcome(False, "; ".join([*problems, f"could not check: {after.detail}"]))
    removed = ", ".join(str(e) for e in before)
    if after:
        still = ", ".join(str(e) for e in after)
        return Outcome(False, "; ".join([f"{still} still on {iface}", *problems]))
    note = ""
    if any(e.prefix != int(step.arg("prefix") or 32) for e in before):
        note = f" (configured prefix /{step.arg('prefix')})"
    return Outcome(True, f"removed {removed} from {iface}{note}")


async def vip_up(step: Step, nodes: Nodes) -> Outcome:
    vip = f"{step.arg('address')}/{step.arg('prefix')}"
    iface = step.arg("interface")
    argv = ["ip", "addr", "add", vip, "dev", iface, "label", step.arg("label")]
    result = await _run(nodes, step, argv, privileged=True)
    if not result.ok and not any(text in _text(result) for text in _PRESENT):
        return Outcome(False, f"adding {vip}: {result.summary()}")
    count = int(step.arg("arp_count", "0") or 0)
    detail = f"{vip} up on {iface} as {step.arg('label')}"
    if count > 0:
        detail += "; " + await _start_arping(step, nodes, iface, count)
    return Outcome(True, detail)


async def _start_arping(step: Step, nodes: Nodes, iface: str, count: int) -> str:
    """Send gratuitous ARP without waiting for it: iputils arping paces one packet a second.

    The first packet leaves at once; the rest are sent by a background process whose end is
    awaited by a tracked task (the executor drains those at shutdown).
    """
    argv = ["arping", "-U", "-c", str(count), "-I", iface, step.arg("address")]
    runner = as_root(nodes.runners[step.node])
    task = asyncio.get_running_loop().create_task(runner.run(argv, count + 5.0))
    nodes.background.add(task)
    task.add_done_callback(nodes.background.discard)
    # A broken arping (wrong package, no such device) fails at once: report it if so. The
    # VIP is up by now, so a failed ARP is news for the detail, not a failed step.
    done, _ = await asyncio.wait({task}, timeout=0.3)
    if done:
        try:
            result = task.result()
        except RunnerError as exc:
            return f"gratuitous ARP failed: {exc}"
        if not result.ok:
            return f"gratuitous ARP failed: {result.summary()}"
    return f"sending {count} gratuitous ARP (1/s)"


async def command_step(step: Step, nodes: Nodes) -> Outcome:
    name = step.arg("name") or step.arg("target") or str(step.kind)
    return _command_outcome(await _run(nodes, step, step.argv), f"{step.kind} {name}")


# fence_mysql: the share of the step's time that read_only may take when a stop command or a
# kill is configured. A hung mysqld (SIGSTOPped, stuck in I/O) never answers; waiting the whole
# step for it would leave no time to stop it, which is the one thing that fences it.
_READ_ONLY_SHARE = 0.4

# Kills the mysqld named by a pid file ($0), after checking that the pid is a mysqld (a stale
# pid file may name anything by now), and waits up to $1 tenths of a second for it to go.
# Constant: the pid file's path is an argument. Exit 0: killed, or no mysqld running; 4: the
# pid is not a mysqld; 5: still there after SIGKILL (stuck in the kernel).
_KILL_MYSQLD = r"""
pid=$(cat -- "$0" 2>/dev/null) || { echo "no pid file $0: no mysqld running"; exit 0; }
case $pid in ''|*[!0-9]*) echo "pid file $0 holds no pid"; exit 4;; esac
comm=$(cat "/proc/$pid/comm" 2>/dev/null) || { echo "pid $pid is gone"; exit 0; }
case $comm in mysqld|mariadbd) ;; *) echo "pid $pid is $comm, not a mysqld"; exit 4;; esac
kill -KILL "$pid" || exit 5
i=0
while [ "$i" -lt "$1" ]; do
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || state=Z
  [ "$state" = Z ] && { echo "killed $comm pid $pid"; exit 0; }
  sleep 0.1; i=$((i + 1))
done
echo "$comm pid $pid still there after SIGKILL (state $state)"; exit 5
"""


async def fence_mysql(step: Step, nodes: Nodes) -> Outcome:
    """read_only on the old primary; if its MySQL does not answer, stop it for good if we can.

    With a stop command or a pid file, read_only gets at most `_READ_ONLY_SHARE` of the step's
    time (at least 1 s, but never more than half). Then the operator's stop command; then, if
    that failed or there is none and `mysql.pid_file` is set, SIGKILL of the mysqld it names
    (as root): the only signal a SIGSTOPped or wedged mysqld obeys at once. A supervisor that
    restarts it brings it back read_only by the re-fence watch.
    """
    server = nodes.mysql[step.node]
    budget = _Budget(step.timeout_s)
    pid_file = step.arg("pid_file")
    if step.argv or pid_file:
        read_only_s = min(max(1.0, step.timeout_s * _READ_ONLY_SHARE), step.timeout_s / 2)
    else:
        read_only_s = budget.left()  # nothing else to spend the time on
    try:
        async with asyncio.timeout(read_only_s):
            await server.set_read_only(True, read_only_s)
        return Outcome(True, f"read_only on at {server.describe()}")
    except TimeoutError:
        reason = f"{server.describe()}: no answer to read_only within {read_only_s:g} s"
    except MySQLError as exc:
        reason = str(exc)
    said = [f"MySQL did not answer ({reason})"]
    if step.argv:
        # The kill, if any, keeps half of what is left: a stop command that hangs on a hung
        # mysqld (mysqladmin shutdown, say) must not use up the one thing that works.
        stop_s = budget.left() / 2 if pid_file else budget.left()
        what = f"stop command {step.argv[0]}"
        try:
            result = await _run(nodes, step, step.argv, stop_s)
        except RunnerError as exc:
            said.append(f"{what} could not run: {exc}")
        else:
            outcome = _command_outcome(result, what)
            said.append(outcome.detail)
            if outcome.ok:
                return Outcome(True, "; ".join(said))
    if pid_file:
        return await _kill_mysqld(step, nodes, pid_file, budget, said)
    if not step.argv:
        # Nothing to set: the server is down. If a supervisor restarts it writable, the
        # re-fence watch after the failover sets read_only then.
        said.append("no mysql.stop_command or mysql.pid_file configured")
    return Outcome(False, "; ".join(said))


async def _kill_mysqld(
    step: Step, nodes: Nodes, pid_file: str, budget: _Budget, said: list[str]
) -> Outcome:
    left = budget.left()
    tenths = str(max(1, int((left - 0.5) * 10)))
    argv = ["sh", "-c", _KILL_MYSQLD, pid_file, tenths]
    try:
        result = await as_root(nodes.runners[step.node]).run(argv, left)
    except RunnerError as exc:
        return Outcome(False, "; ".join([*said, f"killing mysqld could not run: {exc}"]))
    text = _text(result) or result.summary()
    said.append(f"SIGKILL by {pid_file}: {text}")
    return Outcome(result.ok, "; ".join(said))


async def set_read_only(step: Step, nodes: Nodes) -> Outcome:
    server = nodes.mysql[step.node]
    await server.set_read_only(True, step.timeout_s)
    coords = await server.binlog_coordinates(step.timeout_s)
    return Outcome(
        True,
        f"read_only on; binlog at {coords.file}:{coords.position}",
        {"old_primary_final_file": coords.file, "old_primary_final_pos": str(coords.position)},
    )


async def _start_stopped_sql_thread(server: Server, timeout_s: float) -> str:
    """A SQL thread stopped without an error (by an operator) is started, so the relay log it
    holds is applied before the promote resets it; one stopped by an error is left (it would
    fail again) and the promote says what it had not applied."""
    try:
        status = await server.replica_status(timeout_s)
        if status.configured and status.sql_running != "Yes" and not status.last_sql_errno:
            await server.start_sql_thread(timeout_s)
            return "started the stopped SQL thread to apply the relay log; "
    except MySQLError as exc:
        return f"could not start the SQL thread ({exc}); "
    return ""


async def catch_up(step: Step, nodes: Nodes, facts: Mapping[str, str]) -> Outcome:
    # A switchover recorded the old primary's final position (set_read_only): wait for that,
    # not for whatever the IO thread happened to have read when the wait began.
    target = None
    if facts.get("old_primary_final_file"):
        target = BinlogCoordinates(
            facts["old_primary_final_file"], int(facts["old_primary_final_pos"])
        )
    budget = _Budget(step.timeout_s)
    server = nodes.mysql[step.node]
    started = await _start_stopped_sql_thread(server, min(5.0, budget.left() / 4))
    ok, detail = await server.wait_caught_up(budget.left(), target)
    detail = started + detail
    # Into the flag as well: what was left unapplied when the bound was hit (issue 4).
    return Outcome(
        ok, detail, {"catch_up": "caught up" if ok else "not caught up", "catch_up_detail": detail}
    )


# The salvage keeps this share of its step's time for itself, so that it reports what it did
# rather than being cut off by the step's own timeout.
_SALVAGE_SHARE = 0.9


async def salvage_binlog(step: Step, nodes: Nodes) -> Outcome:
    """Apply what the old primary's binary log holds beyond what this replica applied."""
    report = await binlog_io.salvage(
        nodes.mysql[step.node],
        nodes.runners[step.node],
        as_root(nodes.runners[step.arg("old")]),  # the binary logs belong to mysql
        binlog_index=step.arg("binlog_index"),
        binlog_tool=step.arg("binlog_tool"),
        apply_argv=step.argv,
        timeout_s=step.timeout_s * _SALVAGE_SHARE,
        max_output_mib=int(step.arg("max_output_mib", "256")),
    )
    return Outcome(report.ok, report.detail, report.data)


# How often a re-checking wait looks again, and how long one look may take (an observation's
# probes are bounded by the probe interval; this bounds a look that is not).
RECHECK_EVERY_S = 1.0
RECHECK_BOUND_S = 65.0  # above any probe interval (at most 60 s): only a look that hangs
STALL_S = 2.0  # a sleep of the wait that overran by this much: the node was away
# A wait step's data says this when it ended early because the old primary was heard again:
# the executor then closes the plan unrun (it changed no node).
HEARD_AGAIN = "heard_again"


async def await_peer_step_down(step: Step, nodes: Nodes) -> Outcome:
    """Sleep until the step's absolute time: the unreachable old primary's isolation limit,
    counted from when it was last heard, plus slack. Resumed late, it does not wait again.
    With `recheck`, look when it begins, every RECHECK_EVERY_S, and once more at its end: if
    the old primary is heard again (its own isolation clock may then restart, and it keeps
    serving) the wait's promise is void. A look that fails counts as heard."""
    until = float(step.arg("until"))
    recheck = nodes.recheck if step.arg("recheck") == "yes" else None
    started = time.time()

    async def heard() -> Outcome | None:
        if recheck is None:
            return None
        try:
            async with asyncio.timeout(RECHECK_BOUND_S):
                why = await recheck()
        except Exception as exc:  # an observation that failed tells nothing: the safe side
            why = f"the fresh look failed ({type(exc).__name__}: {exc})"
        if why is None:
            return None
        detail = f"the old primary was heard again after {time.time() - started:.1f} s"
        return Outcome(False, f"{detail}: {why}", {UNTOUCHED: "yes", HEARD_AGAIN: why})

    if (void := await heard()) is not None:
        return void
    while (left := until - time.time()) > 0:
        slept = time.time()
        await asyncio.sleep(min(left, RECHECK_EVERY_S))
        stalled = time.time() - slept - min(left, RECHECK_EVERY_S)
        if recheck is not None and stalled > STALL_S:
            # This node was away (frozen): what the old primary heard meanwhile is unknown.
            why = f"this node did not run for {stalled:.1f} s during the wait"
            return Outcome(False, why, {UNTOUCHED: "yes", HEARD_AGAIN: why})
        if (void := await heard()) is not None:
            return void
    waited = time.time() - started
    said = f"waited {waited:.1f} s" if waited > 0.05 else "no wait left"
    return Outcome(True, f"{said}: an isolated old primary has stepped down by now")


async def promote(step: Step, nodes: Nodes) -> Outcome:
    """Writable, replication reset. What the replica had received and not applied is said
    (into the flag) and its relay logs copied aside first: the reset deletes them."""
    server = nodes.mysql[step.node]
    budget = _Budget(step.timeout_s)
    before = await server.replica_status(budget.left())
    left = relay_logs.unapplied(before)
    kept = ""
    if left and step.arg("relay_keep_dir"):
        dest = f"{step.arg('relay_keep_dir')}/relay-{time.strftime('%Y%m%dT%H%M%S')}"
        kept = await relay_logs.keep(server, nodes.runners[step.node], dest, budget.left() / 2)
    coords = await server.promote(budget.left())
    data = {
        "new_primary_binlog_file": coords.file,
        "new_primary_binlog_pos": str(coords.position),
        "new_primary_gtid": coords.gtid,
        "not_applied": left or "nothing: every received transaction was applied",
    }
    if kept:
        data["relay_logs"] = kept
    if before.configured and before.exec_position is not None:
        # Where the replica stopped in the old primary's binary log: what failback compares.
        data["applied_from_old_file"] = before.exec_position.file
        data["applied_from_old_pos"] = str(before.exec_position.position)
        data["applied_from_old_gtid"] = before.gtid_slave_pos
    detail = f"writable; binlog at {coords.file}:{coords.position}"
    if server.applier_killed:
        detail += (
            f"; the applier did not stop within {STOP_APPLIER_GRACE_S:g} s and was ended "
            f"(thread {', '.join(map(str, server.applier_killed))})"
        )
    if left:
        detail += f"; NOT applied: {left}" + (f"; {kept}" if kept else "")
    return Outcome(True, detail, data)


async def make_replica(step: Step, nodes: Nodes, facts: Mapping[str, str]) -> Outcome:
    """Point the old primary at the new one, from the new primary's binlog position recorded
    by its promote step, read_only first; then start replication and wait until both threads
    run. Idempotent: a replica already replicating from the source is left as it is (pointing
    it again at the promote position would apply those transactions twice)."""
    source = step.arg("source")
    src = nodes.sources[source]
    file, pos = facts.get("new_primary_binlog_file", ""), facts.get("new_primary_binlog_pos", "")
    if not file or not pos:
        return Outcome(False, "no binlog position recorded for the new primary (promote step)")
    server = nodes.mysql[step.node]
    await server.set_read_only(True)
    status = await server.replica_status()
    if status.configured and status.source_host == src.host and status.io_ok:
        return Outcome(True, f"already replicating from {source} ({src.host})")
    if not (status.configured and status.source_host == src.host):
        # After a rejoin undid errant transactions (monha.failback), the old primary's data
        # is the state at `rejoin_gtid`: continue from there by GTID.
        gtid = facts.get("rejoin_gtid") or None
        await server.change_source(
            src.host,
            src.port,
            src.user,
            src.password,
            heartbeat_period_s=src.heartbeat_period_s,
            coordinates=None if gtid else BinlogCoordinates(file, int(pos)),
            gtid=gtid,
            ssl=src.ssl,
        )
    await server.start_replica()
    return await wait_replicating(server, source, step.timeout_s)


async def wait_replicating(server: Server, source: str, timeout_s: float) -> Outcome:
    """Poll until both replication threads run; an SQL or IO error ends the wait at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        st = await server.replica_status()
        if st.io_running == "Yes" and st.sql_running == "Yes":
            pos = st.exec_position
            at = f"{pos.file}:{pos.position}" if pos else "?"
            return Outcome(True, f"replicating from {source}; applied up to {at}", {})
        if st.last_sql_errno or (st.last_io_errno and st.io_running != "Connecting"):
            errno = st.last_sql_errno or st.last_io_errno
            return Outcome(
                False, f"replication error {errno}: {st.last_sql_error or st.last_io_error}"
            )
        if loop.time() > deadline:
            return Outcome(False, f"replication threads IO {st.io_running} SQL {st.sql_running}")
        await asyncio.sleep(0.1)


async def check_hot(step: Step, nodes: Nodes) -> Outcome:
    result = await probes.http_get(
        step.arg("url"), int(step.arg("expect_status", "200")), step.timeout_s
    )
    return Outcome(result.answered, f"{step.arg('url')}: {result.status} {result.detail}")


STEPS = {
    StepKind.VIP_DOWN: vip_down,
    StepKind.VIP_UP: vip_up,
    StepKind.STOP_SERVICE: command_step,
    StepKind.START_SERVICE: command_step,
    StepKind.RESTART_AGENT: command_step,
    StepKind.FENCE_COMMAND: command_step,
    StepKind.FENCE_MYSQL: fence_mysql,
    StepKind.SET_READ_ONLY: set_read_only,
    StepKind.PROMOTE: promote,
    StepKind.AWAIT_PEER_STEP_DOWN: await_peer_step_down,
    StepKind.CHECK_HOT: check_hot,
    StepKind.SALVAGE_BINLOG: salvage_binlog,
}


# Steps that read facts recorded by earlier steps of the same plan (the journal's data).
FACT_STEPS = {StepKind.CATCH_UP: catch_up, StepKind.MAKE_REPLICA: make_replica}


async def run_step(step: Step, nodes: Nodes, facts: Mapping[str, str] | None = None) -> Outcome:
    """Run one step within its timeout; every failure becomes an Outcome, never an exception.

    `facts`: what earlier steps of the plan recorded (coordinates), for the steps that need it.
    """
    try:
        async with asyncio.timeout(step.timeout_s):
            if step.kind in FACT_STEPS:
                return await FACT_STEPS[step.kind](step, nodes, facts or {})
            return await STEPS[step.kind](step, nodes)
    except TimeoutError:
        return Outcome(False, f"timed out after {step.timeout_s:g} s")
    except (MySQLError, RunnerError, OSError) as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        # A bug or an error nobody foresaw (a driver's, a parser's): still the step's failure,
        # so the executor journals it and applies on_failure, instead of the daemon's tick
        # dying mid-plan. CancelledError is a BaseException and passes through.
        return Outcome(False, f"unexpected {type(exc).__name__}: {exc}")


async def drain_background(nodes: Nodes, timeout_s: float) -> None:
    if not nodes.background:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*nodes.background, return_exceptions=True)
    for task in list(nodes.background):
        task.cancel()
