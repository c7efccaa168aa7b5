"""Pure tests of monha.salvage against output recorded from the real tools: MariaDB 10.11's
mariadb-binlog on the lab, and MySQL 9.7.4's mysqlbinlog (tests/unit/binlog_samples/README.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import pytest

from monha import failback
from monha.binlog_io import ErrantError, ErrantReport, find_errant
from monha.dialect import Dialect, detect
from monha.mysql import MySQLError, Server
from monha.runners import CommandResult, Runner
from monha.salvage import (
    Gtid,
    SalvageError,
    applied_to,
    check_start,
    check_understood,
    errant_of,
    files_from,
    gate_variables,
    parse_dump,
    parse_gtid_state,
    parse_index,
    replay_script,
    restart_point,
    script_for,
    select,
    subtract,
    tool_argv,
    truncated_tail,
    write_gate,
)
from tests.unit.unit_support import CONFIG

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


# --- MySQL: mysqlbinlog 9.7.4 on MySQL 9.7.4 binary logs (binlog_samples/README.md) ----------

UUID = "c4cb3d7e-f1ba-11f1-9d7f-02fc00000001"
MYSQL_RANGE = sample("mysql_9_7_range.txt")


def _gtids(*seqs: int) -> list[str]:
    return [f"{UUID}:{n}" for n in seqs]


def test_mysql_range_groups_session_settings_begin_rows_and_xid() -> None:
    """Regression: the BEGIN query event starts with SET TIMESTAMP and other session settings;
    the parser took only a first line BEGIN as the start of a transaction, so each one ended
    after its BEGIN and the script replayed GTID_NEXT, SET TIMESTAMP, BEGIN and no rows."""
    dump = parse_dump(MYSQL_RANGE)
    assert dump.flavor == "mysql"
    txs = dump.transactions()
    assert [str(t.gtid) for t in txs] == _gtids(10, 11, 12, 13)
    assert all(t.complete for t in txs)
    # GTID, BEGIN, Table_map, Write/Update/Delete_rows, Xid; the DDL: GTID and its query.
    assert [len(t.events) for t in txs] == [5, 5, 2, 5]
    assert [t.file_index for t in txs] == [0, 0, 1, 1]
    check_understood(dump)  # no row or Xid event left outside a transaction
    check_start(dump, 2457, b"")


def test_rows_outside_any_transaction_stop_the_salvage() -> None:
    """Had the old parser's mistake been caught, the rows would never have been left behind:
    a data event that belongs to no transaction means the output was not understood."""
    dump = parse_dump(MYSQL_RANGE.replace(b"\nBEGIN\n", b"\nXA START 'x'\n"))
    assert dump.transactions()[0].complete and len(dump.transactions()[0].events) == 2
    with pytest.raises(SalvageError, match=r"not understood.*Table_map.*at 2607"):
        select(dump, parse_gtid_state(f"{UUID}:1-9"))
    with pytest.raises(SalvageError, match="not understood"):
        errant_of(dump, None)


def test_mysql_script_replays_whole_transactions_and_resets_gtid_next() -> None:
    dump = parse_dump(MYSQL_RANGE)
    sel = select(dump, parse_gtid_state(f"{UUID}:1-9"))
    assert (sel.transactions, sel.events, sel.already_present) == (4, 17, 0)
    assert (sel.first_gtid, sel.last_gtid) == (f"{UUID}:10", f"{UUID}:13")
    assert (sel.end_file_index, sel.end_pos, sel.target_after) == (1, 685, f"{UUID}:1-13")
    lines = sel.script.split(b"\n")
    statements = [ln for ln in lines if ln in (b"BEGIN", b"COMMIT/*!*/;")]
    assert statements == [b"BEGIN", b"COMMIT/*!*/;"] * 3
    # Rows: the table map and the row event travel in one BINLOG statement per row event.
    assert sel.script.count(b"BINLOG '") == 2 + 3  # two format descriptions, three row events
    assert b"CREATE TABLE labdb.u" in sel.script
    # GTID_NEXT is AUTOMATIC again before the second file's format description and at the end
    # (after a GTID'd transaction MySQL refuses anything else until it is); once each.
    auto = [i for i, ln in enumerate(lines) if b"GTID_NEXT= 'AUTOMATIC'" in ln]
    fde = [i for i, ln in enumerate(lines) if b"Start: binlog v 4" in ln]
    assert len(auto) == 3 and [a + 2 for a in auto[:2]] == fde
    assert lines[auto[2] + 1] == b"DELIMITER ;"
    assert b"SET @@session.server_id" not in sel.script  # MySQL's GTID_NEXT says it all


def test_mysql_a_repeat_restarts_and_a_gap_stops() -> None:
    dump = parse_dump(MYSQL_RANGE)
    assert restart_point(dump, parse_gtid_state(f"{UUID}:1-11")) == (1, 198)
    assert select(dump, parse_gtid_state(f"{UUID}:1-13")).transactions == 0
    with pytest.raises(SalvageError, match="GTID gap"):
        select(dump, parse_gtid_state(f"{UUID}:1-7"))


def test_mysql_a_transaction_cut_off_by_the_end_of_the_file_is_dropped() -> None:
    """mysqlbinlog exits 0 with a warning, and prints the cut transaction's BEGIN and table
    map followed by a ROLLBACK of its own: that transaction is incomplete, not empty."""
    dump = parse_dump(sample("mysql_9_7_truncated.txt"))
    assert truncated_tail(sample("mysql_9_7_truncated.stderr"))
    sel = select(dump, parse_gtid_state(f"{UUID}:1-9"))
    assert (sel.transactions, sel.incomplete, sel.last_gtid) == (3, 1, f"{UUID}:12")
    assert (sel.end_file_index, sel.end_pos) == (1, 401)
    assert f"{UUID}:13".encode() not in sel.script and b"added by mysqlbinlog" not in sel.script


def test_mysql_a_start_that_is_not_an_event_boundary_is_refused() -> None:
    dump = parse_dump(sample("mysql_9_7_bad_start.txt"))
    stderr = sample("mysql_9_7_bad_start.stderr")
    assert not truncated_tail(stderr)  # "binlog truncated in the middle of event" is not that
    with pytest.raises(SalvageError, match="not an event boundary"):
        check_start(dump, 2460, stderr)


def test_mysql_verbose_output_keeps_the_rows_for_the_errant_file() -> None:
    dump = parse_dump(sample("mysql_9_7_range_verbose.txt"))
    new = parse_gtid_state(f"{UUID}:1-11,3b8f0e0c-0000-11f1-9d7f-02fc00000002:1-4")
    found = errant_of(dump, new, parse_gtid_state(f"{UUID}:1-13"))
    assert [str(t.gtid) for t in found.transactions] == _gtids(12, 13)
    assert (found.gtid_set, found.unsaved) == (f"{UUID}:12-13", "")
    script = script_for(dump, found.transactions)
    assert b"### DELETE FROM `labdb`.`t`" in script and b"###   @2='th\\'ree'" in script
    # An errant GTID the range does not hold (older than the range, or purged) is said.
    older = errant_of(dump, new, parse_gtid_state(f"{UUID}:1-13:20"))
    assert (older.gtid_set, older.unsaved) == (f"{UUID}:12-13:20", f"{UUID}:20")
    # MariaDB: every complete transaction of the range.
    assert len(errant_of(dump, None).transactions) == 4


def test_mysql_gtid_sets_tags_and_subtraction() -> None:
    u, v = UUID, "3b8f0e0c-0000-11f1-9d7f-02fc00000002"
    state = parse_gtid_state(f"{u}:1-5:7-9:Blue:1-3,\n{v}:1-3")
    assert state.has(Gtid(u, "", 4)) and not state.has(Gtid(u, "", 6))
    assert state.has(Gtid(f"{u}:blue", "", 2)) and state.next_seq(u) == 10
    assert state.render() == f"{v}:1-3,{u}:1-5:7-9,{u}:blue:1-3"  # sorted by domain
    assert subtract(state, parse_gtid_state(f"{u}:2-8,{v}:1-3")).render() == (
        f"{u}:1:9,{u}:blue:1-3"
    )
    assert subtract(parse_gtid_state(f"{u}:1-3"), state).is_empty
    with pytest.raises(SalvageError):
        parse_gtid_state("not-a-gtid")


def test_anonymous_transactions_are_refused() -> None:
    dump = parse_dump(MYSQL_RANGE.replace(f"{UUID}:10".encode(), b"ANONYMOUS"))
    with pytest.raises(SalvageError, match="anonymous"):
        select(dump, parse_gtid_state(""))


def test_tagged_gtids_are_transactions_of_their_own_domain() -> None:
    dump = parse_dump(MYSQL_RANGE.replace(f"{UUID}:13'".encode(), f"{UUID}:blue:1'".encode()))
    assert str(dump.transactions()[3].gtid) == f"{UUID}:blue:1"
    sel = select(dump, parse_gtid_state(f"{UUID}:1-9"))
    assert sel.target_after == f"{UUID}:1-12,{UUID}:blue:1"


# --- replaying into a read-only replica ----------------------------------------------------


def test_write_gate_lowers_only_the_admin_blocking_read_only_and_puts_it_back() -> None:
    gate = write_gate("mysql", {"read_only": 1, "super_read_only": 1}, True)
    assert gate is not None
    assert replay_script(b"X\n", gate, "monha_salvage_ab12") == (
        b"DO GET_LOCK('monha_salvage_ab12', 0); SET GLOBAL super_read_only = OFF;\n"
        b"X\nSET GLOBAL super_read_only = ON;\n"
    )
    assert write_gate("mysql", {"read_only": 0, "super_read_only": 0}, True) is None
    assert write_gate("mariadb", {"read_only": 1}, False) is None  # admins replay through it
    maria12 = write_gate("mariadb", {"read_only": "NO_LOCK_NO_ADMIN"}, True)
    assert maria12 is not None and maria12.restore.endswith(b"NO_LOCK_NO_ADMIN;")
    assert gate_variables("mysql") == ("read_only", "super_read_only")
    # Without a gate the lock is still taken: the session is found by it all the same.
    assert replay_script(b"X\n", None, "monha_salvage_1") == (
        b"DO GET_LOCK('monha_salvage_1', 0);\nX\n"
    )
    with pytest.raises(ValueError):
        replay_script(b"X\n", None, "x'); DROP TABLE t; --")


def test_a_resumed_replay_puts_back_the_strongest_read_only_whatever_it_read() -> None:
    """Regression (review D): the gate followed the super_read_only it read, so a salvage run
    again after a daemon killed mid-replay (super_read_only left OFF, plain read_only ON) read
    OFF and put nothing back: the replica stayed open to admins."""
    resumed = write_gate("mysql", {"read_only": 1, "super_read_only": 0}, True)
    assert resumed is not None and resumed.restore == b"SET GLOBAL super_read_only = ON;"
    maria12 = write_gate("mariadb", {"read_only": "ON"}, True)
    assert maria12 is not None and maria12.restore == b"SET GLOBAL read_only = NO_LOCK_NO_ADMIN;"
    assert write_gate("mariadb", {"read_only": "OFF"}, True) is None


def test_a_replay_that_stopped_midway_ends_after_the_last_transaction_it_applied() -> None:
    """Regression (review C): a partial replay recorded the end of the whole selection as the
    salvage's end, so the errant check at rejoin, which reads from there, never saw the
    transactions selected but not applied."""
    dump = parse_dump(MYSQL_RANGE)  # :10 and :11 in the first file, :12 and :13 in the second
    before = parse_gtid_state(f"{UUID}:1-9")
    txs = dump.transactions()
    assert applied_to(dump, before, parse_gtid_state(f"{UUID}:1-11")) == (0, txs[1].end)
    assert applied_to(dump, before, parse_gtid_state(f"{UUID}:1-12")) == (1, txs[2].end)
    assert applied_to(dump, before, parse_gtid_state(f"{UUID}:1-13")) == (1, 685)
    # Nothing landed: the start of the first transaction that was to be applied.
    assert applied_to(dump, before, before) == (0, 2457)
    assert applied_to(dump, before, parse_gtid_state("")) == (0, 2457)
    # What the target had before is not part of the replay.
    had = parse_gtid_state(f"{UUID}:1-10")
    assert applied_to(dump, had, had) == (0, txs[1].events[0].at)
    assert applied_to(dump, parse_gtid_state(f"{UUID}:1-13"), parse_gtid_state("")) is None


# --- find_errant's decisions (binlog_io), with the recorded output and stand-in servers ----------


class _Server:
    """What find_errant asks a server: its version, GTIDs and gtid_mode."""

    def __init__(self, gtids: str, gtid_mode: str = "ON", fail: str = "") -> None:
        self.gtids, self.gtid_mode, self.fail = gtids, gtid_mode, fail

    async def dialect(self, timeout_s: float | None = None) -> Dialect:
        return detect("9.7.4", "MySQL Community Server - GPL")

    async def gtid_state(self, timeout_s: float | None = None) -> list[str]:
        if self.fail:
            raise MySQLError(self.fail)
        return [self.gtids]

    async def global_variables(
        self, names: list[str], timeout_s: float | None = None
    ) -> dict[str, object]:
        if self.fail:
            raise MySQLError(self.fail)
        return {"gtid_mode": self.gtid_mode}


class _Runner:
    """The old primary's node: its binlog index, and the binlog tool printing `output`."""

    def __init__(self, output: bytes) -> None:
        self.output = output
        self.tool_runs = 0

    async def run(
        self,
        argv: list[str],
        timeout_s: float,
        input: bytes | None = None,
        *,
        max_output_bytes: int | None = None,
    ) -> CommandResult:
        if argv[0] == "cat":
            return CommandResult(tuple(argv), 0, b"/S/bin.000001\n/S/bin.000002\n", b"", 0.0)
        self.tool_runs += 1
        return CommandResult(tuple(argv), 0, self.output, b"", 0.0)


