"""`monha-ctl`: the operator's command line.

`status`, `switchover`, `failover --force`, `rejoin`, `resume` and `journal` talk to the
daemon's control socket (root only). `check`, `plan` and `is-active` need no daemon: they ask
the nodes themselves (local commands here, SSH to the peer with its host key checked, MySQL as
the monitor user), so they also work while the daemon is stopped, e.g. before its first start.

Exit codes:
  0  success (check: no problem; is-active: this node is the active one)
  1  the command failed, was refused, check found problems, or is-active: not the active node
  2  bad arguments
  3  the daemon cannot be reached
  5  cancelled at the confirmation prompt
  78 bad configuration (EX_CONFIG)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from monha.check import Handles, failover_plan_now, is_active, notes, problems, survey
from monha.config import EX_CONFIG, Config, ConfigError, load_config
from monha.control import ControlError, request
from monha.observe import IdentityError, local_node
from monha.plan import describe

EX_FAILED = 1
EX_USAGE = 2
EX_UNREACHABLE = 3
EX_CANCELLED = 5
DEFAULT_CONFIG = "/etc/monha/monha.toml"

# Seconds to wait for the daemon, by command, unless --timeout says otherwise. A switchover
# waits for catch-up and services; the daemon bounds every step itself.
TIMEOUTS = {
    "journal": 30.0,
    "status": 15.0,
    "resume": 60.0,
    "switchover": 300.0,
    "failover": 300.0,
    "rejoin": 120.0,
}


class UsageError(Exception):
    """A bad argument found after parsing (an unknown node name, say)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own: usage and exit 2
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="monha-ctl",
        description="control the monha failover daemon",
        epilog="exit codes: 0 ok, 1 failed/refused/problems, 2 bad arguments, "
        "3 daemon unreachable, 5 cancelled, 78 bad configuration",
    )
    p.add_argument("--config", default=os.environ.get("MONHA_CONFIG", DEFAULT_CONFIG))
    p.add_argument("--socket", help="control socket (default: control.socket from the config)")
    p.add_argument("--timeout", type=float, help="seconds to wait for an answer")
    p.add_argument("--node", help="this node's name (default: the node whose address is local)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", help="print the answer as JSON")
        return c

    st = cmd("status", "state, roles, replication, VIP and services, flag, and why")
    st.add_argument("--no-cluster", action="store_true", help="skip asking the nodes")
    cmd("check", "check both nodes as a failover needs them (no daemon needed)")
    cmd("plan", "the steps a failover would run now, in order, on which node (no daemon needed)")
    sw = cmd("switchover", "planned switch of the primary role to the other node")
    sw.add_argument("--to", metavar="NODE", help="the new primary (default: the replica)")
    sw.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    fo = cmd("failover", "manual failover when the primary is dead")
    fo.add_argument("--force", action="store_true", help="required: the primary is dead")
    fo.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rj = cmd("rejoin", "make the old primary a replica of the current one (failback)")
    rj.add_argument("node", metavar="NODE", help="the old primary")
    cmd("resume", "clear the completion flag and resume monitoring (only if check passes)")
    jr = cmd("journal", "show the failover journal, or discard one that cannot be replayed")
    jr.add_argument("action", choices=["show", "discard"])
    jr.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    ia = cmd("is-active", "exit 0 only on the node that is the primary and holds the VIP")
    ia.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        print("monha-ctl: --timeout must be greater than 0", file=sys.stderr)
        return EX_USAGE
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"monha-ctl: {exc}", file=sys.stderr)
        return EX_USAGE
    except ConfigError as exc:
        for line in exc.lines:
            print(f"monha-ctl: {args.config}: {line}", file=sys.stderr)
        return EX_CONFIG
    except IdentityError as exc:
        print(f"monha-ctl: {exc}", file=sys.stderr)
        return EX_CONFIG
    except ControlError as exc:
        print(f"monha-ctl: {exc}", file=sys.stderr)
        return EX_UNREACHABLE
    except KeyboardInterrupt:
        print("monha-ctl: interrupted", file=sys.stderr)
        return EX_CANCELLED


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _me(args: argparse.Namespace, cfg: Config) -> str:
    if args.node:
        _known(cfg, args.node, "--node")
        return str(args.node)
    return local_node(cfg)


def _known(cfg: Config, node: str, what: str) -> None:
    if node not in cfg.node_names:
        raise UsageError(f"{what}: no node named {node!r} (nodes: {', '.join(cfg.node_names)})")


def _ask(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any]:
    path = Path(args.socket) if args.socket else Path(_config(args).control.socket)
    timeout = args.timeout or TIMEOUTS.get(args.command, 15.0)
    return asyncio.run(request(path, payload, timeout))


