"""The configuration: pydantic models for config.example.toml, loading, and operator-facing errors.

Job: turn a TOML file into a frozen, fully validated `Config`, or into a `ConfigError` whose lines
read `section.key: message (got VALUE)` so that `monha check-config FILE` can print every problem
at once and exit 78 (EX_CONFIG). Also reads password files (`load_secret`), refusing ones that
group or others may read.

Must not: do any I/O beyond reading the config file and the password files it names, import
anything from the effects or shell layers, or ever put a secret's value into an error.
"""

from __future__ import annotations

import ipaddress
import re
import stat
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

EX_CONFIG = 78  # sysexits.h: configuration error


class ConfigError(Exception):
    """An invalid configuration: one operator-facing line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _CrossCheck(ValueError):
    """Problems across fields, each with its own location (pydantic knows only the model's)."""

    def __init__(self, problems: list[tuple[str, str, object]]) -> None:
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg, _ in problems))
        self.problems = problems


# --- Field types. Strict patterns: these strings end up in argv lists, SSH commands, `ip addr`
# arguments, log fields and metric labels, so no shell metacharacters, spaces or quotes. ---------

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_USER = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"
_IFACE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$"  # Linux: at most 15 characters (IFNAMSIZ - 1)
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,14}$"
_PATH = r"^/[A-Za-z0-9._+@,=:/-]*$"


def _matching(pattern: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


_NAME_WHAT = "letters, digits, '.', '_' and '-' only (no spaces or shell characters)"
Name = Annotated[str, _matching(_NAME, _NAME_WHAT + ", at most 63")]
User = Annotated[str, _matching(_USER, _NAME_WHAT + ", not starting with a digit, at most 32")]
Interface = Annotated[str, _matching(_IFACE, "an interface name: " + _NAME_WHAT + ", at most 15")]
Label = Annotated[
    str, _matching(_LABEL, "an address label such as 'eth0:1', at most 15 characters")
]
AbsPath = Annotated[
    str, _matching(_PATH, "an absolute path of letters, digits and ._+@,=:/- only (no spaces)")
]
Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0, le=600)]  # one action's time budget, in seconds


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError("value is not a valid IPv4 address") from None


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("value is not a valid IP address") from None


def _argv(value: tuple[str, ...]) -> tuple[str, ...]:
    # Argv elements after the program are passed as they are (and quoted over SSH), so only the
    # program itself is held to the path pattern; a relative program would depend on PATH.
    if not re.match(_PATH, value[0]):
        raise ValueError("the program must be an absolute path without spaces or shell characters")
    if any("\x00" in arg or "\n" in arg for arg in value):
        raise ValueError("arguments may not contain NUL or newline characters")
    return value


def _prefix(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not arg or "\x00" in arg or "\n" in arg for arg in value):
        raise ValueError("arguments must be non-empty, without NUL or newline characters")
    return value


# Placeholders an SSH-side check may use; each is replaced in its own argument (no shell).
CHECK_PLACEHOLDERS = ("mysql_port",)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _check_argv(value: tuple[str, ...]) -> tuple[str, ...]:
    for arg in value:
        for name in _PLACEHOLDER.findall(arg):
            if name not in CHECK_PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in CHECK_PLACEHOLDERS)
                raise ValueError(f"unknown placeholder {{{name}}} in {arg!r} (known: {known})")
    return value


DEFAULT_CHECK_SCRIPT = (
    "p=/usr/bin/mysqladmin; tls=; "
    "if [ -x /usr/bin/mariadb-admin ]; then p=/usr/bin/mariadb-admin; tls=--skip-ssl; fi; "
    'exec "$p" --no-defaults $tls --connect-timeout=1 --protocol=tcp --host=127.0.0.1 '
    '--port="$1" ping'
)


def fill_placeholders(argv: tuple[str, ...], *, mysql_port: int) -> tuple[str, ...]:
    """The check's argv for one node: each placeholder replaced inside its argument."""
    return tuple(arg.replace("{mysql_port}", str(mysql_port)) for arg in argv)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("value is not an http:// or https:// URL with a host")
    if any(c.isspace() for c in value) or any(c in value for c in "'\"`\\"):
        raise ValueError("URL may not contain spaces, quotes or backslashes")
    return value


