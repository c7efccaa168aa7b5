"""The operator's commands that the daemon runs: switchover, manual failover, rejoin, resume.

Job: check that a command is safe now (the live topology, `check.problems`), run it through the
same executor and journal as an automatic failover, and answer with what happened in a dict the
control API sends back. The daemon holds `busy` while a command runs, so that no tick decides
anything meanwhile; a second command while one runs is refused rather than queued.

Safety arguments:
- switchover: every step up to the VIP on the new primary stops the plan on failure; if promote
  did not run yet the old primary still has everything, so `_roll_back` gives it its writes and
  its VIP back and the journal records the switchover as rolled back. After promote a failed
  step leaves the journal open and the answer says so: re-running the same switchover resumes
  it (the executor skips finished steps). It never writes the failover flag.
- failover --force: refused while the primary's MySQL answers (that is a switchover's job) and
  while this node is not a replica; otherwise exactly the automatic plan, flag included.
- rejoin: only from the node that is the primary now, only for the node the flag (or the last
  switchover) names as the old primary, from the coordinates recorded when this node was
  promoted; a node already replicating from here is not pointed again (that would apply
  transactions twice). Before it is pointed here, what only it has (errant transactions) is
  found, saved and undone there (`monha.failback`); a check that fails stops the rejoin, and
  the answer always says what was found, saved and undone. Nothing is ever skipped.
- resume: only when `check` finds no problem and no plan is unfinished.

Must not: decide failovers (the core does), or block the daemon's loop beyond its own timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from monha import check, cluster_files, failback, fsm, log, probes, relay_logs
from monha.check import Handles
from monha.config import Config
from monha.executor import Executor
from monha.guard import PEER_FLAG_NAME
from monha.journal import (
    DISCARD_HINT,
    JournalRecord,
    RecordError,
    clear_flag,
    read_flag,
    read_json,
    write_flag,
)
from monha.metrics import Metrics
from monha.model import MonitorState, OnFailure, PlanKind, Step, StepKind
from monha.mysql import MySQLError, probe_alive
from monha.plan import PlanInputs, build_failover_plan, build_switchover_plan, describe
from monha.runners import RunnerError
from monha.steps import Nodes, run_step

Answer = dict[str, Any]


def refused(error: str, **extra: Any) -> Answer:
    return {"ok": False, "error": error, **extra}


class Operations:
    def __init__(
        self,
        cfg: Config,
        me: str,
        nodes: Nodes,
        executor: Executor,
        metrics: Metrics,
        busy: asyncio.Lock,
        on_progress: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.me = me
        self.peer = cfg.peer_of(me).name
        self.nodes = nodes
        self.executor = executor
        self.metrics = metrics
        self.busy = busy
        self.on_progress = on_progress
        self.inputs = PlanInputs.from_config(cfg)
        self.journal = executor.journal  # one Journal per daemon
        self.log = log.get("monha.operations")
        # The command running now, if any: one at a time, and `status` shows it.
        self.running: str | None = None

    @contextlib.asynccontextmanager
    async def _exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold the daemon's lock (waiting for the current tick to end) for one command."""
        self.running = name
        try:
            async with self.busy:
                yield
        finally:
            self.running = None

    @property
    def handles(self) -> Handles:
        return Handles(dict(self.nodes.runners), dict(self.nodes.mysql))

    async def survey(self) -> check.Survey:
        return await check.survey(self.cfg, self.me, self.handles)

    # --- check and status -------------------------------------------------------------------

    async def check(self) -> Answer:
        s = await self.survey()
        found = check.problems(self.cfg, s)
        return {
            "ok": not found,
            "problems": found,
            "notes": check.notes(self.cfg, s),
            "cluster": s.to_dict(),
        }

    # --- switchover -------------------------------------------------------------------------

    async def switchover(self, to: str | None) -> Answer:
        if to is not None and to not in self.cfg.node_names:
            return refused(f"no node named {to!r} (nodes: {', '.join(self.cfg.node_names)})")
        if self.running is not None:
            return refused(f"a {self.running} is running; try again when it ends")
        async with self._exclusive("switchover"):
            s = await self.survey()
            old = s.primary
            if old is None:
                return refused("no single primary: " + "; ".join(check.problems(self.cfg, s)))
            new = self.cfg.peer_of(old).name
            if to is not None and to == old:
                return refused(f"{to} is the primary already")
            try:
                open_ = self.journal.open_record()
            except RecordError as exc:
                return refused(str(exc))
            resuming = open_ is not None and (open_.kind, open_.old_primary) == ("switchover", old)
            if open_ is not None and not resuming:
                return refused(
                    f"a {open_.kind} ({open_.failover_id}, {open_.old_primary} -> "
                    f"{open_.new_primary}) is unfinished in the journal; finish it first"
                )
            found = check.problems(self.cfg, s)
            if found and not resuming:
                return refused("check found problems; fix them first", problems=found)
            plan = build_switchover_plan(self.inputs, old, new)
            reason = f"switchover requested by an operator: {old} -> {new}"
            self.log.info("switchover_requested", old_primary=old, new_primary=new)
            ok = await self.executor.run(
                plan, PlanKind.SWITCHOVER, reason, old, new, on_progress=self.on_progress
            )
            record = self.journal.load()
            assert record is not None
            answer = _report(record, plan)
            if ok:
                block = answer.get("write_block_s")
                if isinstance(block, float):
                    self.metrics.switchover_write_block.set(block)
                replica_step = next(
                    (d for d in record.done if d["step"].startswith("make_replica@")), None
                )
                if replica_step is not None and not replica_step["ok"]:
                    answer["warning"] = (
                        f"{old} is not replicating from {new}: {replica_step['detail']}; "
                        f"run `monha-ctl rejoin {old}`"
                    )
                return {"ok": True, **answer}
            return await self._switchover_failed(record, plan, answer)

    async def _switchover_failed(
        self, record: JournalRecord, plan: tuple[Step, ...], answer: Answer
    ) -> Answer:
        old, new = record.old_primary, record.new_primary
        promoted = any(d["step"] == f"promote@{new}" and d["ok"] for d in record.done)
        failed = record.done[-1] if record.done else {"step": "?", "detail": ""}
        if promoted:
            return refused(
                f"switchover stopped at {failed['step']} ({failed['detail']}) AFTER {new} was "
                f"promoted: the cluster is half-switched. Run `monha-ctl switchover --to {new}` "
                "again to finish it (finished steps are skipped)",
                **answer,
            )
        undone = await self._roll_back(record, plan)
        self.metrics.switchovers.labels("rolled_back").inc()
        return refused(
            f"switchover stopped at {failed['step']} ({failed['detail']}); rolled back: "
            f"{old} is the primary again ({'; '.join(undone)})",
            rolled_back=True,
            **answer,
        )

    async def _roll_back(self, record: JournalRecord, plan: tuple[Step, ...]) -> list[str]:
        """Undo a switchover that stopped before promote: the VIP back, then writes back."""
        old, new = record.old_primary, record.new_primary
        done: list[str] = []
        ran = {d["step"] for d in record.done}
        vip_down = next(s for s in plan if s.kind is StepKind.VIP_DOWN)
        vip_up = next(s for s in plan if s.kind is StepKind.VIP_UP)
        if vip_down.key in ran:
            back = Step(
                StepKind.VIP_UP,
                old,
                vip_up.timeout_s,
                OnFailure.STOP,
                (*vip_down.args, ("arp_count", vip_up.arg("arp_count"))),
            )
            outcome = await run_step(back, self.nodes)
            done.append(f"VIP back on {old}: {outcome.detail}")
        try:
            await self.nodes.mysql[old].set_read_only(False, self.inputs.promote_timeout_s)
            done.append(f"{old} writable again")
        except MySQLError as exc:
            done.append(f"could NOT make {old} writable again: {exc}")
        record.data["rolled_back"] = "; ".join(done)
        record.outcome = "rolled_back"
        self.journal.finish(record)
        self.log.warning("switchover_rolled_back", new_primary=new, old_primary=old, done=done)
        return done

    # --- manual failover --------------------------------------------------------------------

    async def failover(self, force: bool) -> Answer:
        if not force:
            return refused("a manual failover needs --force (the primary must be dead)")
        if self.running is not None:
            return refused(f"a {self.running} is running; try again when it ends")
        async with self._exclusive("failover"):
            me, old = self.me, self.peer
            # An open failover first: its promote may have run half-way (this node then no
            # longer replicates), and replaying the journaled plan is the only way on.
            try:
                open_ = self.journal.open_record()
            except RecordError as exc:
                return refused(f"{exc}; resolve with {DISCARD_HINT}")
            if open_ is not None and open_.kind == "failover":
                return await self._retry_now(open_)
            try:
                status = await self.nodes.mysql[me].replica_status(5.0)
            except MySQLError as exc:
                return refused(f"this node's MySQL does not answer: {exc}")
            if not status.configured:
                return refused(f"{me} is not a replica: it is the primary already")
            if open_ is not None:
                return refused(
                    f"a {open_.kind} ({open_.failover_id}) is unfinished in the journal; "
                    f"finish it first (`monha-ctl switchover --to {open_.new_primary}`)"
                )
            peer_cfg = self.cfg.peer_of(me)
            pw = self.cfg.mysql.monitor_secret().get_secret_value()
            alive = await _mysql_answers(self.cfg, peer_cfg.address, peer_cfg.mysql_port, pw)
            if alive:
                return refused(
                    f"{old}'s MySQL answers: it is not dead; use `monha-ctl switchover` instead"
                )
            ssh_ok = await _ssh_ok(self.nodes, old, self.cfg.probe.ssh_timeout_s)
            icmp = await probes.icmp(peer_cfg.address, self.cfg.probe.icmp_timeout_s)
            plan = build_failover_plan(
                self.inputs,
                old,
                me,
                ssh_reachable=ssh_ok,
                host_down=not ssh_ok and not icmp.answered,
                # Unknown when it last answered anything: an isolated one steps down by
                # itself within its limit from now at the latest.
                primary_heard_at=time.time(),
                # The operator said it is dead: an answer meanwhile does not call it off.
                recheck_wait=False,
            )
            reason = f"manual failover forced by an operator: {old}'s MySQL does not answer"
            # What the automatic rules would have held for: --force goes past it, and says so.
            skipped = [
                s
                for s in (
                    fsm.stale_replica(
                        status, MonitorState(), time.time(), self.cfg.probe.max_lag_s
                    ),
                    relay_logs.unapplied(status),
                )
                if s
            ]
            forced = "; ".join(skipped) or "nothing: the replica was healthy"
            self.log.warning(
                "manual_failover_requested", old_primary=old, ssh_reachable=ssh_ok, skipped=forced
            )
            ok = await self.executor.run(
                plan,
                PlanKind.FAILOVER,
                reason,
                old,
                me,
                facts={"forced_past": forced},
                on_progress=self.on_progress,
            )
            record = self.journal.load()
            assert record is not None
            answer = {
                **_report(record, plan),
                "skipped": forced,
                "not_applied": record.data.get("not_applied", "unknown: the promote did not run"),
            }
            if not ok:
                failed = record.done[-1] if record.done else {"step": "?", "detail": ""}
                flagged = _flag_exists(self.cfg)
                then = (
                    "while the completion flag is present the daemon does not retry it: run "
                    "`monha-ctl failover --force` again once the step can succeed"
                    if flagged
                    else "the journal keeps it open and the daemon retries it"
                )
                return refused(
                    f"failover stopped at {failed['step']}: {failed['detail']}; {then}",
                    **answer,
                )
            return {"ok": True, **answer}

    async def _retry_now(self, record: JournalRecord) -> Answer:
        """The operator's "now": replay the journal's stopped failover plan at once, exactly
        as it was decided (never a new, possibly weaker, plan)."""
        self.log.warning("failover_retry_requested", failover_id=record.failover_id)
        plan = record.replay()
        # The operator said it is dead: an answer meanwhile does not call the wait off.
        ok = await self.executor.resume(on_progress=self.on_progress, recheck=False)
        after = self.journal.load()
        assert after is not None
        answer = _report(after, plan)
        if not ok:
            failed = after.done[-1] if after.done else {"step": "?", "detail": ""}
            return refused(
                f"the journal's failover stopped again at {failed['step']}: {failed['detail']}; "
                "the daemon keeps retrying it",
                **answer,
            )
        return {"ok": True, "retried": True, **answer}

    # --- the journal ------------------------------------------------------------------------

    async def journal_command(self, action: str) -> Answer:
        """`show`: the journal as it is on disk. `discard`: move it aside (an operator's
        decision, for a journal that cannot be replayed or a plan they finished by hand)."""
        if action not in ("show", "discard"):
            return refused(f"journal: unknown action {action!r} (show, discard)")
        if action == "show":
            try:
                record = self.journal.load()
            except RecordError as exc:
                return {"ok": True, "path": str(self.journal.path), "error": str(exc)}
            return {
                "ok": True,
                "path": str(self.journal.path),
                "record": record.to_dict() if record else None,
            }
        if self.running is not None:
            return refused(f"a {self.running} is running; try again when it ends")
        async with self._exclusive("journal discard"):
            moved = self.journal.discard(time.time())
            self.log.warning("journal_discarded", moved_to=str(moved) if moved else None)
            return {"ok": True, "path": str(self.journal.path), "moved_to": str(moved or "")}

    # --- rejoin -----------------------------------------------------------------------------

    async def rejoin(self, node: str) -> Answer:
        me = self.me
        if node not in self.cfg.node_names:
            return refused(f"no node named {node!r} (nodes: {', '.join(self.cfg.node_names)})")
        if node == me:
            return refused(
                f"{me} is this node: run rejoin on the current primary's daemon, naming the "
                "old primary"
            )
        if self.running is not None:
            return refused(f"a {self.running} is running; try again when it ends")
        async with self._exclusive("rejoin"):
            try:
                status = await self.nodes.mysql[me].replica_status(5.0)
                writable = not await self.nodes.mysql[me].read_only(5.0)
            except MySQLError as exc:
                return refused(f"this node's MySQL does not answer: {exc}")
            if status.configured or not writable:
                return refused(f"{me} is not the primary: rejoin runs on the primary's daemon")
            facts, source = self._failback_facts(node)
            if facts is None:
                return refused(source)
            errant: Answer = {}
            plan = build_switchover_plan(self.inputs, node, me)
            steps = [
                s
                for s in plan
                if s.node == node
                and s.kind in (StepKind.VIP_DOWN, StepKind.STOP_SERVICE, StepKind.MAKE_REPLICA)
            ]
            results: list[dict[str, Any]] = []
            for step in steps:
                if step.kind is StepKind.MAKE_REPLICA:
                    # Fenced now: find, save and undo what only `node` has (monha.failback).
                    undo = await failback.undo_errant(self.cfg, self.nodes, me, node, facts)
                    errant = undo.answer
                    self.log.log(
                        20 if undo.ok else 40,
                        "rejoin_errant_checked",
                        node=node,
                        count=errant.get("count"),
                        errant=errant.get("errant"),
                        sql_file=errant.get("sql_file"),
                        flashback=errant.get("flashback"),
                        error=undo.error or None,
                    )
                    if not undo.ok:
                        return refused(
                            f"rejoin of {node} stopped: {undo.error}",
                            steps=results,
                            errant_check=errant,
                        )
                    if undo.rejoin_gtid:
                        facts = {**facts, "rejoin_gtid": undo.rejoin_gtid}
                t0 = time.monotonic()
                outcome = await run_step(step, self.nodes, facts)
                results.append(
                    {
                        "step": step.key,
                        "what": describe(step),
                        "ok": outcome.ok,
                        "detail": outcome.detail,
                        "duration_s": round(time.monotonic() - t0, 3),
                    }
                )
                self.log.log(
                    20 if outcome.ok else 40,
                    "rejoin_step_finished",
                    step=step.key,
                    ok=outcome.ok,
                    detail=outcome.detail,
                )
                self.on_progress()
                if not outcome.ok and step.kind is not StepKind.STOP_SERVICE:
                    return refused(
                        f"rejoin of {node} stopped at {step.key}: {outcome.detail}",
                        steps=results,
                        errant_check=errant,
                    )
            verified = await self._verify_replica(node)
            if verified:
                return refused(
                    f"{node} does not replicate cleanly: {verified}",
                    steps=results,
                    errant_check=errant,
                )
            where = f"{facts['new_primary_binlog_file']}:{facts['new_primary_binlog_pos']}"
            self._note_rejoin(node, where, errant)
            shared = await self._share_with(node)
            self.log.info("rejoined", node=node, source=me, start=where, shared=shared)
            return {
                "shared": shared,
                "ok": True,
                "node": node,
                "source": me,
                "from": where,
                "coordinates_from": source,
                # After errant transactions were undone, replication started by GTID from the
                # position both share (the same point as `from` in this node's binary log).
                "from_gtid": facts.get("rejoin_gtid", ""),
                "errant_check": errant,
                "steps": results,
            }

    def _failback_facts(self, node: str) -> tuple[dict[str, str] | None, str]:
        """The coordinates at which this node was promoted over `node`: from the flag, or from
        the last switchover in the journal (its make_replica step may have failed)."""
        try:
            flag = read_flag(Path(self.cfg.failover.flag_file))
        except RecordError as exc:
            return None, str(exc)
        if flag is not None:
            if (flag.get("old_primary"), flag.get("new_primary")) != (node, self.me):
                return None, (
                    f"the flag records a failover {flag.get('old_primary')} -> "
                    f"{flag.get('new_primary')}, not {node} -> {self.me}"
                )
            facts = flag.get("failback") or {}
            if facts.get("new_primary_binlog_file"):
                return dict(facts), f"the flag {self.cfg.failover.flag_file}"
            return None, "the flag holds no binlog coordinates of the promotion"
        try:
            record = self.journal.load()
        except RecordError as exc:
            return None, str(exc)
        if (
            record is not None
            and record.kind == "switchover"
            and (record.old_primary, record.new_primary) == (node, self.me)
            and record.data.get("new_primary_binlog_file")
        ):
            return dict(record.data), f"switchover {record.failover_id} in the journal"
        return None, f"no failover flag and no switchover recorded {node} -> {self.me}"

    async def _verify_replica(self, node: str) -> str:
        server = self.nodes.mysql[node]
        try:
            st = await server.replica_status(5.0)
            ro = await server.read_only(5.0)
        except MySQLError as exc:
            return str(exc)
        me_addr = self.cfg.node(self.me).address
        if not ro:
            return "read_only is off"
        if not st.configured or st.source_host != me_addr:
            return f"it replicates from {st.source_host or 'nobody'}, not {me_addr}"
        if st.io_running != "Yes" or st.sql_running != "Yes":
            return f"threads IO {st.io_running} SQL {st.sql_running}"
        return ""

    def _note_rejoin(self, node: str, where: str, errant: Answer) -> None:
        path = Path(self.cfg.failover.flag_file)
        with contextlib.suppress(RecordError, OSError):
            flag = read_flag(path)
            if flag is not None:
                before = flag.get("rejoined") or {}
                if not errant.get("checked") and before.get("node") == node:
                    # A repeated rejoin checks nothing: keep what the first one found.
                    errant = before.get("errant") or errant
                flag["rejoined"] = {"node": node, "at": time.time(), "from": where}
                flag["rejoined"]["errant"] = errant
                write_flag(path, flag)

    async def _share_with(self, node: str) -> list[str]:
        """Copy this node's completion flag and epoch to `node`, now a replica again: the flag
        is cluster-wide (its monha must not fail over back before `resume`), and the epoch
        tells it who the primary is meant to be. What could not be copied is said, not hidden."""
        said = []
        runner = self.nodes.runners[node]
        flag_file = self.cfg.failover.flag_file
        for what, path in (("flag", flag_file), ("epoch", cluster_files.epoch_path(flag_file))):
            try:
                data = read_json(Path(path))
            except (RecordError, OSError) as exc:
                said.append(f"{what}: not copied, this node's copy is unreadable ({exc})")
                continue
            if data is None:
                continue
            try:
                await cluster_files.write_json_on(runner, node, path, data, 10.0)
                said.append(f"{what}: copied to {node}")
            except cluster_files.ClusterFileError as exc:
                said.append(f"{what}: NOT copied ({exc})")
        return said

    # --- resume -----------------------------------------------------------------------------

    async def resume(self) -> Answer:
        if self.running is not None:
            return refused(f"a {self.running} is running; try again when it ends")
        async with self._exclusive("resume"):
            s = await self.survey()
            found = check.problems(self.cfg, s)
            if found:
                return refused("check found problems; the flag stays", problems=found)
            path = self.cfg.failover.flag_file
            peer = self.cfg.peer_of(self.me).name
            # The flag is cluster-wide: the peer's copy goes first, so that a peer out of
            # reach leaves both copies in place (nothing half-cleared: run resume again).
            try:
                peer_removed = await cluster_files.remove_on(
                    self.nodes.runners[peer], peer, path, 10.0
                )
            except cluster_files.ClusterFileError as exc:
                return refused(
                    f"the flag stays on both nodes: {peer}'s copy could not be removed ({exc}); "
                    "run resume again once it is reachable, or remove it there by hand"
                )
            removed = clear_flag(Path(path))
            # Each daemon's last reading of its peer's flag goes too: a daemon that was down
            # during resume would otherwise start blocked by it (guard.PEER_FLAG_NAME).
            kept = str(Path(path).parent / PEER_FLAG_NAME)
            with contextlib.suppress(cluster_files.ClusterFileError):
                await cluster_files.remove_on(self.nodes.runners[peer], peer, kept, 10.0)
            with contextlib.suppress(FileNotFoundError):
                os.remove(kept)  # a local unlink: not worth a thread
            self.log.info("flag_cleared", removed=removed, peer_removed=peer_removed)
            return {"ok": True, "removed": removed, "peer_removed": peer_removed}


