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
        ("innodb_log_file_size", "9.7"),
    ]
    # Refused by the server's own version (a problem) or only by a newer one (a note).
    gone_84, gone_97 = found[0], found[2]
    assert gone_84.refused_by((8, 4, 0)) and gone_84.refused_by((9, 7, 4))
    assert not gone_84.refused_by((8, 0, 36)) and gone_84.refused_by(None)
    assert gone_97.refused_by((9, 7, 4)) and gone_97.refused_by((9, 0, 1))
    assert not gone_97.refused_by((8, 4, 3))


def test_nothing_refused_in_a_current_config() -> None:
    assert refused_options(["--binlog_expire_logs_seconds=604800", "--gtid_mode=ON"]) == []
    assert "expire_logs_days" in GONE_BY_8_4


def test_tool_flavor_from_the_head_of_help() -> None:
    # The first lines of `--help` of MariaDB 10.11's tools (Debian 12), Oracle MySQL 9.7.4's
    # (Debian sid), and MySQL 5.7's, whose mysqlbinlog prints "Ver 3.4" like MariaDB's.
    maria = "Copyright (c) 2000, 2018, Oracle, MariaDB Corporation Ab and others."
    oracle = "Copyright (c) 2000, 2026, Oracle and/or its affiliates."
    assert tool_flavor(f"mariadb-binlog Ver 3.5 for debian-linux-gnu at x86_64\n{maria}") is (
        Flavor.MARIADB
    )
    assert tool_flavor(f"mysqlbinlog Ver 3.5 for debian-linux-gnu at x86_64\n{maria}") is (
        Flavor.MARIADB
    )
    assert tool_flavor("mariadb  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu") is (
        Flavor.MARIADB
    )
    assert tool_flavor(f"mysqlbinlog  Ver 9.7.4-2 for Linux on x86_64 ((Debian))\n{oracle}") is (
        Flavor.MYSQL
    )
    assert tool_flavor(f"mysqlbinlog Ver 3.4 for Linux at x86_64\n{oracle}") is Flavor.MYSQL
    assert tool_flavor("mysql  Ver 14.14 Distrib 5.7.44, for linux-glibc2.12") is Flavor.MYSQL
    # The version line alone of either binlog tool says nothing.
    assert tool_flavor("mysqlbinlog Ver 3.4 for Linux at x86_64") is None
    assert tool_flavor("") is None and tool_flavor("something else") is None


def test_mounts_inside_a_tree_are_found_deepest_first() -> None:
    """The MySQL root filesystem is never deleted through a mount left inside it."""
    from pathlib import Path

    from monha.lab.mysql_rootfs import mounts_under

    info = "\n".join(
        [
            "22 1 0:21 / /proc rw - proc proc rw",
            "90 80 0:5 / /var/cache/monha-lab/mysql-rootfs-1.building/proc rw - proc proc rw",
            "91 90 0:6 / /var/cache/monha-lab/mysql-rootfs-1.building/proc/sys/fs rw - x x rw",
            "92 1 0:7 / /var/cache/monha-lab/mysql-rootfs-10/dev rw - x x rw",
        ]
    )
    tree = Path("/var/cache/monha-lab/mysql-rootfs-1.building")
    assert mounts_under(tree, info) == [
        "/var/cache/monha-lab/mysql-rootfs-1.building/proc/sys/fs",
        "/var/cache/monha-lab/mysql-rootfs-1.building/proc",
    ]
    assert mounts_under(Path("/var/cache/monha-lab/mysql-rootfs-1"), info) == []
