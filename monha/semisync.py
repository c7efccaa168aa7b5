"""Semi-synchronous replication: what a server reports about it, as one small value.

Job: turn `SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'` and `SHOW GLOBAL STATUS LIKE
'Rpl_semi_sync%'` replies into a `SemiSyncState`, for every spelling: MariaDB (built in since
10.3.3, master/slave names), MySQL 5.7 and 8.0 before 8.0.26 (the semisync_master/slave plugins,
same names), MySQL 8.0.26+ and 8.4 (semisync_source/replica plugins: rpl_semi_sync_source_* and
rpl_semi_sync_replica_*). The same two statements work on all of them; a server without the
plugin answers with no rows, which reads as "not available".

Must not: do I/O or decide anything (the status/check commands report it; a failover does
not depend on it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

VARIABLES_SQL = "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'"
STATUS_SQL = "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'"


@dataclass(frozen=True, slots=True)
class SemiSyncState:
    """One server's semi-sync settings and live state.

    `primary_enabled`/`replica_enabled`: the configured switches. `primary_active`: the
    primary currently waits for a replica's acknowledgement (it falls back to asynchronous
    after `timeout_ms` without one, and this turns False). `replica_active`: the replica's
    IO thread acknowledges. `clients`: replicas connected in semi-sync mode (on a primary).
    """

    available: bool
    primary_enabled: bool = False
    replica_enabled: bool = False
    primary_active: bool = False
    replica_active: bool = False
    timeout_ms: int | None = None
    wait_point: str = ""
    clients: int | None = None

    @property
    def protects_failover(self) -> bool:
        """True when an acknowledged commit is known to have reached the replica: the primary
        runs semi-sync right now and waits after the binlog write (AFTER_SYNC)."""
        return self.primary_active and self.wait_point.upper() == "AFTER_SYNC"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "protects_failover": self.protects_failover}


def _rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for row in rows:
        values = list(row.values())
        if len(values) >= 2:
            name = values[0].decode() if isinstance(values[0], bytes) else str(values[0])
            value = values[1].decode() if isinstance(values[1], bytes) else str(values[1])
            out[name.lower()] = value.strip()
    return out


def _pick(d: Mapping[str, str], *names: str) -> str | None:
    for n in names:
        if n in d:
            return d[n]
    return None


def _on(value: str | None) -> bool:
    return (value or "").upper() in ("ON", "1", "YES", "TRUE")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def parse_semi_sync(
    variables: Iterable[Mapping[str, Any]], status: Iterable[Mapping[str, Any]]
) -> SemiSyncState:
    """Both replies (rows of Variable_name, Value) -> SemiSyncState."""
    v, s = _rows(variables), _rows(status)
    if not v:
        return SemiSyncState(available=False)
    src = ("rpl_semi_sync_source_", "rpl_semi_sync_master_")
    rep = ("rpl_semi_sync_replica_", "rpl_semi_sync_slave_")
    return SemiSyncState(
        available=True,
        primary_enabled=_on(_pick(v, *(p + "enabled" for p in src))),
        replica_enabled=_on(_pick(v, *(p + "enabled" for p in rep))),
        primary_active=_on(_pick(s, *(p + "status" for p in src))),
        replica_active=_on(_pick(s, *(p + "status" for p in rep))),
        timeout_ms=_int(_pick(v, *(p + "timeout" for p in src))),
        wait_point=_pick(v, *(p + "wait_point" for p in src)) or "",
        clients=_int(_pick(s, *(p + "clients" for p in src))),
    )
