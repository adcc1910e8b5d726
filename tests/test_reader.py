"""The read path (``b2fs.reader``) on its own, over the local B2 server: how a ranged
download of a run of blocks is handed to the readers waiting on it."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from b2fs.b2 import B2Client
from b2fs.cache.blocks import BlockCache
from b2fs.codec import plain_codecs
from b2fs.emulator.process import LocalServer
from b2fs.reader import ObjectRef, Reader, ReadStream

BLOCK = 64 << 10
BLOCKS = 16


@contextlib.asynccontextmanager
async def run_of_blocks(server: LocalServer, tmp_path: Path, data: bytes, **client: Any
                        ) -> AsyncIterator[tuple[Reader, ObjectRef, BlockCache, trio.Nursery]]:  # fmt: skip
    """A reader (disk cache in tmp_path) with one download started for all of ``data``'s
    blocks in one request, as read-ahead does; its nursery is waited for on exit."""
    async with B2Client(server.key_id, server.key, server.realm, **client) as c:
        bucket = await c.create_bucket(f"reader-{uuid.uuid4().hex[:12]}")
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        version = await c.upload(bucket.bucket_id, "f.bin", str(src))
        cache = BlockCache(str(tmp_path / "cache"), 1 << 30, BLOCK)
        cache.open()
        content, _, _ = plain_codecs()
        reader = Reader(c, content, cache, block_size=BLOCK, memory_cache=64 << 20,
                        max_readahead=BLOCK * BLOCKS, max_request=BLOCK * BLOCKS,
                        concurrency=4)  # fmt: skip
        obj = ObjectRef(version.file_id, len(data), len(data), name="f.bin")
        async with trio.open_nursery() as nursery:
            reader.attach(nursery)
            reader._start(obj, 0, len(data) // BLOCK, keep=True)
            yield reader, obj, cache, nursery


def blocks_on_disk(cache: BlockCache, obj: ObjectRef) -> list[bytes | None]:
    return [cache.get(obj.file_id, i, expected_size=BLOCK) for i in range(BLOCKS)]


def blocks_of(data: bytes) -> list[bytes]:
    return [data[i * BLOCK : (i + 1) * BLOCK] for i in range(BLOCKS)]


async def test_first_block_of_a_run_is_served_before_the_run_ends(
    server: LocalServer, tmp_path: Path
) -> None:
    """A reader waiting on the first block of a 16-block request gets it as soon as its
    bytes are in, not when the whole request is: with downloads throttled to 256 KiB/s,
    the request is still in flight (and its later blocks not yet here) when it returns."""
    data = os.urandom(BLOCK * BLOCKS)
    async with run_of_blocks(server, tmp_path, data, download_limit=256 << 10) as (
        reader, obj, cache, _,
    ):  # fmt: skip
        first = await reader.block(obj, 0)
        assert bytes(first) == data[:BLOCK]
        assert reader.stats()["inflight_blocks"] == BLOCKS  # the run is still downloading
        assert reader.stats()["downloads"] == 1
        last = await reader.block(obj, BLOCKS - 1)
        assert bytes(last) == data[-BLOCK:]
    # the nursery waited for the run to end: one download, every block on disk
    stats = reader.stats()
    assert (stats["downloads"], stats["downloaded_bytes"], stats["inflight_blocks"]) == (
        1, len(data), 0,
    )  # fmt: skip
    assert blocks_on_disk(cache, obj) == blocks_of(data)


async def test_blocks_downloaded_before_a_cancel_still_reach_the_disk_cache(
    server: LocalServer, tmp_path: Path
) -> None:
    """An unmount (the reader's nursery cancelled) right after the last block of a run was
    handed over still lets the run's blocks reach the disk cache: they were paid for."""
    data = os.urandom(BLOCK * BLOCKS)
    async with run_of_blocks(server, tmp_path, data) as (reader, obj, cache, nursery):
        assert bytes(await reader.block(obj, BLOCKS - 1)) == data[-BLOCK:]
        nursery.cancel_scope.cancel()
    assert blocks_on_disk(cache, obj) == blocks_of(data)


async def _read_all(reader: Reader, stream: ReadStream, size: int, step: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += await reader.read(stream, len(out), step)
    return bytes(out)


async def test_cache_admission(server: LocalServer, tmp_path: Path) -> None:
    """``reuse``: the first sequential pass over a large file streams without disk writes and
    leaves a mark (kept across a remount), so the next pass keeps its blocks; a seek keeps
    the block it reads; a small file is kept at once; ``all`` keeps everything."""
    data = os.urandom(BLOCK * BLOCKS)
    small = os.urandom(BLOCK * 2 + 5)
    async with B2Client(server.key_id, server.key, server.realm) as c:
        bucket = await c.create_bucket(f"admit-{uuid.uuid4().hex[:12]}")
        big = [await c.upload_bytes(bucket.bucket_id, f"big{i}", data) for i in range(3)]
        tiny = await c.upload_bytes(bucket.bucket_id, "small", small)
        content, _, _ = plain_codecs()

        async def session(admit: str, reads: list[tuple[ObjectRef, int]]) -> BlockCache:
            """A mount's reader on the cache in tmp_path: a whole sequential pass over each
            version, or (offset > 0) one read at that offset."""
            cache = BlockCache(str(tmp_path / "cache"), 1 << 30, BLOCK)
            cache.open()
            reader = Reader(c, content, cache, block_size=BLOCK, memory_cache=64 << 20,
                            max_readahead=BLOCK * 8, max_request=BLOCK * 4, concurrency=4,
                            admit=admit)  # fmt: skip
            async with trio.open_nursery() as nursery:
                reader.attach(nursery)
                for obj, offset in reads:
                    want = data if obj.plain_size == len(data) else small
                    if offset:  # one read, not at the start
                        got = bytes(await reader.read(ReadStream(obj), offset, 100))
                        assert got == want[offset : offset + 100]
                    else:
                        got = await _read_all(reader, ReadStream(obj), obj.plain_size, 32 << 10)
                        assert got == want
            return cache

        def ref(v: Any, size: int) -> ObjectRef:
            return ObjectRef(v.file_id, size, size)

        first, second, third = (ref(v, len(data)) for v in big)
        cache = await session("reuse", [(first, 0), (ref(tiny, len(small)), 0)])
        assert blocks_on_disk(cache, first) == [None] * BLOCKS  # streamed, not written
        assert cache.seen(first.file_id)
        assert cache.get(tiny.file_id, 2) == small[2 * BLOCK :]  # a small file is kept
        # a remount: the mark is on disk, so the second pass keeps the blocks
        cache = await session("reuse", [(first, 0), (second, 5 * BLOCK)])
        assert blocks_on_disk(cache, first) == blocks_of(data)
        assert cache.get(second.file_id, 5) == data[5 * BLOCK : 6 * BLOCK]  # after a seek
        cache = await session("all", [(third, 0)])
        assert blocks_on_disk(cache, third) == blocks_of(data)
