"""Against the real servers and their real client tools: the my.cnf options flagged as refused
are refused by a real MySQL, the tools' version lines are told apart, and `check` finds a
broken SSH-side MySQL check and a binlog tool of the wrong server (issue 13)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from monha import check
from monha.config import Config, load_config
from monha.dialect import Flavor, tool_flavor
from monha.lab.mysql_rootfs import RootfsError, chrooted, ensure_rootfs
from monha.mysql import Server
from monha.runners import LocalRunner
from monha.server_options import GONE_BY_8_4, GONE_BY_9, refused_options
from tests.adapters.sandbox import ADMIN_PASSWORD, ADMIN_USER, ServerPair
from tests.conftest import require, require_root_and_binaries
from tests.middle.world import write_config

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def rootfs() -> Path:
    require_root_and_binaries("unshare", "chroot", "mount")
    try:
        return ensure_rootfs()
    except RootfsError as exc:
        require(False, str(exc))
        raise


def _validate(rootfs: Path, *options: str) -> subprocess.CompletedProcess[str]:
    argv = ["/usr/sbin/mysqld", "--no-defaults", "--user=root", "--secure-file-priv="]
    argv += [*options, "--validate-config"]
    return subprocess.run(chrooted(argv, rootfs), capture_output=True, text=True, timeout=60)


def test_every_flagged_option_is_refused_by_a_real_mysqld(rootfs: Path) -> None:
    control = _validate(rootfs, "--binlog_expire_logs_seconds=604800")
    assert control.returncode == 0, control.stderr  # the check itself can pass
    for name in [*GONE_BY_8_4, *GONE_BY_9]:
        opt = f"--{name.replace('_', '-')}" if name == "skip_host_cache" else f"--{name}=1"
        done = _validate(rootfs, opt)
        assert done.returncode != 0 and "unknown" in done.stderr, (name, done.stderr[-300:])


def test_real_my_print_defaults_output_is_read(rootfs: Path, tmp_path: Path) -> None:
    extra = tmp_path / "conf.d"
    extra.mkdir()
    (extra / "old.cnf").write_text("[mysqld]\nexpire_logs_days = 7\nloose-query_cache_size=0\n")
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        f"[mysqld]\ndatadir=/var/lib/mysql\ndefault-authentication-plugin=mysql_native_password\n"
        f"[client]\nuser=x\n!includedir {extra}\n"
    )
    argv = ["/usr/bin/my_print_defaults", f"--defaults-file={cnf}", "mysqld", "server"]
    out = subprocess.run(chrooted(argv, rootfs), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = refused_options(out.stdout.splitlines())
    assert sorted(r.option for r in found) == ["default-authentication-plugin", "expire_logs_days"]


def _help_head(argv: list[str]) -> str:
    # (Oracle's mysqladmin exits 1 after its help; the text is what counts)
    done = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    return "\n".join(done.stdout.splitlines()[:3])  # what `check` reads


def test_real_tools_are_told_apart(rootfs: Path) -> None:
    require_root_and_binaries("mariadb-binlog", "mariadb", "mariadb-admin")
    for tool in ("mariadb-binlog", "mariadb", "mariadb-admin", "mysqlbinlog"):
        said = _help_head([tool])  # Debian 12's mysqlbinlog is MariaDB's, under the old name
        assert tool_flavor(said) is Flavor.MARIADB, said
    for tool in ("/usr/bin/mysqlbinlog", "/usr/bin/mysql", "/usr/bin/mysqladmin"):
        said = _help_head(chrooted([tool], rootfs))
        assert tool_flavor(said) is Flavor.MYSQL, said


def _cfg(tmp_path: Path, port: int, probe: str, salvage: str) -> Config:
    path = write_config(_dir(tmp_path))
    text = path.read_text()
    text = text.replace("[probe]", f"[probe]\n{probe}", 1) if probe else text
    path.write_text(text + salvage)
    cfg = load_config(path)
    nodes = [n.model_copy(update={"mysql_port": port}) for n in cfg.nodes]
    return cfg.model_copy(update={"nodes": tuple(nodes)})


async def test_check_finds_a_broken_ssh_check_and_a_binlog_tool_of_the_wrong_server(
    pair: ServerPair, tmp_path: Path
) -> None:
    """A missing mysqladmin (MariaDB 11 no longer installs it) or a tool of the other server
    made the protection or the salvage silently useless; `check` now names both."""
    port = pair.primary.port
    wrong = _wrong_binlog_tool(pair, tmp_path)
    salvage = f'\n[salvage]\nbinlog_index = "/nonexistent/bin.index"\nbinlog_tool = "{wrong}"\n'
    missing = 'ssh_mysql_check = ["/usr/bin/no-such-mysqladmin", "ping"]'
    facts = await _survey_node(_cfg(tmp_path / "a", port, missing, salvage), port)
    assert facts.mysql_ok and facts.flavor == pair.flavor
    said = " | ".join(facts.tool_problems)
    assert "probe.ssh_mysql_check fails there although its MySQL answers" in said, said
    assert "exit 127" in said, said
    assert f"salvage.binlog_tool {wrong} is not {pair.flavor}'s tool" in said, said
    # The default check (this machine's mariadb-admin, without TLS) passes on both servers,
    # and so do the same arguments with Oracle's own mysqladmin on MySQL: no problem.
    checks = [""]
    if pair.flavor == "mysql":
        oracle = _wrapper(
            tmp_path / "mysqladmin", chrooted(["/usr/bin/mysqladmin"], ensure_rootfs())
        )
        args = ["--no-defaults", "--connect-timeout=1", "--protocol=tcp", "--host=127.0.0.1"]
        argv = [oracle, *args, "--port={mysql_port}", "ping"]
        checks.append("ssh_mysql_check = " + json.dumps(argv))  # a JSON array is TOML too
    for i, line in enumerate(checks):
        cfg = _cfg(tmp_path / f"ok{i}", port, line, "")
        if pair.flavor == "mysql":  # the tree's own my.cnf, not this machine's MariaDB one
            mpd = chrooted(["/usr/bin/my_print_defaults"], ensure_rootfs())
            m = cfg.mysql.model_copy(
                update={"defaults_command": (_wrapper(tmp_path / "mpd", mpd), "mysqld", "server")}
            )
            cfg = cfg.model_copy(update={"mysql": m})
        facts = await _survey_node(cfg, port)
        assert facts.mysql_ok and facts.tool_problems == [], (line, facts.tool_problems)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wrapper(path: Path, argv: list[str]) -> str:
    path.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n')
    path.chmod(0o755)
    return str(path)


def _wrong_binlog_tool(pair: ServerPair, tmp_path: Path) -> str:
    if pair.flavor == "mysql":
        return "/usr/bin/mariadb-binlog"
    script = tmp_path / "mysqlbinlog"  # an Oracle tool where MariaDB runs
    script.write_text("#!/bin/sh\necho 'mysqlbinlog  Ver 8.0.36 for Linux on x86_64'\n")
    script.chmod(0o755)
    return str(script)


async def _survey_node(cfg: Config, port: int) -> check.NodeFacts:
    facts = check.NodeFacts("node1", "127.0.0.1", local=True)
    server = Server(host="127.0.0.1", port=port, user=ADMIN_USER, password=ADMIN_PASSWORD)
    try:
        await check._mysql_then_tools(cfg, facts, server, LocalRunner(), 5.0)
    finally:
        await server.close()
    return facts
