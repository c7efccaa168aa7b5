"""When an old primary must fence itself (issue 8), and which of several probe attempts counts."""

from __future__ import annotations

import pytest

from monha.model import ProbeResult, ProbeStatus
from monha.observe import best
from monha.split_brain import peer_took_over


def test_a_flag_naming_the_peer_is_enough() -> None:
    why = peer_took_over(
        "node2",
        holds_vip=None,
        writable=None,
        flag={"new_primary": "node2", "failover_id": "f1"},
    )
    assert why is not None and "flag" in why and "f1" in why


def test_the_vip_on_the_peer_is_enough() -> None:
    why = peer_took_over("node2", holds_vip=True, writable=True, flag=None)
    assert why == "node2 holds the VIP and is writable"


@pytest.mark.parametrize(
    ("holds_vip", "writable", "flag"),
    [
        (False, True, None),  # writable alone: could leave no primary at all
        (None, None, None),  # nothing known: the peer is out of sight
        (False, False, {"new_primary": "node1"}),  # its flag names this node: not a takeover
    ],
)
def test_no_self_fencing_without_a_clear_sign(
    holds_vip: bool | None, writable: bool | None, flag: dict[str, str] | None
) -> None:
    assert peer_took_over("node2", holds_vip=holds_vip, writable=writable, flag=flag) is None


def _r(status: ProbeStatus, latency: float = 0.1) -> ProbeResult:
    return ProbeResult("mysql", "node1", status, latency)


def test_best_attempt_prefers_an_answer_then_a_refusal() -> None:
    timeout, failed, ok = _r(ProbeStatus.TIMEOUT), _r(ProbeStatus.FAILED), _r(ProbeStatus.OK)
    alive = _r(ProbeStatus.ALIVE_ERROR)
    assert best([timeout, ok]) is ok
    assert best([timeout, alive, failed]) is alive
    assert best([timeout, failed]) is failed
    assert best([_r(ProbeStatus.OK, 0.5), _r(ProbeStatus.OK, 0.2)]).latency_s == 0.2
