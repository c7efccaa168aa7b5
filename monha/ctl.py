"""`monha-ctl`: the operator's command line, talking to the daemon's control socket.

Exit codes: 0 success, 1 the command failed or the answer says so, 2 bad arguments,
3 the daemon cannot be reached, 78 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monha.config import EX_CONFIG, ConfigError, load_config
from monha.control import ControlError, request

EX_UNREACHABLE = 3
DEFAULT_CONFIG = "/etc/monha/monha.toml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monha-ctl", description="control the monha daemon")
    p.add_argument("--config", default=os.environ.get("MONHA_CONFIG", DEFAULT_CONFIG))
    p.add_argument("--socket", help="control socket (default: control.socket from the config)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", help="state, primary, probes, flag and why")
    status.add_argument("--json", action="store_true")
    resume = sub.add_parser("resume", help="clear the completion flag and resume monitoring")
    resume.add_argument("--json", action="store_true")
    return p


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    return Path(load_config(args.config).control.socket)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        print("monha-ctl: --timeout must be greater than 0", file=sys.stderr)
        return 2
    try:
        path = _socket_path(args)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"monha-ctl: {args.config}: {line}", file=sys.stderr)
        return EX_CONFIG
    try:
        answer = asyncio.run(request(path, {"cmd": args.command}, args.timeout))
    except ControlError as exc:
        print(f"monha-ctl: {exc}", file=sys.stderr)
        return EX_UNREACHABLE
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    elif not answer.get("ok"):
        print(f"monha-ctl: {answer.get('error', 'the daemon refused')}", file=sys.stderr)
    elif args.command == "status":
        print(render_status(answer))
    else:
        print(json.dumps({k: v for k, v in answer.items() if k != "ok"}))
    return 0 if answer.get("ok") else 1


def _probe_line(name: str, p: dict[str, Any] | None) -> str:
    if not p:
        return f"  {name:<10} -"
    lat = p.get("latency_s")
    lat_s = f"{lat * 1000:.0f} ms" if isinstance(lat, int | float) else "-"
    detail = f"  {p['detail']}" if p.get("detail") else ""
    return f"  {name:<10} {p['status']:<12} {lat_s:>8}  {p['target']}{detail}"


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
    flag = s.get("flag")
    if flag:
        lines.append(
            f"flag      PRESENT: failover {flag.get('failover_id')} "
            f"{flag.get('old_primary')} -> {flag.get('new_primary')}; blocks automatic failover"
        )
    else:
        lines.append("flag      none")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
