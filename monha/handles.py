"""Opening handles on the nodes from the config: MySQL servers and SSH runners.

One place decides how this node's MySQL is reached (its socket when configured) and how the
peer is reached (TCP; SSH as the configured user with the configured key and known_hosts), so
the daemon, `monha-ctl check` and the binlog tools cannot drift apart. Nothing is connected
here: handles connect on first use.
"""

from __future__ import annotations

import os

from monha.config import Config, Node, Witness
from monha.mysql import Server
from monha.runners import LocalRunner, SshRunner


def local_server(cfg: Config, me: str, password: str, timeout_s: float = 5.0) -> Server:
    """This node's MySQL: through `mysql.local_socket` when set, else its own address."""
    node = cfg.node(me)
    return Server(
        user=cfg.mysql.monitor_user,
        password=password,
        host="127.0.0.1" if cfg.mysql.local_socket else node.address,
        port=node.mysql_port,
        unix_socket=cfg.mysql.local_socket,
        connect_timeout_s=cfg.mysql.connect_timeout_s,
        timeout_s=timeout_s,
    )


def remote_server(cfg: Config, name: str, password: str, timeout_s: float = 5.0) -> Server:
    """Another node's MySQL, over TCP."""
    node = cfg.node(name)
    return Server(
        user=cfg.mysql.monitor_user,
        password=password,
        host=node.address,
        port=node.mysql_port,
        connect_timeout_s=cfg.mysql.connect_timeout_s,
        timeout_s=timeout_s,
    )


def ssh_runner(cfg: Config, name: str) -> SshRunner:
    """SSH to a node, its host key checked against `ssh.known_hosts`."""
    return _ssh(cfg, cfg.node(name))


def local_runner(cfg: Config) -> LocalRunner:
    """This node's commands. The daemon normally runs as root; if it does not, its privileged
    commands get `ssh.privilege_prefix` like a peer reached as a user other than root."""
    prefix = cfg.ssh.privilege_prefix if os.geteuid() != 0 else ()
    return LocalRunner(privilege_prefix=prefix)


def witness_runners(cfg: Config) -> dict[str, SshRunner]:
    """SSH to each witness that has an `ssh_user`, by name, with the same key and known_hosts."""
    return {w.name: _ssh(cfg, w) for w in cfg.witness if w.ssh_user}


def _ssh(cfg: Config, host: Node | Witness) -> SshRunner:
    assert host.ssh_user is not None
    # Only a node gets the prefix: monha never runs a privileged command on a witness.
    privileged = isinstance(host, Node) and host.ssh_user != "root"
    return SshRunner(
        host.address,
        host.ssh_port,
        host.ssh_user,
        cfg.ssh.key_file,
        cfg.ssh.known_hosts,
        cfg.ssh.connect_timeout_s,
        privilege_prefix=cfg.ssh.privilege_prefix if privileged else (),
    )
