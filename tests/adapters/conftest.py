"""Fixtures for the adapter contract tests (real MariaDB, real sshd, real subprocesses)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.adapters.sandbox import ServerPair, Sshd, server_pair, start_sshd
from tests.conftest import require, require_root_and_binaries

SERVERS = ("mariadb", "mysql")


@pytest.fixture(scope="module", params=SERVERS)
def pair(request: pytest.FixtureRequest) -> Iterator[ServerPair]:
    """A primary and its replica on loopback, for the tests of one module: every contract test
    runs once on MariaDB and once on MySQL."""
    if request.param == "mysql":
        from monha.lab.mysql_rootfs import RootfsError, ensure_rootfs

        require_root_and_binaries("unshare", "chroot", "mount")
        try:
            ensure_rootfs()
        except RootfsError as exc:
            require(False, str(exc))
    else:
        require_root_and_binaries("mariadbd", "mariadb-install-db")
    with server_pair(request.param) as servers:
        yield servers


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port whose listener completes handshakes but never says a word (a frozen host)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    """A real sshd on a high loopback port (own host key, one authorized key)."""
    require_root_and_binaries("/usr/sbin/sshd", "unshare", "mount")
    server = start_sshd()
    try:
        yield server
    finally:
        server.stop()