def _dispatch(args: argparse.Namespace) -> int:
    c = args.command
    if c == "check":
        return _check(args)
    if c == "plan":
        return _plan(args)
    if c == "is-active":
        return _is_active(args)
    if c == "status":
        answer = _ask(args, {"cmd": "status", "cluster": not args.no_cluster})
        return _print(args, answer, render_status)
    if c == "resume":
        return _print(args, _ask(args, {"cmd": "resume"}), render_resume)
    if c == "rejoin":
        if not args.socket:
            _known(_config(args), args.node, "rejoin")
        return _print(args, _ask(args, {"cmd": "rejoin", "node": args.node}), render_rejoin)
    if c == "switchover":
        return _switchover(args)
    if c == "journal":
        if args.action == "discard" and not args.yes:
            question = "Discard the journal? Its plan will not be resumed (it is kept aside)."
            if not _confirm(question):
                return EX_CANCELLED
        answer = _ask(args, {"cmd": "journal", "action": args.action})
        return _print(args, answer, render_journal)
    if c == "failover":
        if not args.force:
            raise UsageError("failover: --force is required (it is for a dead primary only)")
        if not args.yes and not _confirm("Fail over now? The primary must be dead."):
            return EX_CANCELLED
        answer = _ask(args, {"cmd": "failover", "force": True})
        return _print(args, answer, render_operation)
    raise UsageError(f"unknown command {c!r}")


def _switchover(args: argparse.Namespace) -> int:
    if args.to and not args.socket:
        _known(_config(args), args.to, "--to")
    if not args.yes:
        status = _ask(args, {"cmd": "status"})
        primary = (status.get("cluster") or {}).get("primary")
        if not primary:
            print("monha-ctl: cannot tell which node is the primary; see monha-ctl check",
                  file=sys.stderr)  # fmt: skip
            return EX_FAILED
        target = args.to or next(n for n in status["cluster"]["nodes"] if n != primary)
        if not _confirm(f"Switch the primary role from {primary} to {target}?"):
            return EX_CANCELLED
    answer = _ask(args, {"cmd": "switchover", "to": args.to})
    return _print(args, answer, render_operation)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal: confirm with --yes")
    reply = input(f"{question} [y/N] ").strip().lower()
    if reply not in ("y", "yes"):
        print("monha-ctl: cancelled", file=sys.stderr)
        return False
    return True


def _print(args: argparse.Namespace, answer: dict[str, Any], render: Any) -> int:
    ok = bool(answer.get("ok"))
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    elif ok:
        print(render(answer))
    else:
        print(f"monha-ctl: {answer.get('error', 'the daemon refused')}", file=sys.stderr)
        for p in answer.get("problems", []):
            print(f"  - {p}", file=sys.stderr)
        if answer.get("steps"):
            print(render_steps(answer["steps"]), file=sys.stderr)
        if answer.get("errant_check"):  # a refused rejoin still says what it found and saved
            print(render_errant(answer["errant_check"], "the old primary"), file=sys.stderr)
    return 0 if ok else EX_FAILED


# --- commands that need no daemon ------------------------------------------------------------


async def _survey(cfg: Config, me: str) -> Any:
    handles = Handles.open(cfg, me)
    try:
        return await survey(cfg, me, handles)
    finally:
        await handles.close()


def _check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    me = _me(args, cfg)
    s = asyncio.run(_survey(cfg, me))
    found, said = problems(cfg, s), notes(cfg, s)
    if args.json:
        answer = {"ok": not found, "problems": found, "notes": said, "cluster": s.to_dict()}
        print(json.dumps(answer, indent=2, sort_keys=True))
    else:
        print(render_cluster(s.to_dict()))
        for n in said:
            print(f"note: {n}")
        if found:
            print(f"{len(found)} problem(s):")
            print("\n".join(f"  - {p}" for p in found))
        else:
            print("check OK: no problems")
    return EX_FAILED if found else 0


def _plan(args: argparse.Namespace) -> int:
    cfg = _config(args)
    me = _me(args, cfg)
    s = asyncio.run(_survey(cfg, me))
    try:
        old, new, plan, why = failover_plan_now(cfg, s)
    except ValueError as exc:
        print(f"monha-ctl: {exc}", file=sys.stderr)
        return EX_FAILED
    if args.json:
        steps = [
            {
                "index": i + 1,
                "step": st.key,
                "kind": str(st.kind),
                "node": st.node,
                "timeout_s": st.timeout_s,
                "on_failure": str(st.on_failure),
                "argv": list(st.argv),
                "what": describe(st),
            }
            for i, st in enumerate(plan)
        ]
        doc = {"ok": True, "old_primary": old, "new_primary": new, "why": why, "steps": steps}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(f"If {old} failed now, {new} would run ({why}):")
        for i, st in enumerate(plan, 1):
            print(f"{i:>3}. {describe(st)}")
    return 0


