"""`monha`: the daemon's entry point. `monha run` serves; `monha check-config` validates.

Exit codes: 0 success, 2 bad arguments, 78 bad configuration (EX_CONFIG), 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from monha import __version__, log
from monha.config import (
    EX_CONFIG,
    ConfigError,
    check_config_file,
    check_config_main,
    load_config,
)

DEFAULT_CONFIG = "/etc/monha/monha.toml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monha", description="monha failover daemon")
    p.add_argument("--version", action="version", version=f"monha {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon in the foreground (as the service does)")
    run.add_argument(
        "--config", default=os.environ.get("MONHA_CONFIG", DEFAULT_CONFIG), help="config file"
    )
    run.add_argument("--node", help="this node's name (default: the node whose address is local)")
    run.add_argument(
        "--log-format", choices=["auto", "json", "console"], help="override log.format"
    )
    check = sub.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file")
    units = sub.add_parser(
        "install-units", help="install the systemd unit (or the upstart job) for this monha"
    )
    units.add_argument("--init", choices=["systemd", "upstart"], default="systemd")
    units.add_argument("--dir", help="target directory (default /etc/systemd/system, /etc/init)")
    units.add_argument("--bin", help="the monha program the unit runs (default: this one)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        rc = check_config_main(args.file)
        if rc == 0:
            from monha.split_brain import isolation_fencing

            print(f"isolation self-fencing: {isolation_fencing(load_config(args.file))}")
        return rc
    if args.command == "install-units":
        from monha.units import install_main

        return install_main(args.init, args.dir, args.bin)
    return _run(Path(args.config), args.node, args.log_format)


def _run(path: Path, node: str | None, log_format: str | None) -> int:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"monha: {path}: {line}", file=sys.stderr)
        return EX_CONFIG
    problems = check_config_file(path, cfg)
    for line in problems:
        print(f"monha: {line}", file=sys.stderr)
    if problems:
        return EX_CONFIG
    log.setup(log_format or cfg.log.format, cfg.log.level)  # type: ignore[arg-type]
    from monha.control import ControlError
    from monha.daemon import (  # imported late: check-config needs none
        Daemon,
        DaemonLock,
        DaemonLockError,
        lock_path,
    )
    from monha.observe import IdentityError

    lock = DaemonLock(lock_path(cfg))
    try:
        lock.acquire()  # before anything else: a second daemon changes nothing
    except DaemonLockError as exc:
        print(f"monha: {exc}", file=sys.stderr)
        return 1
    try:
        daemon = Daemon(path, node=node, lock=lock)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"monha: {path}: {line}", file=sys.stderr)
        return EX_CONFIG
    except (IdentityError, KeyError) as exc:
        print(f"monha: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        return asyncio.run(daemon.run())
    except (DaemonLockError, ControlError) as exc:
        print(f"monha: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
