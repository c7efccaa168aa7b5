"""Hung commands and secrets on the lab, around one failover.

The old primary's Zabbix stop command (run over SSH on node1) and the Getperf agent's restart
(run locally on node2) are pointed at a script that never returns, with short timeouts. The
failover must time both steps out, go on (both CONTINUE on failure), say so in the flag, and
leave nothing hanging on either node.

The lab's MySQL passwords are replaced by distinctive ones before monha starts; afterwards
neither may appear in the daemon's log, `monha-ctl status`, the journal or the flag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monha.lab.drive import Monha, alive, read_flag, wait_for, zabbix_running
from monha.lab.lab import Lab
from monha.lab.names import IN_NODE_INIT_D, METRICS_PORT
from tests.scenarios.support import scenario_lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

STOP_TIMEOUT_S = 4.0
AGENT_TIMEOUT_S = 2.0
SECRETS = {"mha": "Hx7-monitor-s3cret", "repl": "Hx7-repl-s3cret"}
HANG = "/opt/monha-lab/hang"  # inside each node


def _write_hang_script(lab: Lab, node: str) -> None:
    """A command that records its PID and then never returns."""
    opt = lab.paths.node(node).opt
    script = opt / "hang"
    script.write_text(f"#!/bin/sh\necho $$ >> {HANG}.pids\nexec sleep 3600\n")
    script.chmod(0o755)


def _hang_config(text: str) -> str:
    """The lab's config with Zabbix's stop and the agent's restart pointed at the hang."""
    stop = f'stop = ["{IN_NODE_INIT_D}/zabbix-server", "stop"]'
    assert stop in text
    text = text.replace(stop, f'stop = ["{HANG}", "zabbix-server", "stop"]')
    restart = f'restart = ["{IN_NODE_INIT_D}/getperf-agent", "restart"]'
    assert restart in text
    text = text.replace(restart, f'restart = ["{HANG}", "getperf-agent"]')
    # The timeout line that follows each of the two blocks.
    text, n = re.subn(
        r'(name = "zabbix-server"\n(?:.*\n)*?timeout_s = )30\.0', rf"\g<1>{STOP_TIMEOUT_S}", text
    )
    assert n == 1
    text, n = re.subn(
        r'(name = "getperf-agent"\n(?:.*\n)*?timeout_s = )30\.0', rf"\g<1>{AGENT_TIMEOUT_S}", text
    )
    assert n == 1
    return text


