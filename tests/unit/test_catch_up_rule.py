"""When a replica whose primary is gone has applied everything it ever can."""

from __future__ import annotations

from dataclasses import replace

from monha.model import BinlogCoordinates, ReplicaStatus
from monha.mysql import _settled

IDLE = "Slave has read all relay log; waiting for more updates"
BASE = ReplicaStatus(
    configured=True,
    io_running="Connecting",
    sql_running="Yes",
    sql_state=IDLE,
    read_position=BinlogCoordinates("mysql-bin.000001", 5000),
    exec_position=BinlogCoordinates("mysql-bin.000001", 4200),
)


def test_primary_gone_and_sql_thread_idle_and_still_is_settled() -> None:
    # The 800 bytes between the positions are a transaction cut off with the primary.
    assert _settled(BASE, BASE)
    assert BASE.sql_idle and not BASE.caught_up


def test_not_settled_while_anything_can_still_move() -> None:
    moved = replace(BASE, exec_position=BinlogCoordinates("mysql-bin.000001", 4100))
    assert not _settled(BASE, moved)  # it applied something since the last poll
    assert not _settled(replace(BASE, io_running="Yes"), BASE)  # the primary still sends
    assert not _settled(replace(BASE, sql_state="Reading event from the relay log"), BASE)
    assert not _settled(replace(BASE, sql_running="No"), BASE)  # stopped: not "all applied"
