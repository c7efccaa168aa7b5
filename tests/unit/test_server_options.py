"""my.cnf options newer MySQL releases refuse, and whose client tool printed a version: pure."""

from __future__ import annotations

from monha.dialect import Flavor, tool_flavor
from monha.server_options import GONE_BY_8_4, refused_options


def test_the_three_named_by_the_issue_are_flagged_with_what_to_use() -> None:
    lines = [
        "--datadir=/var/lib/mysql",
        "--expire_logs_days=7",
        "--binlog-transaction-dependency-tracking=WRITESET",
        "--default_authentication_plugin=mysql_native_password",
        "--log-bin=mysql-bin",
    ]
    found = refused_options(lines)
    assert [r.option for r in found] == [
        "expire_logs_days",
        "binlog-transaction-dependency-tracking",
        "default_authentication_plugin",
    ]
    assert all(r.since == "8.4" for r in found)
    assert "binlog_expire_logs_seconds" in found[0].sentence()
    assert "authentication_policy" in found[2].sentence()


def test_loose_options_and_repeats_and_other_lines() -> None:
    lines = [
        "--loose-expire_logs_days=7",  # the server ignores an unknown loose option
        "--query_cache_size=0",
        "--query-cache-size=0",  # the same option twice: once
        "--skip-host-cache",
        "not an option line",
        "--innodb_log_file_size=48M",
    ]
    found = refused_options(lines)
    assert [(r.option, r.since) for r in found] == [
        ("query_cache_size", "8.4"),
        ("skip-host-cache", "8.4"),
        ("innodb_log_file_size", "9.x"),
    ]


def test_nothing_refused_in_a_current_config() -> None:
    assert refused_options(["--binlog_expire_logs_seconds=604800", "--gtid_mode=ON"]) == []
    assert "expire_logs_days" in GONE_BY_8_4


def test_tool_flavor_from_version_lines() -> None:
    # As printed by the tools of MariaDB 10.11 (Debian 12) and Oracle MySQL 9.7.4 (Debian sid).
    assert tool_flavor("mariadb-binlog Ver 3.5 for debian-linux-gnu at x86_64") is Flavor.MARIADB
    assert tool_flavor("mysqlbinlog Ver 3.5 for debian-linux-gnu at x86_64") is Flavor.MARIADB
    assert (
        tool_flavor("mariadb  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)")
        is Flavor.MARIADB
    )
    assert tool_flavor("/usr/bin/mysqlbinlog  Ver 9.7.4-2 for Linux on x86_64 ((Debian))") is (
        Flavor.MYSQL
    )
    assert tool_flavor("mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server)") is (
        Flavor.MYSQL
    )
    assert tool_flavor("") is None and tool_flavor("something else") is None
