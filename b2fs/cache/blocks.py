"""The on-disk block cache: stored object bytes keyed by (fileId, block index).

A B2 file version is immutable and its fileId unique, so a cached block never
goes stale; eviction (least recently used, within a byte budget) is the only
policy.  Blocks hold the object's bytes exactly as downloaded (ciphertext when
the mount is encrypted); the reader decodes them.  Layout::

    CACHE_DIR/blocks-<block size>/<2 hex>/<sha1(fileId) hex>.<block index>
    CACHE_DIR/blocks-<block size>/small.sqlite    blocks up to 64 KiB (b2fs.cache.small)
    CACHE_DIR/blocks-<block size>/<2 hex>/<sha1(fileId) hex>.seen

The index is rebuilt at start from one scan of the directory and the small
blocks' table (sizes, and mtimes as the recency order; a block's mtime is
bumped on its first hit in a session).  A ``.seen`` file (empty) marks a
version whose blocks were read once and not kept (the reader's admission
policy): the next read of it, in this mount or a later one, keeps them; the
newest ``MAX_SEEN`` marks are kept.  Writes go to a temporary name and are
renamed into place, so a crash never leaves a short block behind; the
descriptors of recently read blocks stay open (a random read is one pread).  A cache directory that is full or
unwritable does not fail reads: the block is simply not kept, with a warning.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import trio

from b2fs.cache.small import SMALL_MAX, SmallBlocks

log = logging.getLogger(__name__)

Key = tuple[str, int]
MAX_SEEN = 10_000  # versions remembered as read once (see ``note_seen``)
MAX_FDS = 64  # descriptors of recently read blocks kept open


class BlockCache:
    """Blocks on disk within ``budget`` bytes, least recently used evicted first."""

    def __init__(self, root: str | os.PathLike[str], budget: int, block_size: int,
                 small_max: int = SMALL_MAX) -> None:  # fmt: skip
        self.dir = Path(root) / f"blocks-{block_size}"
        self.small_max = small_max  # blocks up to this size are rows of small.sqlite
        self.budget = budget
        self._index: OrderedDict[Key, int] = OrderedDict()  # key -> size, oldest first
        self._touched: set[Key] = set()
        self._writing: set[Key] = set()  # being written (their bytes count in ``used``)
        self._queued: dict[Key, bytes] = {}  # to be written soon (``hold``): read from here
        self._small: set[Key] = set()  # blocks kept in small.sqlite, not as files
        self.small: SmallBlocks | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()  # digests of versions read once
        self._fds: OrderedDict[Key, int] = OrderedDict()  # open blocks, least recent first
        self.used = 0
        self.enabled = budget > 0
        self._last_warning = 0.0
        self.hits = self.misses = self.stores = self.evictions = 0

    # -- setup ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (0700) and rebuild the index from what is on disk."""
        if not self.enabled:
            return
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.dir, 0o700)
        except OSError as e:
            self._disable(f"cannot use {self.dir}: {e.strerror}")
            return
        for i in range(256):  # every block's directory made once, not at every write
            try:
                (self.dir / f"{i:02x}").mkdir(mode=0o700, exist_ok=True)
            except OSError as e:
                self._disable(f"cannot use {self.dir}: {e.strerror}")
                return
        found: list[tuple[float, Key, int, str]] = []
        seen: list[tuple[float, str]] = []
        for sub in os.scandir(self.dir):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                name = entry.name
                if ".tmp" in name:
                    _unlink(entry.path)  # left by a crash mid-write
                    continue
                digest, _, index = name.partition(".")
                if index == "seen":
                    try:
                        seen.append((entry.stat(follow_symlinks=False).st_mtime, digest))
                    except OSError:
                        pass
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    key = (digest, int(index))
                except (OSError, ValueError):
                    continue
                found.append((st.st_mtime, key, st.st_size, entry.path))
        try:
            self.small = SmallBlocks(self.dir / "small.sqlite")
            for used, key, size in self.small.scan():
                found.append((used, key, size, ""))
                self._small.add(key)
        except (OSError, sqlite3.Error) as e:
            self._disable(f"cannot use {self.dir / 'small.sqlite'}: {e}")
            return
        found.sort()
        for _, key, size, _path in found:
            self._index[key] = size
            self.used += size
        self._evict(0)
        for _, digest in sorted(seen):
            self._seen[digest] = None
        self._trim_seen()
        log.debug("block cache %s: %d blocks, %d bytes", self.dir, len(self._index), self.used)

    def _disable(self, why: str) -> None:
        self.enabled = False
        log.warning("block cache disabled (%s): reads go on, uncached; free the disk or fix the "
                    "directory, then remount", why)  # fmt: skip

    # -- lookups -------------------------------------------------------------------------

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _digest(file_id: str) -> str:
        return hashlib.sha1(file_id.encode()).hexdigest()

    @classmethod
    def _key(cls, file_id: str, index: int) -> Key:
        return (cls._digest(file_id), index)

    def _path(self, key: Key) -> Path:
        return self.dir / key[0][:2] / f"{key[0]}.{key[1]}"

    def get(self, file_id: str, index: int, expected_size: int | None = None) -> bytes | None:
        """The block's bytes, or None when it is not cached (or is unreadable/short)."""
        return self.read_range(file_id, index, 0, None, expected_size)

    def read_range(self, file_id: str, index: int, offset: int, length: int | None,
                   expected_size: int | None = None) -> bytes | None:  # fmt: skip
        """``length`` bytes at ``offset`` of a cached block (all of it for None): a random
        4 KiB read then costs a 4 KiB pread, not a read of the whole block."""
        if not self.enabled:
            return None
        key = self._key(file_id, index)
        if key not in self._index:
            queued = self._queued.get(key)
            if queued is None or (expected_size is not None and len(queued) != expected_size):
                self.misses += 1
                return None
            self.hits += 1
            return queued[offset:] if length is None else queued[offset : offset + length]
        try:
            if key in self._small:
                size = self._index[key]
                data = b""
                if expected_size is None or size == expected_size:
                    found = self.small.read(key, offset, length)  # type: ignore[union-attr]
                    if found is None:
                        raise OSError("gone from small.sqlite")
                    data = found
            else:
                fd = self._fds.get(key)
                if fd is None:
                    fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
                    size = os.fstat(fd).st_size
                    self._fds[key] = fd
                    if len(self._fds) > MAX_FDS:
                        os.close(self._fds.popitem(last=False)[1])
                else:
                    self._fds.move_to_end(key)
                    size = self._index[key]
                if expected_size is None or size == expected_size:
                    n = size - offset if length is None else length
                    data = os.pread(fd, n, offset) if n > 0 else b""
        except (OSError, sqlite3.Error):
            self._forget(key)
            self.misses += 1
            return None
        if expected_size is not None and size != expected_size:
            log.warning(
                "cached block %s has %d bytes, expected %d: dropped, downloading it again",
                self._path(key),
                size,
                expected_size,
            )
            self._forget(key, unlink=True)
            self.misses += 1
            return None
        self._index.move_to_end(key)
        if key not in self._touched:
            self._touched.add(key)
            try:
                if key in self._small:
                    self.small.touch(key)
                else:
                    os.utime(self._path(key))
            except (OSError, sqlite3.Error):
                pass
        self.hits += 1
        return data

    # -- admission -------------------------------------------------------------------------

    def seen(self, file_id: str) -> bool:
        """Was this version read once before without its blocks being kept?"""
        return self.enabled and self._digest(file_id) in self._seen

    def note_seen(self, file_id: str) -> None:
        """Remember (on disk too) that this version was read once without being kept."""
        if not self.enabled:
            return
        digest = self._digest(file_id)
        if digest in self._seen:
            self._seen.move_to_end(digest)
            return
        self._seen[digest] = None
        try:
            os.close(
                os.open(self._seen_path(digest), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            )
        except OSError:
            pass  # remembered for this mount only
        self._trim_seen()

    def _seen_path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.seen"

    def _trim_seen(self) -> None:
        while len(self._seen) > MAX_SEEN:
            _unlink(self._seen_path(self._seen.popitem(last=False)[0]))

    def discard(self, file_id: str, index: int) -> None:
        """Drop a block (it failed to verify: never serve it again)."""
        key = self._key(file_id, index)
        self._queued.pop(key, None)
        self._forget(key, unlink=True)

    def __contains__(self, item: tuple[str, int]) -> bool:
        key = self._key(*item)
        return self.enabled and (key in self._index or key in self._queued)

    # -- stores --------------------------------------------------------------------------

    def put(self, file_id: str, index: int, data: bytes) -> bool:
        """Keep a block; returns False (after a rate-limited warning) when the disk refuses."""
        key = self._reserve(file_id, index, len(data))
        if key is None:
            return self._key(file_id, index) in self._index
        return self._finish(key, len(data), self._write(key, data))

    async def put_async(self, file_id: str, index: int, data: bytes) -> bool:
        """``put`` with the file written in a worker thread: a disk that stalls on dirty
        pages holds up this block only, not every request of the mount."""
        key = self._reserve(file_id, index, len(data))
        if key is None:
            return self._key(file_id, index) in self._index
        try:
            error = await trio.to_thread.run_sync(self._write, key, data)
        except BaseException:
            self._finish(key, len(data), OSError("cancelled"))
            raise
        return self._finish(key, len(data), error)

    def link(self, src_id: str, dst_id: str, index: int) -> bool:
        """Cache block ``index`` of ``dst_id`` as the same bytes as that of ``src_id`` (a
        server-side copy: a hard link, no bytes written); False when the source is not here."""
        if not self.enabled:
            return False
        src, dst = self._key(src_id, index), self._key(dst_id, index)
        queued = self._queued.get(src)
        if queued is not None and src not in self._index:  # its batch not written yet
            return self.put(dst_id, index, queued)
        size = self._index.get(src)
        if size is None or dst in self._index or dst in self._writing:
            return dst in self._index
        if src in self._small:  # a row: copied (a few KiB)
            data = self.small.read(src, 0, None)
            return data is not None and self.put(dst_id, index, data)
        path = self._path(dst)
        try:
            os.link(self._path(src), path)
        except FileExistsError:
            pass
        except OSError:
            return False
        self._evict(size)
        self._index[dst] = size
        self.used += size
        self._touched.add(dst)
        self.stores += 1
        return True

    async def put_from_async(self, file_id: str, index: int, size: int,
                             produce: Callable[[], bytes]) -> bool:  # fmt: skip
        """``put_async`` of ``size`` bytes that ``produce()`` makes in the worker thread too (a
        read of a staging file, an encryption)."""
        key = self._reserve(file_id, index, size)
        if key is None:
            return self._key(file_id, index) in self._index

        def work() -> OSError | None:
            data = produce()
            if len(data) != size:
                return OSError(f"{len(data)} bytes made for a block of {size}")
            return self._write(key, data)

        try:
            error = await trio.to_thread.run_sync(work)
        except BaseException as e:
            self._finish(key, size, OSError(str(e)))
            if isinstance(e, Exception):
                return False
            raise
        return self._finish(key, size, error)

    def hold(self, file_id: str, index: int, data: bytes) -> None:
        """A block ``put_many_async`` will write soon (a batch gathers): reads find it
        meanwhile, in memory."""
        if self.enabled:
            self._queued[self._key(file_id, index)] = data

    async def put_many_async(self, blocks: list[tuple[str, int, bytes]]) -> None:
        """``put`` of many blocks (small ones, a download's run), written by one worker-thread
        call per batch (a thread hop each would cost more than small blocks' writes). A
        batch holds at most a quarter of the budget: blocks being written cannot be
        evicted, so a run larger than the cache goes in turns, each evicting the last."""
        limit = max(self.budget // 4, 1)
        batch: list[tuple[str, int, bytes]] = []
        size = 0
        for block in blocks:
            if batch and size + len(block[2]) > limit:
                await self._put_batch(batch)
                batch, size = [], 0
            batch.append(block)
            size += len(block[2])
        if batch:
            await self._put_batch(batch)
        for file_id, index, _ in blocks:  # written (or refused): the disk answers now
            self._queued.pop(self._key(file_id, index), None)

    async def _put_batch(self, blocks: list[tuple[str, int, bytes]]) -> None:
        todo = [(key, data) for file_id, index, data in blocks
                if (key := self._reserve(file_id, index, len(data))) is not None]  # fmt: skip
        if not todo:
            return
        try:
            errors = await trio.to_thread.run_sync(lambda: [self._write(k, d) for k, d in todo])
        except BaseException:
            for key, data in todo:
                self._finish(key, len(data), OSError("cancelled"))
            raise
        for (key, data), error in zip(todo, errors, strict=True):
            self._finish(key, len(data), error)

    def _reserve(self, file_id: str, index: int, size: int) -> Key | None:
        """Make room for a new block; None when there is nothing to write."""
        if not self.enabled or size > self.budget:
            return None
        key = self._key(file_id, index)
        if key in self._index:
            self._index.move_to_end(key)
            return None
        if key in self._writing:
            return None
        self._evict(size)
        self._writing.add(key)
        self.used += size
        return key

    def _write(self, key: Key, data: bytes) -> OSError | None:
        """The file write (atomic: a temporary name, then a rename), or the row of a small
        block. Thread-safe."""
        if len(data) <= self.small_max:
            try:
                self.small.put(key, data)
            except sqlite3.Error as e:
                return OSError(errno.EIO, f"small.sqlite: {e}")
            self._small.add(key)
            return None
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError as e:
            _unlink(tmp)
            return e
        return None

    def _finish(self, key: Key, size: int, error: OSError | None) -> bool:
        self._writing.discard(key)
        if error is not None:
            self.used -= size
            now = time.monotonic()
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("block cache: cannot store a block in %s (%s): reading uncached",
                            self.dir, error.strerror or error)  # fmt: skip
            return False
        self._index[key] = size
        self._touched.add(key)
        self.stores += 1
        return True

    def _evict(self, incoming: int) -> None:
        while self._index and self.used + incoming > self.budget:
            key, _ = next(iter(self._index.items()))
            self._forget(key, unlink=True)
            self.evictions += 1

    def _forget(self, key: Key, unlink: bool = False) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)
        size = self._index.pop(key, None)
        if size is not None:
            self.used -= size
        self._touched.discard(key)
        if key in self._small:
            self._small.discard(key)
            if unlink:
                try:
                    self.small.delete(key)
                except sqlite3.Error:
                    pass
        elif unlink:
            _unlink(self._path(key))

    def stats(self) -> dict[str, int | bool]:
        return {
            "blocks": len(self._index),
            "bytes": self.used,
            "budget": self.budget,
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "evictions": self.evictions,
            "enabled": self.enabled,
        }


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
