#!/usr/bin/env python3
"""MHA's master_ip_failover hook for the benchmark lab, doing what the site's Getperf hook did.

MHA calls it with --command=status (at start), stop|stopssh (old primary, before recovery)
and start (new primary, after recovery), plus --orig_master_* / --new_master_* options.

- stop/stopssh: over ssh on the old primary, take the VIP off eth0 and stop the Zabbix server.
  Like the sample hook the site's script was based on, a failed ssh (host dead) is not an
  error: MHA only calls `stop` when it could not reach the host itself.
- start: set read_only=0 on the new primary (MHA's sample hook does this before the VIP
  moves; MHA itself would only do it after the hook returns), then over ssh on the new
  primary: VIP up on eth0:1, one gratuitous ARP, Zabbix server started, Getperf agent
  restarted — in that order, as the site's hook did.

ssh gets ConnectTimeout=3, the same bound monha's lab config uses, so that neither system is
slowed by a different ssh timeout. Standard library only: it runs under the system python3.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

VIP = "192.168.10.10"
PREFIXLEN = 24
IFACE = "eth0"
LABEL = "eth0:1"
INIT_D = "/opt/monha-lab/init.d"
SSH = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "StrictHostKeyChecking=no"]


def say(message: str) -> None:
    # MHA copies the hook's output into its log: a timestamp per line makes each step's
    # duration readable there.
    print(
        f"[master_ip_failover {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}]"
        f" {message}",
        flush=True,
    )


def on(user: str, host: str, script: str, timeout: float = 60.0) -> int:
    try:
        done = subprocess.run(
            [*SSH, f"{user}@{host}", script],
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        say(f"ssh {host}: timed out after {timeout:g} s")
        return 255
    for line in (done.stdout + done.stderr).splitlines():
        say(f"  {host}: {line}")
    return done.returncode


def stop(args: argparse.Namespace) -> int:
    host = args.orig_master_ssh_host or args.orig_master_host
    say(f"{args.command}: VIP off and Zabbix stopped on {host}")
    rc = on(
        args.ssh_user or "root",
        host,
        f"ip addr del {VIP}/{PREFIXLEN} dev {IFACE}; {INIT_D}/zabbix-server stop",
        30,
    )
    say(f"{args.command}: ssh exited {rc}")
    return 0


def start(args: argparse.Namespace) -> int:
    host = args.new_master_ssh_host or args.new_master_host
    say(f"start: read_only=0 on {args.new_master_ip}")
    done = subprocess.run(
        [
            "mysql",
            "--no-defaults",
            "-h",
            args.new_master_ip,
            "-P",
            str(args.new_master_port),
            "-u",
            args.new_master_user,
            f"-p{args.new_master_password}",
            "--connect-timeout=3",
            "-e",
            "SET GLOBAL read_only = 0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        say(f"start: read_only=0 failed: {done.stderr.strip()}")
        return 1
    say(f"start: VIP up, arping, Zabbix start, agent restart on {host}")
    script = (
        f"ip addr add {VIP}/{PREFIXLEN} dev {IFACE} label {LABEL} && "
        f"arping -q -U -c 1 -I {IFACE} {VIP}; "
        f"{INIT_D}/zabbix-server start && {INIT_D}/getperf-agent restart"
    )
    rc = on(args.ssh_user or "root", host, script, 60)
    say(f"start: ssh exited {rc}")
    return 0 if rc == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--command", required=True)
    p.add_argument("--ssh_user", default="root")
    for who in ("orig_master", "new_master"):
        for key in ("host", "ip", "port", "ssh_host", "ssh_ip", "ssh_port", "user", "password"):
            p.add_argument(f"--{who}_{key}", default="")
    args, _unknown = p.parse_known_args()  # MHA may add options this hook does not need
    if args.command == "status":
        return 0
    if args.command in ("stop", "stopssh"):
        return stop(args)
    if args.command == "start":
        return start(args)
    say(f"unknown command {args.command!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
