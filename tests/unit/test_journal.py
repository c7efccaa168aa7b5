"""The journal on disk: atomic records, and which steps a resumed plan must not repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monha.journal import (
    Journal,
    JournalRecord,
    RecordError,
    read_flag,
    step_from_dict,
    step_to_dict,
    write_flag,
)
from monha.model import OnFailure, Step, StepKind, StepResult

PLAN = (
    Step(StepKind.FENCE_COMMAND, "node2", 30.0, OnFailure.STOP, (("target", "node1"),), ("ipmi",)),
    Step(StepKind.CATCH_UP, "node2", 30.0, OnFailure.CONTINUE),
    Step(StepKind.PROMOTE, "node2", 10.0),
    Step(StepKind.WRITE_FLAG, "node2", 5.0, OnFailure.STOP, (("path", "/f"),)),
)


def record() -> JournalRecord:
    return JournalRecord(
        failover_id="f1",
        kind="failover",
        started_at=1.0,
        old_primary="node1",
        new_primary="node2",
        reason="test",
        steps=["a", "b", "c"],
        plan=[step_to_dict(s) for s in PLAN],
    )


def test_the_whole_plan_is_journaled_and_replayed_exactly(tmp_path: Path) -> None:
    # Issue 11, defect 1: node, arguments, argv, timeout and the failure policy all survive.
    j = Journal(tmp_path / "journal.json")
    j.begin(record())
    assert j.open_record().replay() == PLAN  # type: ignore[union-attr]
    assert step_from_dict(json.loads(json.dumps(step_to_dict(PLAN[0])))) == PLAN[0]


def test_a_journal_closed_before_its_flag_was_noted_is_finished(tmp_path: Path) -> None:
    # Issue 11, defect 7: a crash between recording write_flag and closing the journal must
    # not leave it open forever (every operator command would refuse).
    j = Journal(tmp_path / "journal.json")
    r = record()
    j.begin(r)
    j.record_step(r, result("write_flag@node2", True))
    assert j.open_record() is None
    assert j.load().finished  # type: ignore[union-attr]


def test_an_unfinished_journal_without_a_plan_cannot_be_replayed(tmp_path: Path) -> None:
    # An older monha's journal (step keys only): refusing beats replaying a guess.
    path = tmp_path / "journal.json"
    old = {k: v for k, v in record().to_dict().items() if k not in ("plan", "version")}
    path.write_text(json.dumps(old))
    with pytest.raises(RecordError, match="cannot be replayed"):
        Journal(path).open_record()
    bad = record().to_dict()
    bad["plan"][1]["on_failure"] = "maybe"
    path.write_text(json.dumps(bad))
    with pytest.raises(RecordError, match="plan cannot be read"):
        Journal(path).open_record()


def test_committed_means_a_step_changed_a_node(tmp_path: Path) -> None:
    r = record()
    r.done.append(_d("catch_up@node2"))
    assert not r.committed
    r.done.append(_d("vip_down@node1", ok=False))
    assert not r.committed
    # A promote cut off half-way (after RESET REPLICA) changed the node even though it failed.
    r.done.append(_d("promote@node2", ok=False))
    assert r.committed


def _d(step: str, ok: bool = True) -> dict[str, object]:
    return {"step": step, "ok": ok, "skipped": False}


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
