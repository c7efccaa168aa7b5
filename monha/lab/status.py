"""What an operator would check on the lab, gathered concurrently, as a dict and as a table.

Every probe has its own timeout and reports what it saw (None when it could not tell), so a
frozen or killed node makes the status slower by at most a probe timeout, never wrong.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from monha.lab import services, sshd
from monha.lab.names import ADDRESSES, NODES, VIP, WS_PORT
from monha.lab.netns import is_mountpoint
from monha.lab.proc import CommandError, is_alive, proc_state, run
from monha.lab.server import DEFAULT_SERVER, for_name

if TYPE_CHECKING:
    from monha.lab.lab import Lab

PROBE_TIMEOUT_S = 3.0


def curl_argv(url: str, timeout: float = 2.0) -> list[str]:
    """curl that never uses a proxy (the lab has no way out, and must not try one)."""
    return ["curl", "-s", "--noproxy", "*", "-m", str(timeout), "-o", "-", "-w", "", url]


def http_get(lab: Lab, url: str, source: str = "client") -> str | None:
    done = lab.run_in(source, curl_argv(url), timeout=PROBE_TIMEOUT_S + 1)
    return done.stdout.strip() if done.returncode == 0 else None


def _mysql(lab: Lab, node: str) -> dict[str, Any]:
    out: dict[str, Any] = {"read_only": None, "replica": None, "error": ""}
    sock = lab.socket(node)
    if not sock.exists():
        out["error"] = "no socket"
        return out
    db = lab.db
    try:
        ro = db.sql(sock, "SELECT @@read_only", timeout=PROBE_TIMEOUT_S).strip()
        out["read_only"] = ro == "1"
        out["version"] = db.sql(sock, "SELECT VERSION()", timeout=PROBE_TIMEOUT_S).strip()
        rs = db.replica_view(sock, timeout=PROBE_TIMEOUT_S)
    except CommandError as exc:
        out["error"] = str(exc).splitlines()[-1][:200]
        return out
    if rs:
        sbm = rs["seconds_behind"]
        out["replica"] = {
            "source_host": rs["source_host"],
            "io_running": rs["io_running"],
            "sql_running": rs["sql_running"],
            "seconds_behind": int(sbm) if sbm.isdigit() else None,
            "last_io_error": rs["last_io_error"],
            "last_sql_error": rs["last_sql_error"],
            # MariaDB's Gtid_IO_Pos, MySQL's Retrieved_Gtid_Set.
            "gtid_io_pos": rs["gtid_position"],
        }
    return out


def _service(lab: Lab, node: str, name: str) -> str:
    done = lab.run_in(node, [services.init_script_path(name), "status"], timeout=PROBE_TIMEOUT_S)
    return {0: "running", 3: "stopped"}.get(done.returncode, f"unknown({done.returncode})")


def _node(lab: Lab, node: str, pool: ThreadPoolExecutor) -> dict[str, Any]:
    p = lab.paths
    present = p.netns_path(node).exists() and is_mountpoint(p.mnt_file(node))
    info: dict[str, Any] = {"namespaces": present}
    if not present:
        return info
    state = lab.state()
    # The keys keep MariaDB's name on either server (scripts read them); "server" says which.
    pid = lab.db.server_pid(p, node)
    info["mariadbd_pid"] = pid
    info["mariadbd_alive"] = pid is not None
    info["mariadbd_state"] = proc_state(pid) if pid else None
    sshd_recs = [r for r in (state.procs if state else []) if r.name == "sshd" and r.node == node]
    info["sshd_alive"] = any(is_alive(r.pid, r.start) for r in sshd_recs)
    futures: dict[str, Future[Any]] = {
        "mysql": pool.submit(_mysql, lab, node),
        "http": pool.submit(http_get, lab, f"http://{ADDRESSES[node]}/"),
        "ws": pool.submit(http_get, lab, f"http://{ADDRESSES[node]}:{WS_PORT}/axis2/"),
        **{name: pool.submit(_service, lab, node, name) for name in services.SERVICES},
    }
    mysql = futures["mysql"].result()
    info.update(read_only=mysql["read_only"], replica=mysql["replica"], mysql_error=mysql["error"])
    info["server_version"] = mysql.get("version")
    info["services"] = {name: futures[name].result() for name in services.SERVICES}
    info["apache_answers"] = futures["http"].result() == node
    info["getperf_ws_answers"] = futures["ws"].result() is not None
    link = run(["ip", "-n", p.netns("lan"), "-o", "link", "show", node], check=False).stdout
    info["link_up"] = "state UP" in link or ",UP" in link
    return info


def collect(lab: Lab) -> dict[str, Any]:
    state = lab.state()
    result: dict[str, Any] = {
        "prefix": lab.prefix,
        "phase": state.phase if state else "absent",
        "up_seconds": state.up_seconds if state else None,
        "mysqld_safe": state.mysqld_safe if state else None,
        "server": state.server if state else None,
        "faults": state.faults if state else {},
        "config": str(lab.config_copy),
    }
    if state is None and not lab.is_up():
        return result
    with ThreadPoolExecutor(max_workers=24) as pool:
        vip_http = pool.submit(http_get, lab, f"http://{VIP}/")
        ssh = pool.submit(lab.run_in, "node2", sshd.ssh_check_argv("node1"), timeout=8)
        nodes = {n: pool.submit(_node, lab, n, pool) for n in NODES}
        holders = lab.vip_holders()
        result["nodes"] = {n: f.result() for n, f in nodes.items()}
        for n in NODES:
            result["nodes"][n]["vip"] = n in holders
        result["vip_holders"] = holders
        result["vip_http"] = vip_http.result()
        done = ssh.result()
        result["ssh_node2_to_node1"] = done.returncode == 0 and done.stdout.strip() == "node1"
    return result


def _yn(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render(status: dict[str, Any]) -> str:
    """A readable table of the status dict."""
    db = for_name(status.get("server") or DEFAULT_SERVER)
    lines = [
        f"lab {status['prefix']!r}: {status['phase']}"
        + (f" (up took {status['up_seconds']} s)" if status.get("up_seconds") else "")
        + (f", {db.DISPLAY}" if status.get("server") else "")
        + (f", {db.DAEMON} under mysqld_safe" if status.get("mysqld_safe") else "")
    ]
    if "nodes" not in status:
        return "\n".join(lines)
    rows: list[tuple[str, ...]] = [("", *NODES)]

    def row(label: str, key: Any) -> None:
        rows.append((label, *(_yn(key(status["nodes"][n])) for n in NODES)))

    def repl(n: dict[str, Any], field: str) -> Any:
        return (n.get("replica") or {}).get(field, "-") if n.get("replica") else "-"

    row("namespaces", lambda n: n.get("namespaces"))
    row("link up", lambda n: n.get("link_up"))
    row(f"{db.DAEMON} pid", lambda n: n.get("mariadbd_pid") or "-")
    row(
        f"{db.DAEMON} alive",
        lambda n: "frozen" if n.get("mariadbd_state") in ("T", "t") else n.get("mariadbd_alive"),
    )
    row("version", lambda n: n.get("server_version") or "-")
    row("read_only", lambda n: n.get("read_only"))
    row("replica IO", lambda n: repl(n, "io_running"))
    row("replica SQL", lambda n: repl(n, "sql_running"))
    row("seconds behind", lambda n: repl(n, "seconds_behind"))
    row("sshd alive", lambda n: n.get("sshd_alive"))
    for name in services.SERVICES:
        row(name, lambda n, name=name: (n.get("services") or {}).get(name))
    row("apache answers", lambda n: n.get("apache_answers"))
    row("getperf-ws answers", lambda n: n.get("getperf_ws_answers"))
    row("holds VIP", lambda n: n.get("vip"))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip())
    for n in NODES:
        err = status["nodes"][n].get("mysql_error")
        if err:
            lines.append(f"{n} mysql: {err}")
    lines.append(f"HTTP via VIP {VIP} from client: {status.get('vip_http') or 'no answer'}")
    lines.append(f"ssh node2 -> node1 (strict host keys): {_yn(status.get('ssh_node2_to_node1'))}")
    if status.get("faults"):
        lines.append(f"active faults: {json.dumps(status['faults'])}")
    lines.append(f"monha config: {status['config']} (inside nodes: /etc/monha/monha.toml)")
    return "\n".join(lines)
