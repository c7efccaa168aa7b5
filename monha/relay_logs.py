"""Relay logs a replica received but had not applied, before a promotion resets them.

`RESET REPLICA ALL` (the promote step) deletes the relay logs. Whatever the SQL thread had not
applied by then exists nowhere else once the old primary is gone, so the promote step first
says exactly what it was (`unapplied`) and copies the relay logs aside (`keep`), where an
operator can read them with mysqlbinlog and apply what matters.

The catch-up before it applies what it can: it starts a SQL thread an operator had stopped
(`monha-ctl failover --force` of a stale replica); a SQL thread stopped by an error cannot.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from monha.model import ReplicaStatus
from monha.mysql import Server
from monha.runners import Runner, RunnerError, as_root


def unapplied(status: ReplicaStatus) -> str:
    """What the replica received and had not applied, in words; "" when nothing (or unknown
    because it is no replica)."""
    if not status.configured:
        return ""
    read, done = status.read_position, status.exec_position
    parts = []
    if (
        read is not None
        and done is not None
        and (read.file, read.position)
        != (
            done.file,
            done.position,
        )
    ):
        parts.append(
            f"received up to {read.file}:{read.position}, applied {done.file}:{done.position}"
        )
    if status.gtid_io_pos and status.gtid_io_pos != status.gtid_slave_pos:
        parts.append(f"GTID received {status.gtid_io_pos}, applied {status.gtid_slave_pos or '-'}")
    if parts and status.last_sql_errno:
        parts.append(f"SQL thread error {status.last_sql_errno}")
    return "; ".join(parts)


# Copies the relay log index ($0; when empty, the one in datadir $2) and every file it lists
# into $1 (relative entries are relative to the index's directory). Constant: the paths are
# arguments.
_COPY = r"""
set -e
if [ -z "$0" ]; then
  for i in "$2"/*-relay-bin.index; do [ -e "$i" ] && idx=$i; done
  [ -n "${idx:-}" ] || { echo "no relay log index in $2" >&2; exit 3; }
else
  idx=$0
fi
dir=$(dirname -- "$idx")
mkdir -p -m 0700 -- "$1"
cp -p -- "$idx" "$1"/
while IFS= read -r f; do
  [ -n "$f" ] || continue
  case $f in /*) ;; *) f=$dir/$f;; esac
  cp -p -- "$f" "$1"/
done < "$idx"
echo "$1"
"""


async def keep(server: Server, runner: Runner, dest: str, timeout_s: float) -> str:
    """Copy this node's relay logs into `dest`; the outcome in words (never raises)."""
    wanted = ["relay_log_index", "relay_log_basename", "datadir"]
    try:
        names = await server.global_variables(wanted, timeout_s)
    except Exception as exc:  # MySQLError, TimeoutError: said, not raised (promote goes on)
        return f"relay logs NOT kept: cannot read relay_log_index ({exc})"
    # MariaDB leaves both empty when they are the defaults: <host>-relay-bin.index in datadir
    # (the script then finds the one there).
    datadir = str(names.get("datadir") or "")
    index = str(names.get("relay_log_index") or "")
    if not index and names.get("relay_log_basename"):
        index = f"{names['relay_log_basename']}.index"
    if index and not index.startswith("/"):
        index = str(PurePosixPath(datadir or "/") / index)
    if not (index or datadir):
        return "relay logs NOT kept: the server names neither its relay log index nor datadir"
    try:
        result = await as_root(runner).run(["sh", "-c", _COPY, index, dest, datadir], timeout_s)
    except RunnerError as exc:
        return f"relay logs NOT kept: {exc}"
    if not result.ok:
        return f"relay logs NOT kept in {dest}: {result.summary()}"
    return f"relay logs kept in {dest}"
