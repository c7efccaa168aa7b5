"""Bad input, met the way an operator or a broken server would present it: each is a clear
error with a non-zero exit (or a DialectError for a server reply), never a traceback, and
nothing is changed.

No lab needed: the command lines run as subprocesses, the server replies are the recorded rows
of tests/adapters/recorded.py, mutated.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monha.config import ConfigError, parse_config
from monha.dialect import (
    DialectError,
    detect,
    parse_binlog_status,
    parse_bool_variable,
    parse_replica_status,
)
from tests.adapters.recorded import (
    MARIADB_10_11_ALL_SLAVES,
    MYSQL_5_7_SLAVE,
    MYSQL_8_0_REPLICA,
    MYSQL_8_4_REPLICA,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_bin(argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "MONHA_CONFIG": "/nonexistent/monha.toml"},
    )


def assert_clear_failure(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.stderr.strip(), "no message on stderr"
    assert len(done.stderr) < 4000, "a message, not a dump"


# --- every command line, wrong ----------------------------------------------------------------

WRONG = [
    (["monha"], 2),
    (["monha", "bogus"], 2),
    (["monha", "run", "--log-format", "xml"], 2),
    (["monha", "run", "--config", "/nonexistent/monha.toml"], 78),
    (["monha", "run", "--config", "/"], 78),
    (["monha", "run", "--config", "/dev/null"], 78),
    (["monha", "check-config"], 2),
    (["monha", "check-config", "/nonexistent.toml"], 78),
    (["monha", "check-config", "/etc"], 78),
    (["monha", "check-config", "/bin/sh"], 78),
    (["monha", "install-units", "--init", "sysv"], 2),
    (["monha-ctl"], 2),
    (["monha-ctl", "bogus"], 2),
    (["monha-ctl", "--timeout", "soon", "status"], 2),
    (["monha-ctl", "status", "--bogus"], 2),
    (["monha-ctl", "switchover", "--to"], 2),
    (["monha-ctl", "--config", "/nonexistent.toml", "status"], None),
    (["monha-ctl", "--socket", "/nonexistent/ctl.sock", "status"], 3),
    (["monha-ctl", "--socket", "/nonexistent/ctl.sock", "resume"], 3),
    (["monha-lab"], 2),
    (["monha-lab", "bogus"], 2),
    (["monha-lab", "fault"], 2),
    (["monha-lab", "up", "--prefix", "a;rm -rf /"], None),
    (["monha-lab", "down", "--prefix", "../etc"], None),
    (["monha-lab", "status", "--prefix", "Zz$x"], None),
    (["monha-lab", "exec", "--prefix", "zz9q", "node9", "--", "true"], None),
]


@pytest.mark.parametrize(("argv", "code"), WRONG, ids=[" ".join(a) for a, _ in WRONG])
def test_wrong_arguments_are_refused_clearly(
    tmp_path: Path, argv: list[str], code: int | None
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    done = cli(*argv, cwd=tmp_path)
    assert_clear_failure(done)
    if code is not None:
        assert done.returncode == code, (done.returncode, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


# --- configs: random and mutated documents through `monha check-config` ----------------------

_keys = st.text(st.sampled_from("abcdefgh_"), min_size=1, max_size=8)
_scalars = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
_sections = st.sampled_from(
    ["cluster", "nodes", "ssh", "vip", "mysql", "probe", "witness", "failover", "services", "x"]
)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"


@st.composite
def random_documents(draw: st.DrawFn) -> str:
    tables = draw(st.dictionaries(_sections, st.dictionaries(_keys, _values, max_size=4)))
    return "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    )


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    lines = EXAMPLE.read_text().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "dup", "garble", "value"]))
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "garble":
            j = draw(st.integers(0, max(0, len(lines[i]) - 1)))
            lines[i] = lines[i][:j] + draw(st.text(max_size=3)) + lines[i][j + 1 :]
        elif "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {_toml_value(draw(_values))}"
    return "\n".join(lines) + "\n"


def _check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    path.chmod(0o600)
    before = path.read_bytes()
    done = cli("monha", "check-config", str(path), cwd=tmp_path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["fuzz.toml"]
    return done


def _agrees_with_the_library(text: str, done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode in (0, 78), (done.returncode, done.stderr)
    if done.returncode == 78:
        lines = done.stderr.strip().splitlines()
        assert lines and all(": " in line for line in lines), done.stderr
        return
    # Accepted by the command: the library accepts it too (password files aside).
    try:
        parse_config(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise AssertionError(f"check-config said OK, the library says {exc}") from exc


_FEW = settings(
    max_examples=int(os.environ.get("MONHA_FUZZ_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FEW
@given(text=random_documents())
def test_check_config_on_random_documents(tmp_path_factory: Any, text: str) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    _agrees_with_the_library(text, _check_config(tmp, text))


@_FEW
@given(text=mutated_example())
def test_check_config_on_mutated_examples(tmp_path_factory: Any, text: str) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    _agrees_with_the_library(text, _check_config(tmp, text))


# --- shell metacharacters in the keys the existing unit tests do not cover --------------------

NASTY = ["a b", "a;b", "a$(id)", "a`id`", "a|b", "a&b", "a'b", 'a"b', "a\nb", "-rf", "a*"]


PATH_KEYS = {
    "local_socket", "monitor_password_file", "known_hosts", "binlog_index", "binlog_tool",
    "journal_file",
}  # fmt: skip


def _example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


KEYS: list[tuple[tuple[str | int, ...], str]] = [
    (("nodes", 0), "address"),
    (("vip",), "address"),
    (("witness", 0), "address"),
    (("witness", 0), "ssh_user"),
    (("mysql",), "replication_user"),
    (("mysql",), "local_socket"),
    (("mysql",), "monitor_password_file"),
    (("ssh",), "known_hosts"),
    (("salvage",), "binlog_index"),
    (("salvage",), "binlog_tool"),
    (("metrics",), "listen_address"),
    (("failover",), "journal_file"),
]
# A path is given as /x/BAD; a component starting with "-" is a plain path, not an option.
CASES = [
    (path, key, bad)
    for path, key in KEYS
    for bad in NASTY
    if not (key in PATH_KEYS and bad.startswith("-"))
]


@pytest.mark.parametrize(("path", "key", "bad"), CASES)
def test_shell_metacharacters_in_more_keys_are_rejected(
    path: tuple[str | int, ...], key: str, bad: str
) -> None:
    data = _example()
    target: Any = data
    for part in path:
        target = target[part]
    target[key] = "/x/" + bad if key in PATH_KEYS else bad
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    name = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
    assert any(line.startswith(f"{name}.{key}: ") for line in info.value.lines), info.value.lines


# --- malformed and unexpected server replies ---------------------------------------------------

RECORDED = [MARIADB_10_11_ALL_SLAVES, MYSQL_5_7_SLAVE, MYSQL_8_0_REPLICA, MYSQL_8_4_REPLICA]
_junk = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(RECORDED) - 1),
    changes=st.dictionaries(st.text(max_size=30), _junk, max_size=4),
    drops=st.lists(st.integers(0, 80), max_size=3),
    data=st.data(),
)
def test_mutated_replica_status_rows_parse_or_raise_dialect_errors(
    which: int, changes: dict[str, Any], drops: list[int], data: st.DataObject
) -> None:
    row = dict(RECORDED[which])
    columns = list(row)
    for i in drops:
        row.pop(columns[i % len(columns)], None)
    for name in data.draw(st.lists(st.sampled_from(columns), max_size=4)):
        row[name] = data.draw(_junk)
    row.update(changes)
    try:
        parse_replica_status(row)
    except DialectError as exc:
        assert str(exc).startswith("replica status: "), exc


@settings(max_examples=200, deadline=None)
@given(value=_junk, file=_junk, version=st.text(max_size=40))
def test_other_replies_parse_or_raise_dialect_errors(value: Any, file: Any, version: str) -> None:
    for call in (
        lambda: parse_bool_variable(value, "read_only"),
        lambda: parse_binlog_status({"File": file, "Position": value}),
        lambda: detect(version),
    ):
        with contextlib.suppress(DialectError):
            call()
