"""Oracle MySQL for the lab and the adapter tests: a root filesystem of its own, and argv into it.

Debian 12 ships MariaDB only; Debian's unstable suite has Oracle's MySQL server, built against a
newer C library than Debian 12's. So the lab keeps a minimal unstable root filesystem holding
`mysql-server-core` and `mysql-client`, built once per machine with debootstrap and cached under
/var/cache/monha-lab (about 40 s and 650 MB), and runs MySQL's programs chrooted into it.

Paths must mean the same inside and outside the tree (a binlog index names files by path,
monha's config names the index and the socket): each program runs in a private mount namespace
of its own in which /tmp, /run and /proc of the caller are bind-mounted over the tree's, then
chroots. Datadirs, sockets and config files therefore live under /tmp or /run, as in the lab.
The bind mounts vanish with the program; the cached tree itself is never written to.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from monha.lab.names import CACHE_ROOT
from monha.lab.proc import run

# Bump when the recipe (suite, packages) changes: a new name builds a new tree.
ROOTFS_RECIPE = "1"
SUITE = "sid"
PACKAGES = ("mysql-server-core", "mysql-client")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# Mounted over the tree's own, in this order, inside the program's mount namespace.
SHARED_DIRS = ("/proc", "/tmp", "/run")

# sh receives the tree as $0 and the program's argv as "$@": nothing is spliced into the text.
_ENTER = (
    'set -e; for d in /proc /tmp /run; do mount --rbind "$d" "$0$d"; done; exec chroot "$0" "$@"'
)


class RootfsError(RuntimeError):
    """The MySQL root filesystem is missing and could not be built."""


def rootfs_dir() -> Path:
    return CACHE_ROOT / f"mysql-rootfs-{ROOTFS_RECIPE}"


def is_ready(root: Path | None = None) -> bool:
    root = root or rootfs_dir()
    return (root / "usr/sbin/mysqld").is_file() and (root / ".monha-ready").is_file()


def mirror_url(sources: Path = APT_SOURCES) -> str:
    """The Debian mirror apt uses here (first `URIs:` of debian.sources), else deb.debian.org."""
    try:
        text = sources.read_text()
    except OSError:
        return DEFAULT_MIRROR
    for m in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
        if "security" not in m.group(1):
            return m.group(1)
    return DEFAULT_MIRROR


def ensure_rootfs(log: Callable[[str], None] = print) -> Path:
    """The cached tree, building it first if this machine has none; raises RootfsError."""
    final = rootfs_dir()
    if is_ready(final):
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".mysql-rootfs.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if is_ready(final):  # built by another process while this one waited
            return final
        if shutil.which("debootstrap") is None:
            raise RootfsError(
                "debootstrap is not installed (apt-get install debootstrap; scripts/setup.sh "
                "does it)"
            )
        work = final.with_name(final.name + ".building")
        _remove(work)
        log(f"building the MySQL root filesystem {final} (first use on this machine; ~40 s)")
        done = run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(work),
                mirror_url(),
            ],
            timeout=900,
            check=False,
        )
        if done.returncode != 0 or not (work / "usr/sbin/mysqld").is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise RootfsError(
                f"debootstrap of {SUITE} with {', '.join(PACKAGES)} failed "
                f"(exit {done.returncode}): {' | '.join(tail)}"
            )
        for d in SHARED_DIRS:
            (work / d.lstrip("/")).mkdir(exist_ok=True)
        (work / ".monha-ready").write_text(server_version(work) + "\n")
        _remove(final)
        work.rename(final)
    return final


def mounts_under(path: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points inside `path`, deepest first (field 5 of /proc/self/mountinfo)."""
    text = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    base = str(path).rstrip("/") + "/"
    points = [f[4] for line in text.splitlines() if len(f := line.split()) > 4]
    return sorted((p for p in points if p.startswith(base)), key=len, reverse=True)


def _remove(tree: Path) -> None:
    """Delete a tree debootstrap left, never through a mount inside it: a debootstrap killed
    half-way leaves its /proc and /sys (in containers also /dev/shm, /dev/pts) mounted there,
    and deleting through those would empty the host's."""
    for point in mounts_under(tree):
        run(["umount", "--recursive", "--lazy", point], timeout=30, check=False)
    left = mounts_under(tree)
    if left:
        raise RootfsError(f"cannot remove {tree}: still mounted inside it: {', '.join(left)}")
    shutil.rmtree(tree, ignore_errors=True)


def chrooted(argv: Sequence[str], root: Path | None = None) -> list[str]:
    """argv that runs `argv` (a path inside the tree first) chrooted into the MySQL tree."""
    tree = str(root or rootfs_dir())
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER, tree, *argv]


def server_version(root: Path | None = None) -> str:
    """`mysqld --version` of the tree, e.g. "/usr/sbin/mysqld  Ver 9.7.4-2 for Linux ..."."""
    return run(chrooted(["/usr/sbin/mysqld", "--version"], root), timeout=60).stdout.strip()
