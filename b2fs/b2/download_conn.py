"""Kept HTTP/1.1 connections for downloads: ranged GETs read straight into the caller's buffers.

A download through httpx costs three user-space copies of every byte (the socket read
into a new ``bytes``, h11's receive buffer, the slice it hands back) and the work of
httpcore's and h11's layers per read; the mount's reader then copies the chunks into
its block buffers once more.  ``DownloadPool`` keeps idle connections per host and
sends a GET on one; ``DownloadResponse.readinto`` then receives the body with
``socket.recv_into`` straight into the caller's buffer (one copy: the kernel's), and
``receive`` hands out ``bytes`` from one ``recv`` for callers that want chunks.  The
response head is parsed here (status line, header fields, ``Content-Length`` or chunked
framing); over TLS the bytes come through the TLS stream and are copied once.

Used by ``b2fs.b2`` for downloads when no proxy applies and HTTP/2 is off (as
``upload_conn`` is for uploads); anything else goes through httpx.  A kept connection
that breaks before any byte of the answer came (the host closed it while idle) is
opened again and the request sent once more (a GET changes nothing); every other
failure is the caller's to retry, and the connection is closed, never reused.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute

from b2fs.b2.streams import CONNECT_ERRORS, close_quietly, open_stream

IDLE_EXPIRY = 30.0  # a connection idle longer is not reused (hosts close idle ones)
HEAD_LIMIT = 64 * 1024  # the longest response head accepted
BODY_LIMIT = 1 << 20  # the longest error body read
RECEIVE_SIZE = 256 * 1024  # bytes per read of ``receive``
HEAD_READ = 16 * 1024  # bytes per read of a response head (the body's start comes along)


class DownloadConnectionError(Exception):
    """The exchange failed on the network; ``sent``: the request may have reached the host."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class _Stale(DownloadConnectionError):
    """A kept connection broke before the answer began."""


class _Connection:
    """One HTTP/1.1 connection: a stream, and its raw socket when the bytes are not TLS."""

    def __init__(self, key: tuple[str, str, int], stream: Any, read_timeout: float) -> None:
        self.key = key
        self.stream = stream
        # recv_into straight on the socket where the event loop only waits for readiness
        # (trio: a plain socket); asyncio's transport reads its socket itself (anyio hands
        # out a wrapper), so there the stream's bytes are copied into the caller's buffer,
        # as over TLS
        raw = None if key[0] == "https" else stream.extra(SocketAttribute.raw_socket, None)
        self.sock = raw if type(raw) is socket.socket else None
        self.read_timeout = read_timeout
        self.last_used = time.monotonic()
        self.used = False  # has answered a request before

    async def aclose(self) -> None:
        stream, self.stream = self.stream, None
        await close_quietly(stream)

    async def recv_into(self, view: memoryview) -> int:
        """Receive what has come (at most ``len(view)`` bytes) into ``view``; 0 at EOF."""
        sock = self.sock
        if sock is None:
            data = await self.receive(len(view))
            view[: len(data)] = data
            return len(data)
        waited = False
        while True:
            try:
                n: int = sock.recv_into(view)
            except BlockingIOError:
                with anyio.fail_after(self.read_timeout):
                    await anyio.wait_readable(sock)
                waited = True
                continue
            if not waited:  # the bytes were there at once: let the other tasks run
                await anyio.lowlevel.checkpoint()
            return n

    async def receive(self, limit: int) -> bytes:
        """The bytes that have come, at most ``limit``; b"" at EOF."""
        sock = self.sock
        if sock is None:
            try:
                with anyio.fail_after(self.read_timeout):
                    data: bytes = await self.stream.receive(limit)
            except anyio.EndOfStream:
                return b""
            return data
        waited = False
        while True:
            try:
                data = sock.recv(limit)
            except BlockingIOError:
                with anyio.fail_after(self.read_timeout):
                    await anyio.wait_readable(sock)
                waited = True
                continue
            if not waited:
                await anyio.lowlevel.checkpoint()
            return data


