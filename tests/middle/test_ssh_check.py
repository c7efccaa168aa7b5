"""The SSH-side MySQL check (issue 12, defects 4 and 9): it is bounded on the primary itself, so
a hung mysqld on a live host reads "SSH works, MySQL hangs" (a host that can be fenced) and not
"SSH timed out"; and it asks the node's own MySQL port, not 3306. The check runs for real here,
on this machine, through a runner that executes it locally.
"""

from __future__ import annotations

import time
from pathlib import Path

from monha.model import ProbeStatus
from monha.observe import Observer, check_bound
from tests.middle.test_witness import Scripted, observer


def with_check(tmp_path: Path, *argv: str, port: int = 3306) -> Observer:
    w = observer(tmp_path, Scripted(), peer_port=port)
    w.peers.ssh = Scripted()  # type: ignore[assignment]  # runs the check here, for real
    probe = w.cfg.probe.model_copy(update={"ssh_mysql_check": argv})
    w.cfg = w.cfg.model_copy(update={"probe": probe})
    return w


async def test_defect4_a_hung_check_is_ssh_ok_and_mysql_hanging(tmp_path: Path) -> None:
    w = with_check(tmp_path, "sleep", "30")
    start = time.monotonic()
    ssh, local = await w._ssh(1.0)
    took = time.monotonic() - start
    assert ssh.status is ProbeStatus.OK, ssh.detail
    assert local.status is ProbeStatus.TIMEOUT, local.detail
    assert "no answer on its host" in local.detail
    assert took < 1.0, f"the remote bound ({check_bound(1.0)} s) did not end the check: {took}"


async def test_defect4_an_answering_check_is_alive_and_a_refusal_is_failed(
    tmp_path: Path,
) -> None:
    ssh, local = await with_check(tmp_path, "true")._ssh(1.0)
    assert (ssh.status, local.status) == (ProbeStatus.OK, ProbeStatus.OK)
    ssh, local = await with_check(tmp_path, "false")._ssh(1.0)
    assert (ssh.status, local.status) == (ProbeStatus.OK, ProbeStatus.FAILED)


async def test_defect9_the_check_asks_the_nodes_own_port(tmp_path: Path) -> None:
    script = '[ "$0" = "--port=4406" ]'
    w = with_check(tmp_path, "bash", "-c", script, "--port={mysql_port}", port=4406)
    _, local = await w._ssh(1.0)
    assert local.status is ProbeStatus.OK, local.detail
    w = with_check(tmp_path, "bash", "-c", script, "--port={mysql_port}", port=3306)
    _, local = await w._ssh(1.0)
    assert local.status is ProbeStatus.FAILED, local.detail


async def test_a_missing_check_program_is_said_loudly_once(tmp_path: Path) -> None:
    """Regression (issue 13): MariaDB 11 no longer installs mysqladmin; the check then exits 127
    on every tick, which is no evidence either way, and the protection it gives against a false
    failover was gone without a word. The daemon now logs an error once, and its recovery."""
    from types import SimpleNamespace

    from monha.daemon import Daemon
    from monha.model import Observation, ProbeResult, ReplicaView

    w = with_check(tmp_path, "/usr/bin/no-such-mysqladmin", "ping")
    ssh, local = await w._ssh(1.0)
    assert ssh.status is ProbeStatus.OK and local.status is ProbeStatus.SKIPPED
    assert "127" in local.detail, local.detail

    said: list[tuple[str, str]] = []
    log = SimpleNamespace(
        error=lambda event, **kw: said.append(("error", event)),
        info=lambda event, **kw: said.append(("info", event)),
    )
    me = SimpleNamespace(log=log, cfg=w.cfg, _check_broken=False)
    down = ProbeResult("mysql", "node1", ProbeStatus.TIMEOUT, 1.0)

    def obs(local_probe: ProbeResult) -> Observation:
        return Observation(
            at=0.0,
            primary="node1",
            replica="node2",
            primary_mysql=down,
            primary_icmp=down,
            primary_ssh=ssh,
            replica_view=ReplicaView(down),
            primary_local_mysql=local_probe,
        )

    for _ in range(3):
        Daemon._log_local_check(me, obs(local))  # type: ignore[arg-type]
    assert said == [("error", "ssh_mysql_check_broken")]
    _, ok = await with_check(tmp_path, "true")._ssh(1.0)
    Daemon._log_local_check(me, obs(ok))  # type: ignore[arg-type]
    assert said[-1] == ("info", "ssh_mysql_check_recovered")