async def _find_errant(old: _Server, runner: _Runner, new: _Server, out: Path) -> ErrantReport:
    return await find_errant(
        cast(Server, old),
        cast(Runner, runner),
        cast(Server, new),
        {"applied_from_old_file": "bin.000001", "applied_from_old_pos": "2457"},
        out,
        binlog_index="/S/bin.index",
        binlog_tool="/usr/bin/mysqlbinlog",
    )


ANONYMOUS_RANGE = re.sub(rb"'[0-9a-f-]{36}:\d+'", b"'ANONYMOUS'", MYSQL_RANGE)


async def test_errant_anonymous_transactions_are_found_with_gtids_off(tmp_path: Path) -> None:
    """Regression (review A): with gtid_mode=OFF the old primary's gtid_executed is empty,
    and "nothing the new primary lacks" was taken for "nothing errant": anonymous errant
    transactions were missed and the rejoin went ahead."""
    runner = _Runner(ANONYMOUS_RANGE)
    report = await _find_errant(_Server("", "OFF"), runner, _Server(f"{UUID}:1-9"), tmp_path)
    assert runner.tool_runs >= 1 and report.count == 4, report
    assert all(e.startswith("anonymous@") for e in report.errant) and report.sql_file
    # An empty set with gtid_mode=ON (a server that never wrote with GTIDs): read as well.
    runner = _Runner(MYSQL_RANGE)
    report = await _find_errant(_Server("", "ON"), runner, _Server(f"{UUID}:1-9"), tmp_path)
    assert runner.tool_runs >= 1 and report.count == 4, report
    # gtid_mode=ON and nothing beyond the new primary's set: nothing errant, nothing read.
    runner = _Runner(MYSQL_RANGE)
    report = await _find_errant(_Server(f"{UUID}:1-13"), runner, _Server(f"{UUID}:1-13"), tmp_path)
    assert runner.tool_runs == 0 and report.count == 0, report


