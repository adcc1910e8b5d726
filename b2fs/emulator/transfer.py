"""File contents over HTTP: streaming request bodies into blobs (uploads and parts,
with sha1 checks) and blobs out as (ranged) response bodies; server-side copies.

Memory stays flat both ways: bodies move in chunks, with uvicorn's flow control on
sends. Called by ``app`` (routing, auth) and ``api`` (copies); stores via ``store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from b2fs.emulator.errors import BadRequest
from b2fs.emulator.store import Row, Store

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
CHUNK = 1 << 20


class Disconnected(Exception):
    """The client went away mid-request; nothing is answered."""


class DropConnection(Exception):
    """Raised on purpose (fault ``drop``) to make the server close the connection."""


class Body:
    """A request body received into a temporary file, with its length and sha1."""

    def __init__(self, path: Path, size: int, sha1: str, claimed_sha1: str | None) -> None:
        self.path, self.size, self.sha1, self.claimed_sha1 = path, size, sha1, claimed_sha1


class _Sink:
    """Hashes and writes body bytes in a worker thread, one batch in flight at a time,
    so that receiving the next batch overlaps hashing and writing the previous one."""

    BATCH = 1 << 20

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.h = hashlib.sha1()
        self.size = 0
        self.buf = bytearray()
        self.pending: asyncio.Future[None] | None = None

    def _write(self, data: bytes | bytearray) -> None:
        self.h.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    async def add(self, data: bytes, final: bool = False) -> None:
        self.buf += data
        self.size += len(data)
        if len(self.buf) >= self.BATCH or (final and self.buf):
            batch, self.buf = self.buf, bytearray()
            await self.wait()
            self.pending = asyncio.get_running_loop().run_in_executor(None, self._write, batch)
        if final:
            await self.wait()

    async def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending


async def receive_body(receive: Receive, store: Store, sha1_at_end: bool) -> Body:
    """Stream the request body to a temp file, hashing as it goes.

    With ``sha1_at_end`` the last 40 bytes are the hex sha1 of what precedes them.
    """
    path = store.tmp_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    sink = _Sink(fd)
    tail = b""
    try:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise Disconnected()
            chunk = msg.get("body", b"")
            more = msg.get("more_body", False)
            if sha1_at_end:
                data = tail + chunk
                chunk, tail = data[:-40], data[-40:]
            await sink.add(chunk, final=not more)
            if not more:
                break
    except BaseException:
        with contextlib.suppress(BaseException):
            await sink.wait()
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    claimed = None
    if sha1_at_end:
        if len(tail) != 40:
            path.unlink(missing_ok=True)
            raise BadRequest("body too short for a trailing sha1")
        claimed = tail.decode("latin-1")
    return Body(path, sink.size, sink.h.hexdigest(), claimed)


async def discard_body(receive: Receive) -> int:
    n = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise Disconnected()
        n += len(msg.get("body", b""))
        if not msg.get("more_body", False):
            return n


def blobs_of(row: Row) -> list[tuple[str, int]]:
    return [tuple(b) for b in json.loads(row["blobs"])]  # type: ignore[misc]


def segments(blobs: list[tuple[str, int]], start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(blob, offset, length) pieces covering bytes start..end (inclusive) of a version."""
    pos = 0
    for blob, length in blobs:
        lo, hi = max(start, pos), min(end + 1, pos + length)
        if lo < hi:
            yield blob, lo - pos, hi - lo
        pos += length
        if pos > end:
            break


async def send_content(
    send: Send,
    store: Store,
    blobs: list[tuple[str, int]],
    start: int,
    end: int,
    disconnected: asyncio.Event,
    limit: int | None = None,
) -> int:
    """Send bytes start..end of a version as body chunks; returns the bytes sent.

    ``limit`` stops early (fault ``drop``): the caller then breaks the connection.
    """
    sent = 0
    for blob, offset, length in segments(blobs, start, end):
        fd = os.open(store.path(blob), os.O_RDONLY)
        try:
            done = 0
            while done < length:
                if disconnected.is_set():
                    raise Disconnected()
                n = min(CHUNK, length - done)
                if limit is not None:
                    n = min(n, limit - sent)
                    if n <= 0:
                        return sent
                chunk = os.pread(fd, n, offset + done)
                if not chunk:
                    raise OSError(f"blob {blob} is shorter than recorded")
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)  # let the disconnect watcher run: a send to a
                # closed connection returns at once without yielding
                done += len(chunk)
                sent += len(chunk)
        finally:
            os.close(fd)
    return sent


def link_copy(store: Store, blobs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A whole-version copy: each blob gets a new hard link, owned by the copy."""
    out = []
    for blob, length in blobs:
        new = store.new_blob()
        os.link(store.path(blob), store.path(new))
        out.append((new, length))
    return out


def _copy_range_sync(store: Store, blobs: list[tuple[str, int]], start: int, end: int) -> tuple[str, int, str]:  # fmt: skip
    new = store.new_blob()
    h = hashlib.sha1()
    size = 0
    try:
        with open(store.path(new), "wb") as out:
            for blob, offset, length in segments(blobs, start, end):
                with open(store.path(blob), "rb") as src:
                    src.seek(offset)
                    left = length
                    while left:
                        chunk = src.read(min(CHUNK, left))
                        if not chunk:
                            raise OSError(f"blob {blob} is shorter than recorded")
                        h.update(chunk)
                        out.write(chunk)
                        left -= len(chunk)
                        size += len(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store.path(new))
        raise
    return new, size, h.hexdigest()


async def copy_range(store: Store, blobs: list[tuple[str, int]], start: int, end: int) -> tuple[str, int, str]:  # fmt: skip
    """Copy bytes start..end of a version into a new blob (in a thread); (blob, size, sha1)."""
    return await asyncio.to_thread(_copy_range_sync, store, blobs, start, end)


async def sha1_of(store: Store, blobs: list[tuple[str, int]]) -> str:
    def run() -> str:
        h = hashlib.sha1()
        for blob, _ in blobs:
            with open(store.path(blob), "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        return h.hexdigest()

    return await asyncio.to_thread(run)
