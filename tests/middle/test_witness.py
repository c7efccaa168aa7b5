"""Witness verdicts are three-valued (issue 12, defects 5 and 6): sees the primary / checked and
does not see it / could not check. Only the second counts against the primary; the third is no
witness answer at all, whatever ICMP said. The check runs the real script with bash on loopback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from monha.model import ProbeResult, ProbeStatus
from monha.observe import Observer, Peers
from monha.runners import CommandResult, LocalRunner, RunnerError
from tests.middle.world import FakeRunner, FakeServer, new_world, write_config

WITNESS = """
[[witness]]
name = "w1"
address = "192.168.10.254"
ssh_user = "monha"
"""


class Scripted:
    """A witness runner: its answer, or an error, scripted; or the real command, run here."""

    def __init__(self, *, exit_status: int | None = None, error: bool = False) -> None:
        self.exit_status, self.error = exit_status, error

    async def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        if self.error:
            raise RunnerError("ssh monha@w1: host key CHANGED")
        if self.exit_status is None:
            return await LocalRunner().run(argv, timeout_s)
        return CommandResult(tuple(argv), self.exit_status, b"", b"", 0.01)

    def describe(self) -> str:
        return "scripted"

    async def close(self) -> None: ...


class IcmpOk(Observer):
    async def _icmp(self, address: str, timeout_s: float) -> ProbeResult:
        return ProbeResult("icmp", address, ProbeStatus.OK, 0.001)


def observer(tmp_path: Path, runner: Scripted, *, peer_port: int = 3306) -> Observer:
    cfg_path = write_config(tmp_path)
    cfg_path.write_text(cfg_path.read_text().replace("[ssh]", WITNESS + "\n[ssh]"))
    from monha.config import load_config

    cfg = load_config(cfg_path)
    world = new_world()
    peers = Peers(
        local=FakeServer(world, "node2"),  # type: ignore[arg-type]
        primary=FakeServer(world, "node1"),  # type: ignore[arg-type]
        ssh=FakeRunner(world, "node1", remote=True),  # type: ignore[arg-type]
        witnesses={"w1": runner},  # type: ignore[dict-item]
    )
    w = IcmpOk(cfg, "node2", peers, "pw")
    # The witness checks the primary's MySQL port on loopback here (no traffic leaves).
    w.peer = w.peer.model_copy(update={"address": "127.0.0.1", "mysql_port": peer_port})
    return w


@pytest.mark.parametrize(
    ("runner", "status", "sees"),
    [
        (Scripted(exit_status=0), ProbeStatus.OK, True),
        (Scripted(exit_status=1), ProbeStatus.OK, False),
        (Scripted(exit_status=124), ProbeStatus.OK, False),  # the witness's own bound: dead host
        (Scripted(exit_status=142), ProbeStatus.OK, False),  # read timed out: no greeting
        (Scripted(exit_status=127), ProbeStatus.FAILED, None),  # no bash there: not checked
        (Scripted(error=True), ProbeStatus.FAILED, None),  # SSH could not run it
    ],
)
async def test_defect5_a_witness_verdict_is_three_valued(
    tmp_path: Path, runner: Scripted, status: ProbeStatus, sees: bool | None
) -> None:
    w = observer(tmp_path, runner)
    (result,) = [await w._witness(w.cfg.witness[0], 1.0)]
    assert (result.status, result.sees_primary) == (status, sees), result.detail
    if sees is None:
        assert "could not check" in result.detail and "ICMP ok" in result.detail


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that completes handshakes and never says a word (a frozen host's kernel)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


async def test_defect6_the_real_check_says_no_greeting_in_time_for_a_silent_primary(
    tmp_path: Path, silent_port: int
) -> None:
    w = observer(tmp_path, Scripted(), peer_port=silent_port)
    t0 = asyncio.get_running_loop().time()
    result = await w._witness(w.cfg.witness[0], 1.0)
    took = asyncio.get_running_loop().time() - t0
    assert (result.status, result.sees_primary) == (ProbeStatus.OK, False), result.detail
    assert took < 1.0


async def test_the_real_check_says_refused_for_a_dead_mysqld(tmp_path: Path) -> None:
    w = observer(tmp_path, Scripted(), peer_port=closed_port())
    result = await w._witness(w.cfg.witness[0], 1.0)
    assert (result.status, result.sees_primary) == (ProbeStatus.OK, False), result.detail
