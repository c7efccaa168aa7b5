"""The lab's record of what it made: processes, mounts, paths, namespaces and active faults.

`down` reads this record to undo everything, so each effect is recorded right after it
happens (a failed `up` leaves a record of exactly what it did). Updates hold an exclusive
lock and replace the file atomically. The record never decides anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ProcRecord:
    """A process the lab started: `start` is its start time, to refuse a reused PID."""

    pid: int
    start: int | None
    name: str
    node: str


@dataclass
class LabState:
    prefix: str
    phase: str = "starting"  # starting -> up; "down" never appears: the record is removed
    started_at: float = 0.0
    up_seconds: float | None = None
    mysqld_safe: bool = False
    server: str = "mariadb"  # which database server the nodes run: "mariadb" or "mysql"
    procs: list[ProcRecord] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # root-namespace mounts, in creation order
    netns: list[str] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)  # fault name -> nodes/args

    def add_proc(self, pid: int, start: int | None, name: str, node: str) -> None:
        self.procs.append(ProcRecord(pid, start, name, node))

    def procs_named(self, name: str, node: str) -> list[ProcRecord]:
        return [p for p in self.procs if p.name == name and p.node == node]

    def drop_procs(self, name: str, node: str) -> None:
        self.procs = [p for p in self.procs if not (p.name == name and p.node == node)]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        procs = [ProcRecord(**p) for p in data.get("procs", [])]
        fields = {k: v for k, v in data.items() if k != "procs" and k in cls.__dataclass_fields__}
        return cls(procs=procs, **fields)


class StateStore:
    """Load and update one lab's state file under an exclusive lock."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> LabState | None:
        try:
            return LabState.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def save(self, state: LabState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def edit(self, prefix: str) -> Iterator[LabState]:
        """Lock, load (or start) the record, let the caller change it, save it."""
        with self.locked():
            state = self.load() or LabState(prefix=prefix)
            try:
                yield state
            finally:  # what happened before an error is recorded too
                self.save(state)
