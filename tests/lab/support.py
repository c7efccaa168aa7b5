"""Helpers for the lab tests: bring a lab up for a module, and observe it as an operator would
(ping, a TCP greeting, a MySQL login, HTTP), always from inside a lab namespace."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator

from monha.lab import mysql_rootfs
from monha.lab.lab import Lab
from monha.lab.names import NETNS_DIR
from monha.lab.netns import mountpoints
from tests.conftest import require, require_root_and_binaries

BINARIES = (
    "ip", "nsenter", "unshare", "mariadbd", "mariadb-install-db", "mariadb", "sshd", "ssh",
    "ssh-keygen", "arping", "nft", "tc", "apache2", "zabbix_server", "curl", "ping",
)  # fmt: skip
# A MySQL lab needs no MariaDB program (its own are in the cached root filesystem).
MYSQL_LAB_BINARIES = (*(b for b in BINARIES if not b.startswith("mariadb")), "chroot")

# Connects, then waits for the server's first bytes: tells "refused" (nothing listens),
# "greeting" (a live server), "no-greeting" (the kernel answered, the process did not) and
# "timeout" (nobody answered the SYN).
_TCP_PROBE = r"""
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    print("refused"); sys.exit()
except (TimeoutError, OSError):
    print("timeout"); sys.exit()
try:
    print("greeting" if s.recv(64) else "closed")
except TimeoutError:
    print("no-greeting")
"""

# Logs in with pymysql and runs one statement; prints "ok" or the MySQL error number.
_MYSQL_PROBE = r"""
import sys, pymysql
host, user, password, statement = sys.argv[1:5]
try:
    c = pymysql.connect(host=host, user=user, password=password, database="labdb",
                        connect_timeout=2, read_timeout=3, write_timeout=3)
    with c.cursor() as cur:
        cur.execute(statement)
    c.commit()
    print("ok")
except pymysql.err.MySQLError as e:
    print(e.args[0] if e.args else repr(e))
"""


def new_prefix() -> str:
    """A prefix no other test run uses: 't' and five random hex digits."""
    return "t" + secrets.token_hex(3)[:5]


def require_mysql_lab() -> None:
    """A MySQL lab's prerequisites: its binaries and the MySQL root filesystem (cached, or
    buildable with debootstrap: scripts/setup.sh builds it)."""
    require_root_and_binaries(*MYSQL_LAB_BINARIES)
    require(
        mysql_rootfs.is_ready() or shutil.which("debootstrap") is not None,
        f"needs the MySQL root filesystem {mysql_rootfs.rootfs_dir()} or debootstrap",
    )


def lab_for_module(**up_kwargs: object) -> Iterator[Lab]:
    """Bring up one lab (unique prefix), yield it, always tear it down. `server="mysql"`
    brings up Oracle MySQL instead of MariaDB."""
    if up_kwargs.get("server") == "mysql":
        require_mysql_lab()
    else:
        require_root_and_binaries(*BINARIES)
    lab = Lab(new_prefix())
    try:
        lab.up(log=lambda _m: None, **up_kwargs)  # type: ignore[arg-type]
        yield lab
    finally:
        problems = lab.down(log=lambda _m: None)
        assert not problems, problems


def lab_traces(lab: Lab) -> dict[str, list[str]]:
    """Everything of this lab that can be seen from the root namespace."""
    p = lab.paths
    netns = sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(f"{p.prefix}-")) if (
        NETNS_DIR.exists()
    ) else []  # fmt: skip
    mounts = [m for m in mountpoints() if str(p.root) in m or str(p.run_dir) in m]
    paths = [str(x) for x in (p.root, p.run_dir) if x.exists()]
    return {"netns": netns, "mounts": mounts, "paths": paths}


def ping(lab: Lab, source: str, target: str, *, count: int = 1, wait_s: float = 1.0) -> bool:
    done = lab.run_in(
        source, ["ping", "-n", "-q", "-c", str(count), "-W", str(wait_s), target], timeout=10
    )
    return done.returncode == 0


def loss_percent(lab: Lab, source: str, target: str, count: int = 60) -> float:
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.01", "-W", "0.5", target]
    out = lab.run_in(source, argv, timeout=30).stdout
    match = re.search(r"([\d.]+)% packet loss", out)
    assert match, out
    return float(match.group(1))


def tcp_probe(lab: Lab, source: str, host: str, port: int = 3306, timeout_s: float = 1.5) -> str:
    argv = [sys.executable, "-c", _TCP_PROBE, host, str(port), str(timeout_s)]
    return lab.run_in(source, argv, timeout=timeout_s * 2 + 5).stdout.strip()


def mysql_probe(
    lab: Lab,
    source: str,
    host: str,
    *,
    user: str = "mha",
    password: str | None = None,
    statement: str = "SELECT 1",
) -> str:
    argv = [sys.executable, "-c", _MYSQL_PROBE, host, user, password or user, statement]
    return lab.run_in(source, argv, timeout=15).stdout.strip()


def http(lab: Lab, source: str, url: str, timeout_s: float = 2.0) -> str | None:
    argv = ["curl", "-s", "--noproxy", "*", "-m", str(timeout_s), url]
    done = lab.run_in(source, argv, timeout=timeout_s + 5)
    return done.stdout.strip() if done.returncode == 0 else None


def eventually(check: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s} s: {what}")
        time.sleep(0.1)


__all__ = ["require"]
