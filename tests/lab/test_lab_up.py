"""The lab after `up`: replication, VIP, HTTP, SSH, services, config, node privacy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from monha.lab import sshd
from monha.lab.lab import Lab
from monha.lab.names import VIP
from tests.lab.support import http, lab_for_module, mysql_probe, ping

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_module()


def test_up_is_fast_and_recorded(lab: Lab) -> None:
    state = lab.state()
    assert state is not None and state.phase == "up"
    assert state.up_seconds is not None and state.up_seconds < 60


def test_status_json_from_the_cli(lab: Lab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monha.lab.cli", "status", "--json", "--prefix", lab.prefix],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status = json.loads(done.stdout)
    n1, n2 = status["nodes"]["node1"], status["nodes"]["node2"]
    assert n1["namespaces"] and n2["namespaces"]
    assert n1["mariadbd_alive"] and n2["mariadbd_alive"]
    assert n1["read_only"] is False and n2["read_only"] is True
    assert n1["replica"] is None
    assert n2["replica"]["io_running"] == "Yes"
    assert n2["replica"]["sql_running"] == "Yes"
    assert n2["replica"]["seconds_behind"] == 0
    assert n1["sshd_alive"] and n2["sshd_alive"]
    assert n1["services"] == {
        "zabbix-server": "running", "apache": "running", "getperf-agent": "running"
    }  # fmt: skip
    assert n2["services"] == {
        "zabbix-server": "stopped", "apache": "running", "getperf-agent": "stopped"
    }  # fmt: skip
    assert n1["apache_answers"] and n2["apache_answers"]
    assert n1["getperf_ws_answers"] and n2["getperf_ws_answers"]
    assert status["vip_holders"] == ["node1"]
    assert status["vip_http"] == "node1"
    assert status["ssh_node2_to_node1"] is True
    table = subprocess.run(
        [sys.executable, "-m", "monha.lab.cli", "status", "--prefix", lab.prefix],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "holds VIP" in table and "HTTP via VIP" in table


def test_vip_answers_from_the_client(lab: Lab) -> None:
    assert ping(lab, "client", VIP)
    assert http(lab, "client", f"http://{VIP}/") == "node1"
    assert http(lab, "client", f"http://{VIP}:57000/axis2/") == "getperf-ws node1"
    assert ping(lab, "client", "192.168.10.254")


def test_ssh_node2_to_node1_with_strict_host_keys(lab: Lab) -> None:
    done = lab.run_in("node2", sshd.ssh_check_argv("node1"), timeout=15)
    assert (done.returncode, done.stdout.strip()) == (0, "node1"), done.stderr
    back = lab.run_in("node1", sshd.ssh_check_argv("node2"), timeout=15)
    assert back.stdout.strip() == "node2", back.stderr
    # The monha config's own key and known_hosts work too.
    argv = [
        "ssh", "-i", "/etc/monha/ssh/id_ed25519",
        "-o", "UserKnownHostsFile=/etc/monha/ssh/known_hosts",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@192.168.10.1", "hostname",
    ]  # fmt: skip
    assert lab.run_in("node2", argv, timeout=15).stdout.strip() == "node1"


def test_app_user_is_refused_on_the_read_only_replica(lab: Lab) -> None:
    create = "CREATE TABLE IF NOT EXISTS probe_t (i INT PRIMARY KEY)"
    assert mysql_probe(lab, "client", "192.168.10.1", user="app", statement=create) == "ok"
    assert mysql_probe(lab, "client", "192.168.10.2", user="app", statement=create) == "1290"
    insert = "INSERT INTO probe_t VALUES (1)"
    assert mysql_probe(lab, "client", "192.168.10.2", user="app", statement=insert) == "1290"
    assert mysql_probe(lab, "client", "192.168.10.2", user="mha") == "ok"


def test_writes_on_node1_replicate_to_node2(lab: Lab) -> None:
    lab.sql("node1", "CREATE TABLE labdb.repl_t (i INT PRIMARY KEY)")
    lab.sql("node1", "INSERT INTO labdb.repl_t VALUES (7)")
    gtid = lab.sql("node1", "SELECT @@gtid_binlog_pos").strip()
    lab.sql("node2", f"SELECT MASTER_GTID_WAIT('{gtid}', 10)")
    assert lab.sql("node2", "SELECT i FROM labdb.repl_t").strip() == "7"
    assert lab.sql("node2", "SELECT @@server_id").strip() == "102"


def test_nodes_have_private_files_and_hostnames(lab: Lab) -> None:
    for node in ("node1", "node2"):
        assert lab.run_in(node, ["hostname"]).stdout.strip() == node
        out = lab.run_in(node, ["cat", "/opt/monha-lab/apache/htdocs/index.html"]).stdout
        assert out.strip() == node
        assert lab.run_in(node, ["test", "-S", "/run/mysqld/mysqld.sock"]).returncode == 0
    lab.run_in("node2", ["touch", "/var/lib/monha/only-on-node2"], check=True)
    assert lab.run_in("node1", ["test", "-e", "/var/lib/monha/only-on-node2"]).returncode == 1
    assert (lab.paths.node("node2").var_lib_monha / "only-on-node2").exists()
    assert lab.socket("node1").is_socket()


def test_the_monha_config_loads_inside_both_nodes(lab: Lab) -> None:
    assert lab.node_config("node1").read_text() == lab.node_config("node2").read_text()
    assert lab.config_copy.read_text() == lab.node_config("node1").read_text()
    check = (
        "from monha.config import load_config, load_secret\n"
        "c = load_config('/etc/monha/monha.toml')\n"
        "import os\n"
        "assert os.path.exists(c.mysql.local_socket), c.mysql.local_socket\n"
        "print(load_secret(c.mysql.monitor_password_file).get_secret_value(),"
        " load_secret(c.mysql.replication_password_file).get_secret_value())\n"
        "for s in c.services.cold_standby: assert os.access(s.start[0], os.X_OK)\n"
        "for a in c.services.agents: assert os.access(a.restart[0], os.X_OK)\n"
    )
    for node in ("node1", "node2"):
        done = lab.run_in(node, [sys.executable, "-c", check], timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["mha", "repl"]


def test_init_scripts_stop_and_start_zabbix_quickly(lab: Lab) -> None:
    assert lab.service("node1", "zabbix-server", "status").returncode == 0
    stop = lab.run_in("node1", ["/opt/monha-lab/init.d/zabbix-server", "stop"], timeout=30)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert lab.service("node1", "zabbix-server", "status").returncode == 3
    start = lab.run_in("node1", ["/opt/monha-lab/init.d/zabbix-server", "start"], timeout=30)
    assert start.returncode == 0, start.stdout + start.stderr
    assert lab.service("node1", "zabbix-server", "status").returncode == 0
    restart = lab.run_in("node2", ["/opt/monha-lab/init.d/getperf-agent", "restart"], timeout=30)
    assert restart.returncode == 0
    assert lab.service("node2", "getperf-agent", "status").returncode == 0
    lab.run_in("node2", ["/opt/monha-lab/init.d/getperf-agent", "stop"], check=True)


def test_exec_returns_the_exit_code(lab: Lab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monha.lab.cli", "exec", "--prefix", lab.prefix, "node2", "--",
         "sh", "-c", "hostname; exit 7"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (7, "node2")


def test_up_refuses_when_already_up(lab: Lab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monha.lab.cli", "up", "--prefix", lab.prefix],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 3
    assert "already up" in done.stderr


def test_load_subcommand_runs_the_generator_in_the_client_namespace(lab: Lab) -> None:
    pytest.importorskip("monha.lab.load")
    done = subprocess.run(
        [sys.executable, "-m", "monha.lab.cli", "load", "--prefix", lab.prefix, "--help"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout
