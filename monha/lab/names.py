"""Names, addresses and paths of one lab: pure values derived from its prefix.

Every name a lab puts in a shared place (network namespaces, directories, cache) carries the
prefix, so two labs with different prefixes never collide. Nothing here does I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX_RE = re.compile(r"^[a-z0-9]{1,6}$")
DEFAULT_PREFIX = "mh"

NODES: tuple[str, ...] = ("node1", "node2")
# Every network namespace of a lab, by role. "lan" holds the bridge and the witness address.
NETNS_ROLES: tuple[str, ...] = ("lan", "node1", "node2", "client")

SUBNET_PREFIXLEN = 24
ADDRESSES: dict[str, str] = {
    "node1": "192.168.10.1",
    "node2": "192.168.10.2",
    "client": "192.168.10.100",
    "lan": "192.168.10.254",  # the witness / gateway address on the bridge
}
VIP = "192.168.10.10"
VIP_LABEL = "eth0:1"
NODE_IFACE = "eth0"
BRIDGE = "br0"
SERVER_IDS: dict[str, int] = {"node1": 101, "node2": 102}

MYSQL_PORT = 3306
HTTP_PORT = 80
WS_PORT = 57000
METRICS_PORT = 9707
USERS: dict[str, str] = {"mha": "mha", "repl": "repl", "app": "app", "zabbix": "zabbix"}
APP_DATABASE = "labdb"

# Paths as seen INSIDE a node's mount namespace (identical on both nodes).
IN_NODE_SOCKET = "/run/mysqld/mysqld.sock"
IN_NODE_PID_FILE = "/run/mysqld/mysqld.pid"  # NodeDirs.mysql_pid_file, seen from inside
IN_NODE_OPT = "/opt/monha-lab"
IN_NODE_INIT_D = f"{IN_NODE_OPT}/init.d"
IN_NODE_ETC = "/etc/monha"
IN_NODE_CONFIG = f"{IN_NODE_ETC}/monha.toml"

LAB_ROOT = Path("/tmp/monha-lab")
RUN_ROOT = Path("/run/monha-lab")
CACHE_ROOT = Path("/var/cache/monha-lab")
NETNS_DIR = Path("/run/netns")


class PrefixError(ValueError):
    """The prefix is not 1-6 lower-case letters or digits."""


def validate_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise PrefixError(
            f"invalid lab prefix {prefix!r}: use 1-6 lower-case letters or digits "
            "(names derived from it must stay under 15 characters)"
        )
    return prefix


def default_prefix() -> str:
    return os.environ.get("MONHA_LAB_PREFIX") or DEFAULT_PREFIX


@dataclass(frozen=True, slots=True)
class NodeDirs:
    """The host-side directories of one node; each is bind-mounted inside the node."""

    root: Path

    @property
    def run(self) -> Path:  # -> /run
        return self.root / "run"

    @property
    def mysql(self) -> Path:  # -> /run/mysqld (socket and pid file live here)
        return self.root / "mysql"

    @property
    def datadir(self) -> Path:
        return self.root / "mysql" / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysql" / "mysqld.sock"

    @property
    def mysql_pid_file(self) -> Path:
        return self.root / "mysql" / "mysqld.pid"

    @property
    def mysql_error_log(self) -> Path:
        return self.root / "mysql" / "error.log"

    @property
    def conf(self) -> Path:  # lab-only configuration: my.cnf, sshd_config, host keys
        return self.root / "conf"

    @property
    def my_cnf(self) -> Path:
        return self.root / "conf" / "my.cnf"

    @property
    def etc_monha(self) -> Path:  # -> /etc/monha
        return self.root / "etc-monha"

    @property
    def var_lib_monha(self) -> Path:  # -> /var/lib/monha
        return self.root / "var-lib-monha"

    @property
    def var_log_monha(self) -> Path:  # -> /var/log/monha
        return self.root / "var-log-monha"

    @property
    def root_ssh(self) -> Path:  # -> /root/.ssh
        return self.root / "root-ssh"

    @property
    def opt(self) -> Path:  # -> /opt/monha-lab
        return self.root / "opt"

    @property
    def hosts(self) -> Path:  # -> /etc/hosts
        return self.root / "hosts"

    @property
    def logs(self) -> Path:  # stdout/stderr of the daemons the lab starts
        return self.root / "logs"

    def binds(self) -> list[tuple[Path, str]]:
        """(host path, path inside the node) in mount order: /run first, then under it."""
        return [
            (self.run, "/run"),
            (self.mysql, "/run/mysqld"),
            (self.etc_monha, IN_NODE_ETC),
            (self.var_lib_monha, "/var/lib/monha"),
            (self.var_log_monha, "/var/log/monha"),
            (self.root_ssh, "/root/.ssh"),
            (self.opt, IN_NODE_OPT),
            (self.hosts, "/etc/hosts"),
            # A node's root has its own minimal .bashrc, as on a real machine: sshd runs every
            # remote command through root's shell, and this host's own .bashrc (pyenv init,
            # which rehashes under a lock) would make each one take seconds under load.
            *([(self.bashrc, ROOT_BASHRC)] if Path(ROOT_BASHRC).is_file() else []),
        ]

    @property
    def bashrc(self) -> Path:
        return self.conf / "bashrc"


ROOT_BASHRC = "/root/.bashrc"

# Mount points the node namespaces need in the root file system (created if missing).
ROOT_MOUNTPOINTS: tuple[str, ...] = (
    IN_NODE_ETC,
    "/var/lib/monha",
    "/var/log/monha",
    "/root/.ssh",
    IN_NODE_OPT,
)


@dataclass(frozen=True, slots=True)
class LabPaths:
    """Every name and path of the lab with this prefix."""

    prefix: str

    @property
    def root(self) -> Path:
        return LAB_ROOT / self.prefix

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "state.lock"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.prefix

    @property
    def ns_dir(self) -> Path:
        return RUN_ROOT / self.prefix / "ns"

    @property
    def config_copy(self) -> Path:
        return self.root / "monha.toml"

    @property
    def lab_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    def netns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def netns_path(self, role: str) -> Path:
        return NETNS_DIR / self.netns(role)

    def mnt_file(self, node: str) -> Path:
        return self.ns_dir / f"{node}.mnt"

    def uts_file(self, node: str) -> Path:
        return self.ns_dir / f"{node}.uts"

    def node(self, node: str) -> NodeDirs:
        return NodeDirs(self.root / node)

    def socket(self, node: str) -> Path:
        return self.node(node).socket