def _is_active(args: argparse.Namespace) -> int:
    cfg = _config(args)
    me = _me(args, cfg)
    active, why = asyncio.run(is_active(cfg, me))
    if args.json:
        print(json.dumps({"ok": active, "active": active, "node": me, "reason": why}))
    elif not args.quiet:
        print(("active: " if active else "not active: ") + why)
    return 0 if active else EX_FAILED


# --- rendering (pure: tested without a daemon) -----------------------------------------------


def _probe_line(name: str, p: dict[str, Any] | None) -> str:
    if not p:
        return f"  {name:<10} -"
    lat = p.get("latency_s")
    lat_s = f"{lat * 1000:.0f} ms" if isinstance(lat, int | float) else "-"
    detail = f"  {p['detail']}" if p.get("detail") else ""
    return f"  {name:<10} {p['status']:<12} {lat_s:>8}  {p['target']}{detail}"


def _yes(v: Any) -> str:
    return "?" if v is None else ("yes" if v else "no")


def render_cluster(c: dict[str, Any]) -> str:
    """One line per node: role, read_only, replication, VIP, cold-standby services."""
    lines = [f"cluster   primary {c.get('primary') or 'UNKNOWN'}, VIP on "
             f"{', '.join(c.get('vip_holders') or []) or 'no node'}"]  # fmt: skip
    for name, n in c["nodes"].items():
        if not n["mysql_ok"]:
            lines.append(f"  {name:<8} MySQL does not answer: {n['mysql_detail']}")
            continue
        parts = [f"read_only {_yes(n['read_only'])}"]
        st = n.get("replica") or {}
        if st.get("configured"):
            lag = st.get("seconds_behind")
            parts.append(
                f"replicates from {st.get('source_host')} IO {st.get('io_running')} "
                f"SQL {st.get('sql_running')} lag {'?' if lag is None else lag} s"
            )
        parts.append(f"VIP {_yes(n['holds_vip'])}")
        for svc, running in (n.get("services") or {}).items():
            parts.append(
                f"{svc} {'running' if running else 'stopped' if running is False else '?'}"
            )
        semi = render_semi_sync(n.get("role", ""), n.get("semi_sync"))
        if semi:
            parts.append(semi)
        lines.append(f"  {name:<8} {n['role']:<8} " + ", ".join(parts))
    return "\n".join(lines)


def render_semi_sync(role: str, ss: dict[str, Any] | None) -> str:
    """A node's semi-sync state in a few words, for its role ("" when unknown)."""
    if not ss:
        return ""
    if not ss.get("available"):
        return "semi-sync unavailable"
    if role == "primary":
        if not ss.get("primary_enabled"):
            return "semi-sync off"
        if not ss.get("primary_active"):
            return "semi-sync enabled but NOT active (asynchronous now)"
        clients = ss.get("clients")
        return (
            f"semi-sync active ({ss.get('wait_point') or '?'}, "
            f"{'?' if clients is None else clients} replica(s))"
        )
    if role == "replica":
        if not ss.get("replica_enabled"):
            return "semi-sync off"
        return "semi-sync " + ("active" if ss.get("replica_active") else "enabled, not active")
    return ""


def render_status(s: dict[str, Any]) -> str:
    lines = [
        f"node      {s['node']} ({s['role']}), peer {s['peer']}",
        f"state     {s['state']}  ({s.get('reason_code') or '-'})",
        f"reason    {s['reason']}",
    ]
    obs = s.get("observation")
    if obs:
        failures = s["consecutive_failures"]
        lines.append(f"primary   {obs['primary']}   consecutive failures: {failures}")
        lines.append("probes")
        lines.append(_probe_line("mysql", obs["primary_mysql"]))
        lines.append(_probe_line("icmp", obs["primary_icmp"]))
        lines.append(_probe_line("ssh", obs["primary_ssh"]))
        rv = obs["replica_view"]
        lines.append(_probe_line("replica", rv["probe"]))
        for w in obs.get("witnesses", []):
            lines.append(_probe_line("witness", w))
        st = rv.get("status")
        if st and st.get("configured"):
            heard = rv.get("heard_from_primary_s_ago")
            heard_s = f"{heard:.1f} s ago" if isinstance(heard, int | float) else "unknown"
            lines.append(
                f"replica   IO {st['io_running']}  SQL {st['sql_running']}  "
                f"lag {st['seconds_behind']}  heard from primary {heard_s}"
            )
            if st.get("last_io_error"):
                err = f"{st['last_io_errno']}: {st['last_io_error']}"
                lines.append(f"          last IO error {err}")
    if s.get("cluster"):
        lines.append(render_cluster(s["cluster"]))
    flag = s.get("flag")
    if flag:
        lines.append(
            f"flag      PRESENT: failover {flag.get('failover_id')} "
            f"{flag.get('old_primary')} -> {flag.get('new_primary')}; blocks automatic failover"
        )
        failback = flag.get("failback") or {}
        if failback.get("new_primary_binlog_file"):
            lines.append(
                f"          promoted at {failback['new_primary_binlog_file']}:"
                f"{failback.get('new_primary_binlog_pos')} (rejoin starts there)"
            )
        if flag.get("rejoined"):
            lines.append(f"          {flag['rejoined'].get('node')} rejoined as a replica")
    else:
        lines.append("flag      none")
    j = s.get("journal")
    if j and not j.get("finished") and "error" not in j:
        lines.append(
            f"journal   UNFINISHED {j['kind']} {j['id']} {j['old_primary']} -> "
            f"{j['new_primary']} ({j['steps_done']} steps done)"
        )
    if s.get("operation_running"):
        lines.append(f"operation {s['operation_running']} running")
    return "\n".join(lines)


