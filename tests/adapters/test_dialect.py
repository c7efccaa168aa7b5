"""Dialect detection, statement forms per server series, and parsing of recorded status rows.

Pure: no server, no event loop. The MySQL forms are only ever checked here (the lab runs MariaDB).
"""

from __future__ import annotations

import pytest

from monha.dialect import (
    ContactSample,
    Dialect,
    DialectError,
    Flavor,
    detect,
    parse_binlog_status,
    parse_bool_variable,
    parse_replica_status,
    pick_default_row,
    received_heartbeats,
    seconds_since_heard,
    update_contact,
)
from monha.model import BinlogCoordinates
from tests.adapters.recorded import (
    MARIADB_10_11_ALL_SLAVES,
    MYSQL_5_7_SLAVE,
    MYSQL_8_0_REPLICA,
    MYSQL_8_4_REPLICA,
)

MARIADB_10_11 = detect("10.11.6-MariaDB-0+deb12u1-log", "Debian 12")
MARIADB_12 = detect("12.0.2-MariaDB", "MariaDB Server")
MYSQL_5_7 = detect("5.7.44-log", "MySQL Community Server (GPL)")
MYSQL_8_0_21 = detect("8.0.21", "MySQL Community Server - GPL")
MYSQL_8_0 = detect("8.0.36", "MySQL Community Server - GPL")
MYSQL_8_4 = detect("8.4.0", "MySQL Community Server - GPL")


@pytest.mark.parametrize(
    ("version", "comment", "flavor", "numbers"),
    [
        ("10.11.6-MariaDB-0+deb12u1-log", "Debian 12", Flavor.MARIADB, (10, 11, 6)),
        ("11.4.2-MariaDB", "MariaDB Server", Flavor.MARIADB, (11, 4, 2)),
        ("5.5.5-10.3.39-MariaDB-0+deb10u1", "Debian 10", Flavor.MARIADB, (10, 3, 39)),
        ("10.6.16-MariaDB-log", "", Flavor.MARIADB, (10, 6, 16)),
        ("10.5.23", "mariadb.org binary distribution", Flavor.MARIADB, (10, 5, 23)),
        ("5.7.44-log", "MySQL Community Server (GPL)", Flavor.MYSQL, (5, 7, 44)),
        ("8.0.36-28", "Percona Server (GPL), Release 28", Flavor.MYSQL, (8, 0, 36)),
        ("8.4.0", "MySQL Community Server - GPL", Flavor.MYSQL, (8, 4, 0)),
        ("9.1.0", "MySQL Community Server - GPL", Flavor.MYSQL, (9, 1, 0)),
    ],
)
def test_detect(version: str, comment: str, flavor: Flavor, numbers: tuple[int, int, int]) -> None:
    d = detect(version, comment)
    assert d.flavor is flavor
    assert d.version == numbers


@pytest.mark.parametrize("bad", ["", "garbage", "MariaDB", "x.y.z", "4.1.22"])
def test_detect_rejects_unknown_versions(bad: str) -> None:
    with pytest.raises(DialectError, match="VERSION"):
        detect(bad)


@pytest.mark.parametrize(
    ("dialect", "status", "stop", "reset", "start", "binlog"),
    [
        (
            MARIADB_10_11,
            "SHOW ALL SLAVES STATUS",
            "STOP REPLICA",
            "RESET REPLICA ALL",
            "START REPLICA",
            "SHOW BINLOG STATUS",
        ),
        (
            detect("10.3.39-MariaDB"),
            "SHOW ALL SLAVES STATUS",
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "START SLAVE",
            "SHOW MASTER STATUS",
        ),
        (
            MYSQL_5_7,
            "SHOW SLAVE STATUS",
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "START SLAVE",
            "SHOW MASTER STATUS",
        ),
        (
            MYSQL_8_0_21,
            "SHOW SLAVE STATUS",
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "START SLAVE",
            "SHOW MASTER STATUS",
        ),
        (
            MYSQL_8_0,
            "SHOW REPLICA STATUS",
            "STOP REPLICA",
            "RESET REPLICA ALL",
            "START REPLICA",
            "SHOW MASTER STATUS",
        ),
        (
            MYSQL_8_4,
            "SHOW REPLICA STATUS",
            "STOP REPLICA",
            "RESET REPLICA ALL",
            "START REPLICA",
            "SHOW BINARY LOG STATUS",
        ),
    ],
)
def test_statement_forms(
    dialect: Dialect, status: str, stop: str, reset: str, start: str, binlog: str
) -> None:
    assert dialect.replica_status_sql == status
    assert dialect.stop_replica_sql == stop
    assert dialect.reset_replica_all_sql == reset
    assert dialect.start_replica_sql == start
    assert dialect.binlog_status_sql == binlog


