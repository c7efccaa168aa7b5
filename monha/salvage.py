"""Binlog salvage and errant transactions, the pure part: read binlog tool output, decide what
to apply.

Job: parse a binary log index; parse the text that `mariadb-binlog` / `mysqlbinlog` prints for
a range of binary logs into events grouped by transaction (with each transaction's GTID, end
position and completeness); check that the range starts where it was asked to (an event
boundary) and say where it ended; and select the transactions the new primary does not have
yet, as a replayable script, with the counts that go into the flag.

Must not: run the tool, read files, talk to a server, log, or read the clock (`binlog_io` does
all of that). It never "repairs" anything: output that does not line up raises `SalvageError`
with the reason, so nothing partial or corrupt is ever applied.

Safety argument for what is applied:
- Only complete transactions (a GTID event through its COMMIT/XID, or a GTID and its single
  statement) are kept; a transaction cut off by a crash mid-write is dropped and reported.
- Transactions whose GTID the target already has (received by the replica and applied, or a
  previous salvage attempt) are dropped, so a salvage run twice applies nothing twice.
- The first transaction kept in a GTID domain must follow the target's last one in that domain
  without a gap; otherwise the range started in the wrong place and nothing is applied.
- MariaDB's tool prints a transaction's server_id and domain only when they change; since some
  transactions are dropped, each kept one gets its own `SET server_id/gtid_domain_id`, so the
  replayed events keep the old primary's GTIDs exactly. MySQL's tool sets GTID_NEXT for each;
  the script sets it back to AUTOMATIC wherever MySQL would otherwise refuse the next statement.
- A transaction is judged by each event's last statement, not its first line: mysqlbinlog
  prints the session (SET TIMESTAMP, sql_mode, ...) before BEGIN, and in place of rows it could
  not read whole it prints its own ROLLBACK, which makes the transaction incomplete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# "# at 18275": the position of the event that follows (several may precede one event header).
_AT = re.compile(rb"^# at (\d+)\s*$")
# "#261126  1:10:38 server id 101  end_log_pos 18317 CRC32 0x270a8586 \tGTID 0-101-34 trans"
_HEADER = re.compile(
    rb"^#\d{6}\s+\d{1,2}:\d{2}:\d{2}\s+server id (\d+)\s+end_log_pos (\d+)"
    rb"(?:\s+CRC32 0x[0-9a-fA-F]+)?\s*(.*)$"
)
_MARIA_GTID = re.compile(rb"\bGTID (\d+)-(\d+)-(\d+)\b(.*)$")
_MYSQL_GTID_NEXT = re.compile(rb"^SET @@SESSION\.GTID_NEXT\s*=\s*'([^']*)'", re.IGNORECASE)
# mysqlbinlog resets GTID_NEXT after a rotate and at the end; the script says it itself where
# it is needed, so these lines are not kept with whichever event they happen to follow.
_GTID_NEXT_AUTOMATIC = re.compile(rb"^SET @@SESSION\.GTID_NEXT\s*=\s*'AUTOMATIC'", re.IGNORECASE)
_AUTOMATIC_LINE = b"SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by monha */ /*!*/;"
# Every statement the tools print ends with this delimiter (set by "DELIMITER /*!*/;").
_STATEMENT_END = b"/*!*/;"
_BEGINS = (b"BEGIN", b"START TRANSACTION")
_ENDS = (b"COMMIT", b"ROLLBACK")
# What mysqlbinlog prints in place of a transaction's rows cut off at the end of the file.
_CUT_BY_TOOL = b"ROLLBACK /* added by mysqlbinlog */"
_FDE = b"Start: binlog v 4"
# Events that carry data and so belong inside a transaction (a GTID's group). One outside any
# means the output was not understood (an XA transaction, a layout this parser does not
# know): nothing is applied rather than a transaction without its rows.
_DATA_EVENT = re.compile(
    rb"^(Query|Table_map|\w*_rows|Xid|XA PREPARE|Intvar|Rand|User_var|\w*load_query)\b",
    re.IGNORECASE,
)
_DELIMITER_END = b"DELIMITER ;"


class SalvageError(ValueError):
    """The binlog range cannot be salvaged safely; the message says why."""


# --- the binary log index ------------------------------------------------------------------


def parse_index(text: str, index_path: str) -> list[str]:
    """The binary log files an index lists, in order, as absolute paths.

    Relative entries ("./mysql-bin.000001") are relative to the server's datadir, which is
    where the index lives for a relative log_bin; so they are resolved against its directory.
    """
    base = index_path.rsplit("/", 1)[0] or "/"
    files = []
    for line in text.splitlines():
        name = line.strip()
        if not name:
            continue
        if not name.startswith("/"):
            name = f"{base}/{name.removeprefix('./')}"
        files.append(name)
    return files


def files_from(files: list[str], start_file: str) -> list[str]:
    """The files to read: the one named `start_file` (a basename) and every later one."""
    names = [f.rsplit("/", 1)[-1] for f in files]
    if start_file not in names:
        raise SalvageError(
            f"the replica's position is in {start_file}, which the old primary's binlog index "
            f"does not list (it has {', '.join(names[-3:]) or 'no files'}): purged or renamed"
        )
    return files[names.index(start_file) :]


# --- GTID positions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gtid:
    """One transaction's GTID: MariaDB domain-server-seq, or MySQL uuid:seq (domain = uuid)."""

    domain: str
    server: str
    seq: int

    def __str__(self) -> str:
        if self.server:  # MariaDB
            return f"{self.domain}-{self.server}-{self.seq}"
        return f"{self.domain}:{self.seq}"


