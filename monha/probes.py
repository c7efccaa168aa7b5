"""Network probes: ICMP echo, TCP connect, HTTP GET — each bounded, each a `ProbeResult`.

Job: answer "does this address answer, and how fast" for the tick's observation and for the
failover's final service checks.

Must not: raise (every failure is a result), retry (the next tick is the retry), log, or follow
redirects (a check through the VIP must see what that address itself answers). HTTP is a plain
HTTP/1.0 request over asyncio streams: enough for a health check, and no new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from urllib.parse import urlsplit

import icmplib

from monha.model import ProbeResult, ProbeStatus

_MAX_HEAD = 16384  # bytes of status line + headers we are willing to read
_MAX_BODY_LINE = 512  # characters of the body's first line kept in the detail


async def icmp(
    address: str, timeout_s: float, count: int = 1, *, name: str = "icmp"
) -> ProbeResult:
    """ICMP echo (raw socket: monha runs as root). OK if any reply came back within timeout_s."""
    start = time.monotonic()
    try:
        # icmplib's own timeout is per reply; the outer bound covers name lookup and interval.
        async with asyncio.timeout(timeout_s * count + 0.5):
            host = await icmplib.async_ping(
                address, count=count, interval=0.2, timeout=timeout_s, privileged=True
            )
    except TimeoutError:
        return ProbeResult(name, address, ProbeStatus.TIMEOUT, time.monotonic() - start, "no reply")
    except icmplib.ICMPLibError as exc:
        return ProbeResult(
            name,
            address,
            ProbeStatus.FAILED,
            time.monotonic() - start,
            f"{type(exc).__name__}: {exc}",
        )
    except OSError as exc:
        return ProbeResult(name, address, ProbeStatus.FAILED, time.monotonic() - start, str(exc))
    if host.packets_received == 0:
        return ProbeResult(
            name,
            address,
            ProbeStatus.TIMEOUT,
            time.monotonic() - start,
            f"0/{host.packets_sent} replies",
        )
    return ProbeResult(
        name,
        address,
        ProbeStatus.OK,
        host.avg_rtt / 1000.0,
        f"{host.packets_received}/{host.packets_sent} replies",
    )


async def tcp_connect(
    address: str, port: int, timeout_s: float, *, name: str = "tcp"
) -> ProbeResult:
    """OK when a TCP handshake completes. (A frozen host's kernel still completes it.)"""
    target = f"{address}:{port}"
    start = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(address, port)
        return ProbeResult(name, target, ProbeStatus.OK, time.monotonic() - start)
    except TimeoutError:
        return ProbeResult(
            name,
            target,
            ProbeStatus.TIMEOUT,
            time.monotonic() - start,
            f"no handshake in {timeout_s:g} s",
        )
    except OSError as exc:
        return ProbeResult(
            name, target, ProbeStatus.FAILED, time.monotonic() - start, exc.strerror or str(exc)
        )
    finally:
        if writer is not None:
            writer.close()


async def http_get(
    url: str, expect_status: int, timeout_s: float, *, name: str = "http"
) -> ProbeResult:
    """GET `url`; OK when the status is `expect_status`. The detail holds the body's first line."""
    start = time.monotonic()
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return ProbeResult(name, url, ProbeStatus.FAILED, 0.0, str(exc))
    host = parts.hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            ctx = ssl.create_default_context() if parts.scheme == "https" else None
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: monha\r\n"
                "Accept: */*\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                raise ValueError("response headers too long")
            body = await reader.read(_MAX_BODY_LINE * 4)
    except TimeoutError:
        return ProbeResult(
            name,
            url,
            ProbeStatus.TIMEOUT,
            time.monotonic() - start,
            f"no answer in {timeout_s:g} s",
        )
    except asyncio.IncompleteReadError as exc:
        return ProbeResult(
            name,
            url,
            ProbeStatus.FAILED,
            time.monotonic() - start,
            f"connection closed mid-response ({len(exc.partial)} bytes)",
        )
    except (OSError, ValueError, asyncio.LimitOverrunError, ssl.SSLError) as exc:
        return ProbeResult(
            name, url, ProbeStatus.FAILED, time.monotonic() - start, str(exc) or type(exc).__name__
        )
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await writer.wait_closed()
    latency = time.monotonic() - start
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return ProbeResult(
            name, url, ProbeStatus.FAILED, latency, f"not an HTTP response: {status_line[:80]!r}"
        )
    status = int(fields[1])
    first_line = body.decode("utf-8", "replace").lstrip().split("\n", 1)[0].strip()[:_MAX_BODY_LINE]
    if status != expect_status:
        return ProbeResult(
            name,
            url,
            ProbeStatus.FAILED,
            latency,
            f"status {status}, expected {expect_status}: {first_line}",
        )
    return ProbeResult(name, url, ProbeStatus.OK, latency, first_line)
