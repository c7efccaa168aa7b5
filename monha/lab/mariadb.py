"""MariaDB for the lab: a cached template datadir, per-node config, start, SQL, replication.

Importing Zabbix's schema takes ~18 s, so it is done once into a template datadir cached under
/var/cache/monha-lab/template-<key>/ (the key hashes the server version, the Zabbix schema files
and the recipe below). Each node gets a copy; the template has no binary log, so both nodes
start with identical data and empty binlogs and node2 can replicate node1 from the start of
node1's binlog (GTID mode `slave_pos`, both positions empty). Lab SQL runs as MariaDB's root
over the node's socket (unix_socket authentication, as the machine's root).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from monha.lab import db_common
from monha.lab.db_common import first_row
from monha.lab.names import (
    ADDRESSES,
    APP_DATABASE,
    CACHE_ROOT,
    MYSQL_PORT,
    SERVER_IDS,
    USERS,
    LabPaths,
)
from monha.lab.proc import CommandError, is_alive, read_pid_file, run, spawn

ZABBIX_SQL_DIR = Path("/usr/share/zabbix-server-mysql")
ZABBIX_SQL_FILES = ("schema.sql.gz", "images.sql.gz", "data.sql.gz")
MYSQL_USER = "mysql"

NAME = "mariadb"
DAEMON = "mariadbd"  # the name the lab records the unsupervised server under
DISPLAY = "MariaDB"
BINLOG_STATUS_SQL = "SHOW BINLOG STATUS"
GTID_EXECUTED_SQL = "SELECT @@GLOBAL.gtid_binlog_pos"

# Bump when the recipe changes in a way the hash below cannot see.
TEMPLATE_RECIPE = "2"

# Settings shared by the template build and the nodes (a different redo log size would make
# the copied datadir rebuild its log on first start).
_COMMON_CNF = """\
innodb_buffer_pool_size = 48M
innodb_log_file_size = 16M
performance_schema = 0
character_set_server = utf8mb4
collation_server = utf8mb4_bin
skip_name_resolve = 1
"""

_TEMPLATE_SQL = f"""\
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE USER 'mha'@'%' IDENTIFIED BY '{USERS["mha"]}';
GRANT ALL PRIVILEGES ON *.* TO 'mha'@'%' WITH GRANT OPTION;
CREATE USER 'repl'@'%' IDENTIFIED BY '{USERS["repl"]}';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';
CREATE DATABASE {APP_DATABASE};
CREATE USER 'app'@'%' IDENTIFIED BY '{USERS["app"]}';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON {APP_DATABASE}.* TO 'app'@'%';
CREATE DATABASE zabbix CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'zabbix'@'localhost' IDENTIFIED BY '{USERS["zabbix"]}';
GRANT ALL PRIVILEGES ON zabbix.* TO 'zabbix'@'localhost';
"""


def client_argv(socket: Path, *extra: str) -> list[str]:
    """The mariadb client as MariaDB's root over `socket`, reading no option files."""
    return [
        "mariadb",
        "--no-defaults",
        f"--socket={socket}",
        "-uroot",
        "--connect-timeout=2",
        *extra,
    ]


def sql(socket: Path, statement: str, *, timeout: float = 10.0, database: str = "") -> str:
    """Run SQL as root over the socket; return tab-separated rows without headers."""
    argv = client_argv(socket, "-N", "-B", "-e", statement)
    if database:
        argv.append(database)
    return run(argv, timeout=timeout).stdout


def query_vertical(socket: Path, statement: str, *, timeout: float = 3.0) -> dict[str, str]:
    """The first row of a statement's result as {column: value} (empty if no rows)."""
    return first_row(run(client_argv(socket, "-E", "-e", statement), timeout=timeout).stdout)


def is_ready(socket: Path) -> bool:
    try:
        sql(socket, "SELECT 1", timeout=3)
    except CommandError:
        return False
    return True


def wait_ready(socket: Path, pid: int | None, timeout: float = 60.0) -> None:
    db_common.wait_ready(lambda: is_ready(socket), socket, pid, timeout, DAEMON, DISPLAY)


# --- the template datadir ---------------------------------------------------------------


def template_key() -> str:
    digest = hashlib.sha256()
    digest.update(run(["mariadbd", "--version"]).stdout.encode())
    for name in ZABBIX_SQL_FILES:
        digest.update(name.encode())
        digest.update(hashlib.sha256((ZABBIX_SQL_DIR / name).read_bytes()).digest())
    digest.update((TEMPLATE_RECIPE + _COMMON_CNF + _TEMPLATE_SQL).encode())
    return digest.hexdigest()[:16]


