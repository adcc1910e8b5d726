"""Upload sources: what ``B2Client.upload`` reads from.

Everything is an ``UploadSource`` (a size and random-access ``read``): bytes and
paths are adapters onto it, and so is any object the caller brings (the mount's
encrypting reader). Parts of a large file are read from it in parallel and read
again when a part is retried. An async byte stream has no random access: the
upload path buffers it part by part (``StreamReader``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio.lowlevel

from b2fs.b2.errors import SourceError


@runtime_checkable
class UploadSource(Protocol):
    """Random-access content of a known size. ``read`` must return exactly ``length``
    bytes (fewer only past the end, which the client never asks for), and the same
    bytes each time it is asked for the same range."""

    size: int

    async def read(self, offset: int, length: int) -> bytes: ...


class BytesSource:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data).cast("B")
        self.size = len(self._data)

    async def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])

    async def sha1(self) -> str:
        return hashlib.sha1(self._data).hexdigest()


class PathSource:
    """A local file. Reads are ``os.pread`` of at most one chunk on the event loop
    (short, page-cache reads; no thread hop)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.size = os.fstat(self._fd).st_size

    async def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise SourceError(f"{self.path.name}: file shrank while uploading")
        return data

    async def sha1(self, chunk: int = 1 << 20) -> str:
        """The whole file's SHA-1 (one sequential read, yielding between chunks)."""
        h = hashlib.sha1()
        for offset in range(0, self.size, chunk):
            h.update(await self.read(offset, min(chunk, self.size - offset)))
            await anyio.lowlevel.checkpoint()
        return h.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class StreamReader:
    """Exact-size reads from an async byte stream, with end-of-stream lookahead."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._it: AsyncIterator[bytes] = aiter(stream)
        self._buf = bytearray()
        self._eof = False
        self.consumed = 0

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._eof:
            try:
                chunk = await anext(self._it)
            except StopAsyncIteration:
                self._eof = True
            else:
                self._buf += chunk

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        await self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.consumed += len(out)
        return out

    async def at_eof(self) -> bool:
        await self._fill(1)
        return not self._buf


def as_source(data: object) -> UploadSource | StreamReader:
    """Adapt what the caller passed: bytes, a path, an ``UploadSource``, or an async
    iterable of bytes (returned as a ``StreamReader``)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return BytesSource(data)
    if isinstance(data, str | os.PathLike):
        return PathSource(data)
    if isinstance(data, UploadSource | StreamReader):
        return data
    if isinstance(data, AsyncIterable):
        return StreamReader(data)
    raise TypeError(f"cannot upload from {type(data).__name__}")
