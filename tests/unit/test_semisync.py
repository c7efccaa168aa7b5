"""monha.semisync against the replies of each server series (names from each manual)."""

from __future__ import annotations

from monha.semisync import parse_semi_sync


def rows(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"Variable_name": k, "Value": v} for k, v in pairs.items()]


def test_mariadb_10_11_primary_running_semi_sync() -> None:
    variables = rows({
        "rpl_semi_sync_master_enabled": "ON",
        "rpl_semi_sync_master_timeout": "10000",
        "rpl_semi_sync_master_trace_level": "32",
        "rpl_semi_sync_master_wait_no_slave": "ON",
        "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
        "rpl_semi_sync_slave_delay_master": "OFF",
        "rpl_semi_sync_slave_enabled": "OFF",
        "rpl_semi_sync_slave_kill_conn_timeout": "5",
        "rpl_semi_sync_slave_trace_level": "32",
    })  # fmt: skip
    status = rows({
        "Rpl_semi_sync_master_clients": "1",
        "Rpl_semi_sync_master_status": "ON",
        "Rpl_semi_sync_slave_status": "OFF",
    })  # fmt: skip
    s = parse_semi_sync(variables, status)
    assert s.available and s.primary_enabled and s.primary_active and not s.replica_enabled
    assert (s.timeout_ms, s.wait_point, s.clients) == (10000, "AFTER_SYNC", 1)
    assert s.protects_failover
    assert s.as_dict()["protects_failover"] is True


def test_mysql_57_replica_and_a_primary_fallen_back_to_async() -> None:
    variables = rows({
        "rpl_semi_sync_master_enabled": "ON",
        "rpl_semi_sync_master_timeout": "1000",
        "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
        "rpl_semi_sync_slave_enabled": "ON",
    })  # fmt: skip
    status = rows({"Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_slave_status": "ON"})
    s = parse_semi_sync(variables, status)
    assert s.primary_enabled and not s.primary_active and s.replica_active
    assert not s.protects_failover  # it timed out and runs asynchronously now


def test_mysql_80_26_and_84_source_replica_names() -> None:
    variables = rows({
        "rpl_semi_sync_source_enabled": "ON",
        "rpl_semi_sync_source_timeout": "10000",
        "rpl_semi_sync_source_wait_point": "AFTER_COMMIT",
        "rpl_semi_sync_replica_enabled": "OFF",
    })  # fmt: skip
    status = rows({"Rpl_semi_sync_source_status": "ON", "Rpl_semi_sync_source_clients": "2"})
    s = parse_semi_sync(variables, status)
    assert s.primary_active and s.clients == 2
    assert not s.protects_failover  # AFTER_COMMIT: clients may see commits the replica lacks


def test_no_plugin_loaded() -> None:
    s = parse_semi_sync([], [])
    assert not s.available and not s.protects_failover
