"""MHA 0.58 in the lab: patched module copies, an ssh key for the node tools, app config, and
the manager process in node2 — set up per lab, so `lab.down()` removes all of it.

Nothing under /usr is changed. Debian's MHA 0.58 needs two fixes on this machine (see
docs/benchmarks.md); they are applied to COPIES of the two affected modules, placed first on
PERL5LIB:

- the manager gets PERL5LIB in its environment;
- the node tools run over ssh, so the benchmark installs its own key in both nodes'
  authorized_keys with a forced command (bench/mha/node-env.sh) that sets PERL5LIB and then
  runs what the manager asked for. MHA passes `ssh_options=-i KEY`; monha's key is untouched.

Must not: copy MHA code from anywhere but this machine's installed package, or start anything
the lab does not record (the manager is started with `lab.spawn_in`, so `down` ends it).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from monha.lab.drive import alive, end_pid
from monha.lab.lab import Lab
from monha.lab.names import ADDRESSES, NODES, USERS

MHA_SHARE = Path("/usr/share/perl5/MHA")
HERE = Path(__file__).resolve().parent / "mha"
HOOK = HERE / "master_ip_failover.py"
NODE_ENV = HERE / "node-env.sh"

# (module, original text, replacement, why). Each original must occur exactly once in the
# installed module, so a different package version fails loudly instead of running unpatched.
PATCHES: tuple[tuple[str, str, str, str], ...] = (
    (
        "NodeUtil.pm",
        "my $result = sprintf( '%03d%03d%03d', $str =~ m/(\\d+)/g );",
        "my $result = sprintf( '%03d%03d%03d', ( $str =~ m/(\\d+)/g )[ 0 .. 2 ] );",
        "a MariaDB version string such as 10.11.6-MariaDB-0+deb12u1-log has more than three "
        "numbers; the surplus sprintf arguments are a 'redundant' warning since Perl 5.22, "
        "fatal under MHA's `use warnings FATAL => 'all'`. Only the first three are meant.",
    ),
    (
        "NodeUtil.pm",
        "my $result = sprintf( '%03d%03d', $str =~ m/(\\d+)/g );",
        "my $result = sprintf( '%03d%03d', ( $str =~ m/(\\d+)/g )[ 0 .. 1 ] );",
        "the same for the major version (the first two numbers).",
    ),
    (
        "SlaveUtil.pm",
        'my $sth = $dbh->prepare("SELECT \\@\\@global.super_read_only as Value");',
        "my $sth = $dbh->prepare(\"SHOW GLOBAL VARIABLES LIKE 'super_read_only'\");",
        "MariaDB has no super_read_only: selecting @@global.super_read_only is an error that "
        "aborts the failover. SHOW VARIABLES returns no row instead.",
    ),
    (
        "SlaveUtil.pm",
        "if ( $href->{Value} == '1' ) {",
        "if ( $href && ( $href->{Value} eq 'ON' || $href->{Value} eq '1' ) ) {",
        "no row (MariaDB) means 'not enabled'; SHOW VARIABLES says ON/OFF, not 1/0.",
    ),
)

# Log lines the figures come from (MHA's own wording).
DECIDED = "Master is not reachable from health checker!"
MONITORING = "waiting until MySQL doesn't respond"
FAILOVER_DONE = "Master failover to"  # "... completed successfully." or "... done"
_STAMP = re.compile(r"^(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}) - \[(\w+)\] (.*)$")


def patch_modules(dest: Path) -> list[str]:
    """Write patched copies of the affected modules under dest/MHA; return what changed."""
    (dest / "MHA").mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    done: list[str] = []
    for module, old, new, why in PATCHES:
        text = texts.get(module) or (MHA_SHARE / module).read_text()
        count = text.count(old)
        if count != 1:
            raise RuntimeError(f"{MHA_SHARE / module}: expected {old!r} once, found {count}")
        texts[module] = text.replace(old, new)
        done.append(f"{module}: {why}")
    for module, text in texts.items():
        (dest / "MHA" / module).write_text(text)
    return done


def app_config(lab: Lab, work: Path, key: Path) -> str:
    """The app config: MHA's defaults (ping every 3 s), both nodes candidate, our hook."""
    servers = "\n".join(
        f"[server{i}]\nhostname={ADDRESSES[node]}\nport=3306\ncandidate_master=1\n"
        f"master_binlog_dir={lab.paths.node(node).datadir}\n"
        for i, node in enumerate(NODES, start=1)
    )
    return f"""\
# MHA app config written by bench/mha.py for lab {lab.prefix!r}.
[server default]
manager_workdir={work}/manager
manager_log={work}/manager/app1.log
remote_workdir={work}/remote
user=mha
password={USERS["mha"]}
repl_user=repl
repl_password={USERS["repl"]}
ssh_user=root
ssh_options=-i {key} -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
ping_interval=3
master_ip_failover_script={HOOK}
# the candidate need not be caught up at start (the lagging-replica scenario)
check_repl_delay=0

{servers}"""


