"""Failover and switchover plans: ordered steps, as data, in the Getperf master_ip_failover order.

Job: given the configuration (as `PlanInputs`) and which node is the old and which the new
primary, compute the ordered tuple of `Step`s the executor must run, each with its own timeout
and its failure policy; and `describe` a step in one line for `monha-ctl plan`.

Must not: run anything, read the clock, the network or the journal (the core does no I/O). The
executor runs the steps, records them in the journal and skips what a journal shows as done.

Failure policy (why each step stops the plan or not):
- fence, SSH reaches the old primary: removing the VIP is what keeps clients off the old primary,
  so a VIP that cannot be removed STOPS the plan (two hosts answering ARP for the VIP is the split
  brain we refuse). Stopping its cold-standby services and fencing its MySQL CONTINUE on failure:
  a dead mysqld cannot take read_only, and with the VIP gone no client reaches it; the re-fence
  loop (issue 8) finishes the job when it answers again.
- fence, SSH does not reach it: the fence command runs if configured. It CONTINUEs on failure
  only when the decision already established that the host is down (ICMP and SSH both failed);
  otherwise (a hung host, or no witness answered) fencing is what makes the failover safe, and a
  failed fence STOPS the plan before anything is promoted. Without a fence command and without
  SSH there is no fence step: the host is down or hung, and re-fencing catches it if it thaws.
- catch_up CONTINUEs: a replica that cannot apply what it received within the bound (a broken
  SQL thread) must not keep the service down forever; the step's result records the gap.
- salvage_binlog (only when SSH reaches the old primary) CONTINUEs for the same reason: the
  last writes matter less than monitoring; its result says what was not salvaged and why.
- promote and vip_up STOP: nothing after them makes sense without them.
- services, agents and hot checks CONTINUE: the database and VIP are up; failures are reported
  in the flag the operator reads.
- write_flag STOPs (it is last): without it a second failover would not be blocked.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monha.config import Config
from monha.model import OnFailure, Step, StepKind

FLAG_WRITE_TIMEOUT_S = 5.0  # a local fsync'd write of a small file
SET_READ_ONLY_TIMEOUT_S = 10.0  # planned switchover: read_only on, and wait for writes to stop

STOP, CONTINUE = OnFailure.STOP, OnFailure.CONTINUE


@dataclass(frozen=True, slots=True)
class ColdService:
    name: str
    start: tuple[str, ...]
    stop: tuple[str, ...]
    timeout_s: float


@dataclass(frozen=True, slots=True)
class HotCheck:
    name: str
    url: str
    expect_status: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class AgentRestart:
    name: str
    argv: tuple[str, ...]
    run_on_both: bool
    timeout_s: float


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """The part of the configuration a plan needs, as plain frozen values."""

    vip_address: str
    vip_prefix: int
    vip_label: str
    arp_count: int
    interfaces: tuple[tuple[str, str], ...]  # (node name, interface) for both nodes
    cold: tuple[ColdService, ...] = ()
    hot: tuple[HotCheck, ...] = ()
    agents: tuple[AgentRestart, ...] = ()
    fence_argv: tuple[str, ...] = ()  # empty: no fence command configured
    fence_command_timeout_s: float = 30.0
    fence_timeout_s: float = 10.0
    mysql_stop_argv: tuple[str, ...] = ()
    mysql_pid_file: str = ""  # empty: a fence never kills mysqld
    catchup_timeout_s: float = 30.0
    # Binlog salvage: empty index = off. The tool runs on the old primary; apply_argv here.
    salvage_binlog_index: str = ""
    salvage_binlog_tool: str = ""
    salvage_apply_argv: tuple[str, ...] = ()
    salvage_timeout_s: float = 30.0
    salvage_max_output_mib: int = 256
    promote_timeout_s: float = 10.0
    vip_timeout_s: float = 5.0
    flag_file: str = ""
    # Where a promote copies relay logs it would reset with transactions not applied.
    relay_keep_dir: str = ""
    # After an unreachable old primary was last heard, wait this long before promoting: it
    # steps down by itself for isolation first (0: it does not; see Config.peer_step_down_s).
    peer_step_down_s: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config) -> PlanInputs:
        return cls(
            vip_address=cfg.vip.address,
            vip_prefix=cfg.vip.prefix,
            vip_label=cfg.vip.label,
            arp_count=cfg.vip.arp_count,
            interfaces=tuple((n.name, n.interface) for n in cfg.nodes),
            cold=tuple(
                ColdService(s.name, s.start, s.stop, s.timeout_s) for s in cfg.services.cold_standby
            ),
            hot=tuple(
                HotCheck(s.name, s.url, s.expect_status, s.timeout_s)
                for s in cfg.services.hot_standby
            ),
            agents=tuple(
                AgentRestart(a.name, a.restart, a.run_on == "both", a.timeout_s)
                for a in cfg.services.agents
            ),
            fence_argv=cfg.fence.command if cfg.fence else (),
            fence_command_timeout_s=cfg.fence.timeout_s if cfg.fence else 30.0,
            fence_timeout_s=cfg.failover.fence_timeout_s,
            mysql_stop_argv=cfg.mysql.stop_command or (),
            mysql_pid_file=str(cfg.mysql.pid_file or ""),
            catchup_timeout_s=cfg.failover.catchup_timeout_s,
            salvage_binlog_index=cfg.salvage.binlog_index or "",
            salvage_binlog_tool=cfg.salvage.binlog_tool,
            salvage_apply_argv=cfg.salvage.apply_command,
            salvage_timeout_s=cfg.salvage.timeout_s,
            salvage_max_output_mib=cfg.salvage.max_output_mib,
            promote_timeout_s=cfg.failover.promote_timeout_s,
            vip_timeout_s=cfg.failover.vip_timeout_s,
            flag_file=cfg.failover.flag_file,
            relay_keep_dir=str(Path(cfg.failover.flag_file).parent / "kept-relay-logs"),
            peer_step_down_s=cfg.peer_step_down_s(),
        )

    def interface_of(self, node: str) -> str:
        return dict(self.interfaces)[node]


def _promote(p: PlanInputs, node: str) -> Step:
    args = (("relay_keep_dir", p.relay_keep_dir),) if p.relay_keep_dir else ()
    return Step(StepKind.PROMOTE, node, p.promote_timeout_s, STOP, args)


def _await_step_down(
    p: PlanInputs, new: str, *, ssh_reachable: bool, heard_at: float | None, recheck: bool
) -> tuple[Step, ...]:
    """With SSH to the old primary, the plan fences it; without, an isolated old primary
    fences itself after its isolation limit, and the promote waits for that (an absolute
    time, so that a resumed plan does not wait again from the start). With `recheck` the
    wait looks again, every interval, at what the decision saw: the old primary heard again
    (its isolation clock may have restarted too) ends the plan unrun."""
    if ssh_reachable or p.peer_step_down_s <= 0 or heard_at is None:
        return ()
    until = heard_at + p.peer_step_down_s
    args: tuple[tuple[str, str], ...] = (
        ("until", f"{until:.3f}"),
        ("wait_s", f"{p.peer_step_down_s:g}"),
    )
    if recheck:
        args += (("recheck", "yes"),)
    # The bound leaves room for the looks at its start and end (an observation each, up to a
    # probe interval; the wait spans three of them at least).
    bound = 2 * p.peer_step_down_s + 15.0
    return (Step(StepKind.AWAIT_PEER_STEP_DOWN, new, bound, STOP, args),)


def _inputs(source: PlanInputs | Config) -> PlanInputs:
    return source if isinstance(source, PlanInputs) else PlanInputs.from_config(source)


def _vip(p: PlanInputs, kind: StepKind, node: str, on_failure: OnFailure) -> Step:
    args: tuple[tuple[str, str], ...] = (
        ("address", p.vip_address),
        ("prefix", str(p.vip_prefix)),
        ("interface", p.interface_of(node)),
        ("label", p.vip_label),
    )
    if kind is StepKind.VIP_UP:
        args += (("arp_count", str(p.arp_count)),)
    return Step(kind, node, p.vip_timeout_s, on_failure, args)


def _fence(
    p: PlanInputs, old: str, new: str, *, ssh_reachable: bool, use_command: bool, sure_down: bool
) -> tuple[Step, ...]:
    if ssh_reachable:
        return (
            _vip(p, StepKind.VIP_DOWN, old, STOP),
            Step(
                StepKind.FENCE_MYSQL,
                old,
                p.fence_timeout_s,
                CONTINUE,
                (("pid_file", p.mysql_pid_file),) if p.mysql_pid_file else (),
                p.mysql_stop_argv,
            ),
        )
    if use_command:
        return (
            Step(
                StepKind.FENCE_COMMAND,
                new,  # runs here, on the new primary, against the old one
                p.fence_command_timeout_s,
                CONTINUE if sure_down else STOP,
                (("target", old),),
                p.fence_argv,
            ),
        )
    return ()


def _salvage(p: PlanInputs, old: str, new: str, *, ssh_reachable: bool) -> tuple[Step, ...]:
    """Binlog salvage on the new primary, reading the old primary's binary log over SSH.

    Only when SSH reaches the old host (its mysqld may be dead, its files are still there)
    and an index file is configured. It CONTINUEs on failure: restoring monitoring wins over
    the last writes, and the step's detail says what could not be salvaged and why.
    """
    if not (ssh_reachable and p.salvage_binlog_index):
        return ()
    args = (
        ("old", old),
        ("binlog_index", p.salvage_binlog_index),
        ("binlog_tool", p.salvage_binlog_tool),
        ("max_output_mib", str(p.salvage_max_output_mib)),
    )
    argv = p.salvage_apply_argv
    return (Step(StepKind.SALVAGE_BINLOG, new, p.salvage_timeout_s, CONTINUE, args, argv),)


def _agents(p: PlanInputs, old: str, new: str, *, old_reachable: bool) -> tuple[Step, ...]:
    steps: list[Step] = []
    for a in p.agents:
        nodes = [new, old] if a.run_on_both and old_reachable else [new]
        steps += [
            Step(StepKind.RESTART_AGENT, n, a.timeout_s, CONTINUE, (("name", a.name),), a.argv)
            for n in nodes
        ]
    return tuple(steps)


def _stop_services(p: PlanInputs, old: str) -> tuple[Step, ...]:
    return tuple(
        Step(StepKind.STOP_SERVICE, old, s.timeout_s, CONTINUE, (("name", s.name),), s.stop)
        for s in p.cold
    )


def _start_services(p: PlanInputs, new: str) -> tuple[Step, ...]:
    return tuple(
        Step(StepKind.START_SERVICE, new, s.timeout_s, CONTINUE, (("name", s.name),), s.start)
        for s in p.cold
    )


def _hot_checks(p: PlanInputs, new: str) -> tuple[Step, ...]:
    return tuple(
        Step(
            StepKind.CHECK_HOT,
            new,
            h.timeout_s,
            CONTINUE,
            (("name", h.name), ("url", h.url), ("expect_status", str(h.expect_status))),
        )
        for h in p.hot
    )


def build_failover_plan(
    source: PlanInputs | Config,
    old_primary: str,
    new_primary: str,
    *,
    ssh_reachable: bool,
    fence_command_configured: bool | None = None,
    host_down: bool = False,
    fence_required: bool = False,
    primary_heard_at: float | None = None,
    recheck_wait: bool = True,
) -> tuple[Step, ...]:
    """The unplanned failover, in the hook order: fence, catch up, promote, VIP up, start cold
    services, restart agents, check hot services, write the flag.

    `ssh_reachable`: SSH reached the old primary this tick (fence through SSH).
    `fence_command_configured`: use the fence command when SSH does not reach it; None = use it
    when one is configured. `host_down`: the decision established the old primary's host is down
    (a failed fence command then does not stop the plan). `fence_required`: fencing must
    succeed (no witness answered, witness_silent = "fence"): a failed fence command then stops the
    plan whatever `host_down` says. `primary_heard_at`: when the old primary last answered
    anything; with SSH out of reach (nothing fences it from here for sure) the plan waits
    before promoting until it has stepped down by itself (an isolated primary does), and, with
    `recheck_wait`, ends unrun if the old primary is heard again meanwhile.
    """
    p = _inputs(source)
    if old_primary == new_primary:
        raise ValueError("the old and the new primary must be different nodes")
    use_command = (
        bool(p.fence_argv) if fence_command_configured is None else fence_command_configured
    )
    if use_command and not p.fence_argv:
        raise ValueError("fence_command_configured=True but no fence command is configured")
    if fence_required and not use_command and not ssh_reachable:
        raise ValueError("fencing is required but neither SSH nor a fence command can do it")
    sure_down = host_down and not fence_required
    return (
        *_fence(
            p,
            old_primary,
            new_primary,
            ssh_reachable=ssh_reachable,
            use_command=use_command,
            sure_down=sure_down,
        ),
        # The wait comes before the catch-up: what the replica receives meanwhile is applied.
        *_await_step_down(
            p,
            new_primary,
            ssh_reachable=ssh_reachable,
            heard_at=primary_heard_at,
            recheck=recheck_wait,
        ),
        Step(StepKind.CATCH_UP, new_primary, p.catchup_timeout_s, CONTINUE),
        *_salvage(p, old_primary, new_primary, ssh_reachable=ssh_reachable),
        _promote(p, new_primary),
        _vip(p, StepKind.VIP_UP, new_primary, STOP),
        # The old primary's cold-standby services stop here, not while fencing: a Zabbix
        # server whose database died can take 10 s and more to stop, and clients need the
        # VIP and a writable database first. Nothing is lost by waiting: the old one cannot
        # write (its MySQL is down or read_only), and it is stopped before the new one starts.
        *(_stop_services(p, old_primary) if ssh_reachable else ()),
        *_start_services(p, new_primary),
        *_agents(p, old_primary, new_primary, old_reachable=ssh_reachable),
        *_hot_checks(p, new_primary),
        Step(
            StepKind.WRITE_FLAG,
            new_primary,
            FLAG_WRITE_TIMEOUT_S,
            STOP,
            (("path", p.flag_file), ("old_primary", old_primary), ("new_primary", new_primary)),
        ),
    )


def build_switchover_plan(
    source: PlanInputs | Config, old_primary: str, new_primary: str
) -> tuple[Step, ...]:
    """A planned switchover (both nodes up, SSH reaches both), the seed's
    master_ip_online_change: block writes on the old primary, let the replica reach the old
    primary's final position, move the VIP, promote, then move the services and make the old
    primary a replica of the new one. No flag: a switchover does not block failover.

    Writes are blocked from set_read_only until vip_up: only the steps that must happen in
    that window sit in it. The old primary's cold-standby services stop after the VIP moved,
    as in a failover: a Zabbix server can take seconds to stop, and with its database
    read-only it cannot write meanwhile.

    Every step up to vip_up STOPs on failure: the old primary still has all the data, and the
    caller rolls back what ran (read_only off, VIP back) if promote did not run yet. catch_up
    STOPs too: promoting a replica that missed the old primary's last writes would lose them.
    """
    p = _inputs(source)
    if old_primary == new_primary:
        raise ValueError("the old and the new primary must be different nodes")
    return (
        Step(StepKind.SET_READ_ONLY, old_primary, SET_READ_ONLY_TIMEOUT_S, STOP),
        Step(StepKind.CATCH_UP, new_primary, p.catchup_timeout_s, STOP),
        _vip(p, StepKind.VIP_DOWN, old_primary, STOP),
        _promote(p, new_primary),
        _vip(p, StepKind.VIP_UP, new_primary, STOP),
        *_stop_services(p, old_primary),
        *_start_services(p, new_primary),
        Step(
            StepKind.MAKE_REPLICA,
            old_primary,
            p.promote_timeout_s,
            CONTINUE,
            (("source", new_primary),),
        ),
        *_agents(p, old_primary, new_primary, old_reachable=True),
        *_hot_checks(p, new_primary),
    )


def restore_after_abandon(plan: tuple[Step, ...], ran: set[str]) -> tuple[Step, ...]:
    """What undoes a failed plan's possible effect on the old primary before it is abandoned.

    A `vip_down` that failed may still have removed the VIP (the connection was lost after the
    delete, or the check after it timed out); the primary answers again, so without this no
    node would hold it. Putting it back is idempotent (a VIP still there stays) and CONTINUEs:
    the re-fence and the next decision go on either way. `ran`: the step keys recorded.
    """
    arp = next((s.arg("arp_count") for s in plan if s.kind is StepKind.VIP_UP), "0")
    return tuple(
        Step(
            StepKind.VIP_UP,
            s.node,
            s.timeout_s,
            CONTINUE,
            (*(a for a in s.args if a[0] != "arp_count"), ("arp_count", arp)),
        )
        for s in plan
        if s.kind is StepKind.VIP_DOWN and s.key in ran
    )


def describe(step: Step) -> str:
    """One human line for a step, for `monha-ctl plan` and logs."""
    name = step.arg("name")
    vip = f"{step.arg('address')}/{step.arg('prefix')} ({step.arg('label')})"
    expect = step.arg("expect_status")
    what = {
        StepKind.VIP_DOWN: f"remove the VIP {vip}",
        StepKind.STOP_SERVICE: f"stop {name}",
        StepKind.FENCE_MYSQL: "set MySQL read_only (or stop MySQL if it does not answer)",
        StepKind.FENCE_COMMAND: f"fence {step.arg('target')} with the fence command",
        StepKind.SET_READ_ONLY: "set MySQL read_only and wait for writes to stop",
        StepKind.CATCH_UP: "wait for the replica to apply everything it received",
        StepKind.AWAIT_PEER_STEP_DOWN: (
            f"wait until {step.arg('until')} (last heard + {step.arg('wait_s')} s) for the "
            "unreachable old primary to step down by itself"
        ),
        StepKind.SALVAGE_BINLOG: (
            f"apply what the replica never received from {step.arg('old')}'s binary log "
            f"({step.arg('binlog_index')})"
        ),
        StepKind.PROMOTE: "promote: stop replication, reset replica settings, read_only off",
        StepKind.VIP_UP: f"add the VIP {vip} and send {step.arg('arp_count')} gratuitous ARP",
        StepKind.START_SERVICE: f"start {name}",
        StepKind.RESTART_AGENT: f"restart {name}",
        StepKind.CHECK_HOT: f"check {name} at {step.arg('url')} (expect HTTP {expect})",
        StepKind.MAKE_REPLICA: (
            f"read_only on, replicate from {step.arg('source')} from its position at promote"
        ),
        StepKind.WRITE_FLAG: f"write the completion flag {step.arg('path')}",
    }[step.kind]
    command = f" [{shlex.join(step.argv)}]" if step.argv else ""
    return (
        f"{step.node}: {what}{command} (timeout {step.timeout_s:g} s, "
        f"{'stop' if step.on_failure is OnFailure.STOP else 'continue'} on failure)"
    )


# An open plan that shows no sign of running for this long (no step recorded, no attempt due,
# no wait running) is not being run: its daemon is stopped, or the plan is blocked. A standby
# decides afresh rather than resume such a plan uncommitted (its wait for the old primary's
# step-down is long over, and that primary may be serving again); the old primary's guard no
# longer steps down, or stays down, for it (after PLAN_STALE_S plus PLAN_STALE_SKEW_S, for the
# clocks of the two nodes).
PLAN_STALE_S = 60.0
PLAN_STALE_SKEW_S = 30.0


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list (a journal's `done` or `plan`); anything else: none."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _dict_key(step: Mapping[str, Any]) -> str:
    """A journaled step's key, as Step.key spells it."""
    try:
        name = dict(step.get("args") or ()).get("name", "")
    except (TypeError, ValueError):
        name = ""
    return f"{step.get('kind')}@{step.get('node')}" + (f":{name}" if name else "")