def _flag_exists(cfg: Config) -> bool:
    # A stat of a local file: not worth a thread.
    return os.path.exists(cfg.failover.flag_file)


def _report(record: JournalRecord, plan: tuple[Step, ...]) -> Answer:
    """What a plan did, step by step, and for a switchover how long writes were blocked."""
    by_key = {d["step"]: d for d in record.done}
    steps = [
        {
            "step": s.key,
            "what": describe(s),
            **{k: by_key[s.key][k] for k in ("ok", "duration_s", "detail") if s.key in by_key},
            "ran": s.key in by_key,
        }
        for s in plan
    ]
    answer: Answer = {
        "id": record.failover_id,
        "kind": record.kind,
        "old_primary": record.old_primary,
        "new_primary": record.new_primary,
        "steps": steps,
        "duration_s": round(time.time() - record.started_at, 3),
    }
    ro = by_key.get(f"set_read_only@{record.old_primary}")
    up = by_key.get(f"vip_up@{record.new_primary}")
    if ro and up and up["ok"]:
        answer["write_block_s"] = round(up["started_at"] + up["duration_s"] - ro["started_at"], 3)
    return answer


async def _mysql_answers(cfg: Config, host: str, port: int, password: str) -> bool:
    results = await asyncio.gather(
        *(
            probe_alive(host, port, cfg.mysql.monitor_user, password, cfg.probe.mysql_timeout_s)
            for _ in range(cfg.probe.mysql_attempts)
        )
    )
    return any(r.answered for r in results)


async def _ssh_ok(nodes: Nodes, node: str, timeout_s: float) -> bool:
    try:
        result = await nodes.runners[node].run(["true"], timeout_s)
    except RunnerError:
        return False
    return result.ok
