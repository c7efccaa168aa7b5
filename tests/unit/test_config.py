"""Config loading and validation: what an operator sees for each kind of mistake."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit_support import CONFIG, EXAMPLE, example_data

from monha.config import (
    EX_CONFIG,
    ConfigError,
    check_config_main,
    config_from_toml,
    load_config,
    load_secret,
    parse_config,
)

Data = dict[str, Any]


def errors(change: Callable[[Data], object]) -> list[str]:
    data = example_data()
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.lines


def test_the_example_loads() -> None:
    assert CONFIG.cluster.name == "monitor-ha"
    assert CONFIG.node_names == ("node1", "node2")
    assert CONFIG.node("node1").address == "192.168.10.1"
    assert CONFIG.peer_of("node1").name == "node2" and CONFIG.peer_of("node2").name == "node1"
    assert CONFIG.vip.label == "eth0:1" and CONFIG.fence is None
    assert CONFIG.services.agents[0].run_on == "new_primary"


def test_unknown_node_name_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="node9"):
        CONFIG.peer_of("node9")


def test_config_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        CONFIG.vip.prefix = 16  # type: ignore[misc]


def _set(section: str, key: str, value: object) -> Callable[[Data], object]:
    def change(d: Data) -> None:
        target: Any = d
        for part in section.split("."):
            target = target[int(part)] if part.isdigit() else target[part]
        target[key] = value

    return change


BAD: list[tuple[str, str, object, str]] = [
    (
        "nodes.1",
        "address",
        "192.168.10.300",
        "nodes[1].address: value is not a valid IPv4 address (got '192.168.10.300')",
    ),
    (
        "failover",
        "catchup_timeout_s",
        -1,
        "failover.catchup_timeout_s: Input should be greater than 0 (got -1)",
    ),
    ("failover", "fence_timeout_s", 0, "failover.fence_timeout_s: Input should be greater than 0"),
    (
        "failover",
        "vip_timeout_s",
        10_000,
        "failover.vip_timeout_s: Input should be less than or equal to 600 (got 10000)",
    ),
    (
        "probe",
        "failures_before_failover",
        0,
        "probe.failures_before_failover: Input should be greater than or equal to 1 (got 0)",
    ),
    ("probe", "interval_s", "1s", "probe.interval_s: Input should be a valid number (got '1s')"),
    ("probe", "interval_s", True, "probe.interval_s: Input should be a valid number (got True)"),
    (
        "nodes.0",
        "mysql_port",
        70000,
        "nodes[0].mysql_port: Input should be less than or equal to 65535 (got 70000)",
    ),
    ("nodes.0", "ssh_port", "22", "nodes[0].ssh_port: Input should be a valid integer (got '22')"),
    (
        "probe",
        "ssh_mysql_check",
        ["/usr/bin/mysqladmin", "--port={port}", "ping"],
        "probe.ssh_mysql_check: unknown placeholder {port} in '--port={port}' "
        "(known: {mysql_port})",
    ),
    (
        "ssh",
        "privilege_prefix",
        ["sudo", ""],
        "ssh.privilege_prefix: arguments must be non-empty",
    ),
    ("vip", "prefix", 33, "vip.prefix: Input should be less than or equal to 32 (got 33)"),
    (
        "vip",
        "address",
        "10.0.0.10",
        "vip.address: the VIP is not in node1's subnet 192.168.10.0/24 (got '10.0.0.10')",
    ),
    (
        "vip",
        "address",
        "192.168.10.2",
        "vip.address: the VIP must differ from node2's address (got '192.168.10.2')",
    ),
    (
        "vip",
        "address",
        "192.168.10.255",
        "vip.address: the VIP is the network or broadcast address of 192.168.10.0/24",
    ),
    ("vip", "label", "eth1:1", "vip.label: the label must start with nodes[0].interface 'eth0'"),
    ("log", "format", "xml", "log.format: Input should be 'auto', 'json' or 'console' (got 'xml')"),
    (
        "services.agents.0",
        "run_on",
        "old_primary",
        "services.agents[0].run_on: Input should be 'new_primary' or 'both' (got 'old_primary')",
    ),
    (
        "services.hot_standby.0",
        "url",
        "ftp://192.168.10.10/",
        "services.hot_standby[0].url: value is not an http:// or https:// URL with a host",
    ),
    (
        "services.hot_standby.0",
        "url",
        "http://192.168.10.99/",
        "services.hot_standby[0].url: hot-standby checks go through the VIP",
    ),
    (
        "services.hot_standby.0",
        "expect_status",
        999,
        "services.hot_standby[0].expect_status: Input should be less than or equal to 599",
    ),
    (
        "services.cold_standby.0",
        "start",
        [],
        "services.cold_standby[0].start: Tuple should have at least 1 item",
    ),
    (
        "services.cold_standby.0",
        "start",
        ["zabbix_server"],
        "services.cold_standby[0].start: the program must be an absolute path",
    ),
    (
        "services.cold_standby.0",
        "stop",
        "/etc/init.d/zabbix-server stop",
        "services.cold_standby[0].stop: Input should be a valid tuple",
    ),
    (
        "metrics",
        "listen_address",
        "localhost",
        "metrics.listen_address: value is not a valid IP address (got 'localhost')",
    ),
    (
        "probe",
        "replica_silence_s",
        0.5,
        "probe.replica_silence_s: must be longer than mysql.heartbeat_period_s",
    ),
    (
        "failover",
        "witness_silent",
        "fence",
        "failover.witness_silent: 'fence' needs a [fence] command",
    ),
    (
        "witness.0",
        "address",
        "192.168.10.1",
        "witness[0].address: a witness must be a third host, not a node or the VIP",
    ),
    ("cluster", "colour", "blue", "cluster.colour: Extra inputs are not permitted (got 'blue')"),
]


@pytest.mark.parametrize(("section", "key", "value", "line"), BAD)
def test_bad_values_name_the_key_and_the_value(
    section: str, key: str, value: object, line: str
) -> None:
    lines = errors(_set(section, key, value))
    assert any(got.startswith(line) for got in lines), lines


def test_every_problem_is_reported_at_once() -> None:
    def change(d: Data) -> None:
        d["nodes"][1]["address"] = "192.168.10.300"
        d["failover"]["catchup_timeout_s"] = -1
        d["log"]["level"] = "loud"

    assert len(errors(change)) == 3


def test_exactly_two_nodes_with_distinct_names_and_addresses() -> None:
    one = errors(lambda d: d["nodes"].pop())
    assert one == [
        "nodes: Tuple should have at least 2 items after validation, not 1 "
        "(got an array of 1 tables)"
    ]
    three = errors(lambda d: d["nodes"].append(dict(d["nodes"][0], name="node3")))
    assert three[0].startswith("nodes: Tuple should have at most 2 items")

    def same(d: Data) -> None:
        d["nodes"][1].update(name="node1", address="192.168.10.1")

    assert errors(same)[:2] == [
        "nodes[1].name: the two nodes need distinct names (got 'node1')",
        "nodes[1].address: the two nodes need distinct addresses (got '192.168.10.1')",
    ]


def test_an_invalid_node_does_not_also_report_the_node_count() -> None:
    lines = errors(_set("nodes.1", "address", "x"))
    assert lines == ["nodes[1].address: value is not a valid IPv4 address (got 'x')"]


def test_missing_sections_and_keys() -> None:
    assert errors(lambda d: d.pop("cluster")) == ["cluster: Field required"]
    assert errors(lambda d: d["vip"].pop("address")) == ["vip.address: Field required"]


def test_wrong_table_shapes_do_not_dump_their_contents() -> None:
    assert errors(lambda d: d.update(nodes={"a": 1})) == [
        "nodes: Input should be a valid tuple (got a table)"
    ]


SHELL_NASTIES = [
    "node 1",
    "node;1",
    "node$1",
    "node`id`",
    "node'1",
    'node"1',
    "node|1",
    "a&b",
    "-rf",
    "node\n1",
    "n*",
    "",
    "ünïcode",
]


@pytest.mark.parametrize("bad", SHELL_NASTIES)
@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("nodes.0", "name"),
        ("nodes.0", "interface"),
        ("vip", "label"),
        ("cluster", "name"),
        ("nodes.0", "ssh_user"),
        ("mysql", "monitor_user"),
        ("witness.0", "name"),
        ("services.cold_standby.0", "name"),
        ("failover", "flag_file"),
        ("ssh", "key_file"),
        ("control", "socket"),
    ],
)
def test_shell_metacharacters_are_rejected(section: str, key: str, bad: str) -> None:
    lines = errors(_set(section, key, bad))
    where = section.replace(".0", "[0]")
    assert any(line.startswith(f"{where}.{key}: ") for line in lines), lines


@pytest.mark.parametrize("bad", ["relative/path", "/etc/monha/a b", "/x;rm", "/x$HOME", "~/x"])
def test_argv_programs_and_paths_are_absolute_and_plain(bad: str) -> None:
    assert errors(_set("services.agents.0", "restart", [bad, "restart"]))
    assert errors(_set("failover", "journal_file", bad))


def test_argv_arguments_after_the_program_are_passed_as_they_are() -> None:
    data = example_data()
    data["services"]["agents"][0]["restart"] = ["/bin/sh", "-c", "echo 'a b'; exit 0"]
    assert parse_config(data).services.agents[0].restart[2] == "echo 'a b'; exit 0"


# --- Passwords. ------------------------------------------------------------------------------


def test_exactly_one_of_password_and_password_file() -> None:
    both = errors(_set("mysql", "monitor_password", "s3cret-value"))
    assert both == [
        "mysql.monitor_password_file: give exactly one of monitor_password and "
        "monitor_password_file"
    ]
    assert "s3cret-value" not in "\n".join(both)

    def neither(d: Data) -> None:
        del d["mysql"]["replication_password_file"]

    assert errors(neither)[0].startswith("mysql.replication_password_file: give exactly one")


def test_an_inline_password_is_a_secret() -> None:
    data = example_data()
    del data["mysql"]["monitor_password_file"]
    data["mysql"]["monitor_password"] = "s3cret-value"
    cfg = parse_config(data)
    assert cfg.mysql.monitor_secret().get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(cfg) and "s3cret-value" not in str(cfg.mysql)


@pytest.mark.parametrize(
    ("key", "value"),
    [("monitor_password", 12345), ("monitor_pasword", "s3cret-value"), ("token", "s3cret-value")],
)
def test_errors_never_show_secret_values(key: str, value: object) -> None:
    lines = errors(_set("mysql", key, value))
    text = "\n".join(lines)
    assert "s3cret-value" not in text and "12345" not in text and "<hidden>" in text


def test_load_secret_reads_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("hunter2\n")
    path.chmod(0o600)
    assert load_secret(path).get_secret_value() == "hunter2"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_load_secret_refuses_a_file_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "pw"
    path.write_text("hunter2\n")
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        load_secret(path)
    (line,) = info.value.lines
    assert f"chmod 600 {path}" in line and f"{mode:04o}" in line and "hunter2" not in line


@pytest.mark.parametrize(
    ("content", "problem"), [("", "one non-empty line"), ("a\nb\n", "one non-empty line")]
)
def test_load_secret_refuses_odd_contents(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "pw"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=problem):
        load_secret(path)


def test_load_secret_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_secret(tmp_path / "absent")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_secret(tmp_path)


# --- Files and check-config. -----------------------------------------------------------------


def test_toml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[cluster]\nname = "x"\nbroken\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.lines
    assert line.startswith(f"{path}: TOML syntax error: ") and "line 3, column" in line


def test_missing_directory_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text("")
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="permission denied"):
            load_config(path)
        return
    # Root reads any file: ask from a child process that dropped to an unprivileged user.
    tmp_path.chmod(0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        message = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            load_config(path)
        except ConfigError as exc:
            message = " ".join(exc.lines)
        except BaseException as exc:
            message = repr(exc)
        finally:
            os.write(write_end, message.encode()[:4000])
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    assert "permission denied" in message, message


def _installable(tmp_path: Path, mode: int = 0o600) -> Path:
    """The example, with its password files pointing at files in tmp_path."""
    text = EXAMPLE.read_text()
    for name in ("mysql-monitor.password", "mysql-repl.password"):
        secret = tmp_path / name
        secret.write_text("pw\n")
        secret.chmod(mode)
        text = text.replace(f"/etc/monha/{name}", str(secret))
    path = tmp_path / "monha.toml"
    path.write_text(text)
    return path


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(_installable(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert out.startswith("config OK: cluster monitor-ha") and err == ""


def test_check_config_reports_loose_password_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config_main(_installable(tmp_path, 0o644)) == EX_CONFIG == 78
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("chmod 600" in line for line in err)
    assert err[0].startswith("mysql.monitor_password_file: ")


def test_check_config_prints_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monha.toml"
    path.write_text(
        EXAMPLE.read_text()
        .replace('"192.168.10.2"', '"192.168.10.300"')
        .replace("catchup_timeout_s = 30.0", "catchup_timeout_s = -1")
    )
    assert check_config_main(path, secrets=False) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "nodes[1].address: value is not a valid IPv4 address (got '192.168.10.300')",
        "failover.catchup_timeout_s: Input should be greater than 0 (got -1)",
    ]


# --- Fuzzing: anything at all gives a ConfigError, never another exception. -------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.just("192.168.10.5"),
    st.just("/abs/path"),
    st.just(-1),
    st.just(0),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_documents_raise_only_config_errors(data: st.DataObject) -> None:
    doc = example_data()
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
    try:
        parse_config(doc)
    except ConfigError as exc:
        assert exc.lines and all(isinstance(line, str) and line for line in exc.lines)


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, 4000), junk=st.text(max_size=12))
def test_damaged_toml_text_raises_only_config_errors(cut: int, junk: str) -> None:
    text = EXAMPLE.read_text()
    cut = min(cut, len(text))
    try:
        config_from_toml(text[:cut] + junk + text[cut + len(junk) :])
    except ConfigError as exc:
        assert exc.lines


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        config_from_toml(text)
