"""The lab on Oracle MySQL (`monha-lab up --server mysql`): replication by GTID, the users made
the MySQL way, status naming MySQL, the programs monha runs on a node, the faults, mysqld_safe,
and `down` leaving nothing behind. One lab for the module; its last tests replace it (under
mysqld_safe) and then take it down."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest

from monha.config import load_config
from monha.lab import mysql_server, sshd
from monha.lab.faults import lab_pids
from monha.lab.lab import Lab
from monha.lab.mysql_rootfs import rootfs_dir
from monha.lab.names import ADDRESSES, VIP
from monha.lab.proc import is_alive
from tests.lab.support import (
    eventually,
    lab_for_module,
    lab_traces,
    mysql_probe,
    tcp_probe,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_module(server="mysql")


def _quiet(_message: str) -> None:
    pass


def test_up_records_the_server(lab: Lab) -> None:
    state = lab.state()
    assert state is not None and state.phase == "up" and state.server == "mysql"
    assert lab.db is mysql_server
    assert state.up_seconds is not None and state.up_seconds < 90
    print(f"\nMySQL lab up in {state.up_seconds} s")


def test_status_shows_mysql(lab: Lab) -> None:
    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "monha.lab.cli", "status", "--prefix", lab.prefix, *args],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip

    status = json.loads(cli("--json"))
    assert status["server"] == "mysql"
    n1, n2 = status["nodes"]["node1"], status["nodes"]["node2"]
    for n in (n1, n2):
        assert n["mariadbd_alive"] and n["server_version"].startswith("9."), n
    assert n1["read_only"] is False and n2["read_only"] is True
    assert n1["replica"] is None
    assert n2["replica"]["io_running"] == "Yes" and n2["replica"]["sql_running"] == "Yes"
    assert n2["replica"]["source_host"] == ADDRESSES["node1"]
    assert n2["replica"]["seconds_behind"] == 0
    assert n1["services"]["zabbix-server"] == "running"
    assert n2["services"]["zabbix-server"] == "stopped"
    assert status["vip_http"] == "node1" and status["ssh_node2_to_node1"] is True
    table = cli()
    assert ", MySQL" in table and "mysqld pid" in table and "9.7" in table, table


def test_replication_by_gtid_with_distinct_server_uuids(lab: Lab) -> None:
    settings = "SELECT @@gtid_mode, @@enforce_gtid_consistency, @@log_bin, @@server_uuid"
    one, two = (lab.sql(n, settings).split() for n in ("node1", "node2"))
    assert one[:3] == two[:3] == ["ON", "ON", "1"]
    assert one[3] != two[3], "each copy of the template must make its own server_uuid"
    assert lab.sql("node2", "SELECT @@super_read_only").strip() == "1"
    rs = lab.db.replica_status(lab.socket("node2"))
    assert (rs["Auto_Position"], rs["Source_Retry_Count"], rs["Connect_Retry"]) == (
        "1",
        "86400",
        "1",
    )
    lab.sql("node1", "CREATE TABLE labdb.repl_t (i INT PRIMARY KEY)")
    lab.sql("node1", "INSERT INTO labdb.repl_t VALUES (7)")
    gtid = "".join(lab.sql("node1", "SELECT @@gtid_executed").split())
    assert gtid.startswith(one[3] + ":"), gtid
    assert lab.sql("node2", f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{gtid}', 10)").strip() == "0"
    assert lab.sql("node2", "SELECT i FROM labdb.repl_t").strip() == "7"
    assert lab.sql("node2", "SELECT @@server_id").strip() == "102"


def test_users_are_made_the_mysql_way(lab: Lab) -> None:
    rows = lab.sql(
        "node1",
        "SELECT user, plugin FROM mysql.user WHERE user IN ('mha', 'repl', 'app', 'zabbix') "
        "ORDER BY user",
    )
    assert [r.split("\t") for r in rows.splitlines()] == [
        [u, "caching_sha2_password"] for u in ("app", "mha", "repl", "zabbix")
    ]
    # Over plain TCP (the server's RSA key exchange), as the load and monha log in.
    assert mysql_probe(lab, "client", VIP, user="app", statement="SELECT 1") == "ok"
    assert mysql_probe(lab, "node2", ADDRESSES["node1"], user="mha") == "ok"
    # The replica's read-only protects it from the app user.
    blocked = mysql_probe(
        lab, "client", ADDRESSES["node2"], user="app",
        statement="CREATE TABLE labdb.nope (i INT PRIMARY KEY)",
    )  # fmt: skip
    assert blocked == "1290", blocked


def _over_ssh(lab: Lab, argv: list[str] | tuple[str, ...], stdin: str = "") -> str:
    command = shlex.join(argv)
    done = subprocess.run(
        lab.node_argv("node2", sshd.ssh_check_argv("node1", command)),
        input=stdin, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_programs_monha_runs_work_on_the_nodes(lab: Lab) -> None:
    cfg = load_config(lab.config_copy)
    check = [a.replace("{mysql_port}", "3306") for a in cfg.probe.ssh_mysql_check]
    assert check[0] == "/opt/monha-lab/bin/mysqladmin"
    _over_ssh(lab, ["timeout", "-k", "0.2", "2", *check])
    index = str(cfg.salvage.binlog_index)
    files = _over_ssh(lab, ["cat", index]).split()
    assert files and files[0].startswith("./mysql-bin."), files
    dump = _over_ssh(lab, [str(cfg.salvage.binlog_tool), "-v", f"/run/mysqld/data/{files[-1]}"])
    assert "GTID_NEXT" in dump and "repl_t" in dump
    applied = _over_ssh(lab, cfg.salvage.apply_command, stdin="SELECT 40 + 2 AS answer;\n")
    assert applied.split() == ["answer", "42"]
    # A hostile argument stays one argument: the wrapper passes "$@" on untouched.
    odd = _over_ssh(lab, [*cfg.salvage.apply_command, "-e", "SELECT 'a;b $(x)' AS v"])
    assert odd.split("\n")[1] == "a;b $(x)"


def test_kill_and_start_mysqld(lab: Lab) -> None:
    old = lab.faults.kill_mysqld("node1")
    assert not is_alive(old)  # every thread gone: its port is closed
    assert tcp_probe(lab, "node2", ADDRESSES["node1"]) == "refused"
    new = lab.faults.start_mysqld("node1")
    assert new != old and lab.db.server_pid(lab.paths, "node1") == new
    eventually(
        lambda: lab.db.replica_view(lab.socket("node2")).get("io_running") == "Yes",
        20,
        "the replica to reconnect",
    )


def test_freeze_mysqld_and_too_many_connections(lab: Lab) -> None:
    pid = lab.faults.freeze_mysqld("node1")
    try:
        assert tcp_probe(lab, "node2", ADDRESSES["node1"]) == "no-greeting"
    finally:
        assert lab.faults.thaw_mysqld("node1") == [pid]
    assert mysql_probe(lab, "node2", ADDRESSES["node1"]) == "ok"
    report = lab.faults.too_many_connections("node1")
    try:
        assert "held=" in report
        assert mysql_probe(lab, "node2", ADDRESSES["node1"]) == "1040"
    finally:
        lab.faults.restore_connections("node1")
    assert mysql_probe(lab, "node2", ADDRESSES["node1"]) == "ok"
    assert lab.sql("node1", "SELECT @@global.max_connections").strip() == "151"


def test_host_down_and_loss(lab: Lab) -> None:
    lab.faults.host_down("node1")
    try:
        assert tcp_probe(lab, "node2", ADDRESSES["node1"]) == "timeout"
    finally:
        lab.faults.host_up("node1")
    assert mysql_probe(lab, "node2", ADDRESSES["node1"]) == "ok"
    lab.faults.loss("node1", 100)
    try:
        assert tcp_probe(lab, "node2", ADDRESSES["node1"]) == "timeout"
    finally:
        lab.faults.loss_clear("node1")
    assert mysql_probe(lab, "node2", ADDRESSES["node1"]) == "ok"


def test_mysqld_safe_restarts_a_killed_mysqld(lab: Lab) -> None:
    lab.up(replace=True, supervised=True, server="mysql", log=_quiet)
    state = lab.state()
    assert state is not None and state.mysqld_safe and state.server == "mysql"
    old = lab.faults.kill_mysqld("node1")
    eventually(
        lambda: (
            lab.db.server_pid(lab.paths, "node1") not in (None, old)
            and mysql_probe(lab, "node2", ADDRESSES["node1"]) == "ok"
        ),
        40,
        "mysqld_safe to restart mysqld",
    )
    assert lab.faults.start_mysqld("node1") == lab.db.server_pid(lab.paths, "node1")


def test_down_leaves_nothing(lab: Lab) -> None:
    state = lab.state()
    assert state is not None
    pids = [r.pid for r in state.procs] + lab_pids(lab)
    assert len(pids) > 10
    assert lab.down(log=_quiet) == []
    assert lab_traces(lab) == {"netns": [], "mounts": [], "paths": []}
    alive = [p for p in pids if is_alive(p)]
    assert alive == [], alive
    # Nothing chrooted into the MySQL tree is left either (its bind mounts die with it).
    tree = str(rootfs_dir())
    left = subprocess.run(["pgrep", "-f", "-a", tree], capture_output=True, text=True).stdout
    assert lab.prefix not in left, left
