"""What the standby does for its own replica each healthy tick (pure): the heartbeat and net
timeout it needs, and a restart of an IO thread that went quiet while the primary answers.

With the server's defaults a replica whose link was cut notices only after
`slave_net_timeout` (60 s), and after the primary's mysqld restarts its IO thread may sit out
a failed reconnect: rows acknowledged meanwhile exist on the primary alone, and a second fault
in that window loses them. So monha sets the heartbeat (`mysql.heartbeat_period_s`) and a net
timeout (`mysql.replica_net_timeout_s`) on the replica it manages, and restarts an IO thread
that failed while the primary's MySQL answers this node.

Never touched: a SQL thread (a stopped one is the operator's, and the stale-replica guard's
evidence), and an IO thread stopped without an error (an operator stopped it on purpose).
"""

from __future__ import annotations

from dataclasses import dataclass

from monha.model import ReplicaStatus

# After restarting the IO thread, wait this long before doing it again: a restart that did
# not help (a purged binary log, a refused login) is reported, not hammered.
RESTART_INTERVAL_S = 30.0


@dataclass(frozen=True, slots=True)
class Care:
    set_heartbeat: bool = False
    restart_io: bool = False
    why: str = ""

    @property
    def needed(self) -> bool:
        return self.set_heartbeat or self.restart_io


def care(
    status: ReplicaStatus | None,
    *,
    heartbeat_s: float,
    primary_answers: bool,
    now: float,
    last_restart_at: float | None,
) -> Care:
    """What to do to this node's replica now; `Care()` when nothing."""
    if status is None or not status.configured:
        return Care()
    why = []
    hb = status.heartbeat_period_s
    set_hb = hb is not None and abs(hb - heartbeat_s) >= 0.0005
    if set_hb:
        why.append(f"its heartbeat is {hb:g} s, not mysql.heartbeat_period_s = {heartbeat_s:g}")
    failed = status.io_running == "Connecting" or (
        status.io_running == "No" and status.last_io_errno != 0
    )
    due = last_restart_at is None or now - last_restart_at >= RESTART_INTERVAL_S
    restart = failed and primary_answers and due and not set_hb  # setting it restarts it too
    if restart:
        error = f" (error {status.last_io_errno})" if status.last_io_errno else ""
        why.append(
            f"its IO thread is {status.io_running}{error} while the primary answers this node"
        )
    return Care(set_hb, restart, "; ".join(why))
