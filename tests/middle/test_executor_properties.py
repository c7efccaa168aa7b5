"""The real executor and journal, driven through faults, crashes and a changing world.

The plan is a real failover plan (`build_failover_plan`), run by the real `Executor` on a real
`Journal` file, against fakes behind the protocols `monha.steps` uses: a `Runner` per node and
a MySQL `Server` per node, both backed by one small model of the two nodes (VIP, read_only,
MySQL up or down, SSH up, broken or hung, services, the promotion). Hypothesis chooses, for every
step the executor runs, whether it succeeds, fails, hangs past its timeout, applies its effect
and then hangs, or whether the daemon dies just before or just after the step is journaled (a
`BaseException` raised from `Journal.record_step`; a new Executor and Journal are then built on
the same file, as a restarted daemon would). Between runs it changes the world: node1 comes
back, dies, hangs, or SSH to it breaks. After a bounded number of faults everything works.

What must hold, whatever happened:
- the plan converges: the journal closes as succeeded, the flag names the journal's failover;
- promotion changes the new primary once; the flag is written once (again only when the daemon
  died between writing it and journaling that it did) and only ever with one failover id;
- what runs is always the journaled plan, never a weaker one: every step run equals a step of
  the original plan (node, timeout, policy, argv), in plan order, and each runs only once every
  step before it is settled (done, or failed with CONTINUE): so promote never runs before
  every STOP fence step succeeded;
- no step recorded as finished runs again; every resume counts one more attempt.

Binlog salvage stays off here (tests/unit/test_salvage.py drives it against recorded binlog
tool output): a fake good enough for it would be a second binlog parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import monha.executor as executor_module
from monha.executor import Executor
from monha.journal import Journal, JournalRecord, read_flag, step_to_dict
from monha.metrics import Metrics
from monha.model import (
    BinlogCoordinates,
    OnFailure,
    PlanKind,
    ReplicaStatus,
    Step,
    StepKind,
    StepResult,
)
from monha.mysql import MySQLError
from monha.plan import AgentRestart, ColdService, PlanInputs, build_failover_plan
from monha.runners import CommandResult, RunnerError
from monha.steps import Nodes, Outcome

OLD, NEW = "node1", "node2"
STEP_S = 0.05  # every step's timeout: a hang costs this much
VIP, PREFIX, IFACE, LABEL = "192.0.2.10", 24, "eth0", "eth0:1"
FENCE_ARGV = ("fence_ipmilan", "--ip", "192.0.2.201", "--action", "off")
MYSQL_STOP = ("systemctl", "stop", "mariadb")
ZABBIX_START = ("systemctl", "start", "zabbix-server")
ZABBIX_STOP = ("systemctl", "stop", "zabbix-server")
AGENT_RESTART = ("systemctl", "restart", "zabbix-agent")
FENCE_KINDS = (StepKind.VIP_DOWN, StepKind.FENCE_MYSQL, StepKind.FENCE_COMMAND)

# How one execution of one step goes.
OK, FAIL, HANG, EFFECT_HANG = "ok", "fail", "hang", "effect_hang"
CRASH_BEFORE, CRASH_AFTER = "crash_before_record", "crash_after_record"
CRASHES = (CRASH_BEFORE, CRASH_AFTER)


class DaemonKilled(BaseException):
    """The daemon died here (as by SIGKILL): nothing after this point of the process runs."""


class InvariantBroken(BaseException):
    """An invariant failed inside a step: a BaseException, so that the executor (which turns
    any Exception from a step into a failed outcome) cannot swallow it."""


def inputs(tmp: Path, *, fence: bool, stop_argv: bool, cold: bool, agents: bool) -> PlanInputs:
    return PlanInputs(
        vip_address=VIP,
        vip_prefix=PREFIX,
        vip_label=LABEL,
        arp_count=1,
        interfaces=((OLD, IFACE), (NEW, IFACE)),
        cold=(ColdService("zabbix-server", ZABBIX_START, ZABBIX_STOP, STEP_S),) if cold else (),
        agents=(AgentRestart("zabbix-agent", AGENT_RESTART, True, STEP_S),) if agents else (),
        fence_argv=FENCE_ARGV if fence else (),
        fence_command_timeout_s=STEP_S,
        fence_timeout_s=STEP_S,
        mysql_stop_argv=MYSQL_STOP if stop_argv else (),
        catchup_timeout_s=STEP_S,
        promote_timeout_s=STEP_S,
        vip_timeout_s=STEP_S,
        flag_file=str(tmp / "flag.json"),
    )


# --- The world, and the fakes behind the Runner and Server protocols. -------------------------


@dataclass
class World:
    """Both nodes as an operator would see them, and the step now running's fault."""

    n1_alive: bool = True
    n1_ssh: bool = True  # SSH reaches node1 (a dead host: no)
    n1_hung: bool = False  # node1 takes connections and never answers (SIGSTOP, I/O stall)
    n1_mysql_hung: bool = False  # only its mysqld hangs
    n1_mysql_up: bool = False  # the failover's cause: node1's mysqld is gone
    n1_read_only: bool = False
    n1_vip: bool = True
    n1_zabbix: bool = True
    n2_promoted: bool = False
    n2_read_only: bool = True
    n2_vip: bool = False
    n2_zabbix: bool = False
    fence_broken: bool = False  # the fence command exits non-zero (BMC unreachable)
    promote_changes: int = 0  # promotions that changed the server (a second one is a no-op)
    fence_runs: int = 0
    agent_restarts: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    copies_on_old: list[str] = field(default_factory=list)
    fault: str = OK  # for the step being executed (set around run_step)

    def change(self, what: str) -> None:
        if what == "n1_back":
            if not self.n1_alive:  # a reboot: no VIP (not persistent), services at boot
                self.n1_vip, self.n1_read_only, self.n1_zabbix = False, False, True
            self.n1_alive = self.n1_ssh = self.n1_mysql_up = True
            self.n1_hung = self.n1_mysql_hung = False
        elif what == "n1_dies":
            self.n1_alive = self.n1_ssh = self.n1_mysql_up = self.n1_hung = False
        elif what == "ssh_breaks":
            self.n1_ssh = False
        elif what == "n1_hangs":
            self.n1_hung = True
        else:
            assert what == "none", what

    def power_off_node1(self) -> None:
        self.n1_alive = self.n1_ssh = self.n1_mysql_up = self.n1_hung = False
        self.fence_runs += 1


