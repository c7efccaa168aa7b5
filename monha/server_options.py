"""Server options in a site's my.cnf that newer MySQL releases refuse: pure.

Job: read the option lines `my_print_defaults` prints for mysqld (one `--name=value` per line,
every included file already merged) and name the options with which MySQL 8.4, or 9.7 (for
those removed in 8.4 or a 9.x release), refuses to start ("unknown variable"), with what to
use instead. `check` makes it a problem where the node's own version refuses the option (its
next restart fails) and a note where it is older (an upgrade would not start). A standby upgraded
first, or either node after a package update, would otherwise not come back at all.

Must not: do I/O. MariaDB servers are not judged here: these are Oracle MySQL's removals.

Every option listed was checked against a real server: MySQL 9.7.4 refuses each of them with
`--validate-config` (tests/adapters/test_server_options.py runs that check).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Removed by MySQL 8.4 LTS or earlier (8.0 to 8.4 release notes): a site's 5.7 or 8.0 my.cnf
# carries them; 8.4 does not start with any of them.
GONE_BY_8_4: dict[str, str] = {
    "expire_logs_days": "binlog_expire_logs_seconds",
    "binlog_transaction_dependency_tracking": "nothing (WRITESET is built in)",
    "default_authentication_plugin": "authentication_policy",
    "master_info_repository": "nothing (the table is the only repository)",
    "relay_log_info_repository": "nothing (the table is the only repository)",
    "transaction_write_set_extraction": "nothing",
    "slave_rows_search_algorithms": "nothing",
    "log_bin_use_v1_row_events": "nothing",
    "abort_slave_event_count": "nothing",
    "disconnect_slave_event_count": "nothing",
    "skip_host_cache": "host_cache_size = 0",
    "avoid_temporal_upgrade": "nothing",
    "show_old_temporals": "nothing",
    "query_cache_size": "nothing (no query cache since 8.0)",
    "query_cache_type": "nothing (no query cache since 8.0)",
    "log_warnings": "log_error_verbosity",
}
# Refused by MySQL 9.7 (measured), removed in 8.4 or in a 9.x release.
GONE_BY_9: dict[str, str] = {
    "mysql_native_password": "caching_sha2_password accounts",
    "innodb_log_file_size": "innodb_redo_log_capacity",
    "character_set_client_handshake": "nothing",
    "old_style_user_limits": "nothing",
    "language": "lc_messages_dir",
    "new": "nothing",
    "replica_parallel_type": "nothing (LOGICAL_CLOCK is built in)",
    "group_replication_primary_member": "performance_schema.replication_group_members",
}


@dataclass(frozen=True, slots=True)
class Refused:
    option: str  # as the file spells it, without the leading dashes
    since: str  # "8.4", or "9.7": refused there (measured), removed in 8.4 or a 9.x release
    instead: str

    def refused_by(self, version: tuple[int, int, int] | None) -> bool:
        """Whether a server of this version refuses it (unknown version: assume so)."""
        if version is None:
            return True
        # Those measured on 9.7 are taken as refused from 9.0 on: a 9.x node's next restart
        # may fail, so it blocks rather than notes.
        return version >= ((8, 4, 0) if self.since == "8.4" else (9, 0, 0))

    def sentence(self) -> str:
        return (
            f"my.cnf sets {self.option}: MySQL {self.since} refuses to start with it "
            f"(use {self.instead})"
        )


def _name(line: str) -> str:
    return line.strip().lstrip("-").split("=", 1)[0].strip().replace("-", "_").lower()


def refused_options(lines: Iterable[str]) -> list[Refused]:
    """The refused options among `my_print_defaults` lines, in file order, each once.

    `loose-` options are skipped: the server ignores a loose option it does not know.
    """
    out: list[Refused] = []
    seen: set[str] = set()
    for line in lines:
        if not line.strip().startswith("--"):
            continue
        name = _name(line)
        if name.startswith("loose_") or name in seen:
            continue
        spelled = line.strip().lstrip("-").split("=", 1)[0].strip()
        for table, since in ((GONE_BY_8_4, "8.4"), (GONE_BY_9, "9.7")):
            if name in table:
                seen.add(name)
                out.append(Refused(spelled, since, table[name]))
    return out
