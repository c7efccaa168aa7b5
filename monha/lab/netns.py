"""Namespaces of the lab: the network (bridge, veths, addresses), each node's mount and UTS
namespace, nsenter argv, and the machine-wide bookkeeping several labs share.

Nothing is added to the root namespace's interfaces, addresses or routes: veths are created
inside the lan namespace with their peers moved straight into the node namespaces, and there
is no default route anywhere, so no packet can leave the lab.

Machine-wide things (`/run/netns`, mount points such as `/etc/monha` that may not exist on the
host) are created at most once and removed only when the last lab is gone and only if a lab
made them: removing a directory that is a mount point in another lab's mount namespace would
silently detach that lab's mount.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

from monha.lab.names import (
    ADDRESSES,
    BRIDGE,
    NETNS_DIR,
    NETNS_ROLES,
    NODE_IFACE,
    NODES,
    ROOT_MOUNTPOINTS,
    RUN_ROOT,
    SUBNET_PREFIXLEN,
    LabPaths,
)
from monha.lab.proc import CommandError, run
from monha.lab.state import LabState

_GLOBAL_FILE = RUN_ROOT / "global.json"
_GLOBAL_LOCK = RUN_ROOT / "global.lock"


def mountpoints() -> list[str]:
    """Mount points of the calling process's mount namespace (octal escapes decoded)."""
    points: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(raw.encode().decode("unicode_escape"))
    return points


def is_mountpoint(path: Path | str) -> bool:
    return str(path) in mountpoints()