IPv4 = Annotated[str, AfterValidator(_ipv4)]
IP = Annotated[str, AfterValidator(_ip)]
Argv = Annotated[tuple[str, ...], Field(strict=False, min_length=1), AfterValidator(_argv)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Base(BaseModel):
    """Every config table: unknown keys are errors, values are never coerced, models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Cluster(Base):
    name: Name


class Node(Base):
    name: Name
    address: IPv4
    mysql_port: Port = 3306
    ssh_user: User = "root"
    ssh_port: Port = 22
    interface: Interface = "eth0"


class Ssh(Base):
    key_file: AbsPath
    known_hosts: AbsPath
    connect_timeout_s: Timeout = 3.0
    # Put before every privileged command monha runs on a node whose ssh_user is not root
    # (the VIP and arping, stopping or killing mysqld, the flag/epoch/journal files, binlog
    # salvage), e.g. ["sudo", "-n"]: -n makes a missing sudoers rule an error at once instead
    # of a password prompt that waits forever. Commands the operator wrote (services, agents,
    # the fence command) run as written. Also used locally when the daemon is not root.
    privilege_prefix: Annotated[tuple[str, ...], Field(strict=False), AfterValidator(_prefix)] = ()


class Vip(Base):
    address: IPv4
    prefix: Annotated[int, Field(ge=8, le=32)]
    label: Label
    arp_count: Annotated[int, Field(ge=0, le=10)] = 3


class Mysql(Base):
    """MySQL credentials. Each password is given either inline (`monitor_password = "..."`, kept
    as a SecretStr) or, preferably, as a file of mode 0600 (`monitor_password_file`): exactly one
    of the two."""

    monitor_user: User
    monitor_password: SecretStr | None = None
    monitor_password_file: AbsPath | None = None
    replication_user: User
    replication_password: SecretStr | None = None
    replication_password_file: AbsPath | None = None
    local_socket: AbsPath | None = None
    connect_timeout_s: Timeout = 1.0
    heartbeat_period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # TLS of the replication connection (SOURCE_SSL / MASTER_SSL) when monha points a replica
    # at a new source: true requires it, false turns it off, unset keeps the server's setting.
    replication_ssl: bool | None = None
    # slave_net_timeout set on the replica monha manages: a replica whose link was cut notices
    # after this long (the server default, 60 s, leaves a second fault a minute to lose rows).
    replica_net_timeout_s: Annotated[int, Field(ge=2, le=3600)] = 4
    # Stops the MySQL service for good on a node whose MySQL cannot take read_only (it is down
    # and its supervisor might bring it back writable). Optional.
    stop_command: Argv | None = None
    # Prints the options mysqld reads from the node's my.cnf (every included file merged), for
    # `monha-ctl check` to flag options a newer MySQL refuses to start with. MySQL nodes only.
    defaults_command: Argv = ("/usr/bin/my_print_defaults", "mysqld", "server")
    # mysqld's pid file on each node (its pid_file setting). When set, a fence whose read_only
    # and stop command both failed kills that pid with SIGKILL over SSH (the only signal a
    # SIGSTOPped mysqld obeys at once), checking first that the pid is a mysqld. Optional.
    pid_file: AbsPath | None = None

    @model_validator(mode="after")
    def _one_password_each(self) -> Self:
        problems: list[tuple[str, str, object]] = []
        for who in ("monitor", "replication"):
            inline = getattr(self, f"{who}_password")
            file = getattr(self, f"{who}_password_file")
            if (inline is None) == (file is None):
                problems.append(
                    (
                        f"{who}_password_file",
                        f"give exactly one of {who}_password and {who}_password_file",
                        None,
                    )
                )
        if problems:
            raise _CrossCheck(problems)
        return self

    def monitor_secret(self) -> SecretStr:
        """The monitor user's password: inline, or read (and permission-checked) from its file."""
        if self.monitor_password is not None:
            return self.monitor_password
        return load_secret(Path(str(self.monitor_password_file)))

    def replication_secret(self) -> SecretStr:
        if self.replication_password is not None:
            return self.replication_password
        return load_secret(Path(str(self.replication_password_file)))


class Probe(Base):
    interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    mysql_timeout_s: Timeout = 1.0
    icmp_timeout_s: Timeout = 1.0
    ssh_timeout_s: Timeout = 2.0
    failures_before_failover: Annotated[int, Field(ge=1, le=100)] = 3
    replica_silence_s: Annotated[float, Field(gt=0, le=3600)] = 3.0
    # Connection attempts made at once per MySQL probe; one answer is enough. Two ride out a
    # lost SYN on a lossy link without waiting for TCP's one-second retransmission.
    mysql_attempts: Annotated[int, Field(ge=1, le=5)] = 2
    # Stale-replica guard: no automatic promotion of a replica whose lag, last seen before the
    # fault, exceeded this (failover --force overrides, and says what it skips).
    max_lag_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    # Echoes sent at once per ICMP probe (of the peer, of each witness); one reply is enough.
    icmp_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    # "Host down" needs this many ICMP probes lost in a row (and SSH failing), not one ping.
    host_down_icmp_losses: Annotated[int, Field(ge=1, le=100)] = 3
    # Run on the primary over SSH each tick: exit 0 means its MySQL answers locally, so a
    # failed probe from here is the network's fault. mysqladmin ping exits 0 even when access
    # is denied, so it needs no credentials. "{mysql_port}" is replaced by the node's
    # mysql_port in each argument (no shell); monha bounds the check remotely with `timeout`,
    # so a hung mysqld reads as "SSH works, MySQL hangs", not as an SSH timeout.
    # The default takes MariaDB's mariadb-admin where it exists (MariaDB 11 packages may lack
    # the mysqladmin link), without TLS (an 11.4 client refuses an unverified certificate,
    # which would make a live server look dead), else mysqladmin (Oracle's, or old MariaDB's).
    ssh_mysql_check: Annotated[Argv, AfterValidator(_check_argv)] = (
        "/bin/sh",
        "-c",
        DEFAULT_CHECK_SCRIPT,
        "monha-mysql-check",
        "{mysql_port}",
    )


class Witness(Base):
    """A third vantage point. With `ssh_user` set, monha also asks it over SSH (host key checked
    against ssh.known_hosts) whether it reaches the primary's MySQL; otherwise only ICMP."""

    name: Name
    address: IPv4
    ssh_user: User | None = None
    ssh_port: Port = 22


class Failover(Base):
    flag_file: AbsPath
    journal_file: AbsPath
    catchup_timeout_s: Timeout = 30.0
    fence_timeout_s: Timeout = 10.0
    promote_timeout_s: Timeout = 10.0
    vip_timeout_s: Timeout = 5.0
    # When witnesses are configured but none answers: "hold" (this node may be the isolated
    # one), or "fence": fail over only through a fence command that must succeed first.
    witness_silent: Literal["hold", "fence"] = "hold"
    # An isolated primary steps down: a primary that heard neither its peer nor any witness for
    # isolation_fence_s sets read_only, drops the VIP and stops its cold-standby services, before
    # the standby can promote. "off": it keeps serving (the double fault of every witness down
    # and the link cut, clients still reaching the primary, then keeps a primary). None: derived
    # from the standby's detection time (check-config prints the value).
    self_fence_on_isolation: Literal["on", "off"] = "on"
    isolation_fence_s: Annotated[float, Field(gt=0, le=600)] | None = None


class Fence(Base):
    command: Argv
    timeout_s: Timeout = 30.0


class Salvage(Base):
    """Binlog salvage (issue 4): copy the events the replica never received from the old
    primary's binary log over SSH and apply them here before promoting. Off until
    `binlog_index` is set: the daemon cannot ask a dead mysqld where its binary logs are."""

    # The old primary's binary log index file (log_bin's basename + ".index"); relative entries
    # in it are read relative to the index's directory (the datadir, for a relative log_bin).
    binlog_index: AbsPath | None = None
    # The server's own binlog tool on the old primary (mariadb-binlog, or mysqlbinlog).
    binlog_tool: AbsPath = "/usr/bin/mariadb-binlog"
    # Reads SQL on stdin and applies it to THIS node's server as a user that may replay
    # binary logs (MariaDB root over the local socket). Also used on the old primary to undo
    # errant transactions at rejoin.
    apply_command: Argv = (
        "/usr/bin/mariadb",
        "--no-defaults",
        "--user=root",
        "--batch",
        "--binary-mode",
    )
    timeout_s: Timeout = 30.0
    # Refuse to hold more than this much binlog tool output in memory (MiB).
    max_output_mib: Annotated[int, Field(ge=1, le=4096)] = 256


class ColdService(Base):
    name: Name
    start: Argv
    stop: Argv
    status: Argv
    timeout_s: Timeout = 30.0


class HotService(Base):
    name: Name
    url: HttpUrl
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    timeout_s: Timeout = 3.0


class Agent(Base):
    name: Name
    restart: Argv
    run_on: Literal["new_primary", "both"] = "new_primary"
    timeout_s: Timeout = 30.0


def _items() -> Any:
    # TOML arrays arrive as lists; the models keep tuples (frozen), so arrays are not strict.
    return Field(default=(), strict=False)


class Services(Base):
    cold_standby: tuple[ColdService, ...] = _items()
    hot_standby: tuple[HotService, ...] = _items()
    agents: tuple[Agent, ...] = _items()


class Metrics(Base):
    listen_address: IP = "127.0.0.1"
    listen_port: Port = 9707


class Control(Base):
    socket: AbsPath = "/run/monha/control.sock"


class Log(Base):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Base):
    cluster: Cluster
    nodes: Annotated[tuple[Node, ...], Field(strict=False, min_length=2, max_length=2)]
    ssh: Ssh
    vip: Vip
    mysql: Mysql
    probe: Probe = Probe()
    witness: tuple[Witness, ...] = _items()
    failover: Failover
    fence: Fence | None = None
    salvage: Salvage = Salvage()
    services: Services = Services()
    metrics: Metrics = Metrics()
    control: Control = Control()
    log: Log = Log()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [*_node_problems(self), *_vip_problems(self), *_other_problems(self)]
        if problems:
            raise _CrossCheck(problems)
        return self

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} (nodes: {', '.join(self.node_names)})")

    def peer_of(self, name: str) -> Node:
        self.node(name)  # raises for an unknown name
        return next(node for node in self.nodes if node.name != name)

    def heard_witnesses(self) -> tuple[str, ...]:
        """The witnesses a primary's isolation clock counts: those asked over SSH, when any
        is (the standby's failover rests on their checks, and an ICMP-only witness beside
        them then holds nothing), else every witness."""
        checking = tuple(w.name for w in self.witness if w.ssh_user)
        return checking or tuple(w.name for w in self.witness)

    def isolation_limit_s(self) -> float:
        """`failover.isolation_fence_s`, or its default: the standby's detection time (that
        many failed probes, one per interval)."""
        if self.failover.isolation_fence_s is not None:
            return self.failover.isolation_fence_s
        return self.probe.failures_before_failover * self.probe.interval_s

    def self_fences_on_isolation(self) -> bool:
        """An isolated primary steps down only with witnesses: without one a dead standby
        looks the same."""
        return self.failover.self_fence_on_isolation == "on" and bool(self.witness)

    def peer_step_down_s(self) -> float:
        """How long after an unreachable primary was last heard a failover waits before it
        promotes (0: no wait): the primary's isolation limit, plus one tick to notice (a tick
        under failing probes lasts up to two intervals) and one to step down."""
        if not self.self_fences_on_isolation():
            return 0.0
        return self.isolation_limit_s() + 3 * self.probe.interval_s

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    def summary(self) -> str:
        a, b = self.nodes
        return (
            f"cluster {self.cluster.name}: {a.name} ({a.address}) and {b.name} ({b.address}), "
            f"VIP {self.vip.address}/{self.vip.prefix} as {self.vip.label}, "
            f"{len(self.witness)} witness(es), fence command "
            f"{'configured' if self.fence else 'not configured'}"
        )