def _set_passwords(lab: Lab) -> None:
    """Distinctive passwords for the monitor and replication users, in MariaDB on both nodes
    (not replicated: each node gets its own ALTER) and in both nodes' password files."""
    for node in ("node1", "node2"):
        lab.sql(
            node,
            "SET SESSION sql_log_bin = 0; "
            f"ALTER USER 'mha'@'%' IDENTIFIED BY '{SECRETS['mha']}'; "
            f"ALTER USER 'repl'@'%' IDENTIFIED BY '{SECRETS['repl']}'; FLUSH PRIVILEGES;",
        )
        etc = lab.paths.node(node).etc_monha
        for name, user in (("mysql-monitor", "mha"), ("mysql-repl", "repl")):
            (etc / f"{name}.password").write_text(SECRETS[user])
    lab.sql(
        "node2",
        f"STOP SLAVE; CHANGE MASTER TO MASTER_PASSWORD = '{SECRETS['repl']}'; START SLAVE;",
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from scenario_lab()


@pytest.fixture(scope="module")
def failed_over(lab: Lab) -> Iterator[tuple[Monha, dict]]:
    for node in ("node1", "node2"):
        _write_hang_script(lab, node)
    config = lab.node_config("node2")
    config.write_text(_hang_config(config.read_text()))
    _set_passwords(lab)
    m = Monha.start(lab, "node2")
    try:
        # primary_ok (not primary_alive_error, which a refused login would give): the new
        # monitor password is the one in use.
        wait_for("primary_ok", lambda: m.status()["reason_code"] == "primary_ok", 15)
        lab.faults.kill_mysqld("node1")
        flag = wait_for("the completion flag on node2", lambda: read_flag(lab, "node2"), 120)
        # The flag is written, then copied to node1 over SSH: the plan ends after the copy.
        wait_for("the failover to finish", lambda: m.events("failover_finished"), 30)
        yield m, flag
    finally:
        m.stop()


def _hang_pids(lab: Lab) -> list[int]:
    pids = []
    for node in ("node1", "node2"):
        f = lab.paths.node(node).opt / "hang.pids"
        pids += [int(x) for x in f.read_text().split()] if f.exists() else []
    return pids


def test_hung_steps_time_out_and_the_plan_goes_on(
    lab: Lab, failed_over: tuple[Monha, dict]
) -> None:
    m, flag = failed_over
    steps = {s["step"]: s for s in flag["steps"]}
    for key, timeout in (
        ("stop_service@node1:zabbix-server", STOP_TIMEOUT_S),
        ("restart_agent@node2:getperf-agent", AGENT_TIMEOUT_S),
    ):
        s = steps[key]
        assert not s["ok"] and "timed out after" in s["detail"], s
        assert timeout * 0.9 <= s["duration_s"] < timeout + 3, s
    failed = {e["step"]: e for e in m.events("step_failed")}
    assert failed["stop_service@node1:zabbix-server"]["on_failure"] == "continue"
    assert failed["restart_agent@node2:getperf-agent"]["on_failure"] == "continue"
    # The plan went on past both: Zabbix started here, the web tier checked, the flag written.
    assert steps["start_service@node2:zabbix-server"]["ok"]
    assert steps["check_hot@node2:apache"]["ok"]
    assert lab.vip_holders() == ["node2"]
    # node1's Zabbix was never stopped (its stop hung): the flag says so, and it still runs.
    assert "node1" in zabbix_running(lab)
    # Nothing of the hung commands is left running, on either node.
    pids = _hang_pids(lab)
    assert len(pids) == 2, pids
    wait_for("the hung commands to be ended", lambda: not any(alive(p) for p in pids), 10)
    print(
        "\nhung commands: "
        + "; ".join(
            f"{k}: {steps[k]['detail']}"
            for k in ("stop_service@node1:zabbix-server", "restart_agent@node2:getperf-agent")
        )
    )


def _texts(lab: Lab, m: Monha) -> dict[str, str]:
    var = lab.paths.node("node2").var_lib_monha
    return {
        "log": m.log.read_text(),
        "status --json": m.ctl("status", "--json").stdout,
        "status": m.ctl("status").stdout,
        "flag": (var / "failover.flag").read_text(),
        "journal": (var / "journal.json").read_text(),
        "metrics": _metrics(lab),
    }


def _metrics(lab: Lab) -> str:
    done = lab.run_in(
        "node2", ["curl", "-s", "-m", "3", f"http://127.0.0.1:{METRICS_PORT}/metrics"]
    )
    assert "monha_state" in done.stdout
    return done.stdout


def test_secrets_never_appear_in_logs_status_or_flag(
    lab: Lab, failed_over: tuple[Monha, dict]
) -> None:
    m, _ = failed_over
    texts = _texts(lab, m)
    assert json.loads(texts["status --json"])["state"] == "done_flagged"
    assert len(texts["log"]) > 1000 and "failover_finished" in texts["log"]
    for where, text in texts.items():
        for user, secret in SECRETS.items():
            assert secret not in text, f"the {user} password appears in the {where}"
    # The password files on disk do hold them: the search above looked for the right strings.
    etc = lab.paths.node("node2").etc_monha
    assert (etc / "mysql-monitor.password").read_text() == SECRETS["mha"]
    assert Path(etc / "mysql-repl.password").stat().st_mode & 0o077 == 0