def last_active_at(record: Mapping[str, Any]) -> float:
    """The latest time a journal record (as read, perhaps from the peer) says its plan ran or
    will run: its start, the end of its last recorded step, the attempt it waits for, the end
    of a wait step in it, and the step not recorded yet, which may be running: until its
    timeout after the last end. Fields that are missing or not numbers count as 0."""
    done, plan = _items(record.get("done")), _items(record.get("plan"))
    times = [_number(record.get("started_at")), _number(record.get("next_attempt_at"))]
    times += [_number(d.get("started_at")) + _number(d.get("duration_s")) for d in done]
    for step in plan:
        if step.get("kind") == StepKind.AWAIT_PEER_STEP_DOWN.value:
            with contextlib.suppress(TypeError, ValueError):
                times.append(float(dict(step.get("args") or ()).get("until", 0.0)))
    recorded = {d.get("step") for d in done}
    running = next((s for s in plan if _dict_key(s) not in recorded), None)
    if running is not None:
        times.append(max(times) + _number(running.get("timeout_s")))
    return max(times)


# Steps whose success changes no node: a plan that ran only these can still be abandoned.
_NO_EFFECT = {
    StepKind.CATCH_UP.value,
    StepKind.CHECK_HOT.value,
    StepKind.AWAIT_PEER_STEP_DOWN.value,  # it only waits
}
# Steps that may have changed a node even when they failed: a promote cut off after RESET
# REPLICA, a salvage that applied part of what it read, a VIP or service brought up before a
# later error. (A failed fence command is not among them: if it powered the host off anyway,
# the primary does not answer, and the plan is not abandoned; if the primary answers, the fence
# took no effect, and abandoning it is right: retrying it later would fence a healthy primary.)
_EFFECT_EVEN_IF_FAILED = {
    StepKind.PROMOTE.value,
    StepKind.SALVAGE_BINLOG.value,
    StepKind.VIP_UP.value,
    StepKind.START_SERVICE.value,
}

