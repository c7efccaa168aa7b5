"""sshd per node, and the lab's SSH identity: host keys, one client key pair, known_hosts.

Keys are generated per lab (never reused across labs or taken from the host). Both nodes get
the same client key and a known_hosts that lists both host keys under the node names and
addresses, so `ssh root@node1` from node2 works with strict host key checking, as between
two real machines set up for MHA. The host's own ~/.ssh and /etc/ssh are never touched.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from monha.lab.names import ADDRESSES, NODES, LabPaths
from monha.lab.proc import CommandError, is_alive, run


def _keygen(path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for f in (path, path.with_name(path.name + ".pub")):
        f.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def host_key(paths: LabPaths, node: str) -> Path:
    return paths.node(node).conf / "ssh_host_ed25519_key"


def sshd_config_path(paths: LabPaths, node: str) -> Path:
    return paths.node(node).conf / "sshd_config"


def sshd_config(paths: LabPaths, node: str) -> str:
    return "\n".join(
        [
            "Port 22",
            "ListenAddress 0.0.0.0",
            f"HostKey {host_key(paths, node)}",
            "PidFile /run/sshd.pid",  # the node's private /run
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "AuthorizedKeysFile /root/.ssh/authorized_keys",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # authorized_keys lives under /tmp on the host side of the bind mount.
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


# The witness: an sshd in the LAN namespace at the witness address, standing in for the
# external Zabbix server that monitors both nodes (issue 8's third vantage point). It has no
# mount namespace of its own, so its files live in the lab directory and /run is bound
# privately by `unshare -m` for sshd's privilege-separation directory.
WITNESS = "witness"


def witness_dir(paths: LabPaths) -> Path:
    return paths.root / WITNESS


def witness_config(paths: LabPaths) -> str:
    d = witness_dir(paths)
    text = sshd_config(paths, "node1")  # the same policy: root by key only
    text = text.replace(f"HostKey {host_key(paths, 'node1')}", f"HostKey {d / 'host_key'}")
    text = text.replace("PidFile /run/sshd.pid", f"PidFile {d / 'sshd.pid'}")
    return text.replace(
        "AuthorizedKeysFile /root/.ssh/authorized_keys",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
    )


def witness_argv(paths: LabPaths) -> list[str]:
    """sshd in the foreground with a private /run; the script is constant, paths are its
    positional arguments. unshare and sh exec, so the recorded PID is sshd's."""
    d = witness_dir(paths)
    # Like a node, the witness's root gets a minimal .bashrc (see names.NodeDirs.binds).
    script = (
        'mount --bind "$0" /run && { [ ! -f /root/.bashrc ] || mount --bind "$2" /root/.bashrc; }'
        ' && exec /usr/sbin/sshd -D -e -f "$1"'
    )
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(d / "run"),
            str(d / "sshd_config"), str(d / "bashrc")]  # fmt: skip


def make_witness(paths: LabPaths, client_pub: str) -> str:
    """The witness's files; returns its known_hosts line."""
    d = witness_dir(paths)
    (d / "run" / "sshd").mkdir(parents=True, exist_ok=True)
    (d / "run" / "sshd").chmod(0o755)
    _keygen(d / "host_key", f"witness-{paths.prefix}")
    (d / "authorized_keys").write_text(client_pub)
    (d / "authorized_keys").chmod(0o600)
    (d / "sshd_config").write_text(witness_config(paths))
    (d / "bashrc").write_text("# the witness's root: nothing to set up\n")
    pub = (d / "host_key.pub").read_text().split()
    return f"{WITNESS},{ADDRESSES['lan']} {pub[0]} {pub[1]}"


def wait_witness_listening(paths: LabPaths, pid: int, timeout: float = 10.0) -> None:
    pid_file = witness_dir(paths) / "sshd.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            return
        if not is_alive(pid):
            raise CommandError(f"the witness's sshd exited; see {paths.root}/logs")
        time.sleep(0.02)
    raise CommandError(f"the witness's sshd did not start within {timeout} s")


def make_identity(paths: LabPaths) -> None:
    """Generate the lab key pair and the host keys, and install them in both nodes."""
    _keygen(paths.lab_key, f"monha-lab-{paths.prefix}")
    known: list[str] = []
    for node in NODES:
        _keygen(host_key(paths, node), f"{node}-{paths.prefix}")
        pub = host_key(paths, node).with_suffix(".pub").read_text().split()
        known.append(f"{node},{ADDRESSES[node]} {pub[0]} {pub[1]}")
    known.append(make_witness(paths, paths.lab_key.with_name("id_ed25519.pub").read_text()))
    known_hosts = "\n".join(known) + "\n"
    client_pub = paths.lab_key.with_name("id_ed25519.pub").read_text()
    for node in NODES:
        d = paths.node(node)
        for target in (d.etc_monha / "ssh", d.root_ssh):
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o700)
            shutil.copyfile(paths.lab_key, target / "id_ed25519")
            (target / "id_ed25519").chmod(0o600)
            (target / "id_ed25519.pub").write_text(client_pub)
            (target / "known_hosts").write_text(known_hosts)
        (d.root_ssh / "authorized_keys").write_text(client_pub)
        (d.root_ssh / "authorized_keys").chmod(0o600)
        (d.run / "sshd").mkdir(parents=True, exist_ok=True)
        (d.run / "sshd").chmod(0o755)
        sshd_config_path(paths, node).write_text(sshd_config(paths, node))


def sshd_argv(paths: LabPaths, node: str) -> list[str]:
    """sshd in the foreground (the lab records its PID), logging to stderr."""
    return ["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config_path(paths, node))]


def wait_listening(paths: LabPaths, node: str, pid: int, timeout: float = 10.0) -> None:
    """sshd writes its pid file after binding its listeners."""
    pid_file = paths.node(node).run / "sshd.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            return
        if not is_alive(pid):
            raise CommandError(f"sshd on {node} exited; see {paths.node(node).logs}/sshd.log")
        time.sleep(0.02)
    raise CommandError(f"sshd on {node} did not start within {timeout} s")


def ssh_check_argv(target: str = "node1", command: str = "hostname") -> list[str]:
    """The done-criterion: strict host key checking, key only, from inside a node."""
    return [
        "ssh",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        f"root@{target}",
        command,
    ]
