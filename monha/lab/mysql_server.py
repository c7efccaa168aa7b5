"""Oracle MySQL for the lab: a cached template datadir, per-node config, start, SQL, replication.

The counterpart of `mariadb` for `monha-lab up --server mysql`, with the same functions, so the
lab, its faults and its status call whichever the lab's record names (`server.for_name`). Every
MySQL program runs chrooted into the cached Debian-unstable tree of `mysql_rootfs`, which sees
the caller's /tmp, /run and /proc: the lab's datadirs, sockets and config files live under
/tmp/monha-lab/<prefix>, and inside a node /run/mysqld is that node's socket directory.

The template (Zabbix's schema imported, the lab's users created with caching_sha2_password,
no binary log, so no GTIDs) is built under /tmp, which the chroot sees, and then cached under
/var/cache/monha-lab/mysql-template-<key>; the key hashes the server's version, Zabbix's schema
files and the recipe. Each node's copy loses auto.cnf, so each server makes its own
server_uuid on first start (a copied uuid would make the replica refuse its source). mysqld
runs as root (`user = root`): the tree has no mysql user. Lab SQL runs as MySQL's root over the
node's socket with an empty password (`--initialize-insecure`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from monha.lab import db_common
from monha.lab.db_common import first_row
from monha.lab.mariadb import ZABBIX_SQL_DIR, ZABBIX_SQL_FILES, mariadbd_pid
from monha.lab.mysql_rootfs import chrooted, ensure_rootfs, server_version
from monha.lab.names import (
    ADDRESSES,
    APP_DATABASE,
    CACHE_ROOT,
    IN_NODE_OPT,
    MYSQL_PORT,
    SERVER_IDS,
    USERS,
    LabPaths,
)
from monha.lab.proc import CommandError, is_alive, run, spawn

NAME = "mysql"
DAEMON = "mysqld"  # the name the lab records the unsupervised server under
DISPLAY = "MySQL"
# What a kill of the server's PID hits, and the server's own status query for the binlog.
BINLOG_STATUS_SQL = "SHOW BINARY LOG STATUS"
GTID_EXECUTED_SQL = "SELECT @@GLOBAL.gtid_executed"

# Bump when the recipe changes in a way the hash below cannot see.
TEMPLATE_RECIPE = "1"

# The programs monha runs on a node (over SSH, or locally) that live in the tree: each gets a
# small wrapper at /opt/monha-lab/bin/<name> inside the node (and my_print_defaults one that
# reads the node's my.cnf).
WRAPPED = {
    "mysql": "/usr/bin/mysql",
    "mysqladmin": "/usr/bin/mysqladmin",
    "mysqlbinlog": "/usr/bin/mysqlbinlog",
}
IN_NODE_BIN = f"{IN_NODE_OPT}/bin"

# Shared by the template build and the nodes (the same redo log capacity on both sides).
_COMMON_CNF = """\
innodb_buffer_pool_size = 48M
innodb_redo_log_capacity = 32M
character_set_server = utf8mb4
collation_server = utf8mb4_bin
skip_name_resolve = ON
mysqlx = OFF
secure_file_priv = ""
"""

_TEMPLATE_SQL = f"""\
CREATE USER 'mha'@'%' IDENTIFIED WITH caching_sha2_password BY '{USERS["mha"]}';
GRANT ALL PRIVILEGES ON *.* TO 'mha'@'%' WITH GRANT OPTION;
CREATE USER 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY '{USERS["repl"]}';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';
CREATE DATABASE {APP_DATABASE};
CREATE USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY '{USERS["app"]}';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON {APP_DATABASE}.* TO 'app'@'%';
CREATE DATABASE zabbix CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'zabbix'@'localhost' IDENTIFIED WITH caching_sha2_password BY '{USERS["zabbix"]}';
GRANT ALL PRIVILEGES ON zabbix.* TO 'zabbix'@'localhost';
"""


def client_argv(socket: Path, *extra: str) -> list[str]:
    """The tree's mysql client as MySQL's root over `socket`, reading no option files."""
    return chrooted(
        [
            "/usr/bin/mysql",
            "--no-defaults",
            f"--socket={socket}",
            "-uroot",
            "--connect-timeout=2",
            *extra,
        ]
    )


def sql(socket: Path, statement: str, *, timeout: float = 10.0, database: str = "") -> str:
    """Run SQL as root over the socket; return tab-separated rows without headers."""
    argv = client_argv(socket, "-N", "-B", "-e", statement)
    if database:
        argv.append(database)
    return run(argv, timeout=timeout).stdout


def query_vertical(socket: Path, statement: str, *, timeout: float = 3.0) -> dict[str, str]:
    """The first row of a statement's result as {column: value} (empty if no rows). The 9.x
    client refuses `\\G` inside -e: --vertical it is."""
    argv = client_argv(socket, "--vertical", "-e", statement)
    return first_row(run(argv, timeout=timeout).stdout)


def is_ready(socket: Path) -> bool:
    try:
        sql(socket, "SELECT 1", timeout=5)
    except CommandError:
        return False
    return True


def wait_ready(socket: Path, pid: int | None, timeout: float = 90.0) -> None:
    db_common.wait_ready(lambda: is_ready(socket), socket, pid, timeout, DAEMON, DISPLAY)


# --- the template datadir ---------------------------------------------------------------


def template_key() -> str:
    digest = hashlib.sha256()
    digest.update(server_version(ensure_rootfs()).encode())
    for name in ZABBIX_SQL_FILES:
        digest.update(name.encode())
        digest.update(hashlib.sha256((ZABBIX_SQL_DIR / name).read_bytes()).digest())
    digest.update((TEMPLATE_RECIPE + _COMMON_CNF + _TEMPLATE_SQL).encode())
    return digest.hexdigest()[:16]


def template_dir() -> Path:
    return CACHE_ROOT / f"mysql-template-{template_key()}"


def ensure_template(log: Callable[[str], None] = print) -> tuple[Path, bool]:
    """The template datadir, building it if it is not cached; returns (datadir, built_now)."""
    ensure_rootfs(log)
    return db_common.cached_template(
        template_dir(),
        ".mysql-template.lock",
        _build_template,
        lambda: log(
            "building the MySQL+Zabbix template datadir (first up on this machine; "
            "about 30-60 s, cached for later runs)"
        ),
    )


def _mysqladmin(socket: Path, *args: str) -> list[str]:
    return chrooted(["/usr/bin/mysqladmin", "--no-defaults", f"--socket={socket}", "-uroot", *args])


def _build_template(final: Path) -> None:
    # Under /tmp: the chrooted mysqld sees /tmp, not /var/cache.
    work = Path(tempfile.mkdtemp(prefix="monha-mysql-template-", dir="/tmp"))
    try:
        work.chmod(0o755)
        data = work / "data"
        socket = work / "build.sock"
        cnf = work / "my.cnf"
        cnf.write_text(
            "[mysqld]\n"
            "user = root\n"
            f"datadir = {data}\n"
            f"socket = {socket}\n"
            f"pid_file = {work / 'build.pid'}\n"
            f"log_error = {work / 'build.err'}\n"
            "skip_networking = ON\n"
            "skip_log_bin = ON\n"
            # Durability does not matter while building a throw-away template: speed does.
            "innodb_flush_log_at_trx_commit = 0\n"
            "innodb_doublewrite = OFF\n" + _COMMON_CNF
        )
        mysqld = ["/usr/sbin/mysqld", f"--defaults-file={cnf}"]
        done = run(chrooted([*mysqld, "--initialize-insecure"]), timeout=180, check=False)
        if done.returncode != 0:
            raise CommandError(f"mysqld --initialize-insecure failed: {_tail(work / 'build.err')}")
        pid = spawn(chrooted(mysqld), work / "build.out")
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
            run(_mysqladmin(socket, "shutdown"), timeout=120)
        finally:
            deadline = time.monotonic() + 60
            while is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if is_alive(pid):
                run(["kill", "-9", str(pid)], check=False)
        # A copy must make its own server_uuid.
        (data / "auto.cnf").unlink(missing_ok=True)
        building = final.with_name(final.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        run(["cp", "-a", str(data), str(building / "data")], timeout=300)
        shutil.rmtree(final, ignore_errors=True)
        building.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no error log)"


# --- per node ---------------------------------------------------------------------------


def my_cnf(paths: LabPaths, node: str, *, semi_sync: bool = False) -> str:
    if semi_sync:
        raise CommandError("the MySQL lab has no semi-sync yet (issue 13): use the MariaDB lab")
    d = paths.node(node)
    replica = node != "node1"
    return (
        "[mysqld]\n"
        "user = root\n"
        f"datadir = {d.datadir}\n"
        f"socket = {d.socket}\n"
        f"pid_file = {d.mysql_pid_file}\n"
        f"log_error = {d.mysql_error_log}\n"
        f"port = {MYSQL_PORT}\n"
        "bind_address = 0.0.0.0\n"
        f"server_id = {SERVER_IDS[node]}\n"
        "log_bin = mysql-bin\n"
        "relay_log = relay-bin\n"
        "log_replica_updates = ON\n"
        "gtid_mode = ON\n"
        "enforce_gtid_consistency = ON\n"
        f"read_only = {'ON' if replica else 'OFF'}\n"
        f"super_read_only = {'ON' if replica else 'OFF'}\n"
        # As on the MariaDB lab: a heartbeat every second (set by CHANGE REPLICATION SOURCE)
        # and a short silence limit, so the replica notices a dead or restarted source fast.
        "replica_net_timeout = 3\n" + _COMMON_CNF + "\n[mysqld_safe]\n"
        "skip_syslog\n"
        f"log_error = {d.mysql_error_log}\n"
        f"pid_file = {d.mysql_pid_file}\n"
    )


def install_node(paths: LabPaths, node: str, template: Path, *, semi_sync: bool = False) -> None:
    """Copy the template into the node's datadir, write its my.cnf and the wrappers monha runs
    on the node (/opt/monha-lab/bin/{mysql,mysqladmin,mysqlbinlog})."""
    d = paths.node(node)
    d.mysql.mkdir(parents=True, exist_ok=True)
    d.conf.mkdir(parents=True, exist_ok=True)
    d.my_cnf.write_text(my_cnf(paths, node, semi_sync=semi_sync))
    run(["cp", "-a", "--reflink=auto", str(template), str(d.datadir)], timeout=120)
    (d.datadir / "auto.cnf").unlink(missing_ok=True)
    d.mysql.chmod(0o755)
    write_wrappers(paths, node)


def wrapper_text(program: str, *first: str) -> str:
    """A /bin/sh script that runs `program` (a path inside the tree) chrooted, with `first`
    (quoted) and then the script's own arguments passed on untouched: nothing from them is
    spliced into a command."""
    return (
        "#!/bin/sh\n"
        f"# {program} from the MySQL root filesystem (written by monha-lab).\n"
        f'exec {shlex.join(chrooted([program, *first]))} "$@"\n'
    )


def write_wrappers(paths: LabPaths, node: str) -> None:
    bin_dir = paths.node(node).opt / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    texts = {name: wrapper_text(program) for name, program in WRAPPED.items()}
    # The options mysqld reads, for `monha-ctl check`: the node's own my.cnf (the host's
    # /etc/mysql is MariaDB's). --defaults-file must come first; the path is the node's.
    texts["my_print_defaults"] = wrapper_text(
        "/usr/bin/my_print_defaults", f"--defaults-file={paths.node(node).my_cnf}"
    )
    for name, text in texts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)


def server_argv(paths: LabPaths, node: str, *, supervised: bool) -> list[str]:
    """The command that starts the node's server (to be run inside the node namespaces)."""
    cnf = f"--defaults-file={paths.node(node).my_cnf}"
    if supervised:
        return chrooted(["/usr/bin/mysqld_safe", cnf])
    return chrooted(["/usr/sbin/mysqld", cnf])