Problems = list[tuple[str, str, object]]


def _duplicates(items: list[str]) -> set[str]:
    return {x for x in items if items.count(x) > 1}


def _node_problems(cfg: Config) -> Problems:
    a, b = cfg.nodes
    out: Problems = []
    if a.name == b.name:
        out.append(("nodes[1].name", "the two nodes need distinct names", b.name))
    if a.address == b.address:
        out.append(("nodes[1].address", "the two nodes need distinct addresses", b.address))
    return out


def _vip_problems(cfg: Config) -> Problems:
    out: Problems = []
    vip_s = cfg.vip.address
    vip = ipaddress.IPv4Address(vip_s)
    for i, node in enumerate(cfg.nodes):
        net = ipaddress.IPv4Network(f"{node.address}/{cfg.vip.prefix}", strict=False)
        if cfg.vip.address == node.address:
            out.append(("vip.address", f"the VIP must differ from {node.name}'s address", vip_s))
        elif vip not in net:
            out.append(("vip.address", f"the VIP is not in {node.name}'s subnet {net}", vip_s))
        elif cfg.vip.prefix < 31 and vip in (net.network_address, net.broadcast_address):
            out.append(
                ("vip.address", f"the VIP is the network or broadcast address of {net}", vip_s)
            )
        # `ip addr add ... label L dev I` refuses a label that does not begin with I.
        if not (cfg.vip.label == node.interface or cfg.vip.label.startswith(node.interface + ":")):
            out.append(
                (
                    "vip.label",
                    f"the label must start with nodes[{i}].interface {node.interface!r} "
                    f"followed by ':' (e.g. '{node.interface}:1')",
                    cfg.vip.label,
                )
            )
    return out


