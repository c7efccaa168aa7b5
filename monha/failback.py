"""Errant transactions at rejoin (issues 4 and 5): find what only the old primary has, save it,
and undo it there, so that the old primary can replicate from the new one without skipping.

Job: `undo_errant` runs inside `monha-ctl rejoin`, after the old primary was fenced and before
it is pointed at the new primary. It sets the old primary read_only (nothing new lands while it
is read), runs `binlog_io.find_errant` (the errant transactions are saved as a replayable SQL
file and as a flashback file, both mode 0600), and when there are any, pipes the flashback into
the old primary's client with `sql_log_bin = 0` (undoing is not new history). The rejoin then
starts replication by GTID from `rejoin_gtid`, the position both nodes share. MySQL has no
flashback: there the errant set is exact (GTID sets), and the rejoin stops with it, the saved
file, and the two ways on (apply the file on the new primary, or rebuild the old one).

Safety arguments:
- nothing is undone unless both files were saved first: the errant rows stay available to an
  operator who wants them re-applied on the new primary (`sql_file`).
- a flashback applied twice would undo rows that are not there (an error) or, on a table without
  a primary key, insert rows twice. A marker file beside the saved files records "applying"
  before the client runs and "applied" after it; a later rejoin that finds the same errant
  transactions skips an applied flashback and refuses after an unconfirmed one (a client that
  failed midway applied an unknown prefix).
- a node that already replicates from this one is not checked again: its binary log now also
  holds what it replicated, which is not errant.
- the answer always says what was checked, found, saved and undone; a check that cannot run
  (no `salvage.binlog_index`) is reported as not done, never as "none".

Must not: skip a transaction (no sql_slave_skip_counter), apply anything on the new primary, or
raise for an errant-transaction problem (the outcome carries the reason).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monha import binlog_io
from monha.config import Config
from monha.mysql import MySQLError
from monha.runners import RunnerError
from monha.steps import Nodes


@dataclass(frozen=True, slots=True)
class ErrantOutcome:
    """`ok` False: rejoin must stop (`error` says why). `rejoin_gtid`: start replication by GTID
    from it (after a flashback); None: from the promote coordinates as before."""

    ok: bool
    answer: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    rejoin_gtid: str | None = None


def errant_dir(cfg: Config) -> Path:
    """Where rejoin saves errant transactions: beside the completion flag (/var/lib/monha)."""
    return Path(cfg.failover.flag_file).parent / "errant"


def _marker(out_dir: Path, node: str) -> Path:
    return out_dir / f"flashback-{node}.json"


def _read_marker(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}


def _read(path: Path) -> bytes:
    # A few MiB at most, read once by an operator command: not worth a thread.
    return path.read_bytes()


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)


async def undo_errant(
    cfg: Config, nodes: Nodes, me: str, node: str, facts: dict[str, str]
) -> ErrantOutcome:
    """Find, save and undo on `node` (the old primary) what `me` (the new primary) never had."""
    if not cfg.salvage.binlog_index:
        return ErrantOutcome(
            True,
            {
                "checked": False,
                "reason": "NOT CHECKED: salvage.binlog_index is not configured, so transactions "
                f"only {node} has (if any) are neither found nor saved; they stay on {node} "
                "under what it replicates",
            },
        )
    server = nodes.mysql[node]
    src = nodes.sources.get(me)
    try:
        status = await server.replica_status(5.0)
        if status.configured and src is not None and status.source_host == src.host:
            return ErrantOutcome(
                True,
                {
                    "checked": False,
                    "reason": f"{node} already replicates from {me}: its errant transactions "
                    "were handled when it was first pointed here (the flag's `rejoined`)",
                },
            )
        await server.set_read_only(True, 5.0)
    except MySQLError as exc:
        return ErrantOutcome(False, {"checked": False}, f"{node}'s MySQL does not answer: {exc}")
    out_dir = errant_dir(cfg)
    try:
        report = await binlog_io.find_errant(
            server,
            nodes.runners[node],
            nodes.mysql[me],
            facts,
            out_dir,
            binlog_index=cfg.salvage.binlog_index,
            binlog_tool=cfg.salvage.binlog_tool,
            timeout_s=cfg.salvage.timeout_s,
            max_output_mib=cfg.salvage.max_output_mib,
        )
    except binlog_io.ErrantError as exc:
        return ErrantOutcome(
            False,
            {"checked": False, "reason": str(exc)},
            f"cannot tell which transactions only {node} has: {exc}; nothing was changed on "
            f"{node} (docs/data-loss.md: errant transactions and failback)",
        )
    answer: dict[str, Any] = {
        "checked": True,
        "count": report.count,
        "errant": list(report.errant),
        "events": report.events,
        "from": f"{report.from_file}:{report.from_pos}",
        "old_end": f"{report.old_end_file}:{report.old_end_pos}",
        "rejoin_gtid": report.rejoin_gtid,
        "sql_file": report.sql_file,
        "flashback_file": report.flashback_file,
        "incomplete_dropped": report.incomplete_dropped,
        "flashback": "not needed",
    }
    if report.gtid_set or report.unsaved:
        answer["gtid_set"] = report.gtid_set
        answer["unsaved"] = report.unsaved
    if not report.count and not report.unsaved:
        return ErrantOutcome(True, answer)
    if not report.flashback_file:
        answer["flashback"] = "none (MySQL has no flashback)"
        return ErrantOutcome(False, answer, _mysql_errant_steps(cfg, me, node, report))
    return await _apply_flashback(cfg, nodes, node, report, answer, out_dir)


def _mysql_errant_steps(cfg: Config, me: str, node: str, report: binlog_io.ErrantReport) -> str:
    """Why a MySQL rejoin stops, and the two ways on; either way the next rejoin checks again.

    Keeping them works because the saved script sets each transaction's GTID: once `me` has
    applied it, `node` has nothing `me` lacks (and replication skips what it already has).
    Dropping them means `node`'s data must become `me`'s: without flashback, a copy of it.
    """
    anonymous = sum(1 for e in report.errant if e.startswith("anonymous@"))
    named = report.gtid_set or f"{anonymous} without a GTID"
    what = (
        f"{report.count} errant transaction(s) on {node} ({named}): {me} never "
        f"had them; saved with their rows to {report.sql_file}"
        if report.count
        else f"{node} has transactions {me} never had ({report.unsaved})"
    )
    rebuild = f"to drop them, rebuild {node} as a copy of {me} (from a backup of {me}, or CLONE)"
    if anonymous:
        # Applied on `me` they would get new GTIDs there; the next check would find them on
        # `node` again, as nothing ties them to those.
        return (
            f"{what}. {anonymous} of them carry no GTID (gtid_mode was not ON on {node}), so "
            f"no later check can tell whether {me} has them. MySQL has no flashback: review "
            f"the file (apply what you keep on {me} by hand), then rebuild {node} as a copy "
            f"of {me} (from a backup of {me}, or CLONE) and run `monha-ctl rejoin {node}` "
            "again (docs/data-loss.md)"
        )
    if report.unsaved:
        return (
            f"{what}; {report.unsaved} are not in {node}'s binary log from "
            f"{report.from_file}:{report.from_pos} (purged, or older), so their SQL cannot be "
            f"saved. MySQL has no flashback: {rebuild}, then run `monha-ctl rejoin {node}` "
            "again (docs/data-loss.md)"
        )
    client = shlex.join(cfg.salvage.apply_command)
    return (
        f"{what}. MySQL has no flashback, so monha does not undo them. To keep them, review "
        f"the file and apply it on {me}: `{client} < {report.sql_file}` (it keeps their "
        f"GTIDs); {rebuild}. Then run `monha-ctl rejoin {node}` again: it checks again by "
        "GTID (docs/data-loss.md)"
    )


async def _apply_flashback(
    cfg: Config,
    nodes: Nodes,
    node: str,
    report: binlog_io.ErrantReport,
    answer: dict[str, Any],
    out_dir: Path,
) -> ErrantOutcome:
    marker = _marker(out_dir, node)
    same = {"errant": list(report.errant), "from": answer["from"]}
    before = _read_marker(marker)
    gtid = report.rejoin_gtid or None
    if {k: before.get(k) for k in same} == same:
        if before.get("state") == "applied":
            answer["flashback"] = (
                f"already applied by an earlier rejoin ({before.get('flashback_file')})"
            )
            return ErrantOutcome(True, answer, rejoin_gtid=gtid)
        answer["flashback"] = f"UNCONFIRMED: {before.get('state')}"
        return ErrantOutcome(
            False,
            answer,
            f"an earlier rejoin started undoing these {report.count} errant transaction(s) on "
            f"{node} ({before.get('flashback_file')}) and did not confirm the end "
            f"({before.get('state')}): check {node}'s rows by hand, then remove {marker}",
        )
    _write_marker(marker, {**same, "state": "applying", "flashback_file": report.flashback_file})
    script = b"SET SESSION sql_log_bin = 0;\n" + _read(Path(report.flashback_file))
    try:
        res = await binlog_io.apply_script(
            nodes.runners[node], cfg.salvage.apply_command, script, cfg.salvage.timeout_s
        )
        detail = "" if res.ok else res.summary()
    except (RunnerError, TimeoutError, OSError) as exc:
        detail = str(exc) or "timed out"
    if detail:
        state = f"failed at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {detail}"
        _write_marker(marker, {**same, "state": state, "flashback_file": report.flashback_file})
        answer["flashback"] = f"FAILED: {detail}"
        return ErrantOutcome(
            False,
            answer,
            f"undoing {report.count} errant transaction(s) on {node} failed: {detail}; they are "
            f"saved in {report.sql_file}",
        )
    _write_marker(marker, {**same, "state": "applied", "flashback_file": report.flashback_file})
    answer["flashback"] = f"applied on {node} (sql_log_bin=0)"
    return ErrantOutcome(True, answer, rejoin_gtid=gtid)
