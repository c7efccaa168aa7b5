"""Throw-away servers for the adapter contract tests: a primary and a replica (MariaDB, or
Oracle MySQL from the lab's root filesystem), and sshd.

Everything listens on 127.0.0.1 only, on free high ports, with its files in one temp dir that is
removed afterwards. Processes are started here and ended here by their PID, never by name.
mariadbd refuses to run as root, so its datadirs belong to the `mysql` user; MySQL runs as root
chrooted into its tree (see monha.lab.mysql_rootfs), with /tmp shared so its paths are ours.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

ADMIN_USER, ADMIN_PASSWORD = "monha", "adm'in pw$(x)"  # quoting-hostile on purpose
REPL_USER, REPL_PASSWORD = "repl", "repl-pw"
APP_USER, APP_PASSWORD = "app", "app-pw"
APP_DB = "labdb"
HEARTBEAT_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_pid(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class MariaDB:
    name: str
    port: int
    datadir: Path
    socket: Path
    server_id: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def sql(
        self, statement: str, *, user: str = "root", password: str = ""
    ) -> list[tuple[object, ...]]:
        """Run one statement as root over the socket (unix_socket auth) and return its rows."""
        kw: dict[str, object] = {
            "unix_socket": str(self.socket),
            "user": user,
            "password": password,
        }
        conn = pymysql.connect(autocommit=True, connect_timeout=5, **kw)  # type: ignore[arg-type]
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()


class ServerPair:
    """A primary and a replica of it (GTID slave_pos, heartbeat HEARTBEAT_S, retry 1 s).

    The flavour-specific SQL the tests need goes through the methods below, so one contract
    test runs unchanged against MariaDB and MySQL.
    """

    flavor = "mariadb"
    replica_noun = "SLAVE"

    def gtid_executed(self, db: MariaDB | None = None) -> str:
        """What `db` (the primary by default) has in its binary log."""
        return str((db or self.primary).sql("SELECT @@gtid_binlog_pos")[0][0])

    def gtid_applied(self, db: MariaDB | None = None) -> str:
        """What `db` (the replica by default) has applied."""
        return str((db or self.replica).sql("SELECT @@gtid_slave_pos")[0][0])

    def replication(self, action: str, thread: str = "", db: MariaDB | None = None) -> None:
        """START/STOP the replica's threads (`thread`: "", "IO_THREAD" or "SQL_THREAD")."""
        (db or self.replica).sql(f"{action} {self.replica_noun} {thread}".strip())

    def client_argv(self, db: MariaDB) -> list[str]:
        """The server's own client as root over `db`'s socket, applying SQL read on stdin
        (what salvage.apply_command is on a node)."""
        return self._client(
            [
                "--no-defaults",
                f"--socket={db.socket}",
                "--user=root",
                "--batch",
                "--binary-mode",
            ]
        )

    def binlog_tool_argv(self) -> list[str]:
        """The server's own binlog tool (the arguments follow)."""
        return [shutil.which("mariadb-binlog") or "mariadb-binlog"]

    def _client(self, args: list[str]) -> list[str]:
        return [shutil.which("mariadb") or "mariadb", *args]

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="monha-adapters-db-"))
        mysql = pwd.getpwnam("mysql")
        os.chmod(self.root, 0o755)
        os.chown(self.root, mysql.pw_uid, mysql.pw_gid)
        self.primary = MariaDB("primary", free_port(), self.root / "p", self.root / "p.sock", 1)
        self.replica = MariaDB("replica", free_port(), self.root / "r", self.root / "r.sock", 2)

    def start(self) -> None:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.primary.datadir}",
                # A private tmpdir: bootstraps running at once (two test runs side by side)
                # crash in Aria's temporary tables when they share /tmp (seen on 10.11.19).
                f"--tmpdir={self.root}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        # Both start from the same empty datadir; the primary's binary log starts after it,
        # so the replica can replicate from the very beginning by GTID.
        shutil.copytree(self.primary.datadir, self.replica.datadir, symlinks=True)
        mysql = pwd.getpwnam("mysql")
        for dirpath, _, files in os.walk(self.replica.datadir):
            os.chown(dirpath, mysql.pw_uid, mysql.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), mysql.pw_uid, mysql.pw_gid)
        for db in (self.primary, self.replica):
            self._spawn(db)
        for db in (self.primary, self.replica):
            self._wait_ready(db)
        p = self.primary
        for statement in _SETUP_SQL:
            p.sql(statement)
        r = self.replica
        r.sql("SET GLOBAL read_only = ON")
        r.sql(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={p.port}, "
            f"MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', "
            f"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, "
            f"MASTER_HEARTBEAT_PERIOD={HEARTBEAT_S}"
        )
        r.sql("START SLAVE")
        self.wait_replicated()

    def wait_replicated(self, timeout_s: float = 20.0) -> None:
        """Until the replica applied everything the primary has in its binary log."""
        target = self.gtid_executed()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.gtid_applied() == target:
                return
            time.sleep(0.05)
        raise TimeoutError(f"replica did not reach {target}")

    def _spawn(self, db: MariaDB) -> None:
        db.log = self.root / f"{db.name}.err"
        argv = [
            "mariadbd",
            "--no-defaults",
            "--user=mysql",
            f"--datadir={db.datadir}",
            f"--tmpdir={self.root}",
            f"--socket={db.socket}",
            f"--pid-file={self.root / (db.name + '.pid')}",
            f"--port={db.port}",
            "--bind-address=127.0.0.1",
            f"--server-id={db.server_id}",
            f"--log-bin={db.datadir / 'bin'}",
            "--log-slave-updates",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            f"--log-error={db.log}",
        ]
        db.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _wait_ready(self, db: MariaDB, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert db.proc is not None
            if db.proc.poll() is not None:
                raise RuntimeError(f"{self.flavor} {db.name} exited: {db.log.read_text()[-2000:]}")
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                db.sql("SELECT 1")
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.flavor} {db.name} not ready in {timeout_s} s")

    def stop(self) -> None:
        for db in (self.replica, self.primary):
            if db.proc is not None:
                _stop_pid(db.proc)
        shutil.rmtree(self.root, ignore_errors=True)