def before_start(paths: LabPaths, node: str) -> None:
    """Remove the socket's lock file if the PID it names is gone. mysqld refuses to start
    while that PID exists, and a killed mysqld stays a zombie until this sandbox's init
    reaps it (up to ~2 s): a real host's init reaps it at once, so the lab does the same."""
    lock = Path(f"{paths.socket(node)}.lock")
    with contextlib.suppress(OSError, ValueError):
        pid = int(lock.read_text().strip() or "0")
        if pid and not is_alive(pid):
            lock.unlink()


def server_pid(paths: LabPaths, node: str) -> int | None:
    """The live mysqld's PID from its pid file, or None (the chroot shares the PID space)."""
    return mariadbd_pid(paths, node)


def change_source_sql(primary: str, heartbeat_period_s: float | None = 1.0) -> str:
    """CHANGE REPLICATION SOURCE to `primary` by GTID auto-positioning; `heartbeat_period_s`
    None leaves the server's default (half of replica_net_timeout: 1.5 s on the lab)."""
    heartbeat = (
        "" if heartbeat_period_s is None else f", SOURCE_HEARTBEAT_PERIOD={heartbeat_period_s:g}"
    )
    return (
        "CHANGE REPLICATION SOURCE TO "
        f"SOURCE_HOST='{ADDRESSES[primary]}', SOURCE_PORT={MYSQL_PORT}, "
        f"SOURCE_USER='repl', SOURCE_PASSWORD='{USERS['repl']}', "
        # MySQL gives up after 10 attempts by default, MariaDB after 86400: a source dead
        # longer than 10 s (a failover held by the flag, say) is retried as on MariaDB.
        "SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=86400, "
        "GET_SOURCE_PUBLIC_KEY=1"
        f"{heartbeat}"
    )


