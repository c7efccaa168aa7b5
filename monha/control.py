"""The local control API: JSON lines over a root-only Unix socket.

One request line (`{"cmd": "status", ...}`) gets one response line (`{"ok": true, ...}` or
`{"ok": false, "error": "..."}`). The peer's uid is read from the kernel (SO_PEERCRED) and
anyone but root is refused with a message saying so, whatever the file's mode. This module
moves bytes and checks callers; what a command does is the handler's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

MAX_REQUEST_BYTES = 64 * 1024
READ_TIMEOUT_S = 5.0


class ControlError(Exception):
    """The daemon could not be reached, or it answered with an error."""


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead daemon; refuse to touch anything else."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} exists and is not a socket; remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover
        return
    finally:
        probe.close()
    raise ControlError(f"another monha daemon already listens on {path}")


class ControlServer:
    def __init__(self, path: Path, handler: Handler, *, allowed_uid: int = 0) -> None:
        self.path = path
        self.handler = handler
        self.allowed_uid = allowed_uid
        self._server: asyncio.base_events.Server | None = None
        self._inode: int | None = None  # the socket file this server made, and only it

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        _remove_stale_socket(self.path)
        # The umask makes the socket 0600 from its first moment, not after a chmod.
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old)
        self._inode = self.path.lstat().st_ino

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        # Only the socket this server created is removed: one that failed to start, or whose
        # file was replaced by another daemon's, must not take that daemon's socket away.
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.path.lstat().st_ino == self._inode:
                    self.path.unlink()
            self._inode = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock)
            if uid != self.allowed_uid:
                # Read (and ignore) the request first: closing with unread bytes makes the
                # kernel reset the connection, and the caller would never see the refusal.
                with contextlib.suppress(TimeoutError, ValueError, ConnectionError):
                    async with asyncio.timeout(1.0):
                        await reader.readline()
                await _send(
                    writer,
                    {
                        "ok": False,
                        "error": f"permission denied: the monha control socket accepts "
                        f"uid {self.allowed_uid} (root) only, not uid {uid}; run as root",
                    },
                )
                return
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    line = await reader.readline()
            except (TimeoutError, ValueError):
                await _send(writer, {"ok": False, "error": "request too slow or too long"})
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                    raise ValueError("expected a JSON object with a string 'cmd'")
            except ValueError as exc:
                await _send(writer, {"ok": False, "error": f"bad request: {exc}"})
                return
            try:
                response = await self.handler(request)
            except Exception as exc:  # a handler bug must not kill the daemon
                response = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await _send(writer, response)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _send(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    writer.write(json.dumps(payload).encode() + b"\n")
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def request(path: Path, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Send one request to the daemon and return its answer."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
            try:
                writer.write(json.dumps(payload).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except FileNotFoundError as exc:
        raise ControlError(f"the daemon is not running (no socket at {path})") from exc
    except ConnectionRefusedError as exc:
        raise ControlError(f"the daemon is not running (nobody listens on {path})") from exc
    except PermissionError as exc:
        raise ControlError(f"permission denied on {path}: run as root") from exc
    except TimeoutError as exc:
        raise ControlError(f"the daemon did not answer within {timeout_s:g} s") from exc
    if not line:
        raise ControlError("the daemon closed the connection without an answer")
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise ControlError(f"the daemon sent an unreadable answer: {exc}") from exc
    if not isinstance(answer, dict):
        raise ControlError("the daemon sent an answer that is not a JSON object")
    return answer
