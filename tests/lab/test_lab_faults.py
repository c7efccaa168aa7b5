"""Each fault does what it says, as an operator would see it, and its reverse restores."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from monha.lab import mariadb, sshd
from monha.lab.faults import FaultError
from monha.lab.lab import Lab
from monha.lab.proc import proc_state
from tests.lab.support import (
    eventually,
    http,
    lab_for_module,
    loss_percent,
    mysql_probe,
    ping,
    tcp_probe,
)

pytestmark = pytest.mark.lab

N1, N2, WITNESS, CLIENT_IP = "192.168.10.1", "192.168.10.2", "192.168.10.254", "192.168.10.100"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_module()


@pytest.fixture(autouse=True)
def healthy(lab: Lab) -> Iterator[None]:
    """Every test starts from, and leaves, a lab without faults and with both servers up."""
    yield
    lab.faults.clear_all()
    for node in ("node1", "node2"):
        lab.faults.start_mysqld(node)
    state = lab.state()
    assert state is not None and state.faults == {}


def _io_running(lab: Lab) -> str:
    return mariadb.replica_status(lab.socket("node2")).get("Slave_IO_Running", "")


def test_kill_mysqld_closes_the_port_and_start_brings_it_back(lab: Lab) -> None:
    old = lab.faults.kill_mysqld("node1")
    assert proc_state(old) in (None, "Z")
    assert tcp_probe(lab, "node2", N1) == "refused"
    assert mysql_probe(lab, "node2", N1) == "2003"
    assert ping(lab, "client", N1)  # the host is fine, only the server is gone
    eventually(lambda: _io_running(lab) != "Yes", 10, "replica notices the dead primary")
    state = lab.state()
    assert state is not None and state.faults == {"kill-mysqld": ["node1"]}
    new = lab.faults.start_mysqld("node1")
    assert new != old
    assert mysql_probe(lab, "node2", N1) == "ok"
    # MASTER_CONNECT_RETRY=1: the replica reconnects within a few seconds.
    eventually(lambda: _io_running(lab) == "Yes", 10, "replica reconnects")


def test_freeze_keeps_the_kernel_but_mysql_does_not_greet(lab: Lab) -> None:
    frozen = lab.faults.freeze("node1")
    assert mariadb.mariadbd_pid(lab.paths, "node1") in frozen
    assert all(proc_state(p) in ("T", "t", None, "Z") for p in frozen)
    assert ping(lab, "client", N1)
    assert tcp_probe(lab, "node2", N1) == "no-greeting"
    assert http(lab, "client", f"http://{N1}/", timeout_s=1) is None
    lab.faults.thaw("node1")
    assert tcp_probe(lab, "node2", N1) == "greeting"
    assert http(lab, "client", f"http://{N1}/") == "node1"


def test_freeze_mysqld_stops_only_mysqld(lab: Lab) -> None:
    pid = lab.faults.freeze_mysqld("node1")
    assert pid == mariadb.mariadbd_pid(lab.paths, "node1")
    assert proc_state(pid) in ("T", "t")
    assert tcp_probe(lab, "node2", N1) == "no-greeting"
    assert ping(lab, "client", N1)
    # The rest of the host runs: sshd answers, and so does Apache.
    check = lab.run_in("node2", sshd.ssh_check_argv("node1"), timeout=8)
    assert check.returncode == 0 and check.stdout.strip() == "node1", check.stderr
    assert http(lab, "client", f"http://{N1}/") == "node1"
    state = lab.state()
    assert state is not None and state.faults == {"freeze-mysqld": [f"node1:{pid}"]}
    assert lab.faults.thaw_mysqld("node1") == [pid]
    assert proc_state(pid) not in ("T", "t")
    assert tcp_probe(lab, "node2", N1) == "greeting"


def _neighbour(lab: Lab, source: str, address: str) -> str:
    """The source's ARP entry state for the address, after a fresh resolution attempt."""
    lab.run_in(source, ["ip", "neigh", "flush", "to", address], timeout=5)
    ping(lab, source, address, count=2, wait_s=1)
    return lab.run_in(source, ["ip", "neigh", "show", "to", address], timeout=5).stdout


def test_loss_in_out_both_and_arp(lab: Lab) -> None:
    lab.faults.loss("node1", 100, "out")
    assert not ping(lab, "client", N1)  # the request arrives, the reply is dropped
    assert "REACHABLE" in _neighbour(lab, "client", N1) or "STALE" in _neighbour(
        lab, "client", N1
    )  # ARP is not IP: without `arp` it still resolves
    lab.faults.loss("node1", 50, "both")  # a round trip survives with 0.5 × 0.5
    lost = loss_percent(lab, "client", N1, count=100)
    assert 55 <= lost <= 93, lost
    lab.faults.loss("node1", 100, "both", arp=True)
    neigh = _neighbour(lab, "client", N1)
    assert "REACHABLE" not in neigh and "STALE" not in neigh, neigh
    lab.faults.loss_clear("node1")
    # The client's entry FAILED meanwhile; the kernel drops the next packet to it, so flush.
    lab.run_in("client", ["ip", "neigh", "flush", "to", N1], timeout=5)
    assert loss_percent(lab, "client", N1, count=20) == 0
    state = lab.state()
    assert state is not None and "loss" not in state.faults


def test_host_down_stops_answering_ping_and_host_up_restores(lab: Lab) -> None:
    lab.faults.host_down("node1")
    assert not ping(lab, "client", N1)
    assert not ping(lab, "node2", N1)
    assert tcp_probe(lab, "node2", N1, timeout_s=1) == "timeout"
    assert ping(lab, "node2", WITNESS)
    lab.faults.host_up("node1")
    assert ping(lab, "client", N1, count=1, wait_s=2)
    assert mysql_probe(lab, "node2", N1) == "ok"


