"""Failover and switchover plans: order, failure policy, and where each step runs."""

from __future__ import annotations

import dataclasses

import pytest
from unit_support import CONFIG, example_data

from monha.config import parse_config
from monha.model import OnFailure, Step, StepKind
from monha.plan import (
    PlanInputs,
    build_failover_plan,
    build_switchover_plan,
    describe,
    restore_after_abandon,
)

K = StepKind
INPUTS = PlanInputs.from_config(CONFIG)
WITH_FENCE = dataclasses.replace(INPUTS, fence_argv=("/usr/local/sbin/fence-node1",))

# The Getperf master_ip_failover hook's order, one phase per hook step. One deliberate change:
# the old primary's cold-standby services stop after the VIP moves (a Zabbix server whose
# database died takes 10 s and more to stop) but still before the new primary starts them.
HOOK_ORDER: list[set[StepKind]] = [
    {K.VIP_DOWN, K.FENCE_MYSQL, K.FENCE_COMMAND},  # 1 fence the old primary
    {K.CATCH_UP, K.SALVAGE_BINLOG},  # 2 (then, with SSH, the binlog salvage: issue 4)
    {K.PROMOTE},  # 3
    {K.VIP_UP},  # 4
    {K.STOP_SERVICE, K.START_SERVICE},  # 5 (old stops, then new starts)
    {K.RESTART_AGENT},  # 6
    {K.CHECK_HOT},  # 7
    {K.WRITE_FLAG},  # 8
]


def phases(plan: tuple[Step, ...]) -> list[int]:
    return [next(i for i, kinds in enumerate(HOOK_ORDER) if s.kind in kinds) for s in plan]


def failover(**kw: object) -> tuple[Step, ...]:
    kw.setdefault("ssh_reachable", True)
    source = kw.pop("source", INPUTS)
    return build_failover_plan(source, "node1", "node2", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [
        {"ssh_reachable": True},
        {"ssh_reachable": False},
        {"ssh_reachable": False, "source": WITH_FENCE, "host_down": True},
        {"ssh_reachable": False, "source": WITH_FENCE, "fence_required": True},
    ],
)
def test_failover_plan_follows_the_hook_order(kw: dict[str, object]) -> None:
    plan = failover(**kw)
    got = phases(plan)
    assert got == sorted(got)
    assert set(got) >= {1, 2, 3, 4, 5, 6, 7}  # every phase but fencing is always there
    assert plan[-1].kind is K.WRITE_FLAG and plan[-1].on_failure is OnFailure.STOP


def test_the_example_plan_step_by_step() -> None:
    assert [(s.kind, s.node, s.on_failure) for s in failover()] == [
        (K.VIP_DOWN, "node1", "stop"),
        (K.FENCE_MYSQL, "node1", "continue"),
        (K.CATCH_UP, "node2", "continue"),
        (K.SALVAGE_BINLOG, "node2", "continue"),
        (K.PROMOTE, "node2", "stop"),
        (K.VIP_UP, "node2", "stop"),
        (K.STOP_SERVICE, "node1", "continue"),
        (K.START_SERVICE, "node2", "continue"),
        (K.RESTART_AGENT, "node2", "continue"),
        (K.CHECK_HOT, "node2", "continue"),
        (K.CHECK_HOT, "node2", "continue"),
        (K.WRITE_FLAG, "node2", "stop"),
    ]


def test_salvage_only_when_ssh_reaches_the_old_primary_and_an_index_is_configured() -> None:
    (salvage,) = [s for s in failover() if s.kind is K.SALVAGE_BINLOG]
    assert salvage.arg("old") == "node1" and salvage.arg("binlog_index").endswith(".index")
    assert salvage.argv and salvage.argv[0].endswith("mariadb")
    assert not [s for s in failover(ssh_reachable=False) if s.kind is K.SALVAGE_BINLOG]
    off = dataclasses.replace(INPUTS, salvage_binlog_index="")
    assert not [s for s in failover(source=off) if s.kind is K.SALVAGE_BINLOG]
    assert "binary log" in describe(salvage)


def test_read_only_goes_off_before_the_vip_moves() -> None:
    kinds = [s.kind for s in failover()]
    assert kinds.index(K.PROMOTE) < kinds.index(K.VIP_UP)


def test_the_old_cold_service_stops_before_the_new_one_starts() -> None:
    kinds = [(s.kind, s.node) for s in failover()]
    assert kinds.index((K.STOP_SERVICE, "node1")) < kinds.index((K.START_SERVICE, "node2"))


def test_steps_carry_what_the_executor_needs() -> None:
    plan = {s.key: s for s in failover()}
    vip_up = plan["vip_up@node2"]
    assert dict(vip_up.args) == {
        "address": "192.168.10.10",
        "prefix": "24",
        "interface": "eth0",
        "label": "eth0:1",
        "arp_count": "3",
    }
    assert plan["start_service@node2:zabbix-server"].argv == (
        "/etc/init.d/zabbix-server",
        "start",
    )
    assert plan["stop_service@node1:zabbix-server"].argv[-1] == "stop"
    assert plan["fence_mysql@node1"].argv == ("/usr/bin/systemctl", "stop", "mariadb")
    assert plan["check_hot@node2:apache"].arg("url") == "http://192.168.10.10/"
    assert plan["write_flag@node2"].arg("old_primary") == "node1"
    assert plan["catch_up@node2"].timeout_s == 30.0


