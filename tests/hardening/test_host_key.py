"""An unknown or changed SSH host key on the lab: node2's /etc/monha/ssh/known_hosts holds a
key for node1 that is not node1's. monha must refuse the connection, say so in its status and
log, never run a command on node1 over SSH, and still fail over (without SSH fencing) when the
witness confirms the primary's MySQL is gone: the flag's reason names the host key problem.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monha.lab.drive import Monha, read_flag, wait_for
from monha.lab.lab import Lab
from monha.lab.names import ADDRESSES
from tests.scenarios.support import scenario_lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def _foreign_key() -> str:
    """A fresh ed25519 public key: what a reinstalled (or impersonated) node1 would show."""
    with tempfile.TemporaryDirectory() as d:
        key = Path(d) / "k"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _tamper_known_hosts(lab: Lab) -> None:
    path = lab.paths.node("node2").etc_monha / "ssh" / "known_hosts"
    lines = path.read_text().splitlines()
    prefix = f"node1,{ADDRESSES['node1']} "
    assert sum(line.startswith(prefix) for line in lines) == 1, lines
    path.write_text(
        "\n".join(prefix + _foreign_key() if ln.startswith(prefix) else ln for ln in lines) + "\n"
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from scenario_lab()


@pytest.fixture(scope="module")
def monha(lab: Lab) -> Iterator[Monha]:
    _tamper_known_hosts(lab)
    m = Monha.start(lab, "node2")
    yield m
    m.stop()


def test_a_changed_host_key_is_refused_and_reported(lab: Lab, monha: Monha) -> None:
    s = wait_for(
        "an observation", lambda: (s := monha.status())["observation"] is not None and s, 15
    )
    time.sleep(2)
    s = monha.status()
    ssh = s["observation"]["primary_ssh"]
    print(f"\nstatus with a changed host key: state {s['state']}, ssh probe {ssh}")
    assert ssh["status"] != "ok"
    assert "host key" in ssh["detail"] and "CHANGED" in ssh["detail"], ssh
    assert "known_hosts" in ssh["detail"]
    # MySQL still answers: no reason to fail over, and none starts.
    assert s["state"] == "healthy"
    failed = [e for e in monha.events("probe_failed") if e.get("probe") == "ssh"]
    assert failed and "CHANGED" in failed[-1]["detail"]


def test_a_failover_never_runs_anything_on_the_unverified_host(lab: Lab, monha: Monha) -> None:
    lab.faults.kill_mysqld("node1")
    flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 90)
    keys = [st["step"] for st in flag["steps"]]
    print(f"\nfailover with node1's host key changed: steps {keys}\nreason: {flag['reason']}")
    assert not [k for k in keys if k.split("@")[1].startswith("node1")], keys
    assert "host key" in flag["reason"], flag["reason"]
    assert lab.vip_holders()[-1:] == ["node2"]