def test_mysql_8_4_uses_no_removed_statement() -> None:
    """8.4 removed SHOW SLAVE STATUS, CHANGE MASTER TO, SHOW MASTER STATUS and the SLAVE verbs."""
    d = MYSQL_8_4
    sql, _ = d.change_source_sql(
        host="h", port=3306, user="u", password="p", heartbeat_period_s=1, use_gtid=True
    )
    every = [
        d.replica_status_sql,
        d.stop_replica_sql,
        d.start_replica_sql,
        d.reset_replica_all_sql,
        d.binlog_status_sql,
        d.set_heartbeat_sql(1.0),
        d.wait_position_sql(),
        sql,
    ]
    for statement in every:
        assert "SLAVE" not in statement
        assert "MASTER" not in statement, statement


def test_gtid_queries() -> None:
    assert MARIADB_10_11.gtid_executed_sql == "SELECT @@GLOBAL.gtid_binlog_pos"
    assert MARIADB_10_11.gtid_applied_sql == "SELECT @@GLOBAL.gtid_slave_pos"
    assert MARIADB_10_11.gtid_current_sql == "SELECT @@GLOBAL.gtid_current_pos"
    assert MARIADB_10_11.gtid_enabled_sql is None
    for d in (MYSQL_5_7, MYSQL_8_0, MYSQL_8_4):
        assert d.gtid_executed_sql == "SELECT @@GLOBAL.gtid_executed"
        assert d.gtid_enabled_sql is not None
    assert "MASTER_GTID_WAIT" in MARIADB_10_11.wait_gtid_sql()
    assert "WAIT_FOR_EXECUTED_GTID_SET" in MYSQL_8_0.wait_gtid_sql()
    assert "SOURCE_POS_WAIT" in MYSQL_8_4.wait_position_sql()
    assert "MASTER_POS_WAIT" in MYSQL_5_7.wait_position_sql()


def test_change_source_mariadb_gtid() -> None:
    sql, params = MARIADB_10_11.change_source_sql(
        host="192.168.10.1",
        port=3306,
        user="repl",
        password="s3cret'; DROP TABLE x; --",
        heartbeat_period_s=1.0,
        use_gtid=True,
    )
    assert sql.startswith("CHANGE MASTER TO MASTER_HOST = %s")
    assert "MASTER_HEARTBEAT_PERIOD = 1.000" in sql
    assert "MASTER_USE_GTID = slave_pos" in sql
    assert "s3cret" not in sql  # the password only travels as a parameter
    assert params == ("192.168.10.1", 3306, "repl", "s3cret'; DROP TABLE x; --", 1)


def test_change_source_mysql_forms() -> None:
    sql57, _ = MYSQL_5_7.change_source_sql(
        host="h", port=3306, user="u", password="p", heartbeat_period_s=0.5, use_gtid=True
    )
    assert sql57.startswith("CHANGE MASTER TO ")
    assert "MASTER_HEARTBEAT_PERIOD = 0.500" in sql57
    assert "MASTER_AUTO_POSITION = 1" in sql57
    sql84, _ = MYSQL_8_4.change_source_sql(
        host="h", port=3306, user="u", password="p", heartbeat_period_s=2, use_gtid=True
    )
    assert sql84.startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s")
    assert "SOURCE_HEARTBEAT_PERIOD = 2.000" in sql84
    assert "SOURCE_AUTO_POSITION = 1" in sql84