@dataclass(frozen=True, slots=True)
class GtidState:
    """What a server has, per domain (MariaDB) or source uuid (MySQL).

    MariaDB keeps one last GTID per domain; `last[domain]` is its (server, seq). MySQL keeps
    sets of intervals per uuid; `intervals[uuid]` lists them.
    """

    last: dict[str, tuple[str, int]] = field(default_factory=dict)
    intervals: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.last and not self.intervals

    def has(self, g: Gtid) -> bool:
        if g.server:
            hit = self.last.get(g.domain)
            return hit is not None and g.seq <= hit[1]
        return any(lo <= g.seq <= hi for lo, hi in self.intervals.get(g.domain, ()))

    def next_seq(self, domain: str) -> int | None:
        """The sequence number the next transaction of `domain` must carry (None: unknown)."""
        if domain in self.last:
            return self.last[domain][1] + 1
        if domain in self.intervals:
            return max(hi for _, hi in self.intervals[domain]) + 1
        return None

    def render(self) -> str:
        if self.last:
            return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.last.items()))
        return ",".join(
            u + "".join(f":{lo}" if lo == hi else f":{lo}-{hi}" for lo, hi in iv)
            for u, iv in sorted(self.intervals.items())
        )

    def with_gtid(self, g: Gtid) -> GtidState:
        if g.server:
            last = dict(self.last)
            if g.domain not in last or last[g.domain][1] < g.seq:
                last[g.domain] = (g.server, g.seq)
            return GtidState(last, self.intervals)
        iv = dict(self.intervals)
        iv[g.domain] = _merge_intervals((*iv.get(g.domain, ()), (g.seq, g.seq)))
        return GtidState(self.last, iv)


