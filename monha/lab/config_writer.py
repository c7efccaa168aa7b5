"""The monha configuration the lab installs: one file, identical on both nodes.

Same schema as config.example.toml, with the lab's values: init scripts under
/opt/monha-lab/init.d, the local server at /run/mysqld/mysqld.sock and its pid file at
/run/mysqld/mysqld.pid (each node's socket dir is mounted there inside the node, so one path
names each node's own), the witness on the lan bridge, hot-standby URLs through the VIP.
On a MySQL lab the programs monha runs on a node (the SSH MySQL check, the binlog tool, the
salvage/rejoin apply command) are the wrappers /opt/monha-lab/bin/{mysqladmin,mysqlbinlog,mysql}
that run MySQL's own programs chrooted into its tree (monha.lab.mysql_server).
This module only renders text and writes files; it never validates against monha.config.
"""

from __future__ import annotations

from pathlib import Path

from monha.config import Mysql as MysqlSection
from monha.lab.mysql_server import IN_NODE_BIN
from monha.lab.names import (
    ADDRESSES,
    IN_NODE_ETC,
    IN_NODE_INIT_D,
    IN_NODE_PID_FILE,
    IN_NODE_SOCKET,
    METRICS_PORT,
    MYSQL_PORT,
    NODE_IFACE,
    NODES,
    SUBNET_PREFIXLEN,
    USERS,
    VIP,
    VIP_LABEL,
    WS_PORT,
    LabPaths,
)


def _argv(*items: str) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _apply(client: str) -> str:
    return _argv(
        client, "--no-defaults", "--user=root", f"--socket={IN_NODE_SOCKET}",
        "--batch", "--binary-mode",
    )  # fmt: skip


def _server_tools(server: str) -> tuple[str, str, str, str]:
    """(binlog_tool, apply_command, extra [probe] lines, extra [mysql] lines) for `server`."""
    if server != "mysql":
        return "/usr/bin/mariadb-binlog", _apply("/usr/bin/mariadb"), "", ""
    check = _argv(
        f"{IN_NODE_BIN}/mysqladmin", "--no-defaults", "--connect-timeout=1",
        "--protocol=tcp", "--host=127.0.0.1", "--port={mysql_port}", "ping",
    )  # fmt: skip
    probe = (
        "# MySQL's own mysqladmin, chrooted into its tree by the wrapper.\n"
        f"ssh_mysql_check = {check}\n"
    )
    mysql = ""
    # Only where monha knows the setting (it is newer than the lab's MySQL support).
    if "defaults_command" in MysqlSection.model_fields:
        mysql = (
            "# The node's my.cnf as MySQL reads it (the host's /etc/mysql is MariaDB's).\n"
            f"defaults_command = {_argv(f'{IN_NODE_BIN}/my_print_defaults', 'mysqld', 'server')}\n"
        )
    return f"{IN_NODE_BIN}/mysqlbinlog", _apply(f"{IN_NODE_BIN}/mysql"), probe, mysql


def render(paths: LabPaths, server: str = "mariadb") -> str:
    init = IN_NODE_INIT_D
    binlog_tool, apply, ssh_check, mysql_extra = _server_tools(server)
    nodes = "\n".join(
        f"""[[nodes]]
name = "{node}"
address = "{ADDRESSES[node]}"
mysql_port = {MYSQL_PORT}
ssh_user = "root"
ssh_port = 22
interface = "{NODE_IFACE}"
"""
        for node in NODES
    )
    return f"""\
# monha configuration written by `monha-lab up` (lab prefix {paths.prefix!r}, {server}).
# Identical on both nodes: node-private paths (/run, /etc/monha, /var/lib/monha) are mounted
# per node inside the lab's mount namespaces.

[cluster]
name = "monha-lab-{paths.prefix}"

{nodes}
[ssh]
key_file = "{IN_NODE_ETC}/ssh/id_ed25519"
known_hosts = "{IN_NODE_ETC}/ssh/known_hosts"
connect_timeout_s = 3.0

[vip]
address = "{VIP}"
prefix = {SUBNET_PREFIXLEN}
label = "{VIP_LABEL}"
arp_count = 1

[mysql]
monitor_user = "mha"
monitor_password_file = "{IN_NODE_ETC}/mysql-monitor.password"
replication_user = "repl"
replication_password_file = "{IN_NODE_ETC}/mysql-repl.password"
local_socket = "{IN_NODE_SOCKET}"
# the server's pid file, the same path on both nodes: a fence that gets no answer from a hung
# mysqld kills the pid it names.
pid_file = "{IN_NODE_PID_FILE}"
connect_timeout_s = 1.0
heartbeat_period_s = 1.0
{mysql_extra}
[probe]
interval_s = 1.0
mysql_timeout_s = 1.0
icmp_timeout_s = 1.0
ssh_timeout_s = 2.0
failures_before_failover = 3
replica_silence_s = 3.0
{ssh_check}
[[witness]]
name = "lan-witness"
address = "{ADDRESSES["lan"]}"
ssh_user = "root"  # an sshd in the LAN namespace: monha asks it whether it sees the primary

[failover]
flag_file = "/var/lib/monha/failover.flag"
journal_file = "/var/lib/monha/journal.json"
catchup_timeout_s = 30.0
fence_timeout_s = 10.0
promote_timeout_s = 10.0
vip_timeout_s = 5.0

[salvage]
# The node's datadir is /run/mysqld/data inside the node (log_bin = mysql-bin, relative).
binlog_index = "/run/mysqld/data/mysql-bin.index"
binlog_tool = "{binlog_tool}"
apply_command = {apply}
timeout_s = 20.0

[[services.cold_standby]]
name = "zabbix-server"
start = {_argv(f"{init}/zabbix-server", "start")}
stop = {_argv(f"{init}/zabbix-server", "stop")}
status = {_argv(f"{init}/zabbix-server", "status")}
timeout_s = 30.0

[[services.hot_standby]]
name = "apache"
url = "http://{VIP}/"
expect_status = 200
timeout_s = 3.0

[[services.hot_standby]]
name = "getperf-ws"
url = "http://{VIP}:{WS_PORT}/axis2/"
expect_status = 200
timeout_s = 3.0

[[services.agents]]
name = "getperf-agent"
restart = {_argv(f"{init}/getperf-agent", "restart")}
run_on = "new_primary"
timeout_s = 30.0

[metrics]
listen_address = "0.0.0.0"
listen_port = {METRICS_PORT}

[control]
socket = "/run/monha/control.sock"

[log]
format = "auto"
level = "info"
"""


def write(paths: LabPaths, server: str = "mariadb") -> None:
    """Install the config and the password files (0600) in both nodes; copy it for the host."""
    text = render(paths, server)
    for node in NODES:
        d = paths.node(node)
        for sub in (d.etc_monha, d.var_lib_monha, d.var_log_monha, d.run / "monha"):
            sub.mkdir(parents=True, exist_ok=True)
        (d.etc_monha / "monha.toml").write_text(text)
        for name, secret in (("mysql-monitor", USERS["mha"]), ("mysql-repl", USERS["repl"])):
            _write_secret(d.etc_monha / f"{name}.password", secret)
    paths.config_copy.write_text(text)


def _write_secret(path: Path, secret: str) -> None:
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(secret)
