"""The read path: plaintext byte ranges of immutable B2 file versions, through the caches.

A file version is read in fixed-size plaintext blocks (``block_size``).  A
block comes from, in order: decoded blocks in memory, the on-disk block cache
(object bytes, decoded on each hit), a download already in flight for it (one
download per block however many readers want it), or a new ranged download.
Downloads cover runs of consecutive missing blocks (up to ``max_request``
bytes each), so a sequential reader costs few class B calls, and each block of
a run goes to its readers as soon as its bytes are in; each stream's
read-ahead window doubles while it reads sequentially and drops to nothing on
a seek, so random readers fetch only the blocks they touch.

Neighbours: the vfs opens a ``ReadStream`` per file handle; ``b2fs.codec``
maps plaintext blocks to stored byte ranges and decodes them; ``b2fs.b2``
does the HTTP.  Errors: ``Stale`` when the version has vanished from B2,
``FsError`` (EIO) when a download fails after the client's retries or a block
fails to decode; both are logged with the file's name.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cachetools
import trio

from b2fs.cache.blocks import BlockCache
from b2fs.posix.errors import FsError, Stale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectRef:
    """One immutable B2 file version, as the reader needs it."""

    file_id: str
    plain_size: int
    stored_size: int
    file_info: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    name: str = ""  # for log lines only


@dataclass
class ReadStream:
    """Per-handle read state: which version, and how far ahead to fetch."""

    obj: ObjectRef
    last_block: int = -2
    window: int = 0  # read-ahead in bytes
    ahead_until: int = 0  # blocks below this index are already cached or requested


class _Fetch:
    """A download in flight for a run of blocks. Each block is handed over as soon as its
    bytes have arrived (a reader of the first block does not wait for the whole run):
    waiters block on ``ready[index]``, then find the block or the error."""

    __slots__ = ("ready", "error", "blocks", "errors")

    def __init__(self, first: int, stop: int) -> None:
        self.ready = {i: trio.Event() for i in range(first, stop)}
        self.error: BaseException | None = None  # for every block not delivered
        self.blocks: dict[int, bytes] = {}  # decoded, held while waiters need them
        self.errors: dict[int, BaseException] = {}  # blocks that failed to decode

    def deliver(self, index: int) -> None:
        self.ready[index].set()


class Reader:
    """Reads plaintext ranges of B2 file versions for every open handle of a mount."""

    def __init__(self, client: Any, codec: Any, cache: BlockCache, *, block_size: int,
                 memory_cache: int, max_readahead: int, max_request: int,
                 concurrency: int) -> None:  # fmt: skip
        self.client = client
        self.codec = codec
        self.cache = cache
        self.block_size = block_size
        self.max_readahead = max_readahead
        self.request_blocks = max(1, max_request // block_size)
        self._memory: cachetools.LRUCache[tuple[str, int], bytes] = cachetools.LRUCache(
            maxsize=max(memory_cache, block_size), getsizeof=len
        )
        self._inflight: dict[tuple[str, int], _Fetch] = {}
        self._decryptors: OrderedDict[str, Any] = OrderedDict()
        self._limiter = trio.CapacityLimiter(concurrency)
        self._nursery: trio.Nursery | None = None
        self.downloads = 0
        self.downloaded_bytes = 0
        self.served: Counter[str] = Counter()  # bytes returned by read(), by where they came from

    def attach(self, nursery: trio.Nursery) -> None:
        """Background downloads (read-ahead) run in this nursery."""
        self._nursery = nursery

    # -- public --------------------------------------------------------------------------

    async def read(self, stream: ReadStream, offset: int, size: int) -> bytes | memoryview:
        obj = stream.obj
        end = min(offset + size, obj.plain_size)
        if offset >= end:
            return b""
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        self._plan_readahead(stream, first, last)
        if first == last:
            start = offset - first * bs
            if stream.window == 0 and not self.codec.encrypted:
                # A random read of a block on disk: just its bytes, not the whole block.
                key = (obj.file_id, first)
                if key not in self._memory and key not in self._inflight:
                    span = self._block_span(obj, first)
                    data = self.cache.read_range(
                        obj.file_id, first, start, end - offset, span[1] - span[0]
                    )
                    if data is not None:
                        self.served["disk"] += len(data)
                        return data
            block, source = await self._block(obj, first)
            self.served[source] += end - offset
            return memoryview(block)[start : start + (end - offset)]  # pyfuse3 takes any buffer
        parts = []
        for index in range(first, last + 1):
            block, source = await self._block(obj, index)
            lo = max(offset - index * bs, 0)
            hi = min(end - index * bs, len(block))
            parts.append(block[lo:hi])
            self.served[source] += hi - lo
        return b"".join(parts)

    def remember(self, file_id: str, index: int, plain: bytes) -> None:
        """A block's plaintext known without reading it (just uploaded): kept in memory."""
        self._memory[(file_id, index)] = plain

    def forget_object(self, file_id: str) -> None:
        """Drop decoded state of a version (its cached bytes stay valid)."""
        self._decryptors.pop(file_id, None)

    # -- blocks --------------------------------------------------------------------------

    def _block_span(self, obj: ObjectRef, index: int) -> tuple[int, int]:
        return self.stored_span(obj.plain_size, index)

    def stored_span(self, plain_size: int, index: int) -> tuple[int, int]:
        """The stored byte range [start, end) of block ``index`` of a version of that size."""
        bs = self.block_size
        return self.codec.stored_range(index * bs, min((index + 1) * bs, plain_size), plain_size)

    async def block(self, obj: ObjectRef, index: int) -> bytes:
        """The plaintext of one block."""
        return (await self._block(obj, index))[0]

    async def _block(self, obj: ObjectRef, index: int) -> tuple[bytes, str]:
        """The plaintext of one block, and where it came from: memory, disk or download."""
        key = (obj.file_id, index)
        data = self._memory.get(key)
        if data is not None:
            return data, "memory"
        fetch = self._inflight.get(key)
        if fetch is None:
            stored = self._cached(obj, index)
            if stored is not None:
                return await self._decode(obj, index, stored), "disk"
            fetch = self._start(obj, index, index + 1)
        await fetch.ready[index].wait()
        data = fetch.blocks.get(index)
        if data is None:
            error = fetch.errors.get(index) or fetch.error
            raise _as_fs_error(
                error or FsError("download ended without the block", plain_names=False), obj
            )
        return data, "download"

    def _cached(self, obj: ObjectRef, index: int) -> bytes | None:
        s, e = self._block_span(obj, index)
        return self.cache.get(obj.file_id, index, expected_size=e - s)

    def _start(self, obj: ObjectRef, first: int, stop: int) -> _Fetch:
        """Start one download for blocks [first, stop) and register it for each block."""
        fetch = _Fetch(first, stop)
        if self._nursery is None:
            raise RuntimeError("Reader.attach() was not called")
        self._nursery.start_soon(self._run_fetch, obj, first, stop, fetch)
        for i in range(first, stop):
            self._inflight[(obj.file_id, i)] = fetch
        return fetch

    async def _run_fetch(self, obj: ObjectRef, first: int, stop: int, fetch: _Fetch) -> None:
        verified: list[tuple[int, bytearray]] = []
        spans = [self._block_span(obj, i) for i in range(first, stop)]
        start, end = spans[0][0], spans[-1][1]
        received = 0
        try:
            # the header first: its own download would need a second token of the limiter
            decryptor = await self._decryptor(obj) if self.codec.encrypted else None
            log.debug("%s: downloading blocks %d-%d (bytes %d-%d)", obj.name, first, stop - 1,
                      start, end - 1)  # fmt: skip
            async with (
                self._limiter,
                self.client.download_stream(file_id=obj.file_id, range=(start, end - 1)) as stream,
            ):
                self.downloads += 1
                index, filled = first, 0
                buf = bytearray(spans[0][1] - spans[0][0])
                async for chunk in stream:
                    received += len(chunk)
                    view = memoryview(chunk)
                    while view and index < stop:
                        n = min(len(view), len(buf) - filled)
                        buf[filled : filled + n] = view[:n]
                        view, filled = view[n:], filled + n
                        if filled < len(buf):
                            break
                        await self._finish_block(obj, index, buf, fetch, verified, decryptor)
                        index, filled = index + 1, 0
                        if index < stop:
                            s, e = spans[index - first]
                            buf = bytearray(e - s)
                self.downloaded_bytes += received
            if received != end - start:
                raise FsError(
                    f"{obj.name}: download returned {received} bytes for a range of {end - start}",
                    plain_names=False,
                )
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            fetch.error = e
            if not isinstance(e, Exception):
                raise
        finally:
            for i in range(first, stop):
                if self._inflight.get((obj.file_id, i)) is fetch:
                    del self._inflight[(obj.file_id, i)]
                fetch.deliver(i)
        # Readers have their blocks; now keep them on disk (only what decoded: a block that
        # failed to verify is never cached). Shielded: an unmount right after a read waits for
        # these few local writes rather than throwing away blocks it has paid to download.
        with trio.CancelScope(shield=True):
            for i, stored in verified:
                await self.cache.put_async(obj.file_id, i, stored)

    async def _finish_block(self, obj: ObjectRef, index: int, stored: bytearray,
                            fetch: _Fetch, verified: list[tuple[int, bytearray]],
                            decryptor: Any) -> None:  # fmt: skip
        """A block's bytes are all here: decode it and wake its readers."""
        try:
            fetch.blocks[index] = await self._decode(obj, index, stored, decryptor)
        except FsError as err:
            fetch.errors[index] = err
            log.debug("block %d of %s failed to decode: %s", index, obj.name, err)
        else:
            verified.append((index, stored))
        fetch.deliver(index)  # still in flight (for lookups) until the whole run is done

    async def _decode(self, obj: ObjectRef, index: int, stored: bytes,
                      decryptor: Any = None) -> bytes:  # fmt: skip
        if not self.codec.encrypted:
            plain = stored
        else:
            decryptor = decryptor or await self._decryptor(obj)
            try:
                plain = decryptor.decode(index * self.block_size, stored, obj.plain_size)
            except Exception as e:
                self.cache.discard(obj.file_id, index)
                log.error("%s: block %d failed to decrypt (%s: %s): tampered or corrupt object; "
                          "the read gets EIO", obj.name, index, type(e).__name__, e)  # fmt: skip
                raise FsError(
                    f"{obj.name}: block {index} failed to decrypt", plain_names=False
                ) from e
        self._memory[(obj.file_id, index)] = plain
        return plain

    async def _decryptor(self, obj: ObjectRef) -> Any:
        dec = self._decryptors.get(obj.file_id)
        if dec is not None:
            self._decryptors.move_to_end(obj.file_id)
            return dec
        header = self.codec.header_from_file_info(obj.file_info)
        if header is None:
            size = self.codec.header_size()
            async with self._limiter:
                header = await self.client.download_range(obj.file_id, 0, size - 1)
        try:
            dec = self.codec.decryptor(header)
        except Exception as e:
            log.error("%s: header refused (%s: %s); reads get EIO", obj.name,
                      type(e).__name__, e)  # fmt: skip
            raise FsError(f"{obj.name}: bad encryption header", plain_names=False) from e
        self._decryptors[obj.file_id] = dec
        if len(self._decryptors) > 1024:
            self._decryptors.popitem(last=False)
        return dec

    # -- read-ahead ----------------------------------------------------------------------

    def _plan_readahead(self, stream: ReadStream, first: int, last: int) -> None:
        """Grow or reset the stream's window and start downloads for what it covers."""
        obj = stream.obj
        bs = self.block_size
        sequential = stream.last_block - 1 <= first <= stream.last_block + 1
        new_block = last != stream.last_block
        stream.last_block = last
        if not sequential:
            stream.window = 0
            stream.ahead_until = 0
            self._ensure(obj, first, last + 1, demand=True)
            return
        if not new_block and stream.ahead_until > last:
            return
        stream.window = min(max(stream.window * 2, 2 * bs), self.max_readahead)
        ahead = (stream.ahead_until - last - 1) * bs
        if ahead >= stream.window // 2:
            return  # enough on its way: top up later, by whole requests, not a block at a time
        stop = min(last + 1 + stream.window // bs, (obj.plain_size + bs - 1) // bs)
        begin = max(first, stream.ahead_until)
        self._ensure(obj, begin, stop, demand=False)
        stream.ahead_until = max(stream.ahead_until, stop)

    def _ensure(self, obj: ObjectRef, first: int, stop: int, demand: bool) -> None:
        """Start downloads for the blocks in [first, stop) that are nowhere yet, in runs."""
        i = first
        while i < stop:
            if self._have(obj, i):
                i += 1
                continue
            j = i + 1
            while j < stop and j - i < self.request_blocks and not self._have(obj, j):
                j += 1
            self._start(obj, i, j)
            i = j

    def _have(self, obj: ObjectRef, index: int) -> bool:
        key = (obj.file_id, index)
        return key in self._memory or key in self._inflight or key in self.cache

    def stats(self) -> dict[str, Any]:
        return {"downloads": self.downloads, "downloaded_bytes": self.downloaded_bytes,
                "inflight_blocks": len(self._inflight), "memory_bytes": self._memory.currsize,
                "served": {s: self.served[s] for s in ("memory", "disk", "download")}}  # fmt: skip


def _as_fs_error(error: BaseException, obj: ObjectRef) -> FsError:
    if isinstance(error, FsError):
        return error
    code = getattr(error, "code", None)
    if code in ("not_found", "file_not_present", "no_such_file"):
        return Stale(f"{obj.name}: this version is gone from B2 ({code})", plain_names=False)
    err = FsError(
        f"{obj.name}: download failed: {type(error).__name__}: {error}", plain_names=False
    )
    err.__cause__ = error
    return err