def _merge_intervals(items: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(items):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


_MARIA_POS_ITEM = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")  # MySQL 8.3+ GTID tags


def parse_gtid_state(*texts: str) -> GtidState:
    """Merge GTID positions/sets into one state: MariaDB lists ("0-101-33,1-5-9"), keeping the
    highest sequence number per domain, or MySQL sets ("uuid:1-5:7,uuid2:1-3").

    Merging MariaDB's gtid_binlog_pos with gtid_slave_pos this way matters: transactions
    replayed from a salvaged binlog keep the old primary's server_id, so gtid_current_pos
    (which prefers the slave position for foreign server ids) would not show them.
    """
    state = GtidState()
    for text in texts:
        for item in "".join(text.split()).split(","):
            if not item:
                continue
            m = _MARIA_POS_ITEM.match(item)
            if m:
                state = state.with_gtid(Gtid(m.group(1), m.group(2), int(m.group(3))))
                continue
            uuid, _, ranges = item.partition(":")
            if not _UUID.match(uuid) or not ranges:
                raise SalvageError(f"not a GTID position or set: {item!r}")
            domain = _domain(uuid, "")
            for part in ranges.split(":"):
                if _TAG.match(part):  # "uuid:1-5:tag:1-3": the intervals after it are tagged
                    domain = _domain(uuid, part)
                    continue
                lo, _, hi = part.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise SalvageError(f"not a GTID interval: {item!r}")
                iv = dict(state.intervals)
                iv[domain] = _merge_intervals((*iv.get(domain, ()), (int(lo), int(hi or lo))))
                state = GtidState(state.last, iv)
    return state


def subtract(a: GtidState, b: GtidState) -> GtidState:
    """MySQL GTID sets: what `a` has and `b` lacks (GTID_SUBTRACT). MariaDB positions keep no
    history to subtract; for them this is empty."""
    out: dict[str, tuple[tuple[int, int], ...]] = {}
    for domain, intervals in a.intervals.items():
        left = list(intervals)
        for blo, bhi in b.intervals.get(domain, ()):
            cut: list[tuple[int, int]] = []
            for lo, hi in left:
                if bhi < lo or blo > hi:
                    cut.append((lo, hi))
                    continue
                if lo < blo:
                    cut.append((lo, blo - 1))
                if bhi < hi:
                    cut.append((bhi + 1, hi))
            left = cut
        if left:
            out[domain] = tuple(left)
    return GtidState({}, out)


# --- the tool's output -----------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One event as printed: its `# at` position, header facts and its lines (all of them)."""

    file_index: int  # which of the files given to the tool (0 = the first)
    at: int
    end: int
    server_id: int
    kind: bytes  # the rest of the header line ("GTID 0-101-34 trans", "Xid = 544", ...)
    lines: list[bytes]

    @property
    def is_fde(self) -> bool:
        return _FDE in self.kind

    def sql_lines(self) -> list[bytes]:
        return [ln for ln in self.lines if not ln.startswith(b"#")]

    def last_statement(self) -> bytes:
        """The event's last SQL statement, without its delimiter ("" when it has none).

        The statement is what the event does; what comes before it are session settings the
        tools print first (mysqlbinlog: SET TIMESTAMP, pseudo_thread_id, sql_mode, ... and
        then BEGIN), so only the last one says whether a transaction begins or ends here.
        """
        statements: list[bytes] = []
        pending: list[bytes] = []
        for line in self.sql_lines():
            pending.append(line)
            if line.rstrip().endswith(_STATEMENT_END):
                text = b"\n".join(pending).rstrip()
                statements.append(text[: -len(_STATEMENT_END)].strip())
                pending = []
        return statements[-1] if statements else b""


@dataclass(slots=True)
class Transaction:
    gtid: Gtid | None  # None: an anonymous transaction (MySQL without GTIDs)
    events: list[Event]
    complete: bool

    @property
    def file_index(self) -> int:
        return self.events[-1].file_index

    @property
    def end(self) -> int:
        return self.events[-1].end


@dataclass(slots=True)
class Dump:
    """The tool's output, split: preamble, events in order (grouped), and the trailer."""

    preamble: list[bytes]
    items: list[Event | Transaction]
    trailer: list[bytes]
    flavor: str  # "mariadb" or "mysql" (by the GTID events seen; "mariadb" when none)

    def transactions(self) -> list[Transaction]:
        return [i for i in self.items if isinstance(i, Transaction)]

    def events(self) -> list[Event]:
        out: list[Event] = []
        for item in self.items:
            out.extend(item.events if isinstance(item, Transaction) else [item])
        return out


def _split_events(lines: list[bytes]) -> tuple[list[bytes], list[Event], list[bytes]]:
    """Cut the output into preamble, events and trailer, following the tool's layout."""
    end = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == _DELIMITER_END:
            end = i
            break
    trailer = lines[end:]
    body = lines[:end]
    preamble: list[bytes] = []
    events: list[Event] = []
    pending_at: int | None = None
    file_index = -1
    i = 0
    while i < len(body):
        line = body[i]
        m_at = _AT.match(line)
        if m_at:
            if pending_at is None:
                pending_at = int(m_at.group(1))
            i += 1
            continue
        m_h = _HEADER.match(line)
        if m_h and pending_at is not None:
            kind = m_h.group(3).strip()
            if _FDE in kind:
                file_index += 1
            events.append(
                Event(
                    max(file_index, 0),
                    pending_at,
                    int(m_h.group(2)),
                    int(m_h.group(1)),
                    kind,
                    [b"# at %d" % pending_at, line],
                )
            )
            pending_at = None
        elif m_h and events:
            # A second header after one "# at" (the tool prints "# at A / # at B" and then both
            # headers for Annotate_rows + Table_map): the next event starts here, at the
            # previous one's end.
            prev = events[-1]
            kind = m_h.group(3).strip()
            events.append(
                Event(prev.file_index, prev.end, int(m_h.group(2)), prev.server_id, kind, [line])
            )
        elif _GTID_NEXT_AUTOMATIC.match(line):
            pass  # said again by script_for where a script needs it
        elif events:
            events[-1].lines.append(line)
        else:
            preamble.append(line)
        i += 1
    return preamble, events, trailer


def _gtid_of(event: Event) -> tuple[Gtid | None, bool, str] | None:
    """(gtid, transactional, flavor) when the event starts a transaction; None otherwise."""
    m = _MARIA_GTID.search(event.kind)
    if m:
        flags = m.group(4)
        gtid = Gtid(m.group(1).decode(), m.group(2).decode(), int(m.group(3)))
        begins = b"trans" in flags.split() or event.last_statement().upper() in _BEGINS
        return gtid, begins, "mariadb"
    if event.kind.startswith(b"GTID") or event.kind.startswith(b"Anonymous_GTID"):
        for line in event.lines:
            mm = _MYSQL_GTID_NEXT.match(line)
            if mm:
                return _mysql_gtid(mm.group(1).decode()), False, "mysql"
        return None, False, "mysql"
    return None


def _mysql_gtid(value: str) -> Gtid | None:
    """GTID_NEXT's "uuid:7" (or, from MySQL 8.3, "uuid:tag:7"); None for ANONYMOUS."""
    uuid, _, rest = value.partition(":")
    tag, _, seq = rest.rpartition(":")
    if not (seq.isdigit() and _UUID.match(uuid)) or (tag and not _TAG.match(tag)):
        return None
    return Gtid(_domain(uuid, tag), "", int(seq))


def _domain(uuid: str, tag: str) -> str:
    # Each tag of a uuid numbers its transactions on its own: one domain each.
    return f"{uuid.lower()}:{tag.lower()}" if tag else uuid.lower()


def parse_dump(output: bytes) -> Dump:
    """Parse the tool's output (no --verbose needed; comments are kept as they are).

    A transaction begins at its GTID event; it is transactional when that event (MariaDB) or
    the next one (MySQL's BEGIN query) ends with BEGIN, and then ends at an Xid event or a
    COMMIT/ROLLBACK statement. Otherwise it is one statement (DDL), ending with its event.
    """
    preamble, events, trailer = _split_events(output.split(b"\n"))
    items: list[Event | Transaction] = []
    flavor = "mariadb"
    current: Transaction | None = None
    transactional = False
    for ev in events:
        started = _gtid_of(ev)
        if started is not None:
            if current is not None:  # a new GTID before the old one ended: it never ended
                items.append(current)
            gtid, transactional, flavor = started
            current = Transaction(gtid, [ev], complete=False)
            continue
        if current is None:
            items.append(ev)
            continue
        current.events.append(ev)
        last = ev.last_statement()
        if last.startswith(_CUT_BY_TOOL):
            # mysqlbinlog left out rows it could not read whole and rolled back: incomplete.
            items.append(current)
            current = None
            continue
        if len(current.events) == 2 and not transactional and last.upper() in _BEGINS:
            transactional = True  # MySQL: GTID, then a "BEGIN" query event
            continue
        if b"Xid = " in ev.kind or last.upper() in _ENDS or not transactional:
            current.complete = True
            items.append(current)
            current = None
    if current is not None:
        items.append(current)
    return Dump(preamble, items, trailer, flavor)


# --- checking and selecting ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """What to apply, and the counts the flag reports."""

    script: bytes  # preamble + kept transactions + trailer: feed it to the client as is
    transactions: int  # complete transactions to apply
    events: int  # their events
    already_present: int  # complete transactions the target already had (skipped)
    incomplete: int  # transactions cut off at the end (not applied)
    first_gtid: str
    last_gtid: str
    end_file_index: int  # where the read range ended (last complete event)
    end_pos: int
    target_after: str  # the target's GTID state once the script is applied

    def summary(self) -> str:
        if not self.transactions:
            what = "nothing to salvage"
        else:
            what = (
                f"{self.transactions} transaction(s), {self.events} event(s) "
                f"({self.first_gtid} .. {self.last_gtid})"
            )
        extra = []
        if self.already_present:
            extra.append(f"{self.already_present} already present")
        if self.incomplete:
            extra.append(f"{self.incomplete} incomplete at the end (crash mid-write), dropped")
        return what + (f"; {', '.join(extra)}" if extra else "")


def check_start(dump: Dump, start_pos: int, stderr: bytes) -> None:
    """Raise unless the first file's events begin exactly at `start_pos`, or there are none.

    The tool prints the format description event (at 4) and then jumps to the start
    position; a position that is not an event boundary yields a garbage "event" and an error
    (MariaDB's tool still exits 0), so the evidence is the `# at START` line.
    """
    first = [e for e in dump.events() if e.file_index == 0 and not e.is_fde]
    if start_pos <= 4:
        return
    if first and first[0].at != start_pos:
        raise SalvageError(
            f"the binlog tool started at {first[0].at}, not at the replica's position "
            f"{start_pos}: the positions do not line up"
        )
    if not first and _tool_error(stderr):
        raise SalvageError(
            f"position {start_pos} is not an event boundary in the old primary's binary log "
            f"(or the file is shorter): {_tool_error(stderr)}"
        )


def _tool_error(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    return " | ".join(ln for ln in text.splitlines() if "ERROR" in ln.upper())[:300]


def truncated_tail(stderr: bytes) -> bool:
    """True when the tool stopped at an event cut short (a crash while writing it).

    mariadb-binlog says so with an error; mysqlbinlog with a warning (and exits 0), having
    printed the cut transaction as far as it could and then "ROLLBACK /* added by ... */".
    """
    return (
        b"Event truncated" in stderr
        or b"read_log_event" in stderr
        or b"File ends with a truncated event" in stderr
    )


def restart_point(dump: Dump, target: GtidState) -> tuple[int, int] | None:
    """(file index, position) of the first complete transaction `target` lacks, when
    transactions it already has come before it; None when the range starts at a new one.

    The tool prints session settings (sql_mode, character sets) only when they change, so a
    script that skips the first transactions could replay later statements under the wrong
    settings: the tool is run again from this point instead.
    """
    skipped = False
    for tx in dump.transactions():
        if not tx.complete or tx.gtid is None:
            return None
        if target.has(tx.gtid):
            skipped = True
            continue
        return (tx.events[0].file_index, tx.events[0].at) if skipped else None
    return None


def select(dump: Dump, target: GtidState) -> Selection:
    """Keep the complete transactions `target` lacks, check there is no GTID gap, build the
    script. Raises SalvageError for anonymous transactions (nothing makes a repeat safe) and
    for gaps (the range does not continue what the target has)."""
    check_understood(dump)
    kept: list[Transaction] = []
    present = incomplete = 0
    state = target
    for tx in dump.transactions():
        if not tx.complete:
            incomplete += 1
            continue
        if tx.gtid is None:
            raise SalvageError(
                "the binary log holds anonymous transactions (gtid_mode=OFF): without GTIDs a "
                "salvage cannot tell what the new primary already has"
            )
        if state.has(tx.gtid):
            if kept:
                raise SalvageError(
                    f"{tx.gtid} is already on the new primary but follows transactions it "
                    "lacks: the two histories differ"
                )
            present += 1
            continue
        expected = state.next_seq(tx.gtid.domain)
        if expected is not None and tx.gtid.seq != expected:
            raise SalvageError(
                f"GTID gap: the new primary's last in domain {tx.gtid.domain} is "
                f"{expected - 1}, the old primary's next is {tx.gtid}: the positions do not "
                "line up"
            )
        kept.append(tx)
        state = state.with_gtid(tx.gtid)
    if incomplete > 1 or (incomplete and dump.transactions()[-1].complete):
        raise SalvageError(
            "an incomplete transaction is followed by complete ones: the binary log is "
            "damaged in the middle, not cut off at the end"
        )
    last = _last_complete_event(dump)
    return Selection(
        script=script_for(dump, kept),
        transactions=len(kept),
        events=sum(len(t.events) for t in kept),
        already_present=present,
        incomplete=incomplete,
        first_gtid=str(kept[0].gtid) if kept else "",
        last_gtid=str(kept[-1].gtid) if kept else "",
        end_file_index=last.file_index if last else 0,
        end_pos=last.end if last else 0,
        target_after=state.render(),
    )


def check_understood(dump: Dump) -> None:
    """Raise when an event that carries data stands outside every transaction."""
    for item in dump.items:
        if isinstance(item, Event) and _DATA_EVENT.match(item.kind):
            raise SalvageError(
                f"the binlog tool's output was not understood: a {item.kind[:40]!r} event at "
                f"{item.at} belongs to no transaction; nothing is applied"
            )


def _last_complete_event(dump: Dump) -> Event | None:
    """The last event that is not part of a transaction cut off at the end."""
    for item in reversed(dump.items):
        if isinstance(item, Event):
            return item
        if item.complete:
            return item.events[-1]
    return None


def script_for(dump: Dump, kept: list[Transaction]) -> bytes:
    """A replayable script: the tool's preamble, its format description events, the `kept`
    transactions (each with its own server_id/domain), and the tool's trailer."""
    out: list[bytes] = list(dump.preamble)
    keep = {id(t) for t in kept}
    mysql = dump.flavor == "mysql"
    for item in dump.items:
        if isinstance(item, Event):
            if item.is_fde:  # the BINLOG format description the row events need
                if mysql:
                    # After a transaction with its own GTID_NEXT, MySQL refuses any further
                    # statement until GTID_NEXT is set again (the tool does this at rotates).
                    out.append(_AUTOMATIC_LINE)
                out.extend(item.lines)
            continue
        if id(item) not in keep:
            continue
        first, *rest = item.events
        out.extend(first.lines[:2])
        if item.gtid is not None and item.gtid.server:
            # MariaDB prints domain and server_id only when they change; some transactions
            # were dropped, so set them for each kept one (version-gated like the tool's own).
            out.append(
                b"/*M!100001 SET @@session.gtid_domain_id=%s*//*!*/;" % item.gtid.domain.encode()
            )
            out.append(b"/*M!100001 SET @@session.server_id=%s*//*!*/;" % item.gtid.server.encode())
        out.extend(first.lines[2:])
        for ev in rest:
            out.extend(ev.lines)
    if mysql:
        out.append(_AUTOMATIC_LINE)
    trailer = dump.trailer or [_DELIMITER_END, b"ROLLBACK /* added by monha */;"]
    out.extend(trailer)
    return b"\n".join(out) + (b"" if out and out[-1] == b"" else b"\n")


# --- errant transactions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Errant:
    """What only the old primary has: its transactions in the range read, and (MySQL) the
    exact GTID set and the part of it the range does not hold (so its SQL is not saved)."""

    transactions: list[Transaction]
    gtid_set: str = ""
    unsaved: str = ""


def errant_of(dump: Dump, new: GtidState | None, old: GtidState | None = None) -> Errant:
    """The errant transactions of a range that starts where the new primary stopped taking
    the old one's events.

    `new` None (MariaDB): every complete transaction in the range is errant; GTID positions
    cannot tell, as the new primary's own transactions reuse the sequence numbers. MySQL GTID
    sets can: errant is what the old primary has and the new one lacks (`old` minus `new`,
    when the old primary's gtid_executed could be read), and only those are kept.
    """
    check_understood(dump)
    complete = [tx for tx in dump.transactions() if tx.complete]
    if new is None:
        return Errant(complete)
    txs = [tx for tx in complete if tx.gtid is None or not new.has(tx.gtid)]
    found = GtidState()
    for tx in txs:
        if tx.gtid is not None:
            found = found.with_gtid(tx.gtid)
    if old is None:
        return Errant(txs, found.render())
    missing = subtract(old, new)
    return Errant(txs, missing.render(), subtract(missing, found).render())


# --- replaying into a read-only replica -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteGate:
    """How the replay gets past the replica's read-only state, and how it is put back.

    The replica is read-only until it is promoted, and must stay so for applications. MySQL's
    super_read_only (which monha sets on replicas) and MariaDB 12's NO_LOCK_NO_ADMIN refuse
    the replaying admin too (error 1290); the replay lowers them to plain read_only, which
    still refuses every user without the admin privilege, and the strongest form is put back
    as the script's last statement and again by the caller whatever happened.
    """

    lift: bytes
    restore: bytes


def write_gate(flavor: str, variables: dict[str, object], strong: bool) -> WriteGate | None:
    """The gate for a server whose read-only variables (`gate_variables`) are `variables`;
    None when the replay can write as it is and nothing is to be put back.

    `strong`: the server has a read-only form that also stops admins
    (`Dialect.read_only_blocks_admins`). A read-only replica on such a server gets that form
    back after the replay whatever form it had when it was read: a salvage cut short before
    it raised it again (a daemon killed mid-replay) left plain read_only behind, and a rerun
    that kept what it read would leave it so. A replica that is not read-only at all is not
    one being salvaged into: nothing is lowered or raised.
    """
    read_only = str(variables.get("read_only", "")).upper()
    if not strong or read_only in ("", "0", "OFF"):
        return None
    if flavor == "mysql":
        return WriteGate(b"SET GLOBAL super_read_only = OFF;", b"SET GLOBAL super_read_only = ON;")
    return WriteGate(b"SET GLOBAL read_only = ON;", b"SET GLOBAL read_only = NO_LOCK_NO_ADMIN;")


def gate_variables(flavor: str) -> tuple[str, ...]:
    return ("read_only", "super_read_only") if flavor == "mysql" else ("read_only",)


_LOCK_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def replay_script(script: bytes, gate: WriteGate | None, lock_name: str) -> bytes:
    """The script as it is fed to the client: first a user-level lock named `lock_name` (so
    the client's server session can be found by `IS_USED_LOCK` and ended, should it outlive
    the client), and the gate's lift on the same first line; the gate's restore last."""
    if not _LOCK_NAME.match(lock_name):
        raise ValueError(f"not a lock name: {lock_name!r}")
    first = b"DO GET_LOCK('%s', 0);" % lock_name.encode()
    if gate is None:
        return first + b"\n" + script
    return first + b" " + gate.lift + b"\n" + script + gate.restore + b"\n"


def applied_to(dump: Dump, before: GtidState, after: GtidState) -> tuple[int, int] | None:
    """Where a replay that stopped midway ended in the old primary's binary log, as (file
    index, position): the end of the last transaction it was to apply (complete, and lacking
    from `before`) that the server has now (`after`; each is atomic, so what landed is a
    prefix), or the start of the first one when none landed. None: nothing was to be applied.

    This is what the next reader of the range (the errant check at rejoin) starts from: the
    transactions selected but never applied are then in it, not silently behind it.
    """
    reached: tuple[int, int] | None = None
    for tx in dump.transactions():
        if not tx.complete or tx.gtid is None or before.has(tx.gtid):
            continue
        if not after.has(tx.gtid):
            return reached or (tx.events[0].file_index, tx.events[0].at)
        reached = (tx.file_index, tx.end)
    return reached


# --- the tool's command line -----------------------------------------------------------------


def tool_argv(
    flavor: str,
    tool: str,
    start_pos: int,
    files: list[str],
    *,
    verbose: bool = False,
    flashback: bool = False,
) -> list[str]:
    """The binlog tool's argv for `files` from `start_pos` in the first (the argv runs on the
    old primary; every element is quoted there by the SSH runner).

    Both tools verify event checksums (-c: a torn or corrupt event is an error, never
    replayed). MariaDB's tool also gets --skip-gtid-strict-mode: a history that is not
    strictly increasing is for `select` to judge, not for the tool to stop at silently.
    `verbose` adds the rows as commented pseudo-SQL (for a file an operator reads);
    `flashback` (MariaDB) prints the inverse of each row event, to undo transactions.
    """
    if start_pos < 4:
        raise ValueError(f"a binlog position is at least 4 (got {start_pos})")
    if not files:
        raise ValueError("no binary log files to read")
    argv = [tool, "--no-defaults", "--verify-binlog-checksum", f"--start-position={start_pos}"]
    if flavor == "mariadb":
        argv.append("--skip-gtid-strict-mode")
    if verbose:
        argv.append("--verbose")
    if flashback:
        if flavor != "mariadb":
            raise ValueError("--flashback is a MariaDB binlog tool option")
        argv.append("--flashback")
    return [*argv, *files]