# A failed step's data says this when it stopped before touching its node (a promote refused
# for want of a new epoch): it does not commit the plan, which may still be abandoned.
UNTOUCHED = "untouched"


def changed_a_node(done: Iterable[Mapping[str, Any]]) -> bool:
    """Whether recorded steps (journal `done` entries) changed a node: a step that changes one
    succeeded, or one that may have changed it ran at all. From then on only finishing the
    plan restores one primary, so it is never abandoned."""

    def changed(d: Mapping[str, Any]) -> bool:
        kind = str(d.get("step", "")).split("@")[0]
        if d.get("skipped") or kind in _NO_EFFECT or (d.get("data") or {}).get(UNTOUCHED):
            return False
        return bool(d.get("ok")) or kind in _EFFECT_EVEN_IF_FAILED

    return any(changed(d) for d in done if isinstance(d, Mapping))


def journal_steps(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A journal record's plan steps (as read, perhaps from the peer): the objects of its
    `plan` list, nothing when it is not one."""
    return _items(record.get("plan"))


def journal_done(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _items(record.get("done"))


def waits_for_step_down(record: Mapping[str, Any]) -> bool:
    """Whether a journal record's plan waits for the old primary's step-down."""
    return any(s.get("kind") == StepKind.AWAIT_PEER_STEP_DOWN.value for s in journal_steps(record))