def test_step_keys_are_unique_and_timeouts_positive() -> None:
    for plan in (
        failover(),
        failover(source=WITH_FENCE, ssh_reachable=False),
        build_switchover_plan(CONFIG, "node1", "node2"),
    ):
        assert len({s.key for s in plan}) == len(plan)
        assert all(s.timeout_s > 0 for s in plan)


def test_without_ssh_and_without_fence_command_there_is_no_fence_step() -> None:
    plan = failover(ssh_reachable=False)
    assert plan[0].kind is K.CATCH_UP and all(s.node == "node2" for s in plan)


@pytest.mark.parametrize(
    ("host_down", "fence_required", "policy"),
    [(True, False, "continue"), (False, False, "stop"), (True, True, "stop")],
)
def test_fence_command_runs_here_against_the_old_primary(
    host_down: bool, fence_required: bool, policy: str
) -> None:
    plan = failover(
        source=WITH_FENCE, ssh_reachable=False, host_down=host_down, fence_required=fence_required
    )
    fence = plan[0]
    assert (fence.kind, fence.node, fence.arg("target")) == (K.FENCE_COMMAND, "node2", "node1")
    assert fence.on_failure == policy and fence.argv == WITH_FENCE.fence_argv


def test_ssh_fencing_wins_over_the_fence_command_when_ssh_reaches_the_host() -> None:
    kinds = [s.kind for s in failover(source=WITH_FENCE)]
    assert K.FENCE_COMMAND not in kinds and kinds[0] is K.VIP_DOWN


def test_the_fence_command_can_be_left_out() -> None:
    plan = failover(source=WITH_FENCE, ssh_reachable=False, fence_command_configured=False)
    assert plan[0].kind is K.CATCH_UP


def test_impossible_requests_raise() -> None:
    with pytest.raises(ValueError, match="different nodes"):
        build_failover_plan(INPUTS, "node1", "node1", ssh_reachable=True)
    with pytest.raises(ValueError, match="no fence command"):
        failover(ssh_reachable=False, fence_command_configured=True)
    with pytest.raises(ValueError, match="fencing is required"):
        failover(ssh_reachable=False, fence_required=True)


def test_agents_run_on_both_when_asked_and_reachable() -> None:
    data = example_data()
    data["services"]["agents"][0]["run_on"] = "both"
    cfg = parse_config(data)
    nodes = [
        s.node
        for s in build_failover_plan(cfg, "node1", "node2", ssh_reachable=True)
        if s.kind is K.RESTART_AGENT
    ]
    assert nodes == ["node2", "node1"]
    unreachable = build_failover_plan(cfg, "node1", "node2", ssh_reachable=False)
    assert [s.node for s in unreachable if s.kind is K.RESTART_AGENT] == ["node2"]


def test_the_other_direction_uses_the_other_nodes() -> None:
    plan = build_failover_plan(CONFIG, "node2", "node1", ssh_reachable=True)
    assert plan[0].node == "node2" and plan[-1].node == "node1"


def test_switchover_order() -> None:
    plan = build_switchover_plan(CONFIG, "node1", "node2")
    assert [(s.kind, s.node) for s in plan] == [
        (K.SET_READ_ONLY, "node1"),
        (K.CATCH_UP, "node2"),
        (K.VIP_DOWN, "node1"),
        (K.PROMOTE, "node2"),
        (K.VIP_UP, "node2"),
        # After the VIP: a slow Zabbix stop must not lengthen the write block.
        (K.STOP_SERVICE, "node1"),
        (K.START_SERVICE, "node2"),
        (K.MAKE_REPLICA, "node1"),
        (K.RESTART_AGENT, "node2"),
        (K.CHECK_HOT, "node2"),
        (K.CHECK_HOT, "node2"),
    ]
    assert plan[1].on_failure is OnFailure.STOP  # planned: no promotion before caught up
    assert all(s.on_failure is OnFailure.STOP for s in plan[:5])
    assert K.WRITE_FLAG not in {s.kind for s in plan}


def test_describe_gives_one_line_per_step() -> None:
    plans = [
        failover(),
        failover(source=WITH_FENCE, ssh_reachable=False),
        build_switchover_plan(CONFIG, "node1", "node2"),
    ]
    for step in (s for plan in plans for s in plan):
        line = describe(step)
        assert "\n" not in line and line.startswith(f"{step.node}: ")
        assert f"timeout {step.timeout_s:g} s" in line and f"{step.on_failure} on failure" in line
    assert describe(failover()[0]) == (
        "node1: remove the VIP 192.168.10.10/24 (eth0:1) (timeout 5 s, stop on failure)"
    )


def test_an_abandoned_plan_puts_back_only_the_vips_its_fence_touched() -> None:
    plan = build_failover_plan(CONFIG, "node1", "node2", ssh_reachable=True)
    down = next(s for s in plan if s.kind is StepKind.VIP_DOWN)
    assert restore_after_abandon(plan, set()) == ()
    (back,) = restore_after_abandon(plan, {down.key})
    assert (back.kind, back.node, back.on_failure) == (StepKind.VIP_UP, "node1", OnFailure.CONTINUE)
    assert back.arg("address") == down.arg("address") and back.arg("prefix") == down.arg("prefix")
    assert back.arg("arp_count") == str(CONFIG.vip.arp_count)
