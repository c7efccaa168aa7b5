"""Pure tests of monha.salvage against output recorded from MariaDB 10.11's mariadb-binlog on
the lab (tests/unit/binlog_samples), plus MySQL-style GTID sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monha.salvage import (
    Gtid,
    SalvageError,
    check_start,
    files_from,
    parse_dump,
    parse_gtid_state,
    parse_index,
    restart_point,
    select,
    tool_argv,
    truncated_tail,
)

SAMPLES = Path(__file__).parent / "binlog_samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_index_relative_and_absolute_entries() -> None:
    text = "./mysql-bin.000001\n./mysql-bin.000002\n/var/log/mysql/mysql-bin.000003\n\n"
    files = parse_index(text, "/var/lib/mysql/mysql-bin.index")
    assert files == [
        "/var/lib/mysql/mysql-bin.000001",
        "/var/lib/mysql/mysql-bin.000002",
        "/var/log/mysql/mysql-bin.000003",
    ]
    assert files_from(files, "mysql-bin.000002") == files[1:]
    with pytest.raises(SalvageError, match="does not list"):
        files_from(files, "mysql-bin.000009")


def test_range_parses_into_complete_transactions() -> None:
    dump = parse_dump(sample("mariadb_10_11_range.txt"))
    txs = dump.transactions()
    assert [str(t.gtid) for t in txs] == ["0-101-33", "0-101-34", "0-101-35"]
    assert all(t.complete for t in txs)
    assert txs[0].events[0].at == 17966 and txs[-1].end == 18996
    check_start(dump, 17966, b"")
    # Four events each: GTID, Annotate_rows, Table_map, Write/Update_rows, Xid.
    assert [len(t.events) for t in txs] == [5, 5, 5]


def test_select_keeps_what_the_target_lacks_and_sets_server_id_per_transaction() -> None:
    dump = parse_dump(sample("mariadb_10_11_range.txt"))
    sel = select(dump, parse_gtid_state("0-101-32", ""))
    assert (sel.transactions, sel.events, sel.already_present) == (3, 15, 0)
    assert (sel.first_gtid, sel.last_gtid, sel.target_after) == ("0-101-33", "0-101-35", "0-101-35")
    script = sel.script
    assert script.count(b"SET @@session.server_id=101") >= 3
    assert script.startswith(b"/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;")
    assert b"BINLOG '" in script and script.rstrip().endswith(b"PSEUDO_SLAVE_MODE=0*/;")
    assert sel.end_pos == 18996


def test_a_repeat_restarts_at_the_first_missing_transaction() -> None:
    dump = parse_dump(sample("mariadb_10_11_range.txt"))
    target = parse_gtid_state("0-101-34", "0-101-30")
    assert restart_point(dump, target) == (0, 18622)
    assert restart_point(dump, parse_gtid_state("0-101-32")) is None
    everything = select(dump, parse_gtid_state("0-101-35"))
    assert everything.transactions == 0 and everything.already_present == 3


def test_a_gap_stops_the_salvage() -> None:
    dump = parse_dump(sample("mariadb_10_11_range.txt"))
    with pytest.raises(SalvageError, match="GTID gap"):
        select(dump, parse_gtid_state("0-101-20"))


def test_a_truncated_last_transaction_is_dropped() -> None:
    dump = parse_dump(sample("mariadb_10_11_truncated.txt"))
    assert truncated_tail(b"ERROR: Error in Log_event::read_log_event(): 'Event truncated'")
    sel = select(dump, parse_gtid_state("0-101-32"))
    assert (sel.transactions, sel.incomplete) == (1, 1)
    assert sel.last_gtid == "0-101-33" and sel.end_pos == 18275
    assert b"gtid_seq_no=34" not in sel.script


def test_a_start_that_is_not_an_event_boundary_is_refused() -> None:
    dump = parse_dump(sample("mariadb_10_11_bad_start.txt"))
    err = b"ERROR: Error in Log_event::read_log_event(): 'Event truncated', data_len: 1751001385"
    with pytest.raises(SalvageError, match="not an event boundary"):
        check_start(dump, 17500, err)
    # The same output without an error: the position is the end of the file, nothing new.
    check_start(dump, 17500, b"")
    assert select(dump, parse_gtid_state("0-101-32")).transactions == 0


def test_a_start_elsewhere_than_asked_is_refused() -> None:
    dump = parse_dump(sample("mariadb_10_11_range.txt"))
    with pytest.raises(SalvageError, match="do not line up"):
        check_start(dump, 17000, b"")


def test_two_files_with_a_ddl_and_rotate() -> None:
    dump = parse_dump(sample("mariadb_10_11_two_files.txt"))
    txs = dump.transactions()
    assert [str(t.gtid) for t in txs] == ["0-101-138", "0-101-139", "0-101-140"]
    assert all(t.complete for t in txs)
    assert [t.file_index for t in txs] == [0, 1, 1]
    assert len(txs[1].events) == 2  # a DDL: its GTID and one query
    sel = select(dump, parse_gtid_state("0-101-137"))
    assert sel.transactions == 3 and sel.end_file_index == 1 and sel.end_pos == 752
    assert sel.script.count(b"Start: binlog v 4") == 2  # both format descriptions kept


def test_mysql_gtid_sets() -> None:
    u = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    state = parse_gtid_state(f"{u}:1-5:7-9,\n8b1a2c3d-0000-11e1-9e33-c80aa9429562:1-3")
    assert state.has(Gtid(u, "", 4)) and not state.has(Gtid(u, "", 6))
    assert state.next_seq(u) == 10
    assert state.with_gtid(Gtid(u, "", 6)).render().startswith(f"{u}:1-9")
    with pytest.raises(SalvageError):
        parse_gtid_state("not-a-gtid")


# MySQL 8.0 output, written from the manual's examples (no MySQL server in this lab).
MYSQL_80_DUMP = sample("mysql_8_0_written_from_the_manual.txt")


def test_mysql_80_output_transactional_and_ddl() -> None:
    dump = parse_dump(MYSQL_80_DUMP)
    assert dump.flavor == "mysql"
    txs = dump.transactions()
    assert [str(t.gtid) for t in txs] == [
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:6",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:7",
    ]
    assert all(t.complete for t in txs) and [len(t.events) for t in txs] == [5, 2]
    sel = select(dump, parse_gtid_state("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"))
    assert sel.transactions == 2
    assert b"SET @@session.server_id" not in sel.script  # MySQL sets GTID_NEXT itself


def test_anonymous_transactions_are_refused() -> None:
    dump = parse_dump(
        MYSQL_80_DUMP.replace(b"3e11fa47-71ca-11e1-9e33-c80aa9429562:6", b"ANONYMOUS")
    )
    with pytest.raises(SalvageError, match="anonymous"):
        select(dump, parse_gtid_state(""))


def test_tool_argv_per_flavor() -> None:
    files = ["/var/lib/mysql/mysql-bin.000007", "/var/lib/mysql/mysql-bin.000008"]
    maria = tool_argv("mariadb", "/usr/bin/mariadb-binlog", 4711, files)
    assert maria == [
        "/usr/bin/mariadb-binlog",
        "--no-defaults",
        "--verify-binlog-checksum",
        "--start-position=4711",
        "--skip-gtid-strict-mode",
        *files,
    ]
    mysql = tool_argv("mysql", "/usr/bin/mysqlbinlog", 4711, files, verbose=True)
    assert "--skip-gtid-strict-mode" not in mysql and "--verbose" in mysql
    assert "--flashback" in tool_argv("mariadb", "t", 4, files, flashback=True)
    with pytest.raises(ValueError):
        tool_argv("mysql", "t", 4, files, flashback=True)
    with pytest.raises(ValueError):
        tool_argv("mariadb", "t", 0, files)
