"""`monha install-units`: install the systemd unit or the upstart job from this checkout.

Job: copy `systemd/monha.service` (or `upstart/monha.conf`) with the programs' paths replaced
by where monha is really installed (the units name /usr/local/bin/monha), so that
`systemd-analyze verify` and the service find them. Must not: enable or start anything; the
operator does that (`systemctl enable --now monha`, or `initctl start monha`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = {"systemd": REPO / "systemd" / "monha.service", "upstart": REPO / "upstart" / "monha.conf"}
TARGETS = {"systemd": Path("/etc/systemd/system"), "upstart": Path("/etc/init")}
DEFAULT_BIN = "/usr/local/bin/monha"


def monha_binary() -> str:
    """The monha program beside this interpreter (a virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "monha"
    if beside.exists():
        return str(beside)
    return shutil.which("monha") or DEFAULT_BIN


def render(kind: str, binary: str) -> str:
    return UNITS[kind].read_text().replace(DEFAULT_BIN, binary)


def install(kind: str, target_dir: Path | None = None, binary: str | None = None) -> Path:
    """Write the unit; return its path. Raises OSError (the caller reports it)."""
    target = (target_dir or TARGETS[kind]) / UNITS[kind].name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(kind, binary or monha_binary()))
    target.chmod(0o644)
    return target


def install_main(kind: str, target_dir: str | None, binary: str | None) -> int:
    try:
        path = install(kind, Path(target_dir) if target_dir else None, binary)
    except OSError as exc:
        print(f"monha install-units: {exc}", file=sys.stderr)
        return 1
    nxt = (
        "systemctl daemon-reload && systemctl enable --now monha"
        if kind == "systemd"
        else ("initctl reload-configuration && initctl start monha")
    )
    print(f"installed {path}; next: {nxt}")
    return 0
