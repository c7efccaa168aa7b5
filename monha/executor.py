"""Runs a plan step by step, journals each step, and writes the completion flag.

The whole plan is journaled before its first step runs, and each step's result after it ran,
so a daemon killed anywhere replays exactly the plan that was decided (`resume`), running only
what is not recorded as done: no finished step is repeated, and the flag is written exactly
once. A step that fails with on_failure=STOP ends the run with the journal left open; the
state machine retries it with a back-off (`fsm.plan_stopped`), or closes it unrun (`abandon`)
while it changed nothing and the primary answers again.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from monha import cluster_files, log
from monha.journal import (
    UNTOUCHED,
    Journal,
    JournalRecord,
    RecordError,
    step_to_dict,
    write_flag,
)
from monha.metrics import Metrics
from monha.model import OnFailure, PlanKind, Step, StepKind, StepResult
from monha.mysql import MySQLError
from monha.plan import describe, restore_after_abandon
from monha.steps import HEARD_AGAIN, Nodes, Outcome, run_step

# A test-only failpoint: with MONHA_FAILPOINT=STEP_KEY the daemon dies (as by SIGKILL, no
# cleanup) right after that step is journaled, so tests can prove a restart resumes the plan.
FAILPOINT_ENV = "MONHA_FAILPOINT"
FAILPOINT_EXIT = 137
# Another test-only failpoint: with MONHA_FAIL_ONCE=STEP_KEY that step fails (without running)
# the first time this process reaches it, so tests can prove a stopped plan is retried.
FAIL_ONCE_ENV = "MONHA_FAIL_ONCE"


class Executor:
    def __init__(
        self,
        journal: Journal,
        nodes: Nodes,
        metrics: Metrics,
        *,
        cluster: str,
        epoch_file: str = "",
        peer_timeout_s: float = 2.0,
    ) -> None:
        self.journal = journal
        self.nodes = nodes
        self.metrics = metrics
        self.cluster = cluster
        # Where the cluster epoch lives on each node ("" : not kept, in tests of other rules);
        # what one best-effort call to the other node may cost (a dead host must not stall).
        self.epoch_file = epoch_file
        self.peer_timeout_s = peer_timeout_s
        self.log = log.get("monha.executor")
        # When a plan last ended unrun because its wait heard the old primary again (None:
        # not since the daemon started); the daemon's state machine takes it from here.
        self.heard_again_at: float | None = None
        self._recheck = True  # the running plan's wait looks again (see resume)
        self.failpoint = os.environ.get(FAILPOINT_ENV, "")
        self.fail_once = os.environ.get(FAIL_ONCE_ENV, "")
        for env, value in ((FAILPOINT_ENV, self.failpoint), (FAIL_ONCE_ENV, self.fail_once)):
            if value:
                self.log.warning("test_failpoint_armed", env=env, step=value)

    def _begin(
        self,
        plan: tuple[Step, ...],
        kind: PlanKind,
        reason: str,
        old: str,
        new: str,
        reason_code: str,
        facts: Mapping[str, str],
    ) -> JournalRecord:
        record = self.journal.open_record() if kind is PlanKind.SWITCHOVER else None
        if record is not None:
            # An operator re-running the same switchover finishes the one that stopped; any
            # other open record is not this plan's.
            same = (record.kind, record.old_primary, record.new_primary) == ("switchover", old, new)
            if same:
                return self._resumed(record)
        record = JournalRecord(
            failover_id=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6],
            kind="switchover" if kind is PlanKind.SWITCHOVER else "failover",
            started_at=time.time(),
            old_primary=old,
            new_primary=new,
            reason=reason,
            steps=[s.key for s in plan],
            plan=[step_to_dict(s) for s in plan],
            reason_code=reason_code,
        )
        record.data.update(facts)
        self.journal.begin(record)
        self.log.info(
            f"{record.kind}_started",
            failover_id=record.failover_id,
            old_primary=old,
            new_primary=new,
            reason=reason,
            steps=record.steps,
        )
        return record

    def _resumed(self, record: JournalRecord) -> JournalRecord:
        record.attempts += 1
        record.next_attempt_at = None
        self.journal.save(record)
        self.log.info(
            f"{record.kind}_resumed",
            failover_id=record.failover_id,
            attempt=record.attempts,
            finished=sorted(record.finished_steps()),
        )
        return record

    async def run(
        self,
        plan: tuple[Step, ...],
        kind: PlanKind,
        reason: str,
        old: str,
        new: str,
        *,
        reason_code: str = "",
        facts: Mapping[str, str] | None = None,
        on_progress: Callable[[], None] = lambda: None,
    ) -> bool:
        """Start a failover or switchover plan (a switchover already open for the same nodes
        is resumed instead). True when it ran to the end (for a failover: the flag is
        written). `facts` go into the journal's data, and so into the flag (what the decision
        knew, e.g. the loss bound)."""
        record = self._begin(plan, kind, reason, old, new, reason_code, facts or {})
        return await self._run(record, record.replay(), on_progress)

    async def resume(
        self, *, on_progress: Callable[[], None] = lambda: None, recheck: bool = True
    ) -> bool:
        """Replay the journal's open plan exactly as it was decided. False when it stopped
        again, or when there is nothing to replay (the journal is closed or unreadable:
        logged, the next tick's observation says which). Without `recheck` (an operator's
        forced retry) its wait for the old primary's step-down does not look again."""
        opened = self._open_plan("resume")
        if opened is None:
            return False
        record, plan = opened
        return await self._run(self._resumed(record), plan, on_progress, recheck=recheck)

    async def abandon(self, reason: str, *, restore: bool = True) -> bool:
        """Close the open plan without running any more of it (it changed nothing yet), after
        putting back what a failed fence step may have taken (`plan.restore_after_abandon`)."""
        opened = self._open_plan("abandon")
        if opened is None or opened[0].committed:
            return False
        record, plan = opened
        ran = {str(d.get("step")) for d in record.done}
        undo = restore_after_abandon(plan, ran) if restore else ()
        if undo and not await self._still_as_decided(record):
            self.log.warning(
                "abandon_restore_skipped",
                failover_id=record.failover_id,
                detail="the roles changed since the plan was decided",
            )
            undo = ()
        for index, step in enumerate(undo, start=len(plan)):
            await self._step(index, step, record)  # CONTINUE steps: each is tried
        self._close_abandoned(record, reason)
        return True

    def _close_abandoned(self, record: JournalRecord, reason: str) -> None:
        record.outcome = "abandoned"
        record.data["abandoned"] = reason
        self.journal.finish(record)
        self._counter(record).labels("abandoned").inc()
        self.log.warning(f"{record.kind}_abandoned", failover_id=record.failover_id, reason=reason)

    async def _still_as_decided(self, record: JournalRecord) -> bool:
        """The old primary still is one (writable, replicating from nobody) and the new one
        still replicates: only then may a VIP go back to the old primary."""
        old, new = self.nodes.mysql[record.old_primary], self.nodes.mysql[record.new_primary]
        try:
            async with asyncio.timeout(5.0):
                old_status = await old.replica_status()
                old_ro = await old.read_only()
                new_status = await new.replica_status()
        except (TimeoutError, MySQLError):
            return False
        return not old_status.configured and not old_ro and new_status.configured

    def _open_plan(self, what: str) -> tuple[JournalRecord, tuple[Step, ...]] | None:
        """The open record and its journaled plan; None (logged) when there is none, or the
        journal cannot be replayed."""
        try:
            record = self.journal.open_record()
            if record is not None:
                return record, record.replay()
        except RecordError as exc:
            self.log.error(f"{what}_refused", detail=str(exc))
            return None
        self.log.warning(f"{what}_found_nothing", journal=str(self.journal.path))
        return None

    def _counter(self, record: JournalRecord) -> Counter:
        return self.metrics.switchovers if record.kind == "switchover" else self.metrics.failovers

    def stopped(self, next_attempt_at: float | None) -> None:
        """Note in the open record when the next attempt is due (for status readers)."""
        try:
            record = self.journal.open_record()
        except RecordError:
            return
        if record is not None:
            record.next_attempt_at = next_attempt_at
            self.journal.save(record)

    async def _run(
        self,
        record: JournalRecord,
        plan: tuple[Step, ...],
        on_progress: Callable[[], None],
        *,
        recheck: bool = True,
    ) -> bool:
        self.heard_again_at = None  # said by this run only
        self._recheck = recheck
        done = record.finished_steps()
        for index, step in enumerate(plan):
            if step.key in done:
                continue
            outcome = await self._step(index, step, record)
            on_progress()
            if self.failpoint and step.key == self.failpoint:
                self.log.warning("failpoint_reached", step=step.key)
                os._exit(FAILPOINT_EXIT)
            if not outcome.ok and HEARD_AGAIN in outcome.data and not record.committed:
                # The wait's promise is void: close the plan unrun; the next tick decides
                # afresh, its wait counted from this answer.
                self.heard_again_at = time.time()
                self._close_abandoned(record, outcome.detail)
                return False
            if not outcome.ok and step.on_failure is OnFailure.STOP:
                self._counter(record).labels("failed").inc()
                self.log.error(
                    f"{record.kind}_stopped",
                    failover_id=record.failover_id,
                    step=step.key,
                    detail=outcome.detail,
                )
                return False
        record.outcome = "succeeded"
        self.journal.finish(record)
        total = time.time() - record.started_at
        self._counter(record).labels("succeeded").inc()
        if record.kind == "failover":
            self.metrics.failover_duration.set(total)
            self.metrics.last_failover.set(time.time())
        self.log.info(
            f"{record.kind}_finished",
            failover_id=record.failover_id,
            duration_s=round(total, 3),
            new_primary=record.new_primary,
        )
        return True

    async def _step(self, index: int, step: Step, record: JournalRecord) -> Outcome:
        """Run one step: logged before and after with its duration and result, journaled
        before the caller goes on."""
        started = time.time()
        t0 = time.monotonic()
        self.log.info(
            "step_started",
            failover_id=record.failover_id,
            step=step.key,
            index=index,
            node=step.node,
            what=describe(step),
            timeout_s=step.timeout_s,
        )
        if self.fail_once and step.key == self.fail_once:
            self.fail_once = ""
            outcome = Outcome(False, f"failed on purpose ({FAIL_ONCE_ENV})")
        elif step.kind is StepKind.WRITE_FLAG:
            outcome = await self._write_flag(step, record)
        elif step.kind is StepKind.PROMOTE and self.epoch_file:
            outcome = await self._promote(step, record)
        else:
            # A plan that changed a node (a fence command powered the old primary off) has
            # nothing to call off: looking again could only leave it stuck.
            look = self._recheck and not record.committed
            nodes = self.nodes if look else replace(self.nodes, recheck=None)
            outcome = await run_step(step, nodes, record.data)  # never raises
        duration = time.monotonic() - t0
        result = StepResult(
            step=step.key,
            node=step.node,
            ok=outcome.ok,
            started_at=started,
            duration_s=round(duration, 3),
            detail=outcome.detail,
            data=outcome.data,
        )
        self.journal.record_step(record, result)
        self.metrics.step_duration.labels(str(step.kind)).set(duration)
        salvaged = outcome.data.get("salvaged_transactions", "")
        if step.kind is StepKind.SALVAGE_BINLOG and salvaged.isdigit():
            self.metrics.salvaged.inc(int(salvaged))
        self.log.log(
            20 if outcome.ok else 40,
            "step_finished" if outcome.ok else "step_failed",
            failover_id=record.failover_id,
            step=step.key,
            node=step.node,
            ok=outcome.ok,
            duration_s=round(duration, 3),
            detail=outcome.detail,
            on_failure=str(step.on_failure),
        )
        return outcome

    async def _promote(self, step: Step, record: JournalRecord) -> Outcome:
        """Raise the cluster epoch on the node to promote, then promote it. The epoch comes
        first: once the node is writable, its claim must already be the newest one, so the
        node it replaces steps down on seeing it (monha.split_brain)."""
        other = record.old_primary if step.node == record.new_primary else record.new_primary
        # A plan with no step on the other node (its host is down) does not ask it either.
        reach = any(d.get("node") == other for d in record.plan)
        try:
            epoch, where = await cluster_files.raise_epoch(
                self.nodes,
                self.epoch_file,
                step.node,
                other,
                by=record.kind,
                plan=record.failover_id,
                timeout_s=max(1.0, step.timeout_s * 0.3),
                other_timeout_s=self.peer_timeout_s if reach else 0.0,
            )
        except cluster_files.ClusterFileError as exc:
            detail = (
                f"no promotion without a new epoch on {step.node} (it was left as it was): {exc}"
            )
            return Outcome(False, detail, {UNTOUCHED: "yes"})
        outcome = await run_step(step, self.nodes, record.data)
        data = {**outcome.data, "epoch": str(epoch.number), "epoch_primary": epoch.primary}
        return Outcome(outcome.ok, f"{outcome.detail}; {where}", data)

    async def _write_flag(self, step: Step, record: JournalRecord) -> Outcome:
        path = Path(step.arg("path"))
        report: dict[str, Any] = {
            "monha_flag": 1,
            "cluster": self.cluster,
            "failover_id": record.failover_id,
            "kind": record.kind,
            "reason": record.reason,
            "started_at": record.started_at,
            "finished_at": time.time(),
            "old_primary": record.old_primary,
            "new_primary": record.new_primary,
            "steps": record.done,
            "failback": dict(record.data),
            # Said at once, for the operator at 3 a.m.; rejoin reports the exact errant set.
            "lost_at_most": record.data.get("lost_at_most", "unknown"),
            # What the promoted node had received and not applied when it was promoted.
            "not_applied": record.data.get("not_applied", "unknown: no promote step recorded"),
            "clear_with": "monha-ctl resume (clears it on both nodes)",
        }
        if record.data.get("epoch", "").isdigit():
            report["epoch"] = {
                "epoch": int(record.data["epoch"]),
                "primary": record.data.get("epoch_primary", record.new_primary),
                "by": record.kind,
                "plan": record.failover_id,
            }
        try:
            write_flag(path, report)
        except OSError as exc:
            return Outcome(False, f"writing {path}: {exc.strerror}")
        self.metrics.flag_present.set(1)
        # The flag is cluster-wide: a copy on the old primary blocks its monha too, once it
        # is back as a standby. Best effort: the old host is often dead, and rejoin copies it.
        old = record.old_primary
        runner = self.nodes.runners.get(old)
        if runner is None:
            copied = f"(not on {old}: no way to reach it; rejoin copies it there)"
        else:
            try:
                await cluster_files.write_json_on(
                    runner, old, str(path), report, self.peer_timeout_s
                )
                copied = f"and on {old}"
            except cluster_files.ClusterFileError as exc:
                copied = f"(not on {old}: {exc}; rejoin copies it there)"
        return Outcome(True, f"flag written to {path} {copied}")
