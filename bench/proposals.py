"""Prototypes of the changes the mount benchmarks recommend, to measure them before anyone
makes them: ``python bench/proposals.py NAME[,NAME...] -- <b2fs arguments>`` runs ``b2fs``
with those patches applied in its own process (``b2fs/`` itself is untouched).

The benchmarks use it through ``-p/--proposals`` (``mount_read.py -p readahead,cacheput``).
Each patch is the smallest change that shows the effect, not finished code: the lead decides
what goes into ``b2fs/`` (see docs/benchmarks.md, "What to change").

- ``readahead``: a sequential stream tops its read-ahead up only when less than half of the
  window is still ahead, and then by whole ``max_request`` runs (today, once the window is
  full, every new block starts a download of one block: ~970 requests per GiB).
- ``cacheput``: block-cache files are written in a worker thread instead of on the trio
  loop (the index stays on the loop).
- ``download``: a ranged download fills one preallocated buffer from httpx's unchunked
  raw stream (today: httpx's 1 MiB re-chunking, a growing bytearray, then ``bytes()``).
- ``noxattr``: ``getxattr`` answers ENOSYS, so the kernel stops asking for
  ``security.capability`` on every write and ACL/SELinux names on every ``ls -l`` (the
  status xattr goes too; the benchmarks then rely on the server's counters).
- ``lazydelete``: the journal deletes a row of a finished upload without an fsync (a row
  lost in a power cut means one upload is done again, nothing is lost).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any


def readahead() -> None:
    from b2fs.reader import Reader, ReadStream

    def plan(self: Reader, stream: ReadStream, first: int, last: int) -> None:
        obj, bs = stream.obj, self.block_size
        sequential = stream.last_block - 1 <= first <= stream.last_block + 1
        new_block = last != stream.last_block
        stream.last_block = last
        if not sequential:
            stream.window = stream.ahead_until = 0
            self._ensure(obj, first, last + 1, demand=True)
            return
        if not new_block and stream.ahead_until > last:
            return
        stream.window = min(max(stream.window * 2, 2 * bs), self.max_readahead)
        lead = (stream.ahead_until - last - 1) * bs
        if stream.ahead_until > last and lead >= stream.window // 2:
            return  # enough is on its way: top up later, by whole requests
        stop = min(last + 1 + stream.window // bs, (obj.plain_size + bs - 1) // bs)
        self._ensure(obj, max(first, stream.ahead_until), stop, demand=False)
        stream.ahead_until = max(stream.ahead_until, stop)

    Reader._plan_readahead = plan  # type: ignore[method-assign]


def cacheput() -> None:
    import trio

    from b2fs.cache.blocks import BlockCache
    from b2fs.reader import Reader, _Fetch

    def write_file(cache: BlockCache, key: Any, data: Any) -> bool:
        path = cache._path(key)
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, path)
            return True
        except OSError:
            return False

    async def put(cache: BlockCache, file_id: str, index: int, data: bytes) -> None:
        if not cache.enabled or len(data) > cache.budget:
            return
        key = cache._key(file_id, index)
        if key in cache._index:
            return
        cache._evict(len(data))
        if await trio.to_thread.run_sync(write_file, cache, key, data):
            if key not in cache._index:
                cache._index[key] = len(data)
                cache.used += len(data)
                cache.stores += 1
            cache._touched.add(key)

    async def run_fetch(self: Reader, obj: Any, first: int, stop: int, fetch: _Fetch) -> None:
        try:
            async with self._limiter:
                spans = [self._block_span(obj, i) for i in range(first, stop)]
                start, end = spans[0][0], spans[-1][1]
                data = await self.client.download_range(obj.file_id, start, end - 1)
                self.downloads += 1
                self.downloaded_bytes += len(data)
            stored = [bytes(data[s - start : e - start]) for s, e in spans]
            for i, block in zip(range(first, stop), stored, strict=True):
                fetch.blocks[i] = await self._decode(obj, i, block)
            fetch.done.set()  # readers go on while the cache files are written
            for i, block in zip(range(first, stop), stored, strict=True):
                await put(self.cache, obj.file_id, i, block)
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            fetch.error = e
            if not isinstance(e, Exception):
                raise
        finally:
            for i in range(first, stop):
                if self._inflight.get((obj.file_id, i)) is fetch:
                    del self._inflight[(obj.file_id, i)]
            fetch.done.set()

    Reader._run_fetch = run_fetch  # type: ignore[method-assign]


def download() -> None:
    import httpx

    from b2fs.b2.downloads import Downloads

    raw = httpx.Response.aiter_raw

    def aiter_raw(self: httpx.Response, chunk_size: int | None = None) -> Any:
        return raw(self, None)  # what the socket gave, no re-chunking copies

    async def download_range(self: Downloads, file_id: str, start: int, end: int) -> memoryview:
        async with self.download_stream(file_id=file_id, range=(start, end)) as s:
            buf = memoryview(bytearray(s.length))
            pos = 0
            async for chunk in s:
                buf[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
            return buf[:pos]

    httpx.Response.aiter_raw = aiter_raw  # type: ignore[method-assign]
    Downloads.download_range = download_range  # type: ignore[method-assign,assignment]


def noxattr() -> None:
    import pyfuse3

    from b2fs.fs.operations import Operations

    async def getxattr(self: Any, inode: int, name: bytes, ctx: Any = None) -> bytes:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    Operations.getxattr = getxattr  # type: ignore[method-assign]


def lazydelete() -> None:
    from b2fs.writeback.journal import Journal

    def delete(self: Journal, row_id: int) -> None:
        self.db.execute("PRAGMA synchronous=OFF")
        try:
            self.db.execute("DELETE FROM pending WHERE id=?", (row_id,))
        finally:
            self.db.execute("PRAGMA synchronous=FULL")

    Journal.delete = delete  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    f.__name__: f for f in (readahead, cacheput, download, noxattr, lazydelete)
}


def main() -> None:
    if len(sys.argv) < 3 or not set(sys.argv[1].split(",")) <= set(PATCHES) | {""}:
        sys.exit(
            f"usage: proposals.py NAME[,NAME...] -- <b2fs arguments>; names: {', '.join(PATCHES)}"
        )
    names, rest = sys.argv[1], sys.argv[2:]
    for name in filter(None, names.split(",")):
        PATCHES[name]()
    from b2fs.cli.main import main as b2fs_main

    sys.exit(b2fs_main(rest[1:] if rest[:1] == ["--"] else rest))


if __name__ == "__main__":
    main()
