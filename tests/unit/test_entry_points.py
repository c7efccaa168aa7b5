"""The command lines as an operator meets them: exit codes and messages, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monha.sdnotify import Notifier

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_config_lists_problems_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = EXAMPLE.read_text().replace('address = "192.168.10.2"', 'address = "192.168.10.300"')
    bad.write_text(text.replace("failures_before_failover = 3", "failures_before_failover = 0"))
    done = run("monha", "check-config", str(bad))
    assert done.returncode == 78
    assert "nodes[1].address:" in done.stderr and "(got '192.168.10.300')" in done.stderr
    assert "probe.failures_before_failover:" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_refuses_a_bad_config_with_78_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nname = 'x'\nunknown_key = 1\n")
    done = run("monha", "run", "--config", str(bad))
    assert done.returncode == 78
    assert "cluster.unknown_key" in done.stderr and "Traceback" not in done.stderr


def test_run_on_a_host_that_is_neither_node_says_so(tmp_path: Path) -> None:
    # The example's addresses (192.168.10.x) are not on this test host.
    cfg = tmp_path / "monha.toml"
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    text = EXAMPLE.read_text()
    for name in ("mysql-monitor.password", "mysql-repl.password"):
        text = text.replace(f"/etc/monha/{name}", str(secret))
    cfg.write_text(text)
    done = run("monha", "run", "--config", str(cfg))
    assert done.returncode == 78
    assert "holds none of the node addresses" in done.stderr and "--node" in done.stderr


def test_ctl_without_a_daemon_exits_3(tmp_path: Path) -> None:
    done = run("monha.ctl", "--socket", str(tmp_path / "absent.sock"), "status")
    assert done.returncode == 3
    assert "not running" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["monha"], ["monha", "bogus"], ["monha.ctl", "bogus"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    done = run(*argv)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_sd_notify_sends_ready_and_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        n = Notifier(str(path))
        n.ready("healthy")
        n.watchdog()
        n.close()
        assert server.recv(100) == b"READY=1\nSTATUS=healthy"
        assert server.recv(100) == b"WATCHDOG=1"
    assert not Notifier("").enabled


def test_a_clean_start_prints_nothing_on_stderr() -> None:
    """Regression: cryptography 46+ warns about DSA when asyncssh imports it; the warning went
    to stderr on every start, where operators' scripts (and monha's own tests) read errors."""
    for argv in (("monha", "--version"), ("monha.ctl", "--help")):
        done = run(*argv)
        assert done.returncode == 0, done
        assert done.stderr == "", (argv, done.stderr)
