"""Durable records on the standby's disk: the failover journal and the completion flag.

The journal holds the whole plan as it was decided (every step with its node, arguments,
timeout and failure policy, and the evidence that started it), written before the first step
runs, and which of its steps have finished: a daemon killed in the middle, or a plan stopped at
a failed step, replays exactly that plan, never one rebuilt from a later observation (which
could be weaker: fewer fence steps, softer policies), and does nothing twice. The flag is the
failover's report; while it exists no automatic failover may start. Both are written
atomically (temp file, fsync, rename, fsync of the directory): a crash leaves the old version
or the new one, never half a file.

This module only reads and writes files; it decides nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monha.model import OnFailure, Step, StepKind, StepResult
from monha.plan import UNTOUCHED, changed_a_node, last_active_at, waits_for_step_down

JOURNAL_VERSION = 2

# What resolves a journal the daemon cannot replay, for status lines and errors.
DISCARD_HINT = "monha-ctl journal discard (it is kept as a .discarded file)"


__all__ = ["UNTOUCHED"]  # re-exported: the executor marks failed steps with it


class RecordError(Exception):
    """A journal or flag file exists but cannot be read or understood."""


def write_json_atomically(
    path: Path, data: dict[str, Any], mode: int = 0o600, *, sync: bool = True
) -> None:
    """Temp file, rename: a reader sees the old version or the new one. With `sync` (the
    default) also fsync of the file and the directory, so a crash keeps the new one; without,
    for state rewritten every tick, where losing the last write to a crash is harmless."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if not sync:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's JSON object, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"{path}: cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "kind": step.kind.value,
        "node": step.node,
        "timeout_s": step.timeout_s,
        "on_failure": step.on_failure.value,
        "args": [list(a) for a in step.args],
        "argv": list(step.argv),
    }


def step_from_dict(data: Any) -> Step:
    """A journaled step; ValueError/TypeError/KeyError when it is not one."""
    if not isinstance(data, dict):
        raise TypeError(f"a step must be an object, not {type(data).__name__}")
    args = tuple((str(k), str(v)) for k, v in data.get("args", []))
    argv = tuple(str(a) for a in data.get("argv", []))
    timeout = float(data["timeout_s"])
    if not timeout > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout}")
    return Step(
        StepKind(data["kind"]),
        str(data["node"]),
        timeout,
        OnFailure(data["on_failure"]),
        args,
        argv,
    )


@dataclass(slots=True)
class JournalRecord:
    """One failover (or switchover) in progress, as kept on disk."""

    failover_id: str
    kind: str  # "failover" or "switchover"
    started_at: float
    old_primary: str
    new_primary: str
    reason: str
    steps: list[str]  # the plan's step keys, in order (for readers; `plan` is what runs)
    done: list[dict[str, Any]] = field(default_factory=list)  # StepResult dicts, in order
    data: dict[str, str] = field(default_factory=dict)  # facts gathered by steps (coordinates)
    finished: bool = False
    plan: list[dict[str, Any]] = field(default_factory=list)  # the whole plan, step_to_dict
    reason_code: str = ""  # the decision's code when it started
    version: int = JOURNAL_VERSION
    # How the record was closed: "succeeded", "abandoned", "rolled_back", or "" while open.
    outcome: str = ""
    attempts: int = 1  # runs of this plan (the first, then each retry or resume)
    next_attempt_at: float | None = None  # after a stop: when the daemon tries again

    def replay(self) -> tuple[Step, ...]:
        """The plan exactly as it was decided. RecordError when it cannot be rebuilt."""
        try:
            return tuple(step_from_dict(s) for s in self.plan)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"the journal's plan cannot be read: {exc}") from exc

    @property
    def committed(self) -> bool:
        """A step that changes a node succeeded, or one that may have changed it ran at all:
        only finishing the plan restores one primary from here, so it is never abandoned."""
        return changed_a_node(self.done)

    @property
    def flag_written(self) -> bool:
        return any(
            d.get("ok") and str(d.get("step", "")).startswith(StepKind.WRITE_FLAG.value + "@")
            for d in self.done
        )

    @property
    def last_failure(self) -> dict[str, Any] | None:
        """The failed step the plan stopped at, if it stopped at one."""
        if self.done and not (self.done[-1].get("ok") or self.done[-1].get("skipped")):
            return self.done[-1]
        return None

    def finished_steps(self) -> set[str]:
        """Steps a resumed plan must not run again: every recorded step, except a failure that
        is the last record (the plan stopped there, or died before going on): that one is
        retried. A failure the plan went on from is settled; repeating it out of order later
        would help nothing."""
        done = {d["step"] for d in self.done}
        failed = self.last_failure
        if failed is not None:
            done.discard(failed["step"])
        return done

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def waits_for_step_down(self) -> bool:
        return waits_for_step_down({"plan": self.plan})

    @property
    def last_active_at(self) -> float:
        return last_active_at(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> JournalRecord:
        # Records from before the plan was journaled carry no version: they are version 1.
        data = {"version": 1, **data}
        try:
            record = cls(**data)
        except TypeError as exc:
            raise RecordError(f"{source}: not a monha journal ({exc})") from exc
        if not record.finished:
            if record.version != JOURNAL_VERSION or not record.plan:
                raise RecordError(
                    f"{source}: an unfinished plan written by another monha version (journal "
                    f"version {record.version}, {len(record.plan)} steps recorded): it cannot be "
                    "replayed"
                )
            try:
                record.replay()
            except RecordError as exc:
                raise RecordError(f"{source}: {exc}") from exc
        return record


class Journal:
    """The journal file. Each change is written through before the caller goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> JournalRecord | None:
        data = read_json(self.path)
        return None if data is None else JournalRecord.from_dict(data, self.path)

    def open_record(self) -> JournalRecord | None:
        """The unfinished plan, if the daemon was stopped in the middle of one (or the plan
        stopped at a failed step).

        A failover whose flag is recorded as written is finished, whatever the record says: a
        crash between writing the flag and closing the journal must not leave a plan open
        forever (every operator command would refuse). Such a record is closed here.
        """
        record = self.load()
        if record is None or record.finished:
            return None
        if record.flag_written:
            record.outcome = record.outcome or "succeeded"
            self.finish(record)
            return None
        return record

    def discard(self, now: float) -> Path | None:
        """Move the journal aside (an operator's decision); the path it now has, or None."""
        if not self.path.exists():
            return None
        stamp = f"{now:.0f}"
        target = self.path.with_name(f"{self.path.name}.{stamp}.discarded")
        os.replace(self.path, target)
        return target

    def save(self, record: JournalRecord) -> None:
        write_json_atomically(self.path, record.to_dict())

    def begin(self, record: JournalRecord) -> None:
        write_json_atomically(self.path, record.to_dict())

    def record_step(self, record: JournalRecord, result: StepResult) -> None:
        record.done.append(asdict(result))
        record.data.update({k: v for k, v in result.data.items() if k != UNTOUCHED})
        write_json_atomically(self.path, record.to_dict())

    def finish(self, record: JournalRecord) -> None:
        record.finished = True
        write_json_atomically(self.path, record.to_dict())


def read_flag(path: Path) -> dict[str, Any] | None:
    return read_json(path)


def write_flag(path: Path, report: dict[str, Any]) -> None:
    write_json_atomically(path, report, mode=0o644)


def clear_flag(path: Path) -> bool:
    """Remove the flag; True when there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
