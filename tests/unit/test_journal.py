"""The journal on disk: atomic records, and which steps a resumed plan must not repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monha.journal import Journal, JournalRecord, RecordError, read_flag, write_flag
from monha.model import StepResult


def record() -> JournalRecord:
    return JournalRecord(
        failover_id="f1",
        kind="failover",
        started_at=1.0,
        old_primary="node1",
        new_primary="node2",
        reason="test",
        steps=["a", "b", "c"],
    )


def result(step: str, ok: bool) -> StepResult:
    return StepResult(step=step, node="node2", ok=ok, started_at=1.0, duration_s=0.1)


def test_steps_recorded_are_done_except_a_last_failure(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.json")
    r = record()
    j.begin(r)
    j.record_step(r, result("a", False))  # failed, and the plan went on: settled
    j.record_step(r, result("b", True))
    assert j.open_record().finished_steps() == {"a", "b"}  # type: ignore[union-attr]
    j.record_step(r, result("c", False))  # failed last: the plan stopped here, retry it
    assert j.open_record().finished_steps() == {"a", "b"}  # type: ignore[union-attr]
    j.finish(r)
    assert j.open_record() is None
    assert j.load().finished  # type: ignore[union-attr]


def test_damaged_files_are_errors_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        Journal(path).load()
    path.write_text("[1, 2]")
    with pytest.raises(RecordError, match="expected a JSON object"):
        Journal(path).load()
    path.write_text(json.dumps({"unexpected": 1}))
    with pytest.raises(RecordError, match="not a monha journal"):
        Journal(path).load()


def test_flag_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "failover.flag"
    assert read_flag(path) is None
    write_flag(path, {"failover_id": "f1", "new_primary": "node2"})
    assert read_flag(path) == {"failover_id": "f1", "new_primary": "node2"}
    assert not list(path.parent.glob(".*.tmp"))