def test_change_source_asks_for_the_public_key_and_sets_tls_when_told() -> None:
    """Regression (issue 13): without GET_SOURCE_PUBLIC_KEY a MySQL replica whose connection has
    no TLS fails with error 2061 once the source's authentication cache is cold."""
    kw = {"host": "h", "port": 3306, "user": "u", "password": "p", "heartbeat_period_s": 1}
    sql84, _ = MYSQL_8_4.change_source_sql(**kw, use_gtid=True)  # type: ignore[arg-type]
    assert "GET_SOURCE_PUBLIC_KEY = 1" in sql84 and "SOURCE_SSL" not in sql84
    assert "SOURCE_RETRY_COUNT = 86400" in sql84
    sql84, _ = MYSQL_8_4.change_source_sql(**kw, use_gtid=True, ssl=False)  # type: ignore[arg-type]
    assert "SOURCE_SSL = 0" in sql84
    sql8012, _ = detect("8.0.12").change_source_sql(**kw, use_gtid=True, ssl=True)  # type: ignore[arg-type]
    assert "GET_MASTER_PUBLIC_KEY = 1" in sql8012 and "MASTER_SSL = 1" in sql8012
    # 5.7 and MariaDB have no such option (sha256 logins there are not the default).
    for d in (MYSQL_5_7, MARIADB_10_11):
        sql, _ = d.change_source_sql(**kw, use_gtid=True)  # type: ignore[arg-type]
        assert "PUBLIC_KEY" not in sql


def test_change_source_by_coordinates() -> None:
    c = BinlogCoordinates("mysql-bin.000009", 1234)
    sql, params = MARIADB_10_11.change_source_sql(
        host="h", port=3307, user="u", password="p", heartbeat_period_s=1, coordinates=c
    )
    assert "MASTER_LOG_FILE = %s" in sql and "MASTER_LOG_POS = %s" in sql
    assert "MASTER_USE_GTID = no" in sql
    assert params[-2:] == ("mysql-bin.000009", 1234)
    sql8, _ = MYSQL_8_0.change_source_sql(
        host="h", port=3307, user="u", password="p", heartbeat_period_s=1, coordinates=c
    )
    assert "SOURCE_LOG_FILE = %s" in sql8 and "SOURCE_AUTO_POSITION = 0" in sql8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_gtid": True, "coordinates": BinlogCoordinates("f", 4)},
        {},
        {"use_gtid": True, "heartbeat_period_s": -1},
        {"use_gtid": True, "heartbeat_period_s": 5_000_000},
        {"use_gtid": True, "port": 0},
        {"coordinates": BinlogCoordinates("", 0)},
    ],
)
def test_change_source_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "host": "h",
        "port": 3306,
        "user": "u",
        "password": "p",
        "heartbeat_period_s": 1.0,
    }
    with pytest.raises(ValueError):
        MARIADB_10_11.change_source_sql(**{**base, **kwargs})  # type: ignore[arg-type]


def test_set_heartbeat() -> None:
    assert MARIADB_10_11.set_heartbeat_sql(1) == "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = 1.000"
    assert MYSQL_8_4.set_heartbeat_sql(0.25).startswith(
        "CHANGE REPLICATION SOURCE TO SOURCE_HEARTBEAT_PERIOD = 0.250"
    )


def test_read_only_forms() -> None:
    # MySQL: super_read_only also stops SUPER users; set in the order the coupling needs.
    assert MYSQL_8_0.set_read_only_sql(True) == (
        "SET GLOBAL read_only = ON",
        "SET GLOBAL super_read_only = ON",
    )
    assert MYSQL_8_0.set_read_only_sql(False)[0] == "SET GLOBAL super_read_only = OFF"
    assert MYSQL_8_0.read_only_blocks_admins
    # MariaDB 10.11: no super_read_only; read_only does not stop READ_ONLY ADMIN holders.
    assert MARIADB_10_11.set_read_only_sql(True) == ("SET GLOBAL read_only = ON",)
    assert MARIADB_10_11.set_read_only_sql(False) == ("SET GLOBAL read_only = OFF",)
    assert not MARIADB_10_11.read_only_blocks_admins
    # MariaDB 12: the enum value that blocks admins as well.
    assert MARIADB_12.set_read_only_sql(True) == ("SET GLOBAL read_only = NO_LOCK_NO_ADMIN",)
    assert MARIADB_12.read_only_blocks_admins


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, False), (1, True), ("OFF", False), ("ON", True), (b"1", True), ("NO_LOCK_NO_ADMIN", True)],
)
def test_parse_bool_variable(value: object, expected: bool) -> None:
    assert parse_bool_variable(value, "read_only") is expected


def test_parse_bool_variable_rejects_garbage() -> None:
    with pytest.raises(DialectError, match="read_only"):
        parse_bool_variable("maybe", "read_only")


