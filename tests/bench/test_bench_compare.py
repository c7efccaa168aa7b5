"""The benchmark cannot rot: its pure figures, the MHA module patches against the installed
package, and one short run per system of the kill -9 scenario on a real lab (under CI=true a
missing prerequisite fails instead of skipping)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.compare import one_run, tables
from bench.measure import final_primary, summarize, writes_back
from bench.mha import MHA_SHARE, PATCHES, patch_modules
from bench.scenarios import BY_NAME
from monha.lab.load import Record
from tests.conftest import require, require_root_and_binaries
from tests.lab.support import BINARIES, new_prefix


def _record(acks: dict[int, tuple[float, int]]) -> Record:
    r = Record(run_id="x", started_at=0.0)
    for i, (at, server) in acks.items():
        r.acked[i], r.acked_server[i] = at, server
    return r


def test_writes_back_is_the_end_of_the_outage_after_the_fault() -> None:
    acks = {i: (i * 0.1, 101) for i in range(1, 50)}  # every 0.1 s until 4.9 s
    acks |= {100 + i: (12.0 + i * 0.1, 102) for i in range(10)}  # back on node2 at 12 s
    back, gap = writes_back(_record(acks), fault_at=5.0, end_at=14.0)
    assert back == pytest.approx(7.0) and gap == pytest.approx(7.0)
    assert final_primary(_record(acks)) == "node2"


def test_writes_that_never_stop_count_as_zero_and_never_back_as_none() -> None:
    steady = {i: (i * 0.1, 101) for i in range(1, 200)}
    assert writes_back(_record(steady), fault_at=5.0, end_at=19.95)[0] == 0.0
    stopped = {i: (i * 0.1, 101) for i in range(1, 50)}
    assert writes_back(_record(stopped), fault_at=5.0, end_at=30.0)[0] is None


def test_summary_cells_and_missing_values() -> None:
    s = summarize([3.0, None, 1.0, 2.0])
    assert (s.median, s.low, s.high, s.missing) == (2.0, 1.0, 3.0, 1)
    assert s.cell() == "2.0 (1.0–3.0), never ×1"


def test_mha_patches_apply_to_the_installed_package(tmp_path: Path) -> None:
    require(MHA_SHARE.is_dir(), "needs Debian's mha4mysql-node (scripts/setup.sh installs it)")
    changed = patch_modules(tmp_path)
    assert len(changed) == len(PATCHES)
    node_util = (tmp_path / "MHA" / "NodeUtil.pm").read_text()
    assert "[ 0 .. 2 ]" in node_util
    assert "@@global.super_read_only" not in (tmp_path / "MHA" / "SlaveUtil.pm").read_text()


@pytest.mark.lab
@pytest.mark.bench
@pytest.mark.timeout(600)
def test_kill9_once_per_system_side_by_side() -> None:
    """MHA and monha on MariaDB, and monha on MySQL: the same figures, side by side."""
    require_root_and_binaries(*BINARIES, "masterha_manager", "save_binary_logs")
    require(shutil.which("perl") is not None, "needs perl for MHA")
    prefix = new_prefix()
    runs = [("mha", "mariadb"), ("monha", "mariadb"), ("monha", "mysql")]
    results = [one_run(BY_NAME["kill9"], sy, 1, prefix, 3.0, sv) for sy, sv in runs]
    table = tables(results)
    print("\n" + "\n".join(r.line() for r in results) + "\n\n" + table)
    assert "monha · MySQL" in table.splitlines()[0]
    assert [r.server for r in results] == ["mariadb", "mariadb", "mysql"]
    for r in results:
        assert r.error is None, r.line()
        assert r.failed_over, r.line()
        assert r.detect_s is not None and r.detect_s > 0, r.line()
        assert r.writes_back_s is not None and r.writes_back_s > 0, r.line()
        assert r.lost is not None and r.acked > 0, r.line()
        assert r.rss_mb and r.cpu_pct is not None, r.line()
