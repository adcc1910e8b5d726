"""Write-back: pending versions shown in the mount at once, uploaded in the background.

The manager keeps every ``DirtyFile`` of the mount by path (the overlay the
namespace lays over the remote listings, including the directories they
imply), journals them before ``close``/``fsync`` return, and uploads each
one ``writeback_delay`` seconds after its last writer closed it (sooner
for ``fsync``), a bounded number at a time.  A failed upload is retried with
backoff, for ever, and stays in the journal and in ``b2fs status`` with its
last error.  A mutation of a file whose upload is running cancels that upload
first (superseding it; one whose request B2 may have received whole lands
first), so the object that lands last is always the latest content; an unlink
or rename of it waits for that upload instead (``holding``).  At start the
journal is replayed; at unmount the queue is drained for up to
``unmount_wait`` seconds, with progress in the log.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import heapq
import itertools
import logging
import math
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from b2fs.codec.errors import CodecError
from b2fs.posix.entries import Entry, Kind, Remote
from b2fs.posix.errors import FsError
from b2fs.posix.fileinfo import Attrs, read_info
from b2fs.posix.paths import split
from b2fs.reader import Reader
from b2fs.writeback.dirty import CONTENTLESS, DirtyFile, NoContent
from b2fs.writeback.inline import INLINE_MAX, InlineBudget, InlineStaging
from b2fs.writeback.journal import Journal, PendingRecord
from b2fs.writeback.upload import Uploader

log = logging.getLogger("b2fs.writeback")

MAX_BACKOFF = 300.0
SYNC_INTERVAL = 5.0  # closed changes reach the disk (survive a power cut) within this, as ext4's
PACE_QUIET = 0.2  # seconds without a write after which uploads run at full concurrency


class UploadFailed(FsError):
    """fsync could not get the data into B2 (it stays queued and will be retried): EIO."""


class WriteBack:
    def __init__(self, *, journal: Journal, staging_dir: str, staging_codec: Any, reader: Reader,
                 uploader: Uploader, block_size: int, delay: float, concurrency: int,
                 sync_close: bool = False) -> None:  # fmt: skip
        self.journal = journal
        self.sync_close = sync_close  # close fsyncs (survives a power cut), not only journals
        self.staging_dir = staging_dir
        self.staging_codec = staging_codec
        self.reader = reader
        self.uploader = uploader
        self.block_size = block_size
        self.delay = delay
        # Set by the vfs: patch listings after an upload; remove a name (hide or delete).
        self.on_uploaded: Callable[[DirtyFile, Any], None] = lambda d, version: None
        self.remove_name: Callable[[str], Awaitable[None]] | None = None
        # Set by the vfs when the key may delete: drop a version a new one replaces (markers).
        self.delete_version: Callable[[str, str], Awaitable[None]] | None = None
        self.files: dict[str, DirtyFile] = {}
        self._by_parent: dict[str, dict[str, DirtyFile]] = {}
        self._implied: Counter[str] = Counter()  # directories with dirty files below them
        self.concurrency = concurrency
        self._limiter = trio.CapacityLimiter(concurrency)  # paced: see _pace
        self._forced_limiter = trio.CapacityLimiter(concurrency)
        self.active_at = -math.inf  # when a program last changed something (vfs: active())
        self._wake = trio.Event()
        self._next_due = -math.inf  # what the scheduler sleeps until (a push before it wakes it)
        self._queue: list[tuple[float, int, DirtyFile]] = []  # (due, serial, file): a heap
        self._serials = itertools.count()  # heap tie-breaks and staging file names
        self.inline = InlineBudget()  # memory of the files staged inline
        self._synced_seq = 0  # journal rows written up to here are on disk (the syncer)
        self._to_cache: list[tuple[str, int, bytes]] = []  # small blocks for _cache_writer
        self._to_unlink: list[str] = []  # staging files done with, for _cache_writer
        self._to_close: list[int] = []
        self._cache_wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.uploads_done = 0
        self.uploads_failed = 0

    # -- overlay (b2fs.vfs.namespace.Overlay) --------------------------------------------

    def entry(self, path: str) -> Entry | None:
        d = self.files.get(path)
        if d is not None:
            return self._entry(d)
        if self._implied.get(path):
            return Entry(split(path)[1], Kind.DIR, "")
        return None

    def children(self, dir_path: str) -> dict[str, Entry]:
        out = {name: self._entry(d) for name, d in self._by_parent.get(dir_path, {}).items()}
        prefix = dir_path + "/" if dir_path else ""
        for path, count in self._implied.items():
            if count and path.startswith(prefix) and "/" not in path[len(prefix) :] and path:
                name = path[len(prefix) :]
                out.setdefault(name, Entry(name, Kind.DIR, ""))
        return out

    def pending_in(self, dir_path: str) -> list[DirtyFile]:
        """The directory's own pending marker and its pending entries (what fsyncdir waits for)."""
        out = list(self._by_parent.get(dir_path, {}).values())
        own = self.files.get(dir_path)
        if own is not None and own.kind is Kind.DIR:
            out.append(own)
        return out

    def _entry(self, d: DirtyFile) -> Entry:
        return d.as_entry(split(d.path)[1])

    def get(self, path: str) -> DirtyFile | None:
        return self.files.get(path)

    def reader_done(self, d: DirtyFile) -> None:
        """A read handle closed: a clean version may now leave the overlay."""
        self.handle_closed(d)
        self._finalize_if_idle(d)

    def _add(self, d: DirtyFile) -> None:
        self.files[d.path] = d
        if not d.path:  # the mount root's marker: no parent to show it in
            return
        parent, name = split(d.path)
        self._by_parent.setdefault(parent, {})[name] = d
        while parent:
            self._implied[parent] += 1
            parent = split(parent)[0]

    def _remove(self, d: DirtyFile) -> None:
        if self.files.get(d.path) is not d:
            return
        del self.files[d.path]
        if not d.path:
            return
        parent, name = split(d.path)
        siblings = self._by_parent.get(parent)
        if siblings is not None:
            siblings.pop(name, None)
            if not siblings:
                del self._by_parent[parent]
        while parent:
            self._implied[parent] -= 1
            if self._implied[parent] <= 0:
                del self._implied[parent]
            parent = split(parent)[0]

    # -- creating and changing dirty files -----------------------------------------------

    def new(self, path: str, stored: str, long_info: dict[str, str] | None, attrs: Attrs,
            base: Entry | None = None) -> DirtyFile:  # fmt: skip
        """A new pending version at ``path``: empty, or starting as ``base`` (a remote entry).
        A directory's marker (``attrs.kind`` DIR) is kept at the directory's own path."""
        record = PendingRecord(path=path, stored=stored, staging="", size=0, mtime_ns=attrs.mtime_ns,
                               kind=attrs.kind.name.lower(), mode=attrs.mode, uid=attrs.uid, gid=attrs.gid,
                               atime_ns=attrs.atime_ns, ctime_ns=attrs.ctime_ns, rdev=attrs.rdev,
                               long_info=long_info)  # fmt: skip
        if base is not None and base.remote is not None:
            record.size = base.size
            record.base_file_id = base.remote.file_id
            record.base_stored_size = base.remote.stored_size
            record.base_plain_size = base.size
            record.base_limit = base.size
            record.base_info = dict(base.remote.file_info)
            record.base_type = base.remote.content_type
        fd = -1
        staging: Any
        if record.kind in CONTENTLESS:
            record.staging = ""
            staging = NoContent()
        elif record.size <= INLINE_MAX and self.inline.used + record.size <= self.inline.limit:
            record.staging = ""  # bytes in memory and in the journal row
            staging = InlineStaging(self.inline, bytes(record.size))
        else:
            fd, staging = self._staging_file(record)
        d = DirtyFile(record, staging, fd, self.reader, self.block_size)
        d.spill = self._spill
        old = self.files.get(path)
        if old is not None:
            self._remove(old)
        self._add(d)
        return d

    def _staging_file(self, record: PendingRecord) -> tuple[int, Any]:
        """A new staging file for ``record`` (named by it), of its size."""
        record.staging = f"{os.getpid()}-{trio.current_time():.6f}-{next(self._serials)}".replace(
            ".", "_"
        )
        fd = os.open(os.path.join(self.staging_dir, record.staging),
                     os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)  # fmt: skip
        try:
            staging = self.staging_codec.create(fd)
            if record.size:
                staging.truncate(record.size)
        except BaseException:
            os.close(fd)
            raise
        return fd, staging

    def _spill(self, d: DirtyFile) -> None:
        """An inline file outgrows memory: its bytes move to a staging file (the next journal
        write of it names the file instead of carrying the bytes)."""
        inline = d.staging
        fd, staging = self._staging_file(d.record)
        try:
            data = inline.content()
            if data:
                staging.pwrite(0, data)
        except BaseException:
            os.close(fd)
            raise
        d.staging, d.fd = staging, fd
        inline.release()
        d.synced_generation = -1  # the file's bytes are not on disk yet

    async def supersede(self, d: DirtyFile) -> None:
        """Stop a running upload of ``d`` before it changes (the next upload replaces it).
        One whose request B2 may have received whole is let land instead (a short wait for
        the answer): cancelled, it would land all the same, unseen, maybe after the file
        has left that name (it would come back)."""
        while d.uploading is not None:
            progress = self.uploader.progress.get(d)
            if progress is not None and progress.may_land():
                await d.outcome.wait()
                continue
            scope = d.uploading
            scope.cancel()
            await trio.sleep(0)
            while d.uploading is scope:
                await trio.sleep(0.005)
            await self.uploader.abandon(d)

    @contextlib.asynccontextmanager
    async def holding(self, files: list[DirtyFile]) -> AsyncIterator[None]:
        """For a change of the names of ``files`` (unlink, rename): their running uploads end
        first, and no upload of them starts until it is done.  Not cancelled: a request B2
        has received may land all the same, at the old name, after the change has looked
        (the name would come back; a replaced file's content would win over the new one).
        An upload that lands meanwhile may take its file out of the overlay, as usual:
        callers look again."""
        for d in files:
            d.holds += 1
        try:
            for d in files:
                while d.uploading is not None:
                    await d.outcome.wait()  # set when this attempt ends, landed or failed
            yield
        finally:
            for d in files:
                d.holds -= 1
                if d.holds == 0 and not d.deleted and self.files.get(d.path) is d:
                    self._push(d, d.due)  # what fell due meanwhile is considered now

    def journal_now(self, d: DirtyFile) -> None:
        """Journal the current content: it survives the mount process dying (and, with
        ``sync_close``, the machine: staging fsynced, row committed with a WAL sync)."""
        if d.journaled_generation == d.generation and d.row_id is not None:
            return
        if self.sync_close:
            d.fsync_staging()
            d.synced_generation = d.generation
        self._put(d, synced=self.sync_close)
        d.journaled_generation = d.generation

    def _put(self, d: DirtyFile, durable: bool | None = True, synced: bool = False) -> None:
        """Write ``d``'s journal row (its inline bytes only when they changed)."""
        content, changes = d.row_content()
        d.row_id = self.journal.put(d.row_id, d.sync_record(synced), content, durable)
        d.journaled_content = changes

    async def journal_async(self, d: DirtyFile) -> None:
        """What ``close`` waits for: ``journal_now``; with ``sync_close`` the fsync and the
        commit run in a worker thread, so the loop keeps answering other requests meanwhile."""
        if not self.sync_close:
            self.journal_now(d)
            return
        async with d.journal_lock:
            if d.journaled_generation == d.generation and d.row_id is not None:
                return
            generation = d.generation
            content, changes = d.row_content()
            row = self.journal.encode(d.sync_record(synced=True), content)
            fd, row_id = d.fd, d.row_id

            def persist() -> int:
                if fd >= 0:
                    os.fsync(fd)
                return self.journal.put_encoded(row_id, row)

            row_id = await trio.to_thread.run_sync(persist)
            if d.dropped:  # unlinked meanwhile: the row must go too
                self.journal.delete(row_id)
                return
            d.row_id = row_id
            d.journaled_content = changes
            d.journaled_generation = max(d.journaled_generation, generation)
            d.synced_generation = max(d.synced_generation, generation)

    async def _syncer(self) -> None:
        """Every few seconds, make what was journaled since survive a power cut too."""
        while True:
            await trio.sleep(SYNC_INTERVAL)
            if self.journal.last_seq > self._synced_seq:
                await self.sync()

    async def sync(self) -> None:
        """fsync the staging files (one syncfs; in a worker thread, on duplicated
        descriptors), then mark every journal row written so far as synced with one WAL-synced
        commit (``Journal.mark_synced``)."""
        seq = self.journal.last_seq
        todo = [(d, d.generation) for d in self.files.values()
                if d.row_id is not None and d.journaled_generation == d.generation]  # fmt: skip
        fds = [os.dup(d.fd) for d, _ in todo if d.fd >= 0]

        def persist() -> None:
            try:
                if fds and not _syncfs(fds[0]):  # one syncfs for the staging disk, else fsyncs
                    for fd in fds:
                        os.fsync(fd)
                self.journal.mark_synced(seq)
            finally:
                for fd in fds:
                    os.close(fd)

        try:
            await trio.to_thread.run_sync(persist)
        except OSError as e:
            log.warning("journal: syncing pending files to disk failed (%s); retrying in %.0fs",
                        e, SYNC_INTERVAL)  # fmt: skip
            return
        self._synced_seq = seq
        for d, generation in todo:
            if d.generation == generation:
                d.synced_generation = generation

    def schedule(self, d: DirtyFile, delay: float | None = None) -> None:
        self._push(d, trio.current_time() + (self.delay if delay is None else delay))

    def _push(self, d: DirtyFile, due: float) -> None:
        d.due = due
        heapq.heappush(self._queue, (due, next(self._serials), d))
        if due < self._next_due:  # sooner than the scheduler sleeps for
            self._next_due = due
            self._wake.set()

    def move(self, d: DirtyFile, path: str, stored: str, long_info: dict[str, str] | None) -> None:
        """Re-point a pending version to a new name (a rename before upload costs no call)."""
        self.move_many([(d, path, stored, long_info)])

    def move_many(self, moves: list[tuple[DirtyFile, str, str, dict[str, str] | None]]) -> None:
        """Re-point several pending versions at once (they may swap names: an exchange)."""
        for d, *_ in moves:
            self._remove(d)
        for d, path, stored, long_info in moves:
            d.record.path = path
            d.record.stored = stored
            d.record.long_info = long_info
            d.touch()
            self._add(d)
        for d, *_ in moves:
            if d.row_id is not None:
                self.journal_now(d)

    async def discard(self, d: DirtyFile) -> None:
        """Forget a pending version (unlinked, or replaced by a rename)."""
        await self.supersede(d)
        d.deleted = True
        self._remove(d)
        self._drop_local(d)

    def _drop_local(self, d: DirtyFile) -> None:
        if d.dropped:  # its upload landed and it left the overlay while a discard waited
            return
        if d.row_id is not None:
            try:
                self.journal.delete(d.row_id)
            except OSError as e:  # a stale row only makes the next mount upload it again
                log.warning(
                    "journal: cannot forget %s (%s); the next mount uploads it again", d.shown, e
                )
            d.row_id = None
        if d.record.staging:
            self._to_unlink.append(os.path.join(self.staging_dir, d.record.staging))
            self._cache_wake.set()
        d.dropped = True
        self.handle_closed(d)

    def closed(self, d: DirtyFile) -> None:
        """Its last writer closed it (journaled): upload it after the delay, or, when B2 holds
        this content already (fsync did it), let it go now."""
        if d.uploaded_generation == d.generation:
            self._finalize_if_idle(d)
        else:
            self.schedule(d)

    def handle_closed(self, d: DirtyFile) -> None:
        """A handle on ``d`` closed: an unlinked version's staging file goes with its last one
        (until then its handles keep reading and writing it, as POSIX wants)."""
        if d.dropped and d.writers == 0 and d.readers == 0:
            fd = d.close()
            if fd >= 0:
                self._to_close.append(fd)
                self._cache_wake.set()

    # -- uploading -----------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._recover()
        await self._cancel_orphans()
        nursery.start_soon(self._scheduler)
        nursery.start_soon(self._cache_writer)
        nursery.start_soon(self._pace)
        if not self.sync_close:
            nursery.start_soon(self._syncer)

    async def _cancel_orphans(self) -> None:
        """Cancel unfinished large files this journal started and no longer needs."""
        wanted = {d.record.large["file_id"] for d in self.files.values() if d.record.large}
        client = self.uploader.client
        orphans = []
        async for f in client.list_unfinished_large_files(self.uploader.bucket_id):
            if (f.file_info or {}).get(
                "b2fs-journal"
            ) == self.journal.id and f.file_id not in wanted:
                orphans.append(f)
        for f in orphans:
            log.info(
                "cancelling unfinished large file %s (%s) left by a crash", f.file_name, f.file_id
            )
            await self.uploader.cancel_large(f.file_id)

    async def _scheduler(self) -> None:
        """Start uploads as they fall due: a heap of due times, so a queue of thousands of
        small files costs a pop per file, not a scan of the queue per event."""
        while True:
            now = trio.current_time()
            while self._queue and self._queue[0][0] <= now:
                due, _, d = heapq.heappop(self._queue)
                if due == d.due and self.files.get(d.path) is d:
                    self._consider(d)
            self._next_due = self._queue[0][0] if self._queue else math.inf
            self._wake = trio.Event()
            with trio.move_on_at(self._next_due):
                await self._wake.wait()

    def _consider(self, d: DirtyFile) -> None:
        if d.holds:  # its name is changing: the end of the change pushes it again
            return
        if d.uploading is not None:  # its end schedules it again if it changed meanwhile
            return
        if d.uploaded_generation == d.generation:
            self._finalize_if_idle(d)
            return
        if d.writers and not d.forced:  # the last close schedules it
            return
        d.uploading = trio.CancelScope()
        assert self._nursery is not None
        self._nursery.start_soon(self._upload, d, d.uploading)

    def _finalize_if_idle(self, d: DirtyFile) -> None:
        """A version B2 holds, no longer open: it leaves the overlay and the journal."""
        if (self.files.get(d.path) is d and d.uploading is None and d.writers == 0 and d.readers == 0
                and d.holds == 0 and d.uploaded_generation == d.generation):  # fmt: skip
            self._remove(d)
            self._drop_local(d)

    async def _upload(self, d: DirtyFile, scope: trio.CancelScope) -> None:
        generation = d.generation
        version = None
        error: Exception | None = None
        with scope:
            # fsync and unmount wait for theirs: not paced behind a program's writes
            async with self._forced_limiter if d.forced else self._limiter:
                try:
                    self.journal_now(d)
                    version = await self.uploader.upload(d, save=lambda r: self._put(d, False))
                    if d.generation == generation:
                        await self._keep_in_cache(d, version)
                except Exception as e:  # retried with backoff; the journal keeps it
                    error = e
        if d.uploading is scope:
            d.uploading = None
        if scope.cancelled_caught or d.deleted:
            self._signal(d)
            return
        if error is not None:
            d.record.attempts += 1
            d.record.last_error = f"{type(error).__name__}: {error}"
            self.uploads_failed += 1
            backoff = min(MAX_BACKOFF, 2.0 ** min(d.record.attempts, 9))
            if d.row_id is not None:
                self._save_quietly(d)
            log.warning("upload of %s failed (attempt %d, retrying in %.0fs): %s",
                        d.shown, d.record.attempts, backoff, d.record.last_error)  # fmt: skip
            self._push(d, trio.current_time() + backoff)
            d.failure_count += 1
            self._signal(d)
            return
        self.uploads_done += 1
        d.record.attempts = 0
        d.record.last_error = None
        d.uploaded_generation = generation
        d.uploaded_file_id = version.file_id
        d.forced = False
        for name in d.record.hide_after:  # e.g. the source of a rename too big to copy at once
            try:
                if self.remove_name is not None:
                    await self.remove_name(name)
            except Exception as e:
                log.warning("after uploading %s, removing the old name %r failed (%s); it stays "
                            "in B2: delete it by hand", d.shown, name, e)  # fmt: skip
        d.record.hide_after = []
        for name, file_id in d.record.replaces:  # an older marker: it holds nothing
            if self.delete_version is not None:
                try:
                    await self.delete_version(name, file_id)
                except Exception as e:
                    log.debug("after uploading %s, deleting %s (%s): %s", d.shown, name, file_id, e)
        d.record.replaces = []
        if d.kind is Kind.DIR and d.generation != generation:  # it goes up again: this one goes
            d.record.replaces.append([d.record.stored, version.file_id])
        self.on_uploaded(d, version)
        if d.generation == generation and d.writers == 0 and d.readers == 0:
            self._remove(d)
            self._drop_local(d)
        else:
            if d.row_id is not None:  # still open: the row says B2 holds it (no upload again)
                self._save_quietly(d, durable=d.generation == generation)
            if d.generation != generation and (d.writers == 0 or d.forced):
                self.schedule(d)  # changed while it uploaded, and closed since
        self._signal(d)

    async def _keep_in_cache(self, d: DirtyFile, version: Any) -> None:
        """What B2 now holds is what staging holds: keep it as block-cache blocks of the new
        version (ciphertext in an encrypted mount), so reading it back costs no download.
        Blocks the upload copied server-side, and a copy of the whole version (a change of
        attributes), are the base's cached blocks, hard-linked.  Skipped for a version over
        half the cache (it would only evict itself)."""
        source, d.uploaded_source = d.uploaded_source, None
        cache = self.reader.cache
        if not cache.enabled or d.kind not in (Kind.FILE, Kind.SYMLINK):
            return
        r = d.record
        n = -(-r.size // self.block_size)
        try:
            if source is None:  # a copy of the base with new file info: the same stored bytes
                for i in range(n if r.base_file_id else 0):
                    cache.link(r.base_file_id, version.file_id, i)
                return
            if version.size > cache.budget // 2:
                return
            for i in range(n):
                if r.base_file_id is not None and d.from_base(i):  # copied server-side
                    cache.link(r.base_file_id, version.file_id, i)
                    continue
                start, end = self.reader.stored_span(r.size, i)
                if end - start <= INLINE_MAX:  # a small file: written with others, off the loop
                    block = source.read_sync(start, end - start)
                    self._to_cache.append((version.file_id, i, block))
                    cache.hold(version.file_id, i, block)  # read from memory until written
                    self._cache_wake.set()
                    if not self.reader.codec.encrypted:  # read back at once from memory too
                        self.reader.remember(version.file_id, i, block)
                else:
                    await cache.put_from_async(version.file_id, i, end - start,
                                               functools.partial(source.read_sync, start, end - start))  # fmt: skip
        except Exception as e:  # the cache is a convenience: a failure only costs a download
            log.debug("keeping %s in the block cache: %s", d.shown, e)

    def active(self) -> None:
        """A program is writing (a create, write, close... just came in)."""
        self.active_at = trio.current_time()

    async def _pace(self) -> None:
        """While programs write, uploads go one at a time, so that the requests of a program
        writing (an untar, a build) are not slowed down by uploads sharing this one loop: B2
        gets those files a little later, the program is done sooner. Full concurrency as soon
        as the writing stops (fsync and unmount are never paced)."""
        while True:
            busy = trio.current_time() - self.active_at < PACE_QUIET
            want = 1 if busy else self.concurrency
            if self._limiter.total_tokens != want:
                self._limiter.total_tokens = want
            await trio.sleep(PACE_QUIET / 2)

    async def _cache_writer(self) -> None:
        """Local I/O done in batches from a worker thread, off the loop: blocks of small
        uploaded files to the block cache (``_keep_in_cache`` queues them), and the staging
        files of versions done with (unlinked, then closed)."""
        while True:
            await self._cache_wake.wait()
            self._cache_wake = trio.Event()
            await trio.sleep(0.05)  # let a batch gather
            batch, self._to_cache = self._to_cache, []
            with trio.CancelScope(shield=True):  # an unmount keeps what it uploaded
                await self.reader.cache.put_many_async(batch)
                await trio.to_thread.run_sync(self._let_go)

    def _let_go(self) -> None:
        """Unlink and close the staging files queued (thread-safe: lists popped whole)."""
        paths, self._to_unlink = self._to_unlink, []
        fds, self._to_close = self._to_close, []
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _save_quietly(self, d: DirtyFile, durable: bool = False) -> None:
        """Record progress (attempts, errors, parts; that B2 holds it); failing to is logged,
        not fatal."""
        if d.row_id is None:
            return
        try:
            self._put(d, durable)
        except OSError as e:
            log.warning("journal: cannot record the state of %s (%s); its upload goes on (after a "
                        "crash now it would start over)", d.shown, e)  # fmt: skip

    def _signal(self, d: DirtyFile) -> None:
        d.outcome.set()
        d.outcome = trio.Event()

    async def wait_uploaded(self, d: DirtyFile) -> None:
        """fsync: upload now, return when B2 holds this generation; UploadFailed after a failed try."""
        self.journal_now(d)
        target = d.generation
        failures = d.failure_count
        while d.uploaded_generation < target and not d.deleted:
            d.forced = True
            outcome = d.outcome
            self.schedule(d, 0)
            await outcome.wait()
            if d.failure_count > failures:
                raise UploadFailed(
                    f"{d.shown}: upload failed ({d.record.last_error}); it stays queued",
                    plain_names=False,
                )

    # -- start and stop ------------------------------------------------------------------

    def _recover(self) -> None:
        """Replay the journal: pending versions come back into the overlay and the queue."""
        known = set()
        for row_id, record, content, synced in self.journal.pending():
            shown = record.stored if self.staging_codec.encrypted else record.path
            path = os.path.join(self.staging_dir, record.staging)
            if record.uploaded is not None:  # fsync put it in B2: nothing left to do
                log.info("journal: %s is in B2 already (%s)", shown, record.uploaded)
                self.journal.delete(row_id)
                continue
            if self.journal.rebooted and not synced and _needs_staging(record):
                log.error("journal: %s was closed but not yet on disk when the machine went "
                          "down: its last changes are lost (B2 keeps its previous version)",
                          shown)  # fmt: skip
                self.journal.delete(row_id)
                continue
            if content is not None:  # a small file: its bytes are in the row
                staging, fd = InlineStaging(self.inline, content), -1
            elif not record.staging:  # a marker or special file: nothing staged
                staging, fd = NoContent(), -1
            else:
                try:
                    fd, staging = self._reopen(path)
                except OSError as e:
                    log.error("journal: the staging file of %s is gone (%s): this change is lost",
                              shown, e)  # fmt: skip
                    self.journal.delete(row_id)
                    continue
                except CodecError as e:  # not a staging file of this mount's codec
                    log.error("journal: the staging file of %s cannot be read (%s): this change "
                              "is lost", shown, e)  # fmt: skip
                    self.journal.delete(row_id)
                    continue
            d = DirtyFile(record, staging, fd, self.reader, self.block_size, row_id=row_id)
            d.spill = self._spill
            if synced:
                d.synced_generation = d.generation
            old = self.files.get(record.path)
            if old is not None:  # two rows for one path: the later one wins
                self._remove(old)
                self._drop_local(old)
            self._add(d)
            self._push(d, 0)
            known.add(record.staging)
            log.info("journal: %s (%d bytes) is pending upload", shown, record.size)
        for name in os.listdir(self.staging_dir):
            if name not in known:
                os.unlink(os.path.join(self.staging_dir, name))

    def _reopen(self, path: str) -> tuple[int, Any]:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            return fd, self.staging_codec.open(fd)
        except BaseException:
            os.close(fd)
            raise

    async def drain(self, wait: float) -> None:
        """Upload everything pending, for up to ``wait`` seconds; what is left stays journaled."""
        for d in self.files.values():
            d.writers = 0
            d.forced = True
            try:
                self.journal_now(d)
            except OSError as e:  # still uploaded below; only a crash now would lose it
                log.error("unmount: cannot journal %s (%s); uploading it now", d.shown, e)
            self._push(d, 0)
        deadline = trio.current_time() + wait
        while self._unsent() and trio.current_time() < deadline:  # progress: mount/run.py
            await trio.sleep(0.05)
        if unsent := self._unsent():
            log.warning("unmount: %d upload(s) not done; they stay in the journal for the next mount",
                        len(unsent))  # fmt: skip
            for d in unsent:
                await self.supersede(d)
        for d in list(self.files.values()):
            fd = d.close()
            if fd >= 0:
                self._to_close.append(fd)
        batch, self._to_cache = self._to_cache, []  # a batch still gathering: kept too
        with trio.CancelScope(shield=True):
            await self.reader.cache.put_many_async(batch)
        self._let_go()
        self.journal.close()

    def _unsent(self) -> list[DirtyFile]:
        """Pending versions B2 does not hold yet (a version it holds may stay in the overlay
        while a handle reads it: nothing is left to send)."""
        return [d for d in self.files.values() if d.uploaded_generation != d.generation]

    def status(self) -> dict[str, Any]:
        pending = []
        now = trio.current_time()
        unsent = self._unsent()
        for d in unsent:
            item = {
                "path": d.path,
                "bytes": d.size,
                "state": _state(d),
                "attempts": d.record.attempts,
                "last_error": d.record.last_error,
            }
            progress = self.uploader.progress.get(d)
            if progress is not None:  # bytes of the object (stored size) done, and for how long
                item.update(
                    sent=progress.done, total=progress.total, seconds=now - progress.started
                )
            elif d.record.attempts and d.due > now:
                item["retry_in"] = d.due - now
            pending.append(item)
        return {
            "pending": pending,
            "pending_bytes": sum(d.size for d in unsent),
            "uploads_done": self.uploads_done,
            "uploads_failed": self.uploads_failed,
            "bytes_uploaded": self.uploader.bytes_uploaded,
            "bytes_copied": self.uploader.bytes_copied,
        }


def _syncfs(fd: int) -> bool:
    """syncfs(2) of the file system holding ``fd`` (all staging files in one call)."""
    try:
        return _libc.syncfs(fd) == 0
    except AttributeError:
        return False


_libc = ctypes.CDLL(None, use_errno=True)


def _needs_staging(r: PendingRecord) -> bool:
    """Does the content come (partly) from a staging file? (Not for a file staged inline,
    whose bytes are in its row, an empty file, a marker, or a version whose bytes are all its
    base's: a change of attributes.)"""
    if r.size == 0 or r.kind == "dir" or not r.staging:
        return False
    return not (r.base_file_id is not None and r.base_limit >= r.size and not r.filled)


def remote_entry(name: str, version: Any, plain_size: int) -> Entry:
    """The listing entry for a version the mount just uploaded or copied."""
    info = dict(version.file_info or {})
    a = read_info(info, version.upload_timestamp)
    kept = {k: v for k, v in info.items() if k.startswith("b2fs-")}
    return Entry(name, a.kind, version.file_name, size=plain_size, mtime_ns=a.mtime_ns, mode=a.mode,
                 uid=a.uid, gid=a.gid, remote=Remote(version.file_id, version.size, kept, version.content_type),
                 atime_ns=a.atime_ns, ctime_ns=a.ctime_ns, rdev=a.rdev)  # fmt: skip


def _state(d: DirtyFile) -> str:
    """What a pending version is doing, for ``b2fs status``."""
    if d.uploading:
        return "uploading"
    if d.writers:
        return "open"
    return "held" if d.holds else "waiting"  # held: its name is changing