def render_steps(steps: list[dict[str, Any]]) -> str:
    lines = []
    for st in steps:
        if not st.get("ran", True):
            mark, took = "-", "not run"
        else:
            mark = "ok" if st.get("ok") else "FAILED"
            took = f"{st.get('duration_s', 0):.3f} s"
        detail = f"  {st['detail']}" if st.get("detail") else ""
        lines.append(f"  {mark:<6} {took:>9}  {st.get('what', st['step'])}{detail}")
    return "\n".join(lines)


def render_operation(a: dict[str, Any]) -> str:
    lines = [
        f"{a['kind']} {a['id']}: {a['old_primary']} -> {a['new_primary']} "
        f"in {a['duration_s']:.2f} s",
        render_steps(a["steps"]),
    ]
    if "write_block_s" in a:
        lines.append(f"writes were blocked for {a['write_block_s']:.3f} s")
    if a.get("skipped"):
        lines.append(f"forced past: {a['skipped']}")
    if a.get("not_applied"):
        lines.append(f"not applied on {a['new_primary']}: {a['not_applied']}")
    if a.get("warning"):
        lines.append(f"WARNING: {a['warning']}")
    return "\n".join(lines)


def render_rejoin(a: dict[str, Any]) -> str:
    gtid = f", by GTID from {a['from_gtid']}" if a.get("from_gtid") else ""
    return "\n".join(
        [
            f"{a['node']} replicates from {a['source']} from {a['from']}{gtid} "
            f"(coordinates from {a['coordinates_from']})",
            render_steps(a["steps"]),
            render_errant(a.get("errant_check"), a["node"]),
            "next: `monha-ctl switchover --to "
            f"{a['node']}` to switch back, then `monha-ctl resume`",
        ]
    )


def render_errant(e: dict[str, Any] | None, node: str) -> str:
    """What rejoin found only on the old primary, where it saved it, and what it undid."""
    if not e:
        return "errant transactions: not checked"
    if not e.get("checked"):
        return f"errant transactions: not checked: {e.get('reason', 'no reason given')}"
    head = (
        f"errant transactions: {e['count'] or 'none'} only on {node} "
        f"(its binary log {e.get('from')} .. {e.get('old_end')})"
    )
    if not e["count"]:
        return head
    lines = [
        head,
        f"  GTIDs     {', '.join(e.get('errant') or [])}",
        f"  saved     {e.get('sql_file')}  (replayable: re-apply on the primary if wanted)",
        f"  flashback {e.get('flashback_file') or '-'}: {e.get('flashback')}",
    ]
    if e.get("incomplete_dropped"):
        lines.append(f"  {e['incomplete_dropped']} incomplete transaction(s) at the end ignored")
    return "\n".join(lines)


def render_resume(a: dict[str, Any]) -> str:
    if a.get("removed"):
        return "flag cleared: automatic failover is armed again"
    return "no flag was present: automatic failover is armed"


def render_journal(a: dict[str, Any]) -> str:
    if "moved_to" in a:
        if not a["moved_to"]:
            return f"no journal at {a['path']}: nothing to discard"
        return f"journal moved to {a['moved_to']}: its plan will not be resumed"
    if a.get("error"):
        return f"{a['path']}: {a['error']}"
    record = a.get("record")
    if not record:
        return f"no journal at {a['path']}"
    state = record.get("outcome") or ("finished" if record.get("finished") else "OPEN")
    lines = [
        f"{record['kind']} {record['failover_id']}: {record['old_primary']} -> "
        f"{record['new_primary']} ({state}, {record.get('attempts', 1)} attempt(s))",
        f"  reason: {record['reason']}",
    ]
    done = {d["step"]: d for d in record.get("done", [])}
    for key in record.get("steps", []):
        d = done.get(key)
        mark = "-" if d is None else ("ok" if d.get("ok") else "FAILED")
        detail = f": {d.get('detail', '')}" if d else ""
        lines.append(f"  [{mark}] {key}{detail}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
