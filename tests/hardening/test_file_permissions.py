"""Files others could read or change are refused before anything starts, with the chmod that
fixes them: a password file readable by group or others, a config others may write (it names
the commands monha runs as root), a config holding an inline password that others may read.

(The control socket's refusal of non-root callers is tested on the lab by
tests/scenarios/test_operations.py::test_a_non_root_caller_is_refused.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def monha(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "monha"), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def install(tmp_path: Path, *, secret_mode: int = 0o600, inline: bool = False) -> Path:
    """The example config with its password files (or an inline password) and its control
    socket in tmp_path; the config file itself is mode 0644."""
    text = EXAMPLE.read_text().replace("/run/monha/control.sock", str(tmp_path / "ctl.sock"))
    for name in ("mysql-monitor.password", "mysql-repl.password"):
        secret = tmp_path / name
        secret.write_text("pw\n")
        secret.chmod(secret_mode)
        text = text.replace(f"/etc/monha/{name}", str(secret))
    if inline:
        text = text.replace(
            f'monitor_password_file = "{tmp_path}/mysql-monitor.password"',
            'monitor_password = "Hx7-inline-s3cret"',
        )
        assert "Hx7-inline-s3cret" in text
    path = tmp_path / "monha.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


def refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 78, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_the_control_case_is_accepted(tmp_path: Path) -> None:
    """Same files, right modes: accepted (so the refusals below are about the modes)."""
    done = monha("check-config", str(install(tmp_path)))
    assert done.returncode == 0 and done.stdout.startswith("config OK"), done.stderr
    cfg = install(tmp_path, inline=True)
    cfg.chmod(0o600)
    assert monha("check-config", str(cfg)).returncode == 0


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_password_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    cfg = install(tmp_path, secret_mode=mode)
    secret = tmp_path / "mysql-monitor.password"
    refused(monha("check-config", str(cfg)), f"chmod 600 {secret}", f"mode {mode:04o}")
    # The daemon too, before it starts anything: no control socket appears.
    refused(monha("run", "--config", str(cfg), "--node", "node2"), f"chmod 600 {secret}")
    assert not (tmp_path / "ctl.sock").exists()


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_a_config_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    cfg = install(tmp_path)
    cfg.chmod(mode)
    refused(monha("check-config", str(cfg)), f"chmod go-w {cfg}", "writable by group or others")
    refused(monha("run", "--config", str(cfg), "--node", "node2"), f"chmod go-w {cfg}")
    assert not (tmp_path / "ctl.sock").exists()


def test_an_inline_password_in_a_readable_config_is_refused(tmp_path: Path) -> None:
    cfg = install(tmp_path, inline=True)
    for done in (
        monha("check-config", str(cfg)),
        monha("run", "--config", str(cfg), "--node", "node2"),
    ):
        refused(done, f"chmod 600 {cfg}", "password inline")
        assert "Hx7-inline-s3cret" not in done.stderr + done.stdout
    assert not (tmp_path / "ctl.sock").exists()