def test_cut_link_separates_only_the_two_nodes(lab: Lab) -> None:
    lab.faults.cut_link()
    assert not ping(lab, "node2", N1)
    assert not ping(lab, "node1", N2)
    assert ping(lab, "client", N1) and ping(lab, "client", N2)
    assert ping(lab, "node1", WITNESS) and ping(lab, "node2", WITNESS)
    assert tcp_probe(lab, "node2", N1, timeout_s=1) == "timeout"
    lab.faults.heal_link()
    assert ping(lab, "node2", N1, wait_s=2)
    assert mysql_probe(lab, "node2", N1) == "ok"


def test_loss_drops_a_measurable_share(lab: Lab) -> None:
    lab.faults.loss("node1", 50)
    lost = loss_percent(lab, "client", N1, count=100)
    assert 25 <= lost <= 75, lost
    assert loss_percent(lab, "client", N2, count=20) == 0
    lab.faults.loss_clear("node1")
    assert loss_percent(lab, "client", N1, count=20) == 0


def test_throttle_slows_what_the_node_sends(lab: Lab) -> None:
    (lab.paths.node("node1").opt / "apache/htdocs/big").write_bytes(b"x" * 200_000)
    url = f"http://{N1}/big"
    argv = ["curl", "-s", "--noproxy", "*", "-m", "20", "-o", "/dev/null", "-w", "%{time_total}"]

    def fetch_s() -> float:
        return float(lab.run_in("client", [*argv, url], timeout=30).stdout)

    assert fetch_s() < 0.5
    lab.faults.throttle("node1", "2mbit")  # 200 kB = 1.6 Mbit: about 0.8 s
    assert fetch_s() > 0.5
    lab.faults.throttle_clear("node1")
    assert fetch_s() < 0.5
    with pytest.raises(FaultError):
        lab.faults.throttle("node1", "fast")


def test_isolate_cuts_the_node_from_everyone(lab: Lab) -> None:
    lab.faults.isolate("node2")
    assert not ping(lab, "node2", N1)
    assert not ping(lab, "node2", WITNESS)
    assert not ping(lab, "client", N2)
    assert ping(lab, "node1", WITNESS) and ping(lab, "client", N1)
    assert lab.run_in("node2", ["hostname"]).stdout.strip() == "node2"  # still running
    lab.faults.unisolate("node2")
    assert ping(lab, "node2", N1) and ping(lab, "client", N2)


@pytest.mark.parametrize("node,address", [("node1", N1), ("node2", N2)])
def test_too_many_connections_refuses_even_the_super_user(
    lab: Lab, node: str, address: str
) -> None:
    lab.faults.too_many_connections(node)
    peer = "node2" if node == "node1" else "node1"
    assert mysql_probe(lab, peer, address) == "1040"
    assert mysql_probe(lab, "client", address, user="app") == "1040"
    assert tcp_probe(lab, peer, address) == "greeting"  # alive: it answers, with an error
    lab.faults.restore_connections(node)
    assert mysql_probe(lab, peer, address) == "ok"
    assert lab.sql(node, "SELECT @@global.max_connections").strip() == "151"


def test_clear_all_undoes_several_faults(lab: Lab) -> None:
    lab.faults.cut_link()
    lab.faults.loss("node1", 100)
    lab.faults.isolate("node2")
    lab.faults.freeze("node2")
    state = lab.state()
    assert state is not None and set(state.faults) == {"cut-link", "loss", "isolate", "freeze"}
    assert lab.status()["faults"]
    lab.faults.clear_all()
    assert ping(lab, "node2", N1) and ping(lab, "client", N1) and ping(lab, "client", N2)
    assert mysql_probe(lab, "node2", N1) == "ok"
    assert mysql_probe(lab, "node1", N2) == "ok"


def test_replication_still_healthy_after_the_faults(lab: Lab) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = lab.status()
        replica = status["nodes"]["node2"]["replica"]
        running = replica and replica["io_running"] == replica["sql_running"] == "Yes"
        if running and replica["seconds_behind"] == 0:  # both threads, and caught up
            break
        time.sleep(0.5)
    assert replica["seconds_behind"] == 0
    assert status["vip_http"] == "node1"
    assert status["ssh_node2_to_node1"] is True


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "monha.lab.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_faults_from_the_command_line(lab: Lab) -> None:
    p = ("--prefix", lab.prefix)
    done = _cli("fault", *p, "loss", "node1", "100")
    assert done.returncode == 0, done.stderr
    assert not ping(lab, "client", N1)
    assert _cli("fault", *p, "loss-clear", "node1").returncode == 0
    assert ping(lab, "client", N1)
    assert _cli("fault", *p, "loss", "node1").returncode == 1  # no percent
    done = _cli("fault", *p, "loss", "node1", "100", "both", "arp")
    assert done.returncode == 0 and "ARP included" in done.stdout, done.stderr
    assert not ping(lab, "node1", N2)  # what node1 sends is dropped too
    assert _cli("fault", *p, "loss", "node1", "30", "sideways").returncode == 1
    assert _cli("fault", *p, "loss-clear", "node1").returncode == 0
    done = _cli("fault", *p, "freeze-mysqld", "node1")
    assert done.returncode == 0, done.stderr
    assert tcp_probe(lab, "node2", N1) == "no-greeting"
    assert _cli("fault", *p, "thaw-mysqld", "node1").returncode == 0
    assert tcp_probe(lab, "node2", N1) == "greeting"
    assert _cli("fault", *p, "freeze", "node3").returncode == 1
    assert _cli("fault", *p, "cut-link", "node1").returncode == 1
    assert _cli("fault", "--prefix", "nolab", "cut-link").returncode == 3
    assert _cli("fault", *p, "clear-all").returncode == 0
