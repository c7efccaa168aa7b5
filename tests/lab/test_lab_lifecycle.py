"""`down` leaves nothing behind (namespaces, processes, mounts, files), is idempotent, undoes a
failed `up`; `up` works again after `down`; the mysqld_safe variant restarts a killed server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monha.lab import mariadb
from monha.lab.faults import lab_pids
from monha.lab.lab import Lab
from monha.lab.names import NETNS_DIR, ROOT_MOUNTPOINTS, RUN_ROOT
from monha.lab.netns import mountpoints
from monha.lab.proc import is_alive
from tests.conftest import require_root_and_binaries
from tests.lab.support import BINARIES, eventually, lab_traces, mysql_probe, new_prefix

pytestmark = pytest.mark.lab


def _quiet(_message: str) -> None:
    pass


def _assert_gone(lab: Lab, pids: list[int], existed_before: set[str]) -> None:
    assert lab_traces(lab) == {"netns": [], "mounts": [], "paths": []}
    alive = [p for p in pids if is_alive(p)]
    assert alive == [], alive
    if not RUN_ROOT.exists():  # no other lab is up: machine-wide changes are undone too
        made = [m for m in ROOT_MOUNTPOINTS if m not in existed_before and os.path.lexists(m)]
        assert made == []
        assert str(NETNS_DIR) not in mountpoints() or "netns" in existed_before


def test_down_leaves_nothing_and_up_works_again() -> None:
    require_root_and_binaries(*BINARIES)
    existed = {m for m in ROOT_MOUNTPOINTS if os.path.lexists(m)}
    if str(NETNS_DIR) in mountpoints():
        existed.add("netns")
    lab = Lab(new_prefix())
    try:
        for _round in range(2):  # up after down works
            lab.up(log=_quiet)
            state = lab.state()
            assert state is not None
            traces = lab_traces(lab)
            assert len(traces["netns"]) == 4 and traces["mounts"] and traces["paths"]
            # A daemon started through the API, and one the lab does not know of.
            recorded = lab.spawn_in("node2", ["sleep", "1000"], "sleeper")
            stray = subprocess.Popen(lab.node_argv("node1", ["sleep", "1000"]))
            # Popen returns once nsenter runs; it enters node1's namespaces a moment later.
            stray_pid = stray.pid
            eventually(lambda: stray_pid in lab_pids(lab), 5, "the stray to enter node1")  # noqa: B023
            pids = [r.pid for r in state.procs] + lab_pids(lab) + [recorded]
            assert recorded in pids and stray.pid in pids
            assert len(pids) > 10 and all(is_alive(p) for p in [r.pid for r in state.procs][:4])
            assert lab.status()["vip_http"] == "node1"
            assert lab.down(log=_quiet) == []
            assert stray.wait(timeout=5) == -9
            _assert_gone(lab, pids, existed)
        assert lab.down(log=_quiet) == []  # idempotent
        done = subprocess.run(
            [sys.executable, "-m", "monha.lab.cli", "down", "--prefix", lab.prefix],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        lab.down(log=_quiet)


def test_down_undoes_a_failed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root_and_binaries(*BINARIES)
    lab = Lab(new_prefix())

    def broken(*_args: object) -> None:
        raise RuntimeError("injected failure after the servers started")

    monkeypatch.setattr(mariadb, "start_replication", broken)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            lab.up(keep_on_failure=True, log=_quiet)
        state = lab.state()
        assert state is not None and state.phase == "starting"
        pids = [r.pid for r in state.procs] + lab_pids(lab)
        assert pids and lab_traces(lab)["netns"]
        assert lab.down(log=_quiet) == []
        _assert_gone(lab, pids, set(ROOT_MOUNTPOINTS))
        # Without keep_on_failure, up cleans up after itself.
        with pytest.raises(RuntimeError, match="injected"):
            lab.up(log=_quiet)
        assert lab_traces(lab) == {"netns": [], "mounts": [], "paths": []}
    finally:
        lab.down(log=_quiet)


def test_mysqld_safe_restarts_a_killed_server() -> None:
    require_root_and_binaries(*BINARIES, "mysqld_safe")
    lab = Lab(new_prefix())
    try:
        lab.up(supervised=True, log=_quiet)
        state = lab.state()
        assert state is not None and state.mysqld_safe
        old = lab.faults.kill_mysqld("node1")
        eventually(
            lambda: (
                mariadb.mariadbd_pid(lab.paths, "node1") not in (None, old)
                and mysql_probe(lab, "node2", "192.168.10.1") == "ok"
            ),
            30,
            "mysqld_safe restarts mariadbd",
        )
        assert lab.faults.start_mysqld("node1") == mariadb.mariadbd_pid(lab.paths, "node1")
    finally:
        assert lab.down(log=_quiet) == []
    assert not Path(lab.paths.root).exists()
