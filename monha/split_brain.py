"""Split brain on two nodes: when a primary must step down. Pure rules, no I/O.

Job: `peer_took_over` says whether this node, a primary, must fence itself because of what its
peer shows (a newer completion flag, the VIP); `isolated` says whether it must step down because
it heard neither its peer nor any witness for too long. The shell (monha.daemon, monha.fencing)
gathers the facts and runs the fence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def peer_took_over(
    peer: str, *, holds_vip: bool | None, writable: bool | None, flag: Mapping[str, Any] | None
) -> str | None:
    """Why this node, a primary, must fence itself now; None when it must not.

    Either sign is enough: the peer holds a completion flag naming itself the new primary (it
    failed over), or it holds the VIP (clients reach it, not us). A peer that is merely
    writable, with neither, is no reason: with two writable nodes and no other sign, fencing
    here could leave no primary at all, and restoring monitoring comes first.
    """
    if flag is not None and flag.get("new_primary") == peer:
        return (
            f"{peer} holds a completion flag naming it the new primary "
            f"(failover {flag.get('failover_id', '?')})"
        )
    if holds_vip:
        return f"{peer} holds the VIP" + (" and is writable" if writable else "")
    return None