def _absolute(argv: list[str]) -> list[str]:
    # monha's config wants the program by absolute path.
    return [shutil.which(argv[0]) or argv[0], *argv[1:]]


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The users and the database both servers' pairs start with (run on the primary, replicated).
_SETUP_SQL = (
    f"CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY {_lit(ADMIN_PASSWORD)}",
    f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%'",
    f"CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'",
    f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'",
    f"CREATE DATABASE {APP_DB}",
    f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'",
    f"GRANT SELECT, INSERT, CREATE ON {APP_DB}.* TO '{APP_USER}'@'%'",
)


class MySQLPair(ServerPair):
    """The same pair on Oracle MySQL: gtid_mode=ON, auto-positioning, caching_sha2_password
    for every user (the server's default), TLS as the server sets it up by itself."""

    flavor = "mysql"
    replica_noun = "REPLICA"

    def gtid_executed(self, db: MariaDB | None = None) -> str:
        return "".join(str((db or self.primary).sql("SELECT @@gtid_executed")[0][0]).split())

    def gtid_applied(self, db: MariaDB | None = None) -> str:
        return "".join(str((db or self.replica).sql("SELECT @@gtid_executed")[0][0]).split())

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.root = Path(tempfile.mkdtemp(prefix="monha-adapters-my-"))
        os.chmod(self.root, 0o755)
        self.primary = MariaDB("primary", free_port(), self.root / "p", self.root / "p.sock", 1)
        self.replica = MariaDB("replica", free_port(), self.root / "r", self.root / "r.sock", 2)

    def _mysqld(self, *args: str) -> list[str]:
        from monha.lab.mysql_rootfs import chrooted

        return chrooted(["/usr/sbin/mysqld", "--no-defaults", "--user=root", *args], self.rootfs)

    def binlog_tool_argv(self) -> list[str]:
        from monha.lab.mysql_rootfs import chrooted

        return _absolute(chrooted(["/usr/bin/mysqlbinlog"], self.rootfs))

    def _client(self, args: list[str]) -> list[str]:
        from monha.lab.mysql_rootfs import chrooted

        return _absolute(chrooted(["/usr/bin/mysql", *args], self.rootfs))

    def start(self) -> None:
        # Each server is initialised on its own: a copied datadir would copy its server_uuid.
        inits = [
            subprocess.Popen(
                self._mysqld(f"--datadir={db.datadir}", "--initialize-insecure"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for db in (self.primary, self.replica)
        ]
        for proc in inits:
            out, _ = proc.communicate(timeout=180)
            if proc.returncode != 0:
                raise RuntimeError(f"mysqld --initialize failed: {out.decode()[-2000:]}")
        for db in (self.primary, self.replica):
            self._spawn(db)
        for db in (self.primary, self.replica):
            self._wait_ready(db)
        p = self.primary
        for statement in _SETUP_SQL:
            p.sql(statement)
        r = self.replica
        r.sql("SET GLOBAL read_only = ON")
        r.sql(
            f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={p.port}, "
            f"SOURCE_USER='{REPL_USER}', SOURCE_PASSWORD='{REPL_PASSWORD}', "
            f"SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, "
            f"SOURCE_HEARTBEAT_PERIOD={HEARTBEAT_S}"
        )
        r.sql("START REPLICA")
        self.wait_replicated()

    def _spawn(self, db: MariaDB) -> None:
        db.log = self.root / f"{db.name}.err"
        argv = self._mysqld(
            f"--datadir={db.datadir}",
            f"--tmpdir={self.root}",
            f"--socket={db.socket}",
            f"--pid-file={self.root / (db.name + '.pid')}",
            f"--port={db.port}",
            "--bind-address=127.0.0.1",
            "--mysqlx=OFF",
            "--secure-file-priv=",
            f"--server-id={db.server_id}",
            f"--log-bin={db.datadir / 'bin'}",
            f"--relay-log={db.datadir / 'relay'}",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--performance-schema-max-table-instances=400",
            f"--log-error={db.log}",
        )
        db.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


def server_pair(flavor: str) -> contextlib.AbstractContextManager[ServerPair]:
    if flavor == "mysql":
        from monha.lab.mysql_rootfs import ensure_rootfs

        return _pair(MySQLPair(ensure_rootfs()))
    return _pair(ServerPair())


@contextlib.contextmanager
def mariadb_pair() -> Iterator[ServerPair]:
    with _pair(ServerPair()) as pair:
        yield pair


@contextlib.contextmanager
def _pair(pair: ServerPair) -> Iterator[ServerPair]:
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()


# --- sshd ---------------------------------------------------------------------------------------


@dataclass
class Sshd:
    """A real sshd on 127.0.0.1:port with its own host key and one authorized client key."""

    root: Path
    port: int
    host_key: Path
    client_key: Path
    known_hosts: Path  # lists the right host key for [127.0.0.1]:port
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)


def _keypair(path: Path) -> str:
    """Write an ed25519 private key (mode 0600) and return its public key line."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return key.export_public_key().decode().strip()


def start_sshd() -> Sshd:
    root = Path(tempfile.mkdtemp(prefix="monha-adapters-ssh-"))
    os.chmod(root, 0o755)
    port = free_port()
    host_pub = _keypair(root / "host_key")
    client_pub = _keypair(root / "client_key")
    (root / "authorized_keys").write_text(client_pub + "\n")
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    # sshd wants its privilege-separation directory /run/sshd: it gets a private /run of its
    # own (a bind mount inside a private mount namespace) so the machine's /run is left alone.
    (root / "run" / "sshd").mkdir(parents=True)
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_key'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                f"PidFile {root / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "MaxStartups 50",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    bashrc = root / "bashrc"
    bashrc.write_text("# the sandbox sshd's root: nothing to set up\n")
    sshd = Sshd(root, port, root / "host_key", root / "client_key", root / "known_hosts")
    log = open(root / "sshd.log", "wb")  # noqa: SIM115 - handed to the child
    sshd.proc = subprocess.Popen(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            # A minimal .bashrc for root in this mount namespace: sshd runs each command
            # through root's shell, and this host's .bashrc (pyenv init, which rehashes
            # under a lock a killed command can leave behind) can stall every command.
            'mount --bind "$1" /run'
            ' && { [ ! -f /root/.bashrc ] || mount --bind "$3" /root/.bashrc; }'
            ' && exec /usr/sbin/sshd -D -e -f "$2"',
            "sh",
            str(root / "run"),
            str(config),
            str(bashrc),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sshd.proc.poll() is not None:
            text = (root / "sshd.log").read_text()
            sshd.stop()
            raise RuntimeError(f"sshd exited: {text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
            if s.recv(64).startswith(b"SSH-"):
                return sshd
        time.sleep(0.05)
    sshd.stop()
    raise TimeoutError("sshd did not start")