@dataclass
class Mha:
    """masterha_manager running in node2 of one lab."""

    lab: Lab
    pid: int
    log: Path
    stdout: Path

    @staticmethod
    def prepare(lab: Lab) -> Path:
        """Write modules, key, authorized_keys lines and app config; return the config path."""
        work = lab.paths.root / "mha"
        perl5 = work / "perl5"
        patch_modules(perl5)
        (work / "manager").mkdir(parents=True, exist_ok=True)
        (work / "remote").mkdir(parents=True, exist_ok=True)
        key = work / "id_mha"
        key.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "monha-bench-mha", "-f", key],
            check=True,
        )
        pub = key.with_name("id_mha.pub").read_text().strip()
        forced = f'command="{NODE_ENV} {perl5}",no-pty,no-port-forwarding,no-agent-forwarding'
        for node in NODES:
            with (lab.paths.node(node).root_ssh / "authorized_keys").open("a") as f:
                f.write(f"{forced} {pub}\n")
        conf = work / "app1.cnf"
        conf.write_text(app_config(lab, work, key))
        return conf

    @classmethod
    def start(cls, lab: Lab, timeout_s: float = 60.0) -> Mha:
        """Start the manager as the site's upstart job did, and wait until it monitors."""
        conf = cls.prepare(lab)
        work = conf.parent
        argv = [
            "/usr/bin/env", f"PERL5LIB={work / 'perl5'}",
            "/usr/bin/masterha_manager", f"--conf={conf}", "--ignore_last_failover",
        ]  # fmt: skip
        stdout = work / "manager" / "masterha_manager.out"
        pid = lab.spawn_in("node2", argv, "masterha_manager", stdout)
        m = cls(lab, pid, work / "manager" / "app1.log", stdout)
        deadline = time.monotonic() + timeout_s
        while m.first(MONITORING) is None:
            if not alive(pid) or time.monotonic() > deadline:
                raise RuntimeError(f"MHA did not start monitoring; its log:\n{m.tail()}")
            time.sleep(0.2)
        return m

    def text(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log, self.stdout) if p.exists()]
        return "\n".join(parts)

    def tail(self, chars: int = 4000) -> str:
        return self.text()[-chars:]

    def lines(self) -> list[tuple[float, str, str]]:
        """(time, level, message) for each stamped line of the manager log."""
        out = []
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        for line in text.splitlines():
            match = _STAMP.match(line)
            if match:
                at = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
                out.append((at, match.group(2), match.group(3)))
        return out

    def first(self, needle: str) -> float | None:
        """When the first log line containing `needle` was stamped (1 s resolution)."""
        return next((at for at, _, msg in self.lines() if needle in msg), None)

    def running(self) -> bool:
        return alive(self.pid)

    def stop(self) -> None:
        end_pid(self.pid)

    def keep_log(self, name: str) -> Path:
        """Copy the manager log out of the lab, which `down` removes."""
        keep = Path("/tmp/monha-bench-logs")
        keep.mkdir(exist_ok=True)
        dest = keep / f"{name}.mha.log"
        dest.write_text(self.text())
        return dest


__all__ = ["DECIDED", "FAILOVER_DONE", "MONITORING", "PATCHES", "Mha", "patch_modules"]