def _ip_line(iface: str, address: str, prefix: int, label: str, secondary: bool) -> str:
    sec = " secondary" if secondary else ""
    return (
        f"2: {iface}    inet {address}/{prefix} scope global{sec} {label}\\"
        "       valid_lft forever preferred_lft forever\n"
    )


class FakeRunner:
    """A node's commands: ip, arping, systemctl and the fence command, on the World."""

    def __init__(self, world: World, node: str) -> None:
        self.world, self.node = world, node

    def describe(self) -> str:
        return f"fake-runner@{self.node}"

    async def close(self) -> None:
        return None

    async def run(
        self,
        argv: Any,
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        w, argv = self.world, tuple(argv)
        assert timeout_s > 0
        if self.node == OLD and w.n1_hung:
            await asyncio.sleep(3600)  # connected, never answers: only the timeout ends it
        if self.node == OLD and not w.n1_ssh:
            raise RunnerError(f"ssh {OLD}: connection refused")
        if w.fault == HANG:
            await asyncio.sleep(3600)
        if w.fault == FAIL:
            return CommandResult(argv, 1, b"", b"fake: failed", 0.0)
        status, out, err, effect = self._apply(argv)
        if effect and w.fault == EFFECT_HANG:
            await asyncio.sleep(3600)  # it did its work; the answer never came back
        return CommandResult(argv, status, out.encode(), err.encode(), 0.0)

    def _apply(self, argv: tuple[str, ...]) -> tuple[int, str, str, bool]:
        """(exit status, stdout, stderr, changed anything)."""
        w, node = self.world, self.node
        has_vip = w.n1_vip if node == OLD else w.n2_vip
        if argv[:3] == ("ip", "-o", "-4") and argv[-1] == IFACE:
            listing = _ip_line(IFACE, f"10.0.0.{1 if node == OLD else 2}", 24, IFACE, False)
            if has_vip:
                listing += _ip_line(IFACE, VIP, PREFIX, LABEL, True)
            return 0, listing, "", False
        if argv == ("ip", "addr", "del", f"{VIP}/{PREFIX}", "dev", IFACE):
            if not has_vip:
                return 2, "", "RTNETLINK answers: Cannot assign requested address", False
            self._set_vip(False)
            return 0, "", "", True
        if argv == ("ip", "addr", "add", f"{VIP}/{PREFIX}", "dev", IFACE, "label", LABEL):
            if has_vip:
                return 2, "", "RTNETLINK answers: File exists", False
            self._set_vip(True)
            return 0, "", "", True
        if argv[0] == "arping":
            return 0, "", "", False
        if argv[:2] == ("sh", "-c") and node == OLD and "cat >" in argv[2]:
            w.copies_on_old.append(argv[-1])  # the flag's copy on the old primary
            return 0, "", "", True
        if argv == FENCE_ARGV and node == NEW:
            if w.fence_broken:
                return 1, "", "fake: BMC unreachable", False
            w.power_off_node1()
            return 0, "Success: Powered OFF", "", True
        if argv == MYSQL_STOP and node == OLD:
            w.n1_mysql_up = False
            return 0, "", "", True
        if argv == ZABBIX_STOP and node == OLD:
            w.n1_zabbix = False
            return 0, "", "", True
        if argv == ZABBIX_START and node == NEW:
            w.n2_zabbix = True
            return 0, "", "", True
        if argv == AGENT_RESTART:
            w.agent_restarts[node] = w.agent_restarts.get(node, 0) + 1
            return 0, "", "", True
        w.unexpected.append(f"{node}: {argv}")
        return 127, "", "fake: no such command", False

    def _set_vip(self, on: bool) -> None:
        if self.node == OLD:
            self.world.n1_vip = on
        else:
            self.world.n2_vip = on


class FakeServer:
    """A node's MySQL: what the failover steps call (`monha.steps`), on the World."""

    def __init__(self, world: World, node: str) -> None:
        self.world, self.node = world, node
        self.applier_killed: tuple[int, ...] = ()  # as Server: its applier always stops

    def describe(self) -> str:
        return f"fake-mysql@{self.node}:3306"

    async def close(self) -> None:
        return None

    async def _reach(self) -> None:
        w = self.world
        if self.node == OLD:
            if w.n1_hung or w.n1_mysql_hung:
                await asyncio.sleep(3600)
            if not (w.n1_alive and w.n1_mysql_up):
                raise MySQLError(f"Can't connect to MySQL server on '{OLD}'", 2003)
        if w.fault == HANG:
            await asyncio.sleep(3600)
        if w.fault == FAIL:
            raise MySQLError("Lost connection to MySQL server during query", 2013)

    async def _answered(self, changed: bool) -> None:
        if changed and self.world.fault == EFFECT_HANG:
            await asyncio.sleep(3600)

    async def set_read_only(self, on: bool, timeout_s: float | None = None) -> None:
        await self._reach()
        w = self.world
        before = w.n1_read_only if self.node == OLD else w.n2_read_only
        if self.node == OLD:
            w.n1_read_only = on
        else:
            w.n2_read_only = on
        await self._answered(before != on)

    async def read_only(self, timeout_s: float | None = None) -> bool:
        await self._reach()
        return self.world.n1_read_only if self.node == OLD else self.world.n2_read_only

    async def replica_status(self, timeout_s: float | None = None) -> ReplicaStatus:
        await self._reach()
        if self.node == OLD or self.world.n2_promoted:
            return ReplicaStatus(configured=False)
        at = BinlogCoordinates("node1-bin.000007", 4711)
        return ReplicaStatus(
            configured=True,
            io_running="Connecting",
            sql_running="Yes",
            sql_state="Slave has read all relay log; waiting for more updates",
            source_host=OLD,
            read_position=at,
            exec_position=at,
            gtid_slave_pos="0-1-100",
        )

    async def wait_caught_up(
        self, timeout_s: float, target: BinlogCoordinates | None = None
    ) -> tuple[bool, str]:
        status = await self.replica_status(timeout_s)
        if not status.configured:
            return True, "replication is not configured: nothing to apply"
        return True, "applied up to node1-bin.000007:4711"

    async def binlog_coordinates(self, timeout_s: float | None = None) -> BinlogCoordinates:
        await self._reach()
        return BinlogCoordinates(f"{self.node}-bin.000001", 1234, "0-2-5")

    async def promote(self, timeout_s: float | None = None) -> BinlogCoordinates:
        await self._reach()
        assert self.node == NEW, "only the new primary is ever promoted"
        w = self.world
        changed = not w.n2_promoted or w.n2_read_only
        if not w.n2_promoted:
            w.promote_changes += 1
        w.n2_promoted, w.n2_read_only = True, False
        await self._answered(changed)
        return BinlogCoordinates("node2-bin.000001", 1234, "0-2-5")


# --- The harness: what ran, checked against the journal on disk as it runs. -------------------


@dataclass
class Execution:
    run: int
    step: Step
    mode: str
    ok: bool | None = None


def _finished(record: JournalRecord) -> set[str]:
    """What a resume must not run again, as the journal's contract states it (computed here,
    not by the code under test): every recorded step, except a failure that is the last
    record (the plan stopped there, or died before going on)."""
    done = {d["step"] for d in record.done}
    if record.done and not record.done[-1]["ok"]:
        done.discard(record.done[-1]["step"])
    return done


def _settled(record: JournalRecord, step: Step) -> bool:
    """Done, or failed with CONTINUE: the executor may go on past it."""
    results = [d for d in record.done if d["step"] == step.key]
    if any(d["ok"] for d in results):
        return True
    return bool(results) and step.on_failure is OnFailure.CONTINUE


class Harness:
    """Builds executors as a (re)started daemon would, traces every step execution, injects
    the fault chosen for it, and asserts the executor's invariants at the moment a step starts
    (from the journal file, as a reader of the disk would see it)."""

    def __init__(self, tmp: Path, plan: tuple[Step, ...], world: World) -> None:
        self.plan = plan
        self.world = world
        self.path = tmp / "journal.json"
        self.flag_path = Path(next(s for s in plan if s.kind is StepKind.WRITE_FLAG).arg("path"))
        self.choose: Callable[[Step], str] = lambda step: OK
        self.run = 0
        self.last_index = -1  # within the current run: steps go in plan order
        self.executions: list[Execution] = []
        self.pending_crash = ""
        self.flag_ids: list[str] = []  # the failover id of every flag actually written
        self.flag_rewrites_allowed = 0  # crashes between writing the flag and journaling it
        self.promote_started = False

    def executor(self) -> Executor:
        journal = CrashingJournal(self.path, self)
        nodes = Nodes(
            runners={n: FakeRunner(self.world, n) for n in (OLD, NEW)},
            mysql={n: FakeServer(self.world, n) for n in (OLD, NEW)},
        )
        return Executor(journal, nodes, Metrics(CollectorRegistry()), cluster="prop")

    def disk(self) -> JournalRecord | None:
        return Journal(self.path).load()  # load(), unlike open_record(), never closes a record

    def new_run(self) -> None:
        self.run += 1
        self.last_index = -1

    def before(self, step: Step) -> Execution:
        try:
            self.check(step)
        except AssertionError as exc:
            raise InvariantBroken(f"{type(exc).__name__}: {exc}") from exc
        mode = self.choose(step)
        if mode in CRASHES:
            self.pending_crash = mode
            if step.kind is StepKind.WRITE_FLAG and mode == CRASH_BEFORE:
                self.flag_rewrites_allowed += 1
        else:
            self.world.fault = mode
        execution = Execution(self.run, step, mode)
        self.executions.append(execution)
        return execution

    def check(self, step: Step) -> None:
        """What must hold when the executor starts `step`."""
        assert step in self.plan, f"ran a step that is not the original plan's: {step}"
        index = self.plan.index(step)
        assert index > self.last_index, f"{step.key} ran out of plan order"
        self.last_index = index
        record = self.disk()
        assert record is not None and not record.finished
        assert record.plan == [step_to_dict(s) for s in self.plan], "the journaled plan changed"
        assert step.key not in _finished(record), f"{step.key} ran again, finished already"
        assert not any(d["step"] == step.key and d["ok"] for d in record.done), (
            f"{step.key} ran again after it was recorded done"
        )
        for earlier in self.plan[:index]:
            assert _settled(record, earlier), f"{step.key} ran before {earlier.key} was settled"
        if step.kind is StepKind.PROMOTE and not self.promote_started:
            self.promote_started = True
            for fence in self.plan[:index]:
                if fence.kind in FENCE_KINDS and fence.on_failure is OnFailure.STOP:
                    assert any(d["step"] == fence.key and d["ok"] for d in record.done), (
                        f"promote ran before the STOP fence step {fence.key} succeeded"
                    )

    def ran(self, key: str, run: int | None = None) -> list[Execution]:
        return [e for e in self.executions if e.step.key == key and run in (None, e.run)]

    @contextlib.contextmanager
    def patched(self, mp: pytest.MonkeyPatch) -> Iterator[None]:
        """Wrap (record, inject a fault, then call the real thing): `run_step` as the executor
        calls it, the executor's flag writer, and `write_flag` (the disk)."""
        real_run_step = executor_module.run_step
        real_write_flag_step = Executor._write_flag
        real_write_flag = executor_module.write_flag

        async def run_step(step: Step, nodes: Nodes, facts: Any = None) -> Outcome:
            execution = self.before(step)
            try:
                outcome = await real_run_step(step, nodes, facts)
            finally:
                self.world.fault = OK
            execution.ok = outcome.ok
            return outcome

        async def write_flag_step(executor: Executor, step: Step, record: JournalRecord) -> Outcome:
            execution = self.before(step)
            try:
                outcome = await real_write_flag_step(executor, step, record)
            finally:
                self.world.fault = OK
            execution.ok = outcome.ok
            return outcome

        def write_flag(path: Path, report: dict[str, Any]) -> None:
            if self.world.fault == FAIL:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real_write_flag(path, report)
            self.flag_ids.append(report["failover_id"])

        mp.delenv(executor_module.FAILPOINT_ENV, raising=False)
        mp.delenv(executor_module.FAIL_ONCE_ENV, raising=False)
        mp.setattr(executor_module, "run_step", run_step)
        mp.setattr(Executor, "_write_flag", write_flag_step)
        mp.setattr(executor_module, "write_flag", write_flag)
        yield


class CrashingJournal(Journal):
    """The real journal; the daemon may die just before or just after a step's record."""

    def __init__(self, path: Path, harness: Harness) -> None:
        super().__init__(path)
        self.harness = harness

    def record_step(self, record: JournalRecord, result: StepResult) -> None:
        crash, self.harness.pending_crash = self.harness.pending_crash, ""
        if crash == CRASH_BEFORE:
            raise DaemonKilled(f"before recording {result.step}")
        super().record_step(record, result)
        if crash == CRASH_AFTER:
            raise DaemonKilled(f"after recording {result.step}")


async def attempt(run: Coroutine[Any, Any, bool]) -> bool:
    """Await an executor's run or resume; an invariant broken inside it fails the test."""
    try:
        return await run
    except InvariantBroken as exc:
        raise AssertionError(str(exc)) from None


def assert_converged(h: Harness) -> JournalRecord:
    record = h.disk()
    assert record is not None and record.finished and record.outcome == "succeeded"
    assert Journal(h.path).open_record() is None
    for step in h.plan:
        assert _settled(record, step), f"{step.key} never settled"
    flag = read_flag(h.flag_path)
    assert flag is not None and flag["failover_id"] == record.failover_id
    assert set(h.flag_ids) == {record.failover_id}
    assert len(h.flag_ids) == 1 + h.flag_rewrites_allowed, h.flag_ids
    w = h.world
    assert w.promote_changes == 1
    assert w.n2_promoted and not w.n2_read_only and w.n2_vip
    assert w.unexpected == []
    return record


# --- The property. ----------------------------------------------------------------------------

FAULT_MODES = (FAIL, HANG, EFFECT_HANG, CRASH_BEFORE, CRASH_AFTER)
# "ok" five times: faults spread over the whole plan instead of all landing on its first steps.
STEP_MODES = st.sampled_from((OK,) * 5 + FAULT_MODES)
FLAG_MODES = st.sampled_from((OK,) * 3 + (FAIL, CRASH_BEFORE, CRASH_AFTER))
WORLD_CHANGES = st.sampled_from(("none", "n1_back", "n1_dies", "ssh_breaks", "n1_hangs"))
MAX_FAULTS = 6


@dataclass(frozen=True)
class Variant:
    ssh_reachable: bool
    fence: bool
    host_down: bool
    fence_required: bool
    stop_argv: bool
    cold: bool
    agents: bool


variants = st.builds(
    Variant,
    ssh_reachable=st.booleans(),
    fence=st.booleans(),
    host_down=st.booleans(),
    fence_required=st.booleans(),
    stop_argv=st.booleans(),
    cold=st.booleans(),
    agents=st.booleans(),
).map(
    # Fencing required, with neither SSH nor a fence command, is refused by the plan builder
    # (and never decided: witness_silent = "fence" needs a fence command).
    lambda v: dataclasses.replace(
        v, fence_required=v.fence_required and (v.fence or v.ssh_reachable)
    )
)


def build(tmp: Path, v: Variant) -> tuple[Step, ...]:
    p = inputs(tmp, fence=v.fence, stop_argv=v.stop_argv, cold=v.cold, agents=v.agents)
    return build_failover_plan(
        p,
        OLD,
        NEW,
        ssh_reachable=v.ssh_reachable,
        host_down=v.host_down,
        fence_required=v.fence_required,
    )


async def drive(h: Harness, data: st.DataObject, budget: int) -> None:
    """Run the plan, then resume it (restarting the daemon after a crash, sometimes after a
    stop too) until the journal closes; hypothesis picks the faults until `budget` is spent."""
    left = budget

    def choose(step: Step) -> str:
        nonlocal left
        if left <= 0:
            return OK
        modes = FLAG_MODES if step.kind is StepKind.WRITE_FLAG else STEP_MODES
        mode = data.draw(modes, label=f"run {h.run}: {step.key}")
        left -= mode != OK
        return mode

    h.choose = choose
    executor = h.executor()
    resumes_counted = 0
    # Every fault ends at most one run; then a run in the world it left; then one after a heal.
    for n in range(budget + 4):
        if n == 0:
            before = None
        else:
            h.new_run()
            before = h.disk()
            assert before is not None and not before.finished
            assert before.plan == [step_to_dict(s) for s in h.plan]
        crashed = False
        try:
            if before is None:
                await attempt(executor.run(h.plan, PlanKind.FAILOVER, "prop", OLD, NEW))
            else:
                await attempt(executor.resume())
        except DaemonKilled:
            crashed = True
        after = h.disk()
        assert after is not None
        if before is not None and not before.flag_written:
            # A resume counts itself in the journal before it runs anything.
            assert after.attempts == before.attempts + 1
            resumes_counted += 1
        assert after.attempts == 1 + resumes_counted
        if after.finished:
            return
        if crashed or data.draw(st.booleans(), label="daemon restarted"):
            executor = h.executor()  # a new process: new objects on the same journal file
        if left > 0:
            change = data.draw(WORLD_CHANGES, label="world changes")
            h.world.change(change)
            left -= change != "none"
            if change != "none":
                event(f"world: {change}")
        elif not crashed:
            # The faults are spent and the plan still stopped: the world as it was left (node1
            # dead or out of reach) blocks a STOP step. It comes back, as a host does.
            h.world.change("n1_back")
    pytest.fail(f"no convergence after {budget + 4} runs: {h.disk()}")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(v=variants, budget=st.integers(0, MAX_FAULTS), n1_mysql_up=st.booleans(), data=st.data())
def test_an_interrupted_failover_converges_on_its_journaled_plan(
    v: Variant, budget: int, n1_mysql_up: bool, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        tmp = Path(d)
        plan = build(tmp, v)
        # The world the decision saw: SSH reached node1 or it did not (then its host is down).
        world = World(
            n1_alive=v.ssh_reachable or not v.host_down,
            n1_ssh=v.ssh_reachable,
            n1_mysql_up=n1_mysql_up and v.ssh_reachable,
        )
        h = Harness(tmp, plan, world)
        with h.patched(mp):
            asyncio.run(drive(h, data, budget))
        assert_converged(h)
        for e in h.executions:
            if e.mode != OK:
                event(f"{e.mode} at {e.step.kind}")
        event(f"runs: {h.run + 1}")
        promotes = [e for e in h.executions if e.step.kind is StepKind.PROMOTE]
        assert promotes and promotes[-1].ok


# --- Named regressions. -----------------------------------------------------------------------


async def test_resume_keeps_fence_required_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No witness answered (witness_silent = "fence"): the fence command must succeed before
    anything is promoted, even though ICMP and SSH said the host is down. A restarted daemon
    replays that policy; it does not soften it to CONTINUE as a rebuild with host_down would."""
    p = inputs(tmp_path, fence=True, stop_argv=False, cold=False, agents=False)
    plan = build_failover_plan(
        p, OLD, NEW, ssh_reachable=False, host_down=True, fence_required=True
    )
    softer = build_failover_plan(p, OLD, NEW, ssh_reachable=False, host_down=True)
    assert plan[0].kind is StepKind.FENCE_COMMAND and plan[0].on_failure is OnFailure.STOP
    assert softer[0].on_failure is OnFailure.CONTINUE  # what a rebuild would run
    world = World(n1_alive=False, n1_ssh=False, fence_broken=True)
    h = Harness(tmp_path, plan, world)
    with h.patched(monkeypatch):
        assert not await attempt(h.executor().run(plan, PlanKind.FAILOVER, "test", OLD, NEW))
        h.new_run()
        assert not await attempt(h.executor().resume())  # a new daemon, the fence still failing
        replayed = [e.step for e in h.executions if e.run == 1]
        assert replayed == [plan[0]] and replayed[0].on_failure is OnFailure.STOP
        assert not h.ran(f"promote@{NEW}") and world.promote_changes == 0
        record = h.disk()
        assert record is not None and not record.finished and record.attempts == 2
        assert [d["ok"] for d in record.done] == [False, False]
        world.fence_broken = False
        h.new_run()
        assert await attempt(h.executor().resume())
    assert_converged(h)
    assert world.fence_runs == 1


async def test_resume_keeps_fence_steps_for_a_hung_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSH reached node1 when the failover began: the plan removes its VIP, then fences its
    MySQL. The daemon dies right after vip_down is journaled; node1 then hangs (its MySQL never
    answers) and SSH to it fails. The restarted daemon still attempts fence_mysql from the
    journaled plan (a plan rebuilt now, without SSH, would have no fence step at all), and as
    that step CONTINUEs on failure, the failover goes on."""
    p = inputs(tmp_path, fence=False, stop_argv=True, cold=False, agents=False)
    p = dataclasses.replace(p, fence_timeout_s=0.2)
    plan = build_failover_plan(p, OLD, NEW, ssh_reachable=True)
    rebuilt = build_failover_plan(p, OLD, NEW, ssh_reachable=False)
    assert [s.kind for s in plan[:2]] == [StepKind.VIP_DOWN, StepKind.FENCE_MYSQL]
    assert not [s for s in rebuilt if s.kind in FENCE_KINDS]
    fence = plan[1]
    world = World(n1_mysql_up=True)
    h = Harness(tmp_path, plan, world)
    h.choose = lambda step: CRASH_AFTER if step.kind is StepKind.VIP_DOWN else OK
    with h.patched(monkeypatch):
        with pytest.raises(DaemonKilled):
            await attempt(h.executor().run(plan, PlanKind.FAILOVER, "test", OLD, NEW))
        assert not world.n1_vip
        world.n1_mysql_hung = True  # it takes the connection and never answers
        world.n1_ssh = False  # and SSH no longer reaches node1: the runner raises RunnerError
        h.choose = lambda step: OK
        h.new_run()
        assert await attempt(h.executor().resume())
    # The restarted daemon ran the rest of the journaled plan, fence_mysql first.
    assert [e.step for e in h.executions if e.run == 1] == list(plan[1:])
    record = assert_converged(h)
    fenced = [d for d in record.done if d["step"] == fence.key]
    assert len(fenced) == 1 and not fenced[0]["ok"]
    assert "could not run" in fenced[0]["detail"], fenced[0]["detail"]
