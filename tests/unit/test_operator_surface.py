"""The operator's surface without a lab: monha-ctl's arguments and rendering, the service unit,
the Prometheus rules and the Zabbix template (checked against the metrics monha exports)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from monha import ctl
from monha.metrics import Metrics
from monha.units import install
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
RULES = ROOT / "monitoring" / "monha.rules.yml"
TEMPLATE = ROOT / "monitoring" / "zabbix_template_monha.yaml"


def exported_names() -> set[str]:
    m = Metrics()
    m.init_nodes(["node1", "node2"])
    text = generate_latest(m.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def run_ctl(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monha.ctl", "--config", str(EXAMPLE), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["failover"], "--force is required"),
        (["switchover", "--to", "node9", "--yes"], "no node named 'node9'"),
        (["rejoin", "node9"], "no node named 'node9'"),
        (["rejoin"], "the following arguments are required: NODE"),
        (["--timeout", "0", "status"], "--timeout must be greater than 0"),
        (["--timeout", "soon", "status"], "invalid float value"),
        (["--node", "node9", "check"], "no node named 'node9'"),
        (["status", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv: list[str], message: str) -> None:
    done = run_ctl(*argv)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_check_without_the_nodes_reports_problems_not_a_traceback(tmp_path: Path) -> None:
    # The example's password files do not exist here: a config problem, exit 78.
    done = run_ctl("--node", "node1", "check")
    assert done.returncode == 78 and "Traceback" not in done.stderr
    assert "mysql-monitor.password" in done.stderr


def test_switchover_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monha.ctl", "--socket", str(tmp_path / "s"), "switchover"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    # No daemon to ask who the primary is: unreachable before any prompt.
    assert done.returncode == 3 and "not running" in done.stderr


def _step(key: str, ok: bool = True, ran: bool = True) -> dict[str, object]:
    return {"step": key, "what": f"node1: {key}", "ok": ok, "duration_s": 0.012, "ran": ran}


def test_render_operation_names_every_step_and_the_write_block() -> None:
    text = ctl.render_operation(
        {
            "kind": "switchover",
            "id": "X-1",
            "old_primary": "node1",
            "new_primary": "node2",
            "duration_s": 1.5,
            "steps": [_step("set_read_only@node1"), _step("make_replica@node1", ok=False)],
            "write_block_s": 0.412,
            "warning": "node1 is not replicating",
        }
    )
    assert "switchover X-1: node1 -> node2 in 1.50 s" in text
    assert "ok" in text and "FAILED" in text and "writes were blocked for 0.412 s" in text
    assert "WARNING: node1 is not replicating" in text


def test_render_cluster_one_line_per_node() -> None:
    node = {
        "mysql_ok": True,
        "role": "replica",
        "read_only": True,
        "replica": {
            "configured": True,
            "source_host": "192.168.10.1",
            "io_running": "Yes",
            "sql_running": "Yes",
            "seconds_behind": 0,
        },
        "holds_vip": False,
        "services": {"zabbix-server": False},
    }
    down = {"mysql_ok": False, "mysql_detail": "refused"}
    text = ctl.render_cluster(
        {"primary": None, "vip_holders": [], "nodes": {"node2": node, "node1": down}}
    )
    lines = text.splitlines()
    assert lines[0] == "cluster   primary UNKNOWN, VIP on no node"
    assert "replicates from 192.168.10.1 IO Yes SQL Yes lag 0 s" in lines[1]
    assert "zabbix-server stopped" in lines[1]
    assert "MySQL does not answer: refused" in lines[2]


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "needs systemd-analyze (systemd)")
    unit = install("systemd", tmp_path, shutil.which("true") or "/bin/true")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert "ExecStartPre=" in text and "check-config" in text


def test_the_upstart_job_respawns_and_checks_first(tmp_path: Path) -> None:
    job = install("upstart", tmp_path, "/opt/monha/bin/monha").read_text()
    assert "respawn" in job and "pre-start exec /opt/monha/bin/monha check-config" in job


def test_the_alert_rules_pass_promtool_and_name_real_metrics() -> None:
    require(shutil.which("promtool") is not None, "needs promtool (Debian package prometheus)")
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = set(re.findall(r"\bmonha_[a-z_]+", RULES.read_text()))
    assert names - exported_names() == set()


def test_the_zabbix_template_scrapes_real_metrics() -> None:
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import yaml"], capture_output=True, timeout=30)
    require(probe.returncode == 0, "needs /usr/bin/python3 with yaml (Debian python3-yaml)")
    loader = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    done = subprocess.run(
        [python, "-c", loader, str(TEMPLATE)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    export = json.loads(done.stdout)["zabbix_export"]
    assert export["version"] == "6.0"
    (template,) = export["templates"]
    items = template["items"]
    master = items[0]
    assert master["type"] == "HTTP_AGENT" and master["url"].endswith("/metrics")
    patterns = [i["preprocessing"][0]["parameters"][0] for i in items[1:]]
    names = {p.split("{")[0] for p in patterns}
    assert names - exported_names() == set()
    keys = {i["key"] for i in items}
    for trig in export.get("triggers", []) + [t for i in items for t in i.get("triggers", [])]:
        for key in re.findall(r"/monha by HTTP/([^,)]+)", trig["expression"]):
            assert key in keys, trig


def _rejoin_answer(errant: dict[str, object]) -> dict[str, object]:
    return {
        "ok": True,
        "node": "node1",
        "source": "node2",
        "from": "mysql-bin.000001:10891",
        "from_gtid": "0-1-57" if errant.get("count") else "",
        "coordinates_from": "the flag /var/lib/monha/failover.flag",
        "steps": [{"step": "make_replica@node1", "what": "node1: replicate", "ok": True}],
        "errant_check": errant,
    }


def test_render_rejoin_reports_every_errant_transaction_and_the_saved_files() -> None:
    errant = {
        "checked": True,
        "count": 2,
        "errant": ["0-1-58", "0-1-59"],
        "from": "mysql-bin.000001:9000",
        "old_end": "mysql-bin.000002:700",
        "rejoin_gtid": "0-1-57",
        "sql_file": "/var/lib/monha/errant/errant-X.sql",
        "flashback_file": "/var/lib/monha/errant/errant-X.flashback.sql",
        "flashback": "applied on node1 (sql_log_bin=0)",
        "incomplete_dropped": 0,
    }
    text = ctl.render_rejoin(_rejoin_answer(errant))
    assert "by GTID from 0-1-57" in text.splitlines()[0]
    assert "errant transactions: 2 only on node1" in text
    assert "0-1-58, 0-1-59" in text
    assert "saved     /var/lib/monha/errant/errant-X.sql" in text
    assert "errant-X.flashback.sql: applied on node1 (sql_log_bin=0)" in text
    none = dict(errant, count=0, errant=[], sql_file="", flashback_file="")
    text = ctl.render_rejoin(_rejoin_answer(none))
    assert "errant transactions: none only on node1" in text and "saved" not in text


def test_render_errant_never_hides_an_unchecked_rejoin() -> None:
    why = "NOT CHECKED: salvage.binlog_index is not configured"
    assert ctl.render_errant({"checked": False, "reason": why}, "node1") == (
        f"errant transactions: not checked: {why}"
    )
    assert ctl.render_errant({}, "node1") == "errant transactions: not checked"


def test_a_refused_rejoin_still_prints_what_it_saved(capsys: pytest.CaptureFixture[str]) -> None:
    answer = {
        "ok": False,
        "error": "rejoin of node1 stopped: undoing 1 errant transaction(s) on node1 failed",
        "errant_check": {
            "checked": True,
            "count": 1,
            "errant": ["0-1-58"],
            "sql_file": "/var/lib/monha/errant/errant-X.sql",
            "flashback_file": "/var/lib/monha/errant/errant-X.flashback.sql",
            "flashback": "FAILED: exit 1",
        },
    }
    args = ctl._parser().parse_args(["rejoin", "node1"])
    assert ctl._print(args, answer, ctl.render_rejoin) == 1
    err = capsys.readouterr().err
    assert "errant-X.sql" in err and "FAILED: exit 1" in err and "0-1-58" in err


SEMI_ON = {
    "available": True,
    "primary_enabled": True,
    "replica_enabled": True,
    "primary_active": True,
    "replica_active": False,
    "timeout_ms": 3000,
    "wait_point": "AFTER_SYNC",
    "clients": 1,
    "protects_failover": True,
}


def test_render_semi_sync_by_role() -> None:
    assert ctl.render_semi_sync("primary", SEMI_ON) == "semi-sync active (AFTER_SYNC, 1 replica(s))"
    off = dict(SEMI_ON, primary_enabled=False, replica_enabled=False, primary_active=False)
    assert ctl.render_semi_sync("primary", off) == "semi-sync off"
    assert ctl.render_semi_sync("replica", off) == "semi-sync off"
    fallen = dict(SEMI_ON, primary_active=False, protects_failover=False)
    assert "NOT active" in ctl.render_semi_sync("primary", fallen)
    assert ctl.render_semi_sync("replica", dict(SEMI_ON, replica_active=True)) == (
        "semi-sync active"
    )
    assert ctl.render_semi_sync("primary", {"available": False}) == "semi-sync unavailable"
    assert ctl.render_semi_sync("primary", None) == ""


def test_render_cluster_shows_semi_sync() -> None:
    node = {
        "mysql_ok": True,
        "role": "primary",
        "read_only": False,
        "replica": {"configured": False},
        "holds_vip": True,
        "services": {},
        "semi_sync": SEMI_ON,
    }
    text = ctl.render_cluster(
        {"primary": "node1", "vip_holders": ["node1"], "nodes": {"node1": node}}
    )
    assert text.splitlines()[1].endswith("VIP yes, semi-sync active (AFTER_SYNC, 1 replica(s))")


def test_semi_sync_off_is_a_note_not_a_problem() -> None:
    from monha.check import NodeFacts, semi_sync_notes

    off = dict(SEMI_ON, primary_enabled=False, primary_active=False, protects_failover=False)
    primary = NodeFacts("node1", "192.168.10.1", local=False, mysql_ok=True, semi_sync=off)
    replica = NodeFacts("node2", "192.168.10.2", local=True, mysql_ok=True, semi_sync=off)
    notes = semi_sync_notes(primary, [replica])
    assert len(notes) == 1 and "semi-sync is off" in notes[0] and "AFTER_SYNC" in notes[0]
    primary.semi_sync = dict(SEMI_ON)
    replica.semi_sync = dict(SEMI_ON)
    assert semi_sync_notes(primary, [replica]) == []
    primary.semi_sync = dict(SEMI_ON, primary_active=False, protects_failover=False)
    replica.semi_sync = dict(SEMI_ON, replica_enabled=False)
    notes = semi_sync_notes(primary, [replica])
    assert "not active" in notes[0] and "3000 ms" in notes[0]
    assert notes[1] == "node2 (replica): semi-sync is off on the replica side"
    primary.semi_sync = {"available": False}
    assert "not available" in semi_sync_notes(primary, [])[0]
    primary.semi_sync, primary.semi_sync_detail = None, "timed out"
    assert semi_sync_notes(primary, []) == ["node1 (primary): semi-sync state unknown: timed out"]