# --- replica status rows ----------------------------------------------------------------------


def test_parse_mariadb_10_11() -> None:
    s = parse_replica_status(MARIADB_10_11_ALL_SLAVES)
    assert s.configured and s.io_ok and s.sql_running == "Yes"
    assert (s.source_host, s.source_port) == ("192.168.10.1", 3306)
    assert s.read_position == BinlogCoordinates("mysql-bin.000007", 48213, "0-1-1502")
    assert s.exec_position == BinlogCoordinates("mysql-bin.000007", 47100, "0-1-1498")
    assert not s.caught_up
    assert s.seconds_behind == 2
    assert (s.gtid_io_pos, s.gtid_slave_pos) == ("0-1-1502", "0-1-1498")
    assert s.heartbeat_period_s == 1.0
    assert received_heartbeats(MARIADB_10_11_ALL_SLAVES) == 17


def test_parse_mysql_5_7() -> None:
    s = parse_replica_status(MYSQL_5_7_SLAVE)
    assert s.io_ok and s.caught_up
    assert s.read_position == BinlogCoordinates(
        "mysql-bin.000003", 9012, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-40"
    )
    # A multi-line GTID set is joined into one string.
    assert s.gtid_slave_pos == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-40,8c2b3a1e-71ca-11e1-9e33-c80aa9429562:1-2"
    )
    assert s.heartbeat_period_s is None
    assert received_heartbeats(MYSQL_5_7_SLAVE) is None


def test_parse_mysql_8_0_io_down() -> None:
    s = parse_replica_status(MYSQL_8_0_REPLICA)
    assert s.io_running == "Connecting" and not s.io_ok
    assert s.last_io_errno == 2003 and "Can't connect" in s.last_io_error
    assert s.seconds_behind is None
    assert s.caught_up
    assert s.gtid_io_pos == ""


def test_parse_mysql_8_4_sql_error() -> None:
    s = parse_replica_status(MYSQL_8_4_REPLICA)
    assert s.sql_running == "No" and s.last_sql_errno == 1062
    assert s.read_position == BinlogCoordinates(
        "binlog.000002", 20480, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:1-900"
    )
    assert s.exec_position is not None and s.exec_position.file == "binlog.000001"
    assert not s.caught_up


def test_not_a_replica() -> None:
    assert parse_replica_status(None).configured is False
    assert parse_replica_status({}).configured is False


def test_column_names_ignore_case() -> None:
    row = {k.lower(): v for k, v in MARIADB_10_11_ALL_SLAVES.items()}
    assert parse_replica_status(row) == parse_replica_status(MARIADB_10_11_ALL_SLAVES)


def test_bytes_values_are_decoded() -> None:
    row = {k: (v.encode() if isinstance(v, str) else v) for k, v in MYSQL_8_4_REPLICA.items()}
    assert parse_replica_status(row) == parse_replica_status(MYSQL_8_4_REPLICA)


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("Slave_IO_Running", "Replica_IO_Running / Slave_IO_Running"),
        ("Read_Master_Log_Pos", "Read_Source_Log_Pos / Read_Master_Log_Pos"),
        ("Exec_Master_Log_Pos", "Exec_Source_Log_Pos / Exec_Master_Log_Pos"),
        ("Relay_Master_Log_File", "Relay_Source_Log_File / Relay_Master_Log_File"),
        ("Master_Host", "Source_Host / Master_Host"),
    ],
)
def test_missing_column_is_named(drop: str, named: str) -> None:
    row = dict(MARIADB_10_11_ALL_SLAVES)
    del row[drop]
    with pytest.raises(DialectError, match=f"missing column {named}"):
        parse_replica_status(row)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("Read_Source_Log_Pos", "12x"),
        ("Exec_Source_Log_Pos", "-5"),
        ("Exec_Source_Log_Pos", None),
        ("Source_Port", "three"),
        ("Seconds_Behind_Source", "soon"),
        ("Last_IO_Errno", 1.5),
    ],
)
def test_non_numeric_column_is_named(column: str, value: object) -> None:
    row = {**MYSQL_8_0_REPLICA, column: value}
    with pytest.raises(DialectError, match=column):
        parse_replica_status(row)