async def test_errant_an_unreadable_old_gtid_state_is_a_refusal(tmp_path: Path) -> None:
    """Regression (review A): a failure to read the old primary's GTID state was ignored and
    the errant set taken from the binary log alone."""
    old = _Server("", fail="Lost connection to MySQL server")
    with pytest.raises(ErrantError, match=r"old primary's GTID state.*Lost connection"):
        await _find_errant(old, _Runner(MYSQL_RANGE), _Server(f"{UUID}:1-9"), tmp_path)


async def test_errant_output_not_understood_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    """Regression (review E): errant_of's SalvageError (rows outside any transaction, as with
    binlog_transaction_compression=ON) escaped find_errant, which the rejoin only expects to
    raise ErrantError: it ended in an unhandled exception instead of a refusal."""
    odd = MYSQL_RANGE.replace(b"\nBEGIN\n", b"\nXA START 'x'\n")
    with pytest.raises(ErrantError, match="not understood"):
        await _find_errant(_Server(f"{UUID}:1-13"), _Runner(odd), _Server(f"{UUID}:1-9"), tmp_path)


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


def test_errant_without_gtids_is_refused_with_a_rebuild_not_a_replay() -> None:
    """Anonymous errant transactions (gtid_mode not ON): applied on the new primary they would
    get new GTIDs there and the next check would find them again; the refusal says rebuild."""
    report = ErrantReport(
        ("anonymous@2457",), 5, "bin.000001", 2457, "bin.000002", 685, "", "/x/errant.sql"
    )
    text = failback._mysql_errant_steps(CONFIG, "db2", "db1", report)
    assert "(1 without a GTID)" in text and "carry no GTID" in text, text
    assert "rebuild db1 as a copy of db2" in text and "< /x" not in text, text