def _other_problems(cfg: Config) -> Problems:
    out: Problems = []
    node_names = set(cfg.node_names)
    node_addrs = {n.address for n in cfg.nodes} | {cfg.vip.address}
    for i, w in enumerate(cfg.witness):
        if w.name in node_names:
            out.append((f"witness[{i}].name", "a witness may not share a node's name", w.name))
        if w.address in node_addrs:
            out.append(
                (
                    f"witness[{i}].address",
                    "a witness must be a third host, not a node or the VIP",
                    w.address,
                )
            )
    for dup in sorted(_duplicates([w.name for w in cfg.witness])):
        out.append(("witness", "witness names must be distinct", dup))
    for section in ("cold_standby", "hot_standby", "agents"):
        names = [s.name for s in getattr(cfg.services, section)]
        for dup in sorted(_duplicates(names)):
            out.append((f"services.{section}", "service names must be distinct", dup))
    for i, svc in enumerate(cfg.services.hot_standby):
        host = urlsplit(svc.url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            continue  # a host name: we cannot check here that it resolves to the VIP
        if str(literal) != cfg.vip.address:
            out.append(
                (f"services.hot_standby[{i}].url", "hot-standby checks go through the VIP", svc.url)
            )
    if cfg.probe.replica_silence_s <= cfg.mysql.heartbeat_period_s:
        out.append(
            (
                "probe.replica_silence_s",
                "must be longer than mysql.heartbeat_period_s, or a healthy replica looks silent",
                cfg.probe.replica_silence_s,
            )
        )
    if cfg.mysql.replica_net_timeout_s <= cfg.mysql.heartbeat_period_s:
        out.append(
            (
                "mysql.replica_net_timeout_s",
                "must be longer than mysql.heartbeat_period_s, or a healthy link times out",
                cfg.mysql.replica_net_timeout_s,
            )
        )
    if cfg.failover.witness_silent == "fence" and cfg.fence is None:
        out.append(("failover.witness_silent", "'fence' needs a [fence] command", "fence"))
    return out


# --- Error formatting. ---------------------------------------------------------------------


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _secret_key(where: str) -> bool:
    # A password file's path is not secret; an inline password, or a misspelt key that might
    # hold one, is: every value in [mysql] but paths, users and numbers is hidden.
    last = where.rsplit(".", 1)[-1]
    if last.endswith("_file") or last.endswith("_user"):
        return False
    mysql_other = where.startswith("mysql.") and not last.endswith(("_s", "_socket", "_command"))
    return mysql_other or re.search(r"pas|pw|secret|token|cred", last, re.I) is not None


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
        return f"an array of {len(value)} tables"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _line(where: str, msg: str, value: object, *, show: bool = True) -> str:
    msg = msg.removeprefix("Value error, ")
    if not show:
        return f"{where}: {msg}"
    return f"{where}: {msg} (got {'<hidden>' if _secret_key(where) else _shown(value)})"


def _lines(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    errors = exc.errors()
    item_locs = {
        tuple(e["loc"][:i]) for e in errors for i, p in enumerate(e["loc"]) if type(p) is int
    }
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and loc in item_locs:
            continue  # an item was invalid: its own error says why, the count would mislead
        cause = (err.get("ctx") or {}).get("error")
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _CrossCheck):
            prefix = _where(loc)
            for sub, msg, value in cause.problems:
                where = f"{prefix}.{sub}" if prefix else sub
                lines.append(_line(where, msg, value, show=value is not None))
            continue
        where = _where(loc) or "(top level)"
        lines.append(_line(where, err["msg"], err["input"], show=err["type"] != "missing"))
    return list(dict.fromkeys(lines))  # the same problem seen from both nodes, once


# --- Loading. ------------------------------------------------------------------------------


def parse_config(data: Mapping[str, Any]) -> Config:
    """Validate an already-parsed TOML document. Raises ConfigError only."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_lines(exc)) from None


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML config file. Raises ConfigError only.

    Password files are not read here (see `check_secrets`): the daemon reads them when it
    connects, and a test can load the example without /etc/monha existing.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied (run as a user that may read it)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    return config_from_toml(text, str(path))


def config_from_toml(text: str, source: str = "<config>") -> Config:
    """Parse and validate TOML text. Raises ConfigError only."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends "(at line L, column C)".
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    return parse_config(data)


def load_secret(path: Path | str) -> SecretStr:
    """Read a password file: one line, mode 0600 (or stricter). Raises ConfigError."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError([f"{path}: not a regular file"])
        if info.st_mode & 0o077:
            raise ConfigError(
                [
                    f"{path}: readable or writable by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); fix it with: chmod 600 {path}"
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret or "\n" in secret:
        raise ConfigError([f"{path}: must hold exactly one non-empty line"])
    return SecretStr(secret)


def check_secrets(cfg: Config) -> list[str]:
    """Lines for password files that cannot be used; empty when all are fine."""
    lines: list[str] = []
    for key in ("monitor_password_file", "replication_password_file"):
        file = getattr(cfg.mysql, key)
        if file is not None:
            try:
                load_secret(file)
            except ConfigError as exc:
                lines += [f"mysql.{key}: {line}" for line in exc.lines]
    return lines


def check_config_file(path: Path | str, cfg: Config) -> list[str]:
    """Lines for a config file others could abuse: one they may write chooses the commands
    monha runs as root; one they may read gives away an inline password. Empty when fine."""
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return []  # it was just read; a file that vanished since is not a permission problem
    lines = []
    if mode & 0o022:
        lines.append(
            f"{path}: writable by group or others (mode {mode:04o}), who could choose the "
            f"commands monha runs as root; fix it with: chmod go-w {path}"
        )
    inline = cfg.mysql.monitor_password is not None or cfg.mysql.replication_password is not None
    if inline and mode & 0o044:
        lines.append(
            f"{path}: holds a password inline and is readable by group or others "
            f"(mode {mode:04o}); fix it with: chmod 600 {path} (or use *_password_file keys)"
        )
    return lines


def check_config_main(path: Path | str, *, secrets: bool = True) -> int:
    """`monha check-config FILE`: print every problem to stderr, or "config OK: ..." to stdout.
    Returns 0 or EX_CONFIG."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EX_CONFIG
    problems = check_config_file(path, cfg)
    problems += check_secrets(cfg) if secrets else []
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return EX_CONFIG
    print(f"config OK: {cfg.summary()}")
    return 0
