"""Contract tests of monha.probes against loopback only (ICMP to 127.0.0.1, local servers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from monha.model import ProbeStatus
from monha.probes import http_get, icmp, tcp_connect
from tests.conftest import require_root_and_binaries

pytestmark = [pytest.mark.adapter, pytest.mark.timeout(60)]


async def test_icmp_loopback() -> None:
    require_root_and_binaries()  # raw ICMP sockets need root
    r = await icmp("127.0.0.1", 1.0)
    assert r.status is ProbeStatus.OK, r
    assert r.latency_s is not None and r.latency_s < 1.0
    r2 = await icmp("127.0.0.1", 1.0, count=2)
    assert r2.status is ProbeStatus.OK and r2.detail == "2/2 replies"


async def test_tcp_connect_ok_and_refused(closed_port: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        ok = await tcp_connect("127.0.0.1", s.getsockname()[1], 1.0)
    assert ok.status is ProbeStatus.OK, ok
    refused = await tcp_connect("127.0.0.1", closed_port, 1.0)
    assert refused.status is ProbeStatus.FAILED and not refused.answered


async def test_tcp_connect_times_out_when_the_backlog_is_full() -> None:
    # A listener that never accepts: once its accept queue is full the kernel drops further
    # SYNs, so the handshake never completes — a timeout without leaving loopback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        port = s.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                c = socket.socket()
                c.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    c.connect(("127.0.0.1", port))
                fillers.append(c)
            await asyncio.sleep(0.1)
            r = await tcp_connect("127.0.0.1", port, 0.5)
        finally:
            for c in fillers:
                c.close()
    assert r.status is ProbeStatus.TIMEOUT, r


class _Http:
    def __init__(self) -> None:
        self.reply = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nnode2 ready\nsecond line\n"
        )
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(self.reply)
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def _http_server() -> AsyncIterator[tuple[_Http, int]]:
    # Not a fixture: async fixtures here run on the module's loop, the tests on their own.
    h = _Http()
    server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield h, port


async def test_http_get_ok_first_line() -> None:
    async with _http_server() as (h, port):
        r = await http_get(f"http://127.0.0.1:{port}/status?x=1", 200, 2.0)
        assert r.status is ProbeStatus.OK, r
        assert r.detail == "node2 ready"
        assert h.requests[0].startswith(b"GET /status?x=1 HTTP/1.0\r\n")
        assert f"Host: 127.0.0.1:{port}".encode() in h.requests[0]


async def test_http_get_wrong_status() -> None:
    async with _http_server() as (h, port):
        h.reply = b"HTTP/1.1 503 Service Unavailable\r\n\r\ndown for maintenance\n"
        r = await http_get(f"http://127.0.0.1:{port}/", 200, 2.0)
        assert r.status is ProbeStatus.FAILED
        assert r.detail == "status 503, expected 200: down for maintenance"


async def test_http_get_not_http() -> None:
    async with _http_server() as (h, port):
        h.reply = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        r = await http_get(f"http://127.0.0.1:{port}/", 200, 2.0)
        assert r.status is ProbeStatus.FAILED and "not an HTTP response" in r.detail


async def test_http_get_silent_and_closed(silent_listener: int, closed_port: int) -> None:
    t = await http_get(f"http://127.0.0.1:{silent_listener}/", 200, 0.5)
    assert t.status is ProbeStatus.TIMEOUT, t
    f = await http_get(f"http://127.0.0.1:{closed_port}/", 200, 0.5)
    assert f.status is ProbeStatus.FAILED, f
    bad = await http_get("ftp://127.0.0.1/", 200, 0.5)
    assert bad.status is ProbeStatus.FAILED and "not an http" in bad.detail
