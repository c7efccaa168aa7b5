"""Durable records on the standby's disk: the failover journal and the completion flag.

The journal says which steps of a running failover have finished, so that a daemon killed in
the middle re-reads it and finishes the plan without doing anything twice. The flag is the
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

from monha.model import StepResult


class RecordError(Exception):
    """A journal or flag file exists but cannot be read or understood."""


def write_json_atomically(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
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
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


@dataclass(slots=True)
class JournalRecord:
    """One failover (or switchover) in progress, as kept on disk."""

    failover_id: str
    kind: str  # "failover" or "switchover"
    started_at: float
    old_primary: str
    new_primary: str
    reason: str
    steps: list[str]  # the plan's step keys, in order
    done: list[dict[str, Any]] = field(default_factory=list)  # StepResult dicts, in order
    data: dict[str, str] = field(default_factory=dict)  # facts gathered by steps (coordinates)
    finished: bool = False

    def finished_steps(self) -> set[str]:
        """Steps a resumed plan must not run again: every recorded step, except a failure that
        is the last record (the plan stopped there, or died before going on): that one is
        retried. A failure the plan went on from is settled; repeating it out of order later
        would help nothing."""
        done = {d["step"] for d in self.done}
        if self.done and not (self.done[-1].get("ok") or self.done[-1].get("skipped")):
            done.discard(self.done[-1]["step"])
        return done

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> JournalRecord:
        try:
            return cls(**data)
        except TypeError as exc:
            raise RecordError(f"{source}: not a monha journal ({exc})") from exc


class Journal:
    """The journal file. Each change is written through before the caller goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> JournalRecord | None:
        data = read_json(self.path)
        return None if data is None else JournalRecord.from_dict(data, self.path)

    def open_record(self) -> JournalRecord | None:
        """The unfinished failover, if the daemon was stopped in the middle of one."""
        record = self.load()
        return record if record is not None and not record.finished else None

    def begin(self, record: JournalRecord) -> None:
        write_json_atomically(self.path, record.to_dict())

    def record_step(self, record: JournalRecord, result: StepResult) -> None:
        record.done.append(asdict(result))
        record.data.update(result.data)
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
