"""A kept HTTP/1.1 connection per upload URL: uploads without the general HTTP stack.

B2 hands out upload URLs one per concurrent uploader, each naming a host (a pod)
of its own, and the client's pool keeps them (``Core._post_upload``).  An upload
is one POST on such a URL, and the cost of a small file's upload was mostly
httpx's layers (request building, auth and redirect handling, the connection pool,
response objects): about 1 ms of CPU for a few KiB.  ``UploadConnection`` keeps one
connection per URL (the URL is used by one upload at a time) and speaks HTTP/1.1
through ``h11`` (the protocol engine under httpx) straight to an anyio stream (TLS
when the URL is https), with the client's timeouts per step.  It is used when no
proxy applies and HTTP/2 is off; anything else goes through httpx.

A connection that was used before and breaks before any byte of the answer came
(the host closed it while idle) is opened again and the request sent once more: the
host never saw the first one.  Every other failure is the caller's to retry (on a
new URL), as with httpx.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterable
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlsplit

import anyio
import h11

from b2fs.b2.streams import CONNECT_ERRORS, close_quietly, open_stream

IDLE_EXPIRY = 30.0  # a kept connection idle longer is opened again (hosts close idle ones)


class UploadConnectionError(Exception):
    """The exchange failed on the network; ``sent``: the request may have reached the host."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class UploadConnection:
    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None, user_agent: str,
                 connect_timeout: float, read_timeout: float, write_timeout: float) -> None:  # fmt: skip
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.host_header = parts.netloc
        self.ssl_context = ssl_context
        self.user_agent = user_agent
        self.timeouts = (connect_timeout, read_timeout, write_timeout)
        self._stream: Any = None
        self._h11: h11.Connection | None = None
        self._last_used = 0.0

    async def aclose(self) -> None:
        stream, self._stream, self._h11 = self._stream, None, None
        await close_quietly(stream)

    async def post(self, headers: dict[str, str], body: AsyncIterable[bytes] | bytes,
                   ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """POST ``body`` (bytes, or chunks with a Content-Length in ``headers``) to the URL;
        returns (status, headers with lower-case names, body)."""
        fresh = self._stream is None or time.monotonic() - self._last_used > IDLE_EXPIRY
        if fresh:
            await self._connect()
        try:
            return await self._exchange(headers, body)
        except _Stale:
            if fresh or not isinstance(body, bytes):
                raise UploadConnectionError("the connection broke before an answer", True) from None
            await self._connect()
            try:
                return await self._exchange(headers, body)
            except _Stale:
                raise UploadConnectionError("the connection broke before an answer", True) from None

    async def _connect(self) -> None:
        await self.aclose()
        if self.tls and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        try:
            self._stream = await open_stream(self.host, self.port,
                                             self.ssl_context if self.tls else None,
                                             self.timeouts[0])  # fmt: skip
        except CONNECT_ERRORS as e:
            self._stream = None
            raise UploadConnectionError(
                f"connecting to {self.host}:{self.port}: {e!r}", False
            ) from e
        self._h11 = h11.Connection(h11.CLIENT)

    async def _exchange(self, headers: dict[str, str], body: AsyncIterable[bytes] | bytes,
                        ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        conn = self._h11
        assert conn is not None
        fields = [("Host", self.host_header), ("User-Agent", self.user_agent), *headers.items()]
        whole = isinstance(body, bytes | bytearray | memoryview)
        if whole:
            fields = [f for f in fields if f[0].lower() != "content-length"]
            fields.append(("Content-Length", str(len(body))))  # type: ignore[arg-type]
        state = _State()
        try:
            # A small request has one deadline (a cancel scope costs more than its I/O); a
            # streamed one, one per step.
            with anyio.fail_after(self.timeouts[1] + self.timeouts[2]) if whole else nullcontext():
                head = conn.send(h11.Request(method="POST", target=self.target, headers=fields))
                if whole:
                    await self._stream.send(
                        head + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                    )
                else:
                    await self._send(head)
                    async for chunk in body:  # type: ignore[union-attr]
                        await self._send(conn.send(h11.Data(data=chunk)))
                    await self._send(conn.send(h11.EndOfMessage()))
                answer = await self._answer(conn, state, whole)
        except anyio.EndOfStream:
            await self.aclose()
            if not state.answered:
                raise _Stale from None
            raise UploadConnectionError("the host closed the connection mid-answer", True) from None
        except (
            OSError,
            TimeoutError,
            ssl.SSLError,
            anyio.BrokenResourceError,
            h11.ProtocolError,
        ) as e:
            await self.aclose()
            if not state.answered and isinstance(e, anyio.BrokenResourceError | ConnectionError):
                raise _Stale from None
            raise UploadConnectionError(f"{type(e).__name__}: {e}", True) from e
        except BaseException:
            await self.aclose()  # cancelled mid-exchange: the connection's state is unknown
            raise
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._last_used = time.monotonic()
        else:
            await self.aclose()
        return answer

    async def _answer(self, conn: h11.Connection, state: _State,
                      whole: bool) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        status, answer, parts = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with nullcontext() if whole else anyio.fail_after(self.timeouts[1]):
                    data = await self._stream.receive(65536)
                conn.receive_data(data)
                state.answered = True
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                answer = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, answer, b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise anyio.EndOfStream

    async def _send(self, data: bytes) -> None:
        if data:
            with anyio.fail_after(self.timeouts[2]):
                await self._stream.send(data)


class _Stale(Exception):
    """A kept connection broke before the answer began."""


class _State:
    answered = False  # a byte of the answer came
