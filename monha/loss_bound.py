"""What a failover may lose, said at the moment it starts: the transactions the promoted replica
had not received as of the old primary's last known position.

Job: `unreceived(primary, replica) -> LossBound`, from the primary's binlog end as read on the
last tick it answered and the replica's own status now. It is an upper bound of what is lost:
catch-up and salvage may still bring some of it back, and what the primary wrote after its last
known position is not in it (the rejoin reports the exact errant set later).

Must not: do I/O. A GTID count where both sides have GTIDs; otherwise the bytes of the same
binary log file, or "unknown" in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from monha.model import BinlogCoordinates, ReplicaStatus
from monha.salvage import GtidState, SalvageError, parse_gtid_state


@dataclass(frozen=True, slots=True)
class LossBound:
    transactions: int | None  # None: not countable (no GTIDs, or no known position)
    text: str  # for the log, the flag and status: "lost at most 12 transactions (...)"


def _missing(primary: GtidState, replica: GtidState) -> int:
    count = 0
    for domain, (_, seq) in primary.last.items():
        last = replica.last.get(domain)
        count += max(0, seq - (last[1] if last else 0))
    for uuid, intervals in primary.intervals.items():
        have = replica.intervals.get(uuid, ())
        for lo, hi in intervals:
            count += (hi - lo + 1) - sum(max(0, min(hi, h) - max(lo, low) + 1) for low, h in have)
    return count


def unreceived(primary: BinlogCoordinates | None, replica: ReplicaStatus | None) -> LossBound:
    if primary is None:
        return LossBound(None, "unknown: the primary's binlog position was never read")
    if replica is None or not replica.configured:
        return LossBound(None, "unknown: this node's replica status was not read")
    where = f"as of {primary.file}:{primary.position}" + (
        f" (GTID {primary.gtid})" if primary.gtid else ""
    )
    received = replica.gtid_io_pos or replica.gtid_slave_pos
    if primary.gtid and received:
        try:
            count = _missing(
                parse_gtid_state(primary.gtid),
                parse_gtid_state(replica.gtid_io_pos, replica.gtid_slave_pos),
            )
        except SalvageError as exc:
            return LossBound(None, f"unknown: {exc}")
        return LossBound(count, f"lost at most {count} transaction(s) {where}")
    read = replica.read_position
    if read is not None and read.file == primary.file:
        gap = max(0, primary.position - read.position)
        return LossBound(None, f"lost at most {gap} byte(s) of binary log {where}")
    got = f"{read.file}:{read.position}" if read else "nothing known"
    return LossBound(None, f"unknown without GTIDs: the replica had received {got}, {where}")
