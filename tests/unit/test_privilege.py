"""Defect 8 (issue 12): a node reached as a user other than root. monha's own privileged
commands (the VIP, gratuitous ARP, the cluster files, killing a hung mysqld) go through the
configured privilege prefix; commands the operator wrote run as written; `check` runs the
privileged commands harmlessly and names each one the prefix does not let through.
"""

from __future__ import annotations

from collections.abc import Sequence

from monha import cluster_files
from monha.check import _privileged
from monha.config import Config
from monha.model import OnFailure, Step, StepKind
from monha.runners import CommandResult, as_root, unprivileged
from monha.steps import Nodes, run_step
from tests.unit.unit_support import CONFIG

SUDO = ("sudo", "-n")


class Recording:
    """A node reached as a user who is not root: records every argv; `refuse` makes sudo say
    no to commands starting with `sudo -n` (as a missing sudoers rule does)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.privilege_prefix = SUDO
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse

    def describe(self) -> str:
        return "ssh monha@node1"

    async def close(self) -> None: ...

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        if self.refuse and tuple(argv[:2]) == SUDO:
            return CommandResult(tuple(argv), 1, b"", b"sudo: a password is required\n", 0.01)
        if "del" in argv:
            err = b"RTNETLINK answers: Cannot assign requested address\n"
            return CommandResult(tuple(argv), 2, b"", err, 0.01)
        return CommandResult(tuple(argv), 0, b"", b"", 0.01)


def _step(
    kind: StepKind, args: tuple[tuple[str, str], ...] = (), argv: tuple[str, ...] = ()
) -> Step:
    return Step(kind, "node1", 5.0, OnFailure.CONTINUE, args, argv)


async def test_defect8_the_vip_and_arp_go_through_the_prefix() -> None:
    r = Recording()
    nodes = Nodes(runners={"node1": r}, mysql={})
    args = (
        ("address", "192.168.10.10"),
        ("prefix", "24"),
        ("interface", "eth0"),
        ("label", "eth0:1"),
        ("arp_count", "2"),
    )
    outcome = await run_step(_step(StepKind.VIP_UP, args), nodes)
    assert outcome.ok, outcome
    for task in list(nodes.background):
        await task
    adds = [c for c in r.calls if "add" in c]
    arps = [c for c in r.calls if "arping" in c]
    assert adds and all(c[:2] == SUDO for c in adds), r.calls
    assert arps and all(c[:2] == SUDO for c in arps), r.calls


async def test_an_operators_command_runs_as_written() -> None:
    r = Recording()
    nodes = Nodes(runners={"node1": r}, mysql={})
    step = _step(StepKind.STOP_SERVICE, (("name", "zabbix"),), ("/bin/systemctl", "stop", "z"))
    assert (await run_step(step, nodes)).ok
    assert r.calls == [("/bin/systemctl", "stop", "z")]


async def test_the_cluster_files_go_through_the_prefix() -> None:
    r = Recording()
    await cluster_files.write_json_on(r, "node1", "/var/lib/monha/flag", {"a": 1}, 2.0)
    assert r.calls and r.calls[0][:2] == SUDO, r.calls


def test_as_root_never_prefixes_twice_and_unprivileged_undoes_it() -> None:
    r = Recording()
    root = as_root(r)
    assert as_root(root) is root
    assert unprivileged(root) is r


async def test_defect8_check_names_each_privileged_command_sudo_refuses() -> None:
    cfg: Config = CONFIG
    problems = await _privileged(cfg, "node1", as_root(Recording(refuse=True)), 2.0)
    assert len(problems) == 3, problems
    assert all("sudo: a password is required" in p for p in problems), problems
    assert any("ip addr del" in p for p in problems)
    assert any("arping" in p for p in problems)


async def test_check_passes_when_the_prefix_lets_everything_through() -> None:
    cfg: Config = CONFIG
    assert await _privileged(cfg, "node1", as_root(Recording()), 2.0) == []