def test_non_numeric_heartbeat_period_is_named() -> None:
    row = {**MARIADB_10_11_ALL_SLAVES, "Slave_heartbeat_period": "fast"}
    with pytest.raises(DialectError, match="Slave_heartbeat_period"):
        parse_replica_status(row)


def test_pick_default_row() -> None:
    named = {**MARIADB_10_11_ALL_SLAVES, "Connection_name": "other"}
    assert pick_default_row([named, MARIADB_10_11_ALL_SLAVES]) is MARIADB_10_11_ALL_SLAVES
    assert pick_default_row([named]) is None
    assert pick_default_row([]) is None
    assert pick_default_row([MYSQL_5_7_SLAVE]) is MYSQL_5_7_SLAVE


def test_parse_binlog_status() -> None:
    row = {"File": "bin.000001", "Position": 629, "Binlog_Do_DB": "", "Binlog_Ignore_DB": ""}
    assert parse_binlog_status(row, "0-1-2") == BinlogCoordinates("bin.000001", 629, "0-1-2")
    mysql_row = {**row, "Executed_Gtid_Set": "uuid:1-5,\nuuid2:1-3"}
    assert parse_binlog_status(mysql_row).gtid == "uuid:1-5,uuid2:1-3"
    assert parse_binlog_status(None, "0-1-2") == BinlogCoordinates("", 0, "0-1-2")
    with pytest.raises(DialectError, match="Position"):
        parse_binlog_status({"File": "x", "Position": "abc"})
    with pytest.raises(DialectError, match="File / Position"):
        parse_binlog_status({"Filename": "x"})


# --- "heard from the primary" from successive samples -----------------------------------------


def _s(
    at: float, beats: int | None, pos: int, io: str = "Yes", file: str = "bin.000001"
) -> ContactSample:
    return ContactSample(at, beats, file, pos, io)


def test_contact_unknown_until_two_samples() -> None:
    c = update_contact(None, _s(10.0, 5, 100))
    assert seconds_since_heard(c, 10.0) is None
    assert seconds_since_heard(None, 10.0) is None


def test_contact_heartbeat_counts_as_heard() -> None:
    c = update_contact(None, _s(10.0, 5, 100))
    c = update_contact(c, _s(11.0, 6, 100))
    assert seconds_since_heard(c, 11.0) == 0.0
    c = update_contact(c, _s(12.0, 6, 100))
    c = update_contact(c, _s(13.0, 6, 100))
    assert seconds_since_heard(c, 13.5) == pytest.approx(2.5)


def test_contact_events_count_as_heard_while_io_runs() -> None:
    c = update_contact(None, _s(10.0, 5, 100))
    c = update_contact(c, _s(11.0, 5, 900))  # busy primary: events, no heartbeats
    assert seconds_since_heard(c, 11.0) == 0.0
    c = update_contact(c, _s(12.0, 5, 900, file="bin.000002"))  # a rotation is an event too
    assert seconds_since_heard(c, 12.0) == 0.0


def test_contact_without_io_thread_position_change_is_not_contact() -> None:
    c = update_contact(None, _s(10.0, 5, 100))
    c = update_contact(c, _s(11.0, 5, 4, io="No", file="other.000001"))  # reconfigured
    assert seconds_since_heard(c, 11.0) == pytest.approx(1.0)


def test_contact_counter_reset_is_a_new_baseline_not_contact() -> None:
    c = update_contact(None, _s(10.0, 50, 100))
    c = update_contact(c, _s(11.0, 0, 100))
    assert seconds_since_heard(c, 11.0) == pytest.approx(1.0)
    c = update_contact(c, _s(12.0, 1, 100))
    assert seconds_since_heard(c, 12.0) == 0.0


def test_contact_silence_is_a_lower_bound_from_the_first_sample() -> None:
    # Nothing ever changed: silent at least since the first sample.
    c = update_contact(None, _s(10.0, None, 100, io="Connecting"))
    for t in (11.0, 12.0, 13.0):
        c = update_contact(c, _s(t, None, 100, io="Connecting"))
    assert seconds_since_heard(c, 13.0) == pytest.approx(3.0)


def test_contact_clock_going_backwards_starts_over() -> None:
    c = update_contact(None, _s(10.0, 5, 100))
    c = update_contact(c, _s(11.0, 6, 100))
    c = update_contact(c, _s(5.0, 6, 100))
    assert seconds_since_heard(c, 5.0) is None
