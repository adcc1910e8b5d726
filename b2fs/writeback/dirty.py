"""A file version being written or waiting for upload: its content, local and remote combined.

A ``DirtyFile`` stages its content in a local staging file (plain, or
encrypted by the staging codec so no plaintext touches the disk).  When it
was opened on an existing remote version without ``O_TRUNC``, that version
stays its *base*: a block nobody wrote is read from the base (through the
reader and the block cache) and is only copied into staging when a partial
write needs it, so editing a few bytes of a large file fetches one block, and
the uploader can copy untouched ranges server-side instead of uploading them.

A byte at offset ``o`` comes from staging when its block is ``filled`` or
``o >= base_limit``, else from the base.  ``base_limit`` only shrinks
(truncate); bytes between ``base_limit`` and ``size`` not written are zeros.
Mutations hold ``lock`` and bump ``generation``; the uploader compares
generations to know whether what it uploaded is still the latest content.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.fileinfo import Attrs
from b2fs.posix.paths import DIR_MARKER
from b2fs.reader import ObjectRef, Reader
from b2fs.writeback.inline import InlineStaging
from b2fs.writeback.journal import KEEP, PendingRecord


class NoContent:
    """The staging of a version that never has content (a directory's marker, a FIFO, a
    device, a socket): no file on disk."""

    fd = -1

    def size(self) -> int:
        return 0

    def pread(self, offset: int, length: int) -> bytes:
        return b""

    def pwrite(self, offset: int, data: bytes) -> int:
        raise OSError(22, "a directory marker or special file has no content")

    def truncate(self, size: int) -> None:
        if size:
            raise OSError(22, "a directory marker or special file has no content")


CONTENTLESS = ("dir", "fifo", "chr", "blk", "sock")  # record kinds staged as NoContent


class DirtyFile:
    def __init__(self, record: PendingRecord, staging: Any, fd: int, reader: Reader, block_size: int,
                 row_id: int | None = None) -> None:  # fmt: skip
        self.record = record
        self.staging = staging
        self.fd = fd
        self.reader = reader
        self.block_size = block_size
        self.row_id = row_id  # journal row, once journaled
        self.filled: set[int] = set(record.filled)
        self.lock = trio.Lock()
        self.journal_lock = trio.Lock()  # one journal write of this file at a time
        self.generation = 0
        self.journaled_generation = -1 if row_id is None else 0
        self.writers = 0  # open handles that may write
        self.readers = 0  # open read handles and reads in progress (staging must stay)
        self.due = 0.0  # trio.current_time() after which the upload may start
        self.uploading: trio.CancelScope | None = None
        self.outcome = trio.Event()  # set (and replaced) after every upload attempt
        self.failure_count = 0
        self.uploaded_generation = -1
        self.uploaded_file_id: str | None = None  # the version B2 holds for uploaded_generation
        self.synced_generation = -1  # the journal row and staging survive a power cut up to here
        self.content_changes = 0  # bumped when staged bytes change (journal rows carry inline ones)
        self.journaled_content = -1  # content_changes when the row last carried the bytes
        self.uploaded_source: Any = None  # the upload's source (stored bytes), while it runs
        # Set by the write-back: move an inline file to a staging file (see writeback.inline).
        self.spill: Callable[[DirtyFile], None] | None = None
        self.forced = False  # fsync or unmount: upload even with writers
        self.holds = 0  # name changes under way (WriteBack.holding): no upload starts

        self.deleted = False  # unlinked or replaced: never uploaded
        self.dropped = False  # out of the journal and the staging directory (fd closes when idle)

    # -- what it is ----------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def shown(self) -> str:
        """How log lines name it: its path, or its B2 name in an encrypted mount (logs on disk
        must not hold plaintext names)."""
        return self.record.stored if self.reader.codec.encrypted else self.record.path

    @property
    def kind(self) -> Kind:
        """FILE, SYMLINK, a special file, or DIR: a directory's marker (its attributes)."""
        return Kind[self.record.kind.upper()]

    def attrs(self) -> Attrs:
        r = self.record
        return Attrs(self.kind, r.mode, r.uid, r.gid, r.mtime_ns, r.atime_ns, r.ctime_ns, r.rdev)

    def set_attrs(self, a: Attrs) -> None:
        r = self.record
        r.mode, r.uid, r.gid, r.rdev = a.mode, a.uid, a.gid, a.rdev
        r.mtime_ns, r.atime_ns, r.ctime_ns = a.mtime_ns, a.atime_ns, a.ctime_ns

    def base(self) -> ObjectRef | None:
        r = self.record
        if r.base_file_id is None or r.base_limit <= 0:
            return None
        return ObjectRef(
            r.base_file_id, r.base_plain_size, r.base_stored_size, r.base_info, name=self.shown
        )

    def from_base(self, index: int) -> bool:
        return index not in self.filled and index * self.block_size < self.record.base_limit

    def touch(self) -> None:
        self.generation += 1

    def content(self) -> bytes | None:
        """The bytes of a file staged inline (its journal row carries them), else None."""
        return self.staging.content() if isinstance(self.staging, InlineStaging) else None

    def row_content(self) -> tuple[Any, int]:
        """What the next journal row write carries: the inline bytes when they changed since
        the last one, KEEP when they did not, None for a staging file; and the change count
        to set ``journaled_content`` to once the row is written."""
        if not isinstance(self.staging, InlineStaging):
            return None, self.content_changes
        if self.content_changes == self.journaled_content and self.row_id is not None:
            return KEEP, self.content_changes
        return self.staging.content(), self.content_changes

    def _room(self, size: int) -> None:
        """Before staging changes (to ``size`` bytes): an inline file too big for memory moves
        out; the journal's copy of inline bytes is now stale."""
        self.content_changes += 1
        if isinstance(self.staging, InlineStaging) and not self.staging.fits(size):
            assert self.spill is not None
            self.spill(self)

    # -- reads ---------------------------------------------------------------------------

    async def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.record.size)
        if offset >= end:
            return b""
        bs = self.block_size
        base = self.base()
        parts = []
        pos = offset
        while pos < end:
            index = pos // bs
            stop = min((index + 1) * bs, end)
            if base is not None and self.from_base(index):
                # The base holds [index * bs, base_limit); past that (a grown or cut file) the
                # bytes nobody wrote are zeros, also when the read starts past base_limit.
                limit = max(pos, min(stop, self.record.base_limit))
                if limit > pos:
                    block = await self.reader.block(base, index)
                    lo = pos - index * bs
                    parts.append(block[lo : lo + (limit - pos)])
                if stop > limit:
                    parts.append(bytes(stop - limit))
            else:
                piece = self.staging.pread(pos, stop - pos)
                parts.append(piece)
                if len(piece) < stop - pos:
                    parts.append(bytes(stop - pos - len(piece)))
            pos = stop
        return b"".join(parts)

    # -- writes (caller holds ``lock``) --------------------------------------------------

    async def fill(self, index: int) -> None:
        """Copy block ``index`` of the base into staging (its valid part only)."""
        base = self.base()
        if base is None or not self.from_base(index):
            self.filled.add(index)
            return
        bs = self.block_size
        block = await self.reader.block(base, index)
        valid = min(bs, self.record.base_limit - index * bs)
        self._room(index * bs + valid)
        self.staging.pwrite(index * bs, block[:valid])
        self.filled.add(index)

    async def fill_range(self, start: int, end: int) -> None:
        """Make staging authoritative for [start, end) (downloads what the base still holds)."""
        bs = self.block_size
        for index in range(start // bs, (end + bs - 1) // bs):
            if self.from_base(index):
                await self.fill(index)

    async def write(self, offset: int, data: bytes) -> int:
        if not data:
            return 0
        end = offset + len(data)
        bs = self.block_size
        for index in range(offset // bs, (end - 1) // bs + 1):
            if self.from_base(index):
                lo = index * bs
                hi = min(lo + bs, self.record.base_limit)
                if not (offset <= lo and end >= hi):
                    await self.fill(index)
            self.filled.add(index)
        return self.write_staged(offset, data)

    def write_staged(self, offset: int, data: bytes) -> int:
        """``write`` when no block of the base is involved (``base_limit`` 0: a new or
        truncated file), so nothing to fetch: no await (the caller need not hold ``lock``)."""
        end = offset + len(data)
        self._room(end)
        self.staging.pwrite(offset, data)
        if end > self.record.size:
            self.record.size = end
        self.touch()
        return len(data)

    async def truncate(self, size: int) -> None:
        r = self.record
        if size < r.base_limit:
            bs = self.block_size
            index = size // bs
            if size % bs and self.from_base(index):
                await self.fill(index)
            r.base_limit = size
            self.filled = {i for i in self.filled if i * bs < size}
        self._room(size)
        self.staging.truncate(size)
        r.size = size
        self.touch()

    def sync_record(self, synced: bool = False) -> PendingRecord:
        """The journal record, brought up to date with the in-memory state (``synced``: as
        written once its staging is fsynced, with a WAL sync)."""
        r = self.record
        r.filled = sorted(self.filled)
        r.synced = synced
        r.uploaded = self.uploaded_file_id if self.uploaded_generation == self.generation else None
        return r

    def fsync_staging(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def close(self) -> int:
        """Let go of the staging: inline bytes' memory, and the descriptor, which is returned
        (-1: none) for the caller to close (the last close of an unlinked file with dirty pages
        is costly: the write-back does it off the loop)."""
        if isinstance(self.staging, InlineStaging):
            self.staging.release()
        fd, self.fd = self.fd, -1
        return fd

    def as_entry(self, name: str) -> Entry:
        r = self.record
        kind = self.kind
        if kind is Kind.DIR:  # a marker: the directory's stored prefix, its attributes
            return Entry(name, kind, r.stored[: -len(DIR_MARKER)], mtime_ns=r.mtime_ns, mode=r.mode,
                         uid=r.uid, gid=r.gid, atime_ns=r.atime_ns, ctime_ns=r.ctime_ns)  # fmt: skip
        return Entry(name, kind, r.stored, size=r.size, mtime_ns=r.mtime_ns, mode=r.mode, uid=r.uid,
                     gid=r.gid, local=self, atime_ns=r.atime_ns, ctime_ns=r.ctime_ns,
                     rdev=r.rdev)  # fmt: skip