@contextlib.contextmanager
def _global_lock() -> Iterator[dict[str, object]]:
    """Hold the machine-wide lab lock; yield the shared record, saved on exit."""
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with open(_GLOBAL_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            record: dict[str, object] = {"mountpoints": [], "netns_dir_made": False}
            if _GLOBAL_FILE.exists():
                record.update(json.loads(_GLOBAL_FILE.read_text()))
            yield record
            if RUN_ROOT.exists():
                _GLOBAL_FILE.write_text(json.dumps(record))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def register_lab(paths: LabPaths) -> None:
    """Claim the lab's run dir and make sure the root file system has the needed mount points."""
    with _global_lock() as record:
        paths.run_dir.mkdir(parents=True, exist_ok=True)
        made = list(record["mountpoints"])  # type: ignore[call-overload]
        for point in ROOT_MOUNTPOINTS:
            if not os.path.lexists(point):
                Path(point).mkdir(parents=True, mode=0o700 if point == "/root/.ssh" else 0o755)
                made.append(point)
        record["mountpoints"] = made


def create_netns(paths: LabPaths, state: LabState, role: str) -> None:
    name = paths.netns(role)
    with _global_lock() as record:
        dir_was_mount = is_mountpoint(NETNS_DIR)
        run(["ip", "netns", "add", name])
        if not dir_was_mount and is_mountpoint(NETNS_DIR):
            record["netns_dir_made"] = True
    state.netns.append(name)


def build_network(paths: LabPaths, state: LabState) -> None:
    """The bridge in the lan namespace, one veth per other namespace, addresses, lo up."""
    for role in NETNS_ROLES:
        if paths.netns(role) not in state.netns:
            create_netns(paths, state, role)
    lan = paths.netns("lan")
    plen = SUBNET_PREFIXLEN
    batch = [
        "link set lo up",
        f"link add {BRIDGE} type bridge",
        f"link set {BRIDGE} up",
        f"addr add {ADDRESSES['lan']}/{plen} dev {BRIDGE}",
    ]
    for role in (*NODES, "client"):
        # The lan side of each veth is named after the namespace it leads to.
        batch.append(f"link add {role} type veth peer name {NODE_IFACE} netns {paths.netns(role)}")
        batch.append(f"link set {role} master {BRIDGE} up")
    run(["ip", "-n", lan, "-batch", "-"], input="\n".join(batch) + "\n")
    for role in (*NODES, "client"):
        lines = [
            "link set lo up",
            f"addr add {ADDRESSES[role]}/{plen} dev {NODE_IFACE}",
            f"link set {NODE_IFACE} up",
        ]
        run(["ip", "-n", paths.netns(role), "-batch", "-"], input="\n".join(lines) + "\n")


def make_ns_dir(paths: LabPaths, state: LabState) -> None:
    """A private bind mount holding the ns files: a mount namespace's file must not be
    visible (by propagation) inside that namespace, or the kernel refuses the bind."""
    ns_dir = str(paths.ns_dir)
    paths.ns_dir.mkdir(parents=True, exist_ok=True)
    if ns_dir not in state.mounts:
        run(["mount", "--bind", ns_dir, ns_dir])
        state.mounts.append(ns_dir)
        run(["mount", "--make-private", ns_dir])


def _node_init_script(paths: LabPaths, node: str) -> str:
    lines = [
        "set -e",
        # Drop copies of other labs' namespace files: they would keep those namespaces alive.
        "awk '{print $5}' /proc/self/mountinfo | grep -E '^/run/(netns|monha-lab)(/|$)' "
        '| sort -r | while read -r m; do umount -l "$m" || true; done',
    ]
    for source, target in paths.node(node).binds():
        lines.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    lines.append(f"hostname {node}")
    return "\n".join(lines) + "\n"


def create_node_ns(paths: LabPaths, state: LabState, node: str) -> None:
    """A persistent mount + UTS namespace for `node`, with its private directories mounted."""
    mnt, uts = paths.mnt_file(node), paths.uts_file(node)
    for f in (mnt, uts):
        f.touch()
    try:
        run(
            [
                "unshare",
                f"--mount={mnt}",
                f"--uts={uts}",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _node_init_script(paths, node),
            ]
        )
    finally:
        for f in (mnt, uts):
            if is_mountpoint(f) and str(f) not in state.mounts:
                state.mounts.append(str(f))


def node_argv(paths: LabPaths, role: str, argv: list[str]) -> list[str]:
    """argv prefixed to run in a lab namespace: a node's net+mount+UTS namespaces, or only the
    network namespace of "lan" or "client". Inside a node the working directory becomes /."""
    net = f"--net={paths.netns_path(role)}"
    if role in NODES:
        return [
            "nsenter",
            net,
            f"--mount={paths.mnt_file(role)}",
            f"--uts={paths.uts_file(role)}",
            "--",
            *argv,
        ]
    if role in NETNS_ROLES:
        return ["nsenter", net, "--", *argv]
    raise ValueError(f"unknown lab namespace {role!r}: use one of {', '.join(NETNS_ROLES)}")


def namespace_inodes(paths: LabPaths) -> list[int]:
    """Inodes of every namespace of the lab that still exists (net, mount, UTS)."""
    files = [paths.netns_path(r) for r in NETNS_ROLES]
    files += [paths.mnt_file(n) for n in NODES] + [paths.uts_file(n) for n in NODES]
    inodes: list[int] = []
    for f in files:
        if is_mountpoint(f):
            with contextlib.suppress(OSError):
                inodes.append(os.stat(f).st_ino)
    return inodes


def remove_namespaces_and_mounts(paths: LabPaths, state: LabState | None) -> list[str]:
    """Unmount the ns files and ns dir, delete the network namespaces; return problems."""
    problems: list[str] = []
    recorded = list(state.mounts) if state else []
    candidates = [str(paths.mnt_file(n)) for n in NODES] + [str(paths.uts_file(n)) for n in NODES]
    candidates.append(str(paths.ns_dir))
    for m in [*reversed(recorded), *candidates]:
        while is_mountpoint(m):
            try:
                run(["umount", m])
            except CommandError as exc:
                problems.append(str(exc))
                break
    for role in NETNS_ROLES:
        name = paths.netns(role)
        if (NETNS_DIR / name).exists():
            try:
                run(["ip", "netns", "delete", name])
            except CommandError as exc:
                problems.append(str(exc))
    return problems


def unregister_lab(paths: LabPaths) -> list[str]:
    """Release the lab's run dir; if no lab is left, undo the machine-wide changes labs made."""
    problems: list[str] = []
    with _global_lock() as record:
        if paths.run_dir.exists():
            for child in sorted(paths.run_dir.rglob("*"), reverse=True):
                if child.is_dir() and not is_mountpoint(child):
                    child.rmdir()
                elif not is_mountpoint(child):
                    child.unlink()
            if not is_mountpoint(paths.run_dir):
                paths.run_dir.rmdir()
        others = [p for p in RUN_ROOT.iterdir() if p.is_dir()]
        if others:
            return problems
        for point in reversed(list(record["mountpoints"])):  # type: ignore[call-overload]
            p = Path(point)
            if p.is_dir() and not is_mountpoint(p) and not any(p.iterdir()):
                p.rmdir()
            elif p.exists():
                problems.append(f"left {point} in place: not empty or mounted")
        record["mountpoints"] = []
        if record["netns_dir_made"] and NETNS_DIR.exists():
            if any(NETNS_DIR.iterdir()):
                return problems  # someone else's namespaces: keep the record for later
            while is_mountpoint(NETNS_DIR):
                run(["umount", str(NETNS_DIR)])
            NETNS_DIR.rmdir()
            record["netns_dir_made"] = False
        for f in (_GLOBAL_FILE, _GLOBAL_LOCK):
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            RUN_ROOT.rmdir()
    return problems
