"""`monha-lab`: the command line of the namespace lab (up, down, status, exec, fault, load).

Parses arguments and prints; everything it does is in `monha.lab.lab.Lab` and
`monha.lab.faults.Faults`. Exit codes: 0 ok, 1 failed, 2 usage, 3 already up / not up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from monha.lab.faults import FAULT_NAMES, FaultError
from monha.lab.lab import Lab, LabError
from monha.lab.names import NETNS_ROLES, PrefixError, default_prefix
from monha.lab.proc import CommandError
from monha.lab.server import DEFAULT_SERVER, SERVERS


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--prefix",
        default=None,
        help="lab name prefix: 1-6 lower-case letters/digits "
        f"(default: $MONHA_LAB_PREFIX or {default_prefix()!r})",
    )
    parser = argparse.ArgumentParser(
        prog="monha-lab", description="A two-node monha lab in network namespaces."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="build and start the lab")
    up.add_argument("--replace", action="store_true", help="tear down an existing lab first")
    up.add_argument(
        "--semi-sync",
        action="store_true",
        help="MariaDB semi-synchronous replication (AFTER_SYNC) on both nodes",
    )
    up.add_argument(
        "--server",
        choices=SERVERS,
        default=DEFAULT_SERVER,
        help="the database server of both nodes: the host's MariaDB (default) or Oracle MySQL "
        "from a cached root filesystem (gtid_mode=ON)",
    )
    up.add_argument(
        "--mysqld-safe",
        action="store_true",
        help="run the server under mysqld_safe (restarts it after kill -9, like a real host)",
    )
    up.add_argument(
        "--keep-on-failure", action="store_true", help="do not undo a failed up (to debug)"
    )
    down = sub.add_parser("down", parents=[common], help="stop and remove everything")
    down.add_argument("--purge-cache", action="store_true", help="also remove the template")
    status = sub.add_parser("status", parents=[common], help="what runs where")
    status.add_argument("--json", action="store_true")
    ex = sub.add_parser(
        "exec", parents=[common], help="run a command in a node: exec node2 -- CMD ..."
    )
    ex.add_argument("node", choices=NETNS_ROLES)
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    fault = sub.add_parser("fault", parents=[common], help="inject or undo a fault")
    fault.add_argument("name", choices=FAULT_NAMES)
    fault.add_argument("args", nargs="*")
    sub.add_parser(
        "load", parents=[common], help="write load generator (monha.lab.load)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["load"]:
        return _load(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        lab = Lab(args.prefix)
    except PrefixError as exc:
        print(f"monha-lab: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(lab, args)
    except LabError as exc:
        print(f"monha-lab: {exc}", file=sys.stderr)
        return 3
    except (CommandError, FaultError) as exc:
        print(f"monha-lab: {exc}", file=sys.stderr)
        return 1


def _pop_prefix(argv: list[str]) -> tuple[str | None, list[str]]:
    rest: list[str] = []
    prefix: str | None = None
    it = iter(argv)
    for item in it:
        if item == "--prefix":
            prefix = next(it, None)
        elif item.startswith("--prefix="):
            prefix = item.split("=", 1)[1]
        else:
            rest.append(item)
    return prefix, rest


def _load(argv: list[str]) -> int:
    """`monha-lab load [--prefix P] ARGS`: the write-load generator, run in the lab's client
    namespace when the lab is up (only from there is the VIP reachable); ARGS go to
    `monha.lab.load.main` unchanged."""
    prefix, rest = _pop_prefix(argv)
    try:
        lab = Lab(prefix)
    except PrefixError as exc:
        print(f"monha-lab: {exc}", file=sys.stderr)
        return 2
    client = lab.paths.netns_path("client")
    if os.environ.get("MONHA_LAB_NETNS") != str(client) and client.exists():
        env = {**os.environ, "MONHA_LAB_NETNS": str(client)}
        cmd = ["nsenter", f"--net={client}", "--", sys.executable, "-m", "monha.lab.cli"]
        os.execvpe("nsenter", [*cmd, "load", "--prefix", lab.prefix, *rest], env)
    from monha.lab import load  # the load generator's own module, imported only when used

    return int(load.main(rest) or 0)


def _dispatch(lab: Lab, args: argparse.Namespace) -> int:
    if args.command == "up":
        print(f"bringing up lab {lab.prefix!r} ...", flush=True)
        seconds = lab.up(
            supervised=args.mysqld_safe,
            semi_sync=args.semi_sync,
            server=args.server,
            replace=args.replace,
            keep_on_failure=args.keep_on_failure,
            log=lambda m: print(m, flush=True),
        )
        print(f"lab {lab.prefix!r} is up in {seconds:.1f} s")
        print(f"  config (host copy): {lab.config_copy}")
        print(f"  run in a node:      monha-lab exec --prefix {lab.prefix} node2 -- CMD ...")
        return 0
    if args.command == "down":
        problems = lab.down(purge_cache=args.purge_cache)
        print(f"lab {lab.prefix!r} is down" + (" (with problems)" if problems else ""))
        return 1 if problems else 0
    if args.command == "status":
        from monha.lab.status import render

        status = lab.status()
        print(json.dumps(status, indent=2) if args.json else render(status))
        return 0 if status["phase"] == "up" else 3
    if args.command == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            print("monha-lab: exec needs a command after --", file=sys.stderr)
            return 2
        if not lab.paths.netns_path(args.node).exists():
            raise LabError(f"lab {lab.prefix!r} has no namespace for {args.node}")
        full = lab.node_argv(args.node, argv)
        sys.stdout.flush()
        os.execvp(full[0], full)
    if args.command == "fault":
        if not lab.is_up():
            raise LabError(f"lab {lab.prefix!r} is not up")
        print(lab.faults.apply(args.name, args.args))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