def template_dir() -> Path:
    return CACHE_ROOT / f"template-{template_key()}"


def ensure_template(log: Callable[[str], None] = print) -> tuple[Path, bool]:
    """The template datadir, building it if it is not cached; returns (datadir, built_now)."""
    return db_common.cached_template(
        template_dir(),
        ".lock",
        _build_template,
        lambda: log(
            "building the MariaDB+Zabbix template datadir (first up on this machine; "
            "about 20-40 s, cached for later runs)"
        ),
    )


def _build_template(final: Path) -> None:
    work = final.with_name(final.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    data.mkdir(parents=True)
    shutil.chown(work, MYSQL_USER, MYSQL_USER)
    shutil.chown(data, MYSQL_USER, MYSQL_USER)
    socket = work / "build.sock"
    cnf = work / "my.cnf"
    cnf.write_text(
        "[mysqld]\n"
        f"user = {MYSQL_USER}\n"
        f"datadir = {data}\n"
        f"socket = {socket}\n"
        f"pid_file = {work / 'build.pid'}\n"
        f"log_error = {work / 'build.err'}\n"
        "skip_networking = 1\n"
        "skip_log_bin = 1\n"
        # Durability does not matter while building a throw-away template: speed does.
        "innodb_flush_log_at_trx_commit = 0\n"
        "innodb_doublewrite = 0\n" + _COMMON_CNF
    )
    run(
        [
            "mariadb-install-db",
            f"--defaults-file={cnf}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        timeout=120,
    )
    pid = spawn(["mariadbd", f"--defaults-file={cnf}"], work / "build.out")
    try:
        wait_ready(socket, pid)
        sql(socket, _TEMPLATE_SQL)
        for name in ZABBIX_SQL_FILES:
            body = gzip.decompress((ZABBIX_SQL_DIR / name).read_bytes()).decode()
            script = "SET foreign_key_checks=0; SET unique_checks=0; SET autocommit=0;\n"
            run(
                client_argv(socket, "zabbix"),
                input=script + body + "\nCOMMIT;\n",
                timeout=300,
            )
        run(["mariadb-admin", "--no-defaults", f"--socket={socket}", "-uroot", "shutdown"])
    finally:
        deadline = time.monotonic() + 60
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(pid):
            run(["kill", "-9", str(pid)], check=False)
    for name in ("build.sock", "build.pid"):
        (work / name).unlink(missing_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)


# --- per node ---------------------------------------------------------------------------


# Semi-sync on both nodes (either may be the primary). AFTER_SYNC: a commit is acknowledged to
# the client only once a replica has the event, so a primary host that dies loses no
# acknowledged write. wait_no_slave=OFF: a primary without a replica (the new one right after a
# failover) runs asynchronously at once instead of stalling each commit for the timeout.
SEMI_SYNC_CNF = """\
rpl_semi_sync_master_enabled = 1
rpl_semi_sync_slave_enabled = 1
rpl_semi_sync_master_wait_point = AFTER_SYNC
rpl_semi_sync_master_timeout = 3000
rpl_semi_sync_master_wait_no_slave = OFF
"""


def my_cnf(paths: LabPaths, node: str, *, semi_sync: bool = False) -> str:
    d = paths.node(node)
    read_only = 0 if node == "node1" else 1
    return (
        "[mysqld]\n"
        f"user = {MYSQL_USER}\n"
        f"datadir = {d.datadir}\n"
        f"socket = {d.socket}\n"
        f"pid_file = {d.mysql_pid_file}\n"
        f"log_error = {d.mysql_error_log}\n"
        f"port = {MYSQL_PORT}\n"
        "bind_address = 0.0.0.0\n"
        f"server_id = {SERVER_IDS[node]}\n"
        "log_bin = mysql-bin\n"
        "relay_log = relay-bin\n"
        "log_slave_updates = 1\n"
        "binlog_format = ROW\n"
        "gtid_strict_mode = 0\n"
        f"read_only = {read_only}\n"
        # A heartbeat every second (set by CHANGE MASTER, unless the lab is brought up with
        # the server's default: half this) and a short silence limit make the replica notice
        # a dead or restarted primary quickly.
        "slave_net_timeout = 3\n"
        + (SEMI_SYNC_CNF if semi_sync else "")
        + _COMMON_CNF
        + "\n[mysqld_safe]\n"
        "skip_syslog\n"
        f"log_error = {d.mysql_error_log}\n"
        f"pid_file = {d.mysql_pid_file}\n"
    )


def install_node(paths: LabPaths, node: str, template: Path, *, semi_sync: bool = False) -> None:
    """Copy the template into the node's datadir and write its my.cnf."""
    d = paths.node(node)
    d.mysql.mkdir(parents=True, exist_ok=True)
    d.conf.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", "--reflink=auto", str(template), str(d.datadir)], timeout=120)
    run(["chown", "-R", f"{MYSQL_USER}:{MYSQL_USER}", str(d.mysql)])
    d.mysql.chmod(0o755)
    d.my_cnf.write_text(my_cnf(paths, node, semi_sync=semi_sync))


def server_argv(paths: LabPaths, node: str, *, supervised: bool) -> list[str]:
    """The command that starts the node's server (to be run inside the node namespaces)."""
    cnf = f"--defaults-file={paths.node(node).my_cnf}"
    if supervised:
        return ["/usr/bin/mysqld_safe", cnf]
    return ["/usr/sbin/mariadbd", cnf]


def mariadbd_pid(paths: LabPaths, node: str) -> int | None:
    """The live mariadbd's PID from its pid file, or None."""
    pid = read_pid_file(paths.node(node).mysql_pid_file)
    return pid if pid is not None and is_alive(pid) else None


def server_pid(paths: LabPaths, node: str) -> int | None:
    return mariadbd_pid(paths, node)


def write_wrappers(paths: LabPaths, node: str) -> None:
    """Nothing to wrap: MariaDB's programs are the host's own."""


def before_start(paths: LabPaths, node: str) -> None:
    """Nothing to clear: mariadbd starts over a killed one's leftovers."""


# MASTER_HEARTBEAT_PERIOD left out of CHANGE MASTER: the server's default applies, half its
# slave_net_timeout (the lab's my.cnf sets 3 s: a heartbeat every 1.5 s).
SERVER_DEFAULT_HEARTBEAT_S = 1.5


def change_master_sql(primary: str, heartbeat_period_s: float | None = 1.0) -> str:
    """CHANGE MASTER to `primary`; `heartbeat_period_s` None leaves the heartbeat period to
    the server's default (SERVER_DEFAULT_HEARTBEAT_S on the lab)."""
    heartbeat = (
        "" if heartbeat_period_s is None else f", MASTER_HEARTBEAT_PERIOD={heartbeat_period_s:g}"
    )
    return (
        "CHANGE MASTER TO "
        f"MASTER_HOST='{ADDRESSES[primary]}', MASTER_PORT={MYSQL_PORT}, "
        f"MASTER_USER='repl', MASTER_PASSWORD='{USERS['repl']}', "
        f"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1{heartbeat}"
    )


def start_replication(
    paths: LabPaths, replica: str, primary: str, heartbeat_period_s: float | None = 1.0
) -> None:
    sql(paths.socket(replica), f"{change_master_sql(primary, heartbeat_period_s)}; START SLAVE")


def replica_status(socket: Path, timeout: float = 3.0) -> dict[str, str]:
    return query_vertical(socket, "SHOW SLAVE STATUS", timeout=timeout)


def replica_view(socket: Path, timeout: float = 3.0) -> dict[str, str]:
    """The replica's state under server-neutral names (empty if it replicates from nobody)."""
    return db_common.view_of(replica_status(socket, timeout), _VIEW_COLUMNS)


_VIEW_COLUMNS = {
    "source_host": "Master_Host",
    "io_running": "Slave_IO_Running",
    "sql_running": "Slave_SQL_Running",
    "seconds_behind": "Seconds_Behind_Master",
    "last_io_error": "Last_IO_Error",
    "last_sql_error": "Last_SQL_Error",
    "last_sql_errno": "Last_SQL_Errno",
    "skip_counter": "Skip_Counter",
    "gtid_position": "Gtid_IO_Pos",
    "source_log_file": "Master_Log_File",
    "read_source_log_pos": "Read_Master_Log_Pos",
}


def wait_replicating(paths: LabPaths, replica: str, timeout: float = 30.0) -> dict[str, str]:
    return db_common.wait_replicating(lambda: replica_view(paths.socket(replica)), replica, timeout)