def start_replication(
    paths: LabPaths, replica: str, primary: str, heartbeat_period_s: float | None = 1.0
) -> None:
    sql(paths.socket(replica), f"{change_source_sql(primary, heartbeat_period_s)}; START REPLICA")


def replica_status(socket: Path, timeout: float = 3.0) -> dict[str, str]:
    """SHOW REPLICA STATUS as MySQL names its columns (Replica_IO_Running, Source_Host...)."""
    return query_vertical(socket, "SHOW REPLICA STATUS", timeout=timeout)


def replica_view(socket: Path, timeout: float = 3.0) -> dict[str, str]:
    """The replica's state under server-neutral names (empty if it replicates from nobody)."""
    return db_common.view_of(replica_status(socket, timeout), _VIEW_COLUMNS)


_VIEW_COLUMNS = {
    "source_host": "Source_Host",
    "io_running": "Replica_IO_Running",
    "sql_running": "Replica_SQL_Running",
    "seconds_behind": "Seconds_Behind_Source",
    "last_io_error": "Last_IO_Error",
    "last_sql_error": "Last_SQL_Error",
    "last_sql_errno": "Last_SQL_Errno",
    "skip_counter": "Skip_Counter",
    "gtid_position": "Retrieved_Gtid_Set",
    "source_log_file": "Source_Log_File",
    "read_source_log_pos": "Read_Source_Log_Pos",
}


def wait_replicating(paths: LabPaths, replica: str, timeout: float = 30.0) -> dict[str, str]:
    return db_common.wait_replicating(lambda: replica_view(paths.socket(replica)), replica, timeout)