class DownloadResponse:
    """The answer to one GET: ``status``, ``headers`` (lower-case names), then the body.

    The connection goes back to its pool as soon as the body is complete (when the host
    keeps it); ``aclose`` before that closes it."""

    def __init__(self, pool: DownloadPool, conn: _Connection, status: int,
                 headers: dict[str, str], rest: bytes, keep: bool, length: int | None,
                 chunked: bool) -> None:  # fmt: skip
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self._pending = memoryview(rest)  # body bytes that came with the head
        self._keep = keep
        self._left = length  # body bytes still to come (None: chunked or until EOF)
        self._chunked = chunked
        self._chunk_left = 0  # of the current chunk (chunked framing)
        self._done = length == 0
        if self._done:
            self._release()

    @property
    def complete(self) -> bool:
        return self._done

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep and not self._pending:
            self._pool._put(conn)
        else:
            self._pool._later(conn)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    def _broken(self, why: str) -> DownloadConnectionError:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._later(conn)
        return DownloadConnectionError(why)

    async def _raw_into(self, view: memoryview) -> int:
        """Body bytes as they come off the connection (framing not applied)."""
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        assert self._conn is not None
        return await _net(self._conn.recv_into(view))

    async def _raw(self, limit: int) -> bytes:
        if self._pending:
            data = bytes(self._pending[:limit])
            self._pending = self._pending[limit:]
            return data
        assert self._conn is not None
        return await _net(self._conn.receive(limit))

    async def readinto(self, view: memoryview) -> int:
        """Receive body bytes into ``view`` (as many as have come, at least one); 0 at the end."""
        if self._done or not len(view):
            return 0
        if self._chunked:
            data = await self._chunk_bytes(len(view))
            view[: len(data)] = data
            return len(data)
        if self._left is not None:
            view = view[: self._left]
        n = await self._raw_into(view)
        return self._count(n)

    async def receive(self, limit: int = RECEIVE_SIZE) -> bytes:
        """The next body bytes (at most ``limit``, at least one); b"" at the end."""
        if self._done:
            return b""
        if self._chunked:
            return await self._chunk_bytes(limit)
        if self._left is not None:
            limit = min(limit, self._left)
        data = await self._raw(limit)
        self._count(len(data))
        return data

    def _count(self, n: int) -> int:
        if self._left is None:  # until the host closes: then the body is complete
            if n == 0:
                self._done, self._keep = True, False
                self._release()
            return n
        if n == 0:
            raise self._broken("the host closed the connection mid-body")
        self._left -= n
        if self._left == 0:
            self._done = True
            self._release()
        return n

    async def _chunk_bytes(self, limit: int) -> bytes:
        """Chunked framing (rare for downloads): the next bytes of the current chunk."""
        if self._chunk_left == 0:
            line = await self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise self._broken(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                self._done = True
                self._release()
                return b""
            self._chunk_left = size
        data = await self._raw(min(limit, self._chunk_left))
        if not data:
            raise self._broken("the host closed the connection mid-body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await self._line():
            raise self._broken("no CRLF after a chunk")
        return data

    async def _line(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\r\n"):
            if len(line) > 4096:
                raise self._broken("a chunk line is too long")
            data = await self._raw(1)
            if not data:
                raise self._broken("the host closed the connection mid-body")
            line += data
        return bytes(line[:-2])

    async def read_all(self, limit: int = BODY_LIMIT) -> bytes:
        """The rest of the body (an error answer's JSON), at most ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (data := await self.receive(limit - size)):
            parts.append(data)
            size += len(data)
        return b"".join(parts)


async def _net(awaitable: Any) -> Any:
    """Await a socket operation; network failures become ``DownloadConnectionError``."""
    try:
        return await awaitable
    except TimeoutError:
        raise DownloadConnectionError("ReadTimeout: no bytes within the read timeout") from None
    except (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
        raise DownloadConnectionError(f"{type(e).__name__}: {e}") from e


class DownloadPool:
    """Idle HTTP/1.1 connections per (scheme, host, port), and GETs on them."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, user_agent: str,
                 connect_timeout: float, read_timeout: float, write_timeout: float,
                 max_idle: int = 32) -> None:  # fmt: skip
        self.max_idle = max_idle  # idle connections kept per host
        self.ssl_context = ssl_context
        self.user_agent = user_agent
        self.timeouts = (connect_timeout, read_timeout, write_timeout)
        self._idle: defaultdict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._closing: list[_Connection] = []  # broken or surplus: closed at the next GET
        self.opened = 0  # connections made so far (for tests and stats)

    async def aclose(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle] + self._closing
        self._idle.clear()
        self._closing = []
        for conn in conns:
            await conn.aclose()

    def _put(self, conn: _Connection) -> None:
        conn.last_used = time.monotonic()
        conn.used = True
        idle = self._idle[conn.key]
        if len(idle) < self.max_idle:
            idle.append(conn)
        else:
            self._closing.append(conn)

    def _later(self, conn: _Connection) -> None:
        """Close ``conn`` soon (from sync code: the next GET or ``aclose`` does it)."""
        self._closing.append(conn)

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.last_used <= IDLE_EXPIRY:
                return conn
            self._closing.append(conn)
        return None

    async def get(self, url: str, headers: dict[str, str]) -> DownloadResponse:
        """Send ``GET url`` with ``headers``; returns once the answer's head is in."""
        if self._closing:
            closing, self._closing = self._closing, []
            for c in closing:
                await c.aclose()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url!r}")
        key = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = _request_head(target, parts.netloc, self.user_agent, headers)
        conn = self._take(key)
        if conn is not None:
            try:
                return await self._exchange(conn, head)
            except _Stale:
                pass  # closed by the host while idle: the request never got there
        conn = await self._connect(key)
        try:
            return await self._exchange(conn, head)
        except _Stale:
            raise DownloadConnectionError("the connection broke before an answer") from None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        if scheme == "https" and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        try:
            stream = await open_stream(host, port, self.ssl_context if scheme == "https" else None,
                                       self.timeouts[0])  # fmt: skip
        except CONNECT_ERRORS as e:
            raise DownloadConnectionError(
                f"ConnectError: connecting to {host}:{port}: {e!r}", sent=False
            ) from e
        self.opened += 1
        return _Connection(key, stream, self.timeouts[1])

    async def _exchange(self, conn: _Connection, head: bytes) -> DownloadResponse:
        answered = False
        try:
            with anyio.fail_after(self.timeouts[2]):
                await conn.stream.send(head)
            buf = bytearray()
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    status, fields, version = _parse_head(bytes(buf[:end]))
                    rest = bytes(buf[end + 4 :])
                    if 100 <= status < 200:  # informational: the real answer follows
                        buf = bytearray(rest)
                        continue
                    break
                if len(buf) > HEAD_LIMIT:
                    raise DownloadConnectionError("the response head is too long")
                data = await conn.receive(HEAD_READ)
                if not data:
                    raise anyio.EndOfStream
                answered = True
                buf += data
        except anyio.EndOfStream:
            await conn.aclose()
            if not answered and conn.used:
                raise _Stale("the connection broke before an answer") from None
            raise DownloadConnectionError("the host closed the connection mid-answer") from None
        except TimeoutError:
            await conn.aclose()
            raise DownloadConnectionError(
                "ReadTimeout: no answer within the read timeout"
            ) from None
        except (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
            await conn.aclose()
            if (
                not answered
                and conn.used
                and isinstance(e, ConnectionError | anyio.BrokenResourceError)
            ):
                raise _Stale("the connection broke before an answer") from None
            raise DownloadConnectionError(f"{type(e).__name__}: {e}") from e
        except BaseException:
            await conn.aclose()  # cancelled mid-exchange, or a bad answer: state unknown
            raise
        keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
        chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        length: int | None = None
        if status in (204, 304):
            length = 0
        elif not chunked:
            text = fields.get("content-length")
            if text is None:
                keep = False  # the body ends when the host closes
            else:
                try:
                    length = int(text)
                except ValueError:
                    await conn.aclose()
                    raise DownloadConnectionError(f"bad Content-Length {text!r}") from None
                if length < 0:
                    await conn.aclose()
                    raise DownloadConnectionError(f"bad Content-Length {text!r}")
        return DownloadResponse(self, conn, status, fields, rest, keep, length, chunked)


def _request_head(target: str, host: str, user_agent: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {user_agent}",
             "Accept-Encoding: identity"]  # fmt: skip
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> tuple[int, dict[str, str], str]:
    """(status, fields with lower-case names, HTTP version) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise DownloadConnectionError(f"not an HTTP/1 answer: {lines[0][:60]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise DownloadConnectionError(f"bad header line {line[:60]!r}")
        name = name.lower()
        value = value.strip()
        if name in fields and name not in ("content-length",):
            fields[name] = f"{fields[name]}, {value}"
        elif name == "content-length" and name in fields and fields[name] != value:
            raise DownloadConnectionError("two different Content-Length fields")
        else:
            fields[name] = value
    return int(code), fields, version
