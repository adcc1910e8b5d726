"""The POSIX view of a bucket: what each file-system call means in terms of B2.

``FileSystem`` owns the inode table, the open handles and the namespace, and
answers the kernel's questions (lookup, attributes, directory contents, file
contents) from the listings, the reader and the local overlay.  The pyfuse3
layer (``b2fs.fs.operations``) only converts arguments and results.  Writes
and namespace changes live in ``b2fs.vfs.changes`` on top of this class.

A directory's attributes (mode, owner, times) live in its marker's file info,
which its own listing carries (or a pending marker of this mount's): a lookup
or ``getattr`` of a directory fetches its listing when it is not cached (the
next step of a path walk needs it anyway), while ``readdir`` shows what is
known and, for the rest, the mount's defaults with no attribute caching, so
the kernel asks again (``getattr``) before it checks permissions.  Adding or
removing an entry moves a directory's mtime and ctime in memory (not in B2).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from b2fs.posix.entries import Defaults, Entry, Kind
from b2fs.posix.errors import BadHandle, InvalidArgument, IsADirectory, NotADirectory, NotFound
from b2fs.posix.paths import check_length, join, split
from b2fs.reader import ObjectRef, Reader, ReadStream
from b2fs.vfs.inodes import InodeTable, Node
from b2fs.vfs.namespace import Namespace

log = logging.getLogger(__name__)

DIR_TIMES_KEPT = 65536  # directories whose in-memory mtime/ctime moves are remembered


@dataclass
class DirHandle:
    node: Node
    entries: list[tuple[str, Entry]] | None = None  # snapshot taken at the first readdir


@dataclass
class FileHandle:
    node: Node
    flags: int
    stream: ReadStream | None = None  # reading a remote version
    local: Any = None  # a pending local version (b2fs.writeback)
    writable: bool = False
    entry: Entry | None = None  # as it was opened (for fstat once its name is gone)
    uid: int = 0  # who opened it (a write by non-root clears set-user-ID and set-group-ID)


class FileSystem:
    def __init__(self, namespace: Namespace, reader: Reader, defaults: Defaults) -> None:
        self.ns = namespace
        self.reader = reader
        self.defaults = defaults
        self.inodes = InodeTable()
        self.mounted_at_ns = time.time_ns()
        self._fh = itertools.count(1)
        self.files: dict[int, FileHandle] = {}
        self.dirs: dict[int, DirHandle] = {}
        # Directories whose entries (mtime and ctime) or own name (ctime) changed here:
        # path -> (mtime or None, ctime), newer than what their markers say.
        self.dir_times: OrderedDict[str, tuple[int | None, int]] = OrderedDict()
        self.on_dir_changed: Callable[[str], None] = lambda path: None  # keeps them (vfs.changes)

    # -- lookups -------------------------------------------------------------------------

    async def lookup(self, parent: Node, name: str) -> tuple[Node, Entry] | None:
        if parent.kind is not Kind.DIR:
            raise NotADirectory(f"{parent.path!r} is not a directory")
        if name == ".":
            return parent, await self.entry(parent)
        if name == "..":
            up = self.inodes.by_path(parent.path.rpartition("/")[0]) or self.inodes.root
            return up, await self.entry(up)
        check_length(name)
        path = join(parent.path, name)
        entry = await self.ns.lookup(path)
        if entry is None:
            return None
        if entry.kind is Kind.DIR:
            entry = await self.dir_entry(path, entry, fetch=True)
        node = self.inodes.node(path, entry.kind)
        return node, entry

    async def entry(self, node: Node) -> Entry:
        """The current entry of a node the kernel holds (an unlinked one still open: as held)."""
        entry = None if node.gone else await self.ns.lookup(node.path)
        if entry is None:
            entry = self._held(node)
            if entry is None:
                raise NotFound(f"{node.path!r} is gone")
        elif entry.kind is Kind.DIR:
            entry = await self.dir_entry(node.path, entry, fetch=True)
        return entry

    def _held(self, node: Node) -> Entry | None:
        """What the open handles on a node that lost its name still see: its pending version
        when one holds it, else the remote version they read."""
        held = None
        for handle in self.files.values():
            if handle.node is node:
                if handle.local is not None:
                    return handle.local.as_entry(node.path.rpartition("/")[2])
                if held is None:
                    held = handle.entry
        return held

    # -- what read handles read ----------------------------------------------------------
    # A read handle reads what its file holds now, as on a local disk: while the file has
    # its name, the pending version there (``read``) or the remote version this mount
    # knows (``repoint``); once the name goes, what the file held then (``pin``).

    def _handles_of(self, node: Node) -> list[FileHandle]:
        return [h for h in self.files.values() if h.node is node] if node.opens else []

    def held_version(self, node: Node) -> Any:
        """The pending version a handle on ``node`` holds (writes, or reads once pinned)."""
        for handle in self._handles_of(node):
            if handle.local is not None:
                return handle.local
        return None

    def restamp(self, node: Node, **attrs: Any) -> Entry | None:
        """New attributes of a node that lost its name with no pending version: kept with what
        its handles hold (B2 holds the file no more), for their fstat."""
        held = None
        for handle in self._handles_of(node):
            if handle.entry is not None:
                held = handle.entry = dataclasses.replace(handle.entry, **attrs)
        return held

    def repoint(self, node: Node, entry: Entry) -> None:
        """This mount put ``entry``'s version of ``node`` in B2 (its latest content): handles
        reading a remote version read this one from now on."""
        for handle in self._handles_of(node):
            if handle.stream is not None and handle.local is None:
                handle.stream = ReadStream(self._object(node.path, entry))
                handle.entry = entry

    def pin(self, node: Node, local: Any) -> None:
        """``node`` loses its name while ``local``, its pending version, holds its content:
        the handles that read through the name keep reading ``local``."""
        for handle in self._handles_of(node):
            if handle.local is None:
                handle.local = local
                local.readers += 1

    def unpin(self, local: Any, base: Entry) -> None:
        """``local`` is dropped unchanged (opened for writing, never written): its read handles
        read ``base``, the remote version it was made from (and what follows, as others do)."""
        for handle in self.files.values():
            if handle.local is local and not handle.writable:
                handle.local = None
                local.readers -= 1
                handle.stream = ReadStream(self._object(handle.node.path, base))
                handle.entry = base

    # -- directory attributes ------------------------------------------------------------

    async def dir_entry(self, path: str, entry: Entry, fetch: bool) -> Entry:
        """A directory's entry with its attributes: from its pending marker, else its
        listing's marker (the listing fetched when ``fetch`` and not cached), else the
        mount's defaults; ``known`` False when they could not be known without a fetch."""
        marker = self.ns.overlay.entry(path)
        if marker is not None and marker.kind is Kind.DIR and marker.stored:
            attrs: Any = marker  # a pending marker of this mount (its attributes)
        else:
            listing = await self.ns.listing(path) if fetch else self.ns.cached_listing(path)
            if listing is None:
                return self._dir_shown(path, entry, None, known=False)
            attrs = listing.marker
        return self._dir_shown(path, entry, attrs, known=True)

    def _dir_shown(self, path: str, entry: Entry, attrs: Any, known: bool) -> Entry:
        d = self.defaults
        mtime = attrs.mtime_ns if attrs is not None else self.mounted_at_ns
        atime = attrs.atime_ns if attrs is not None else None
        ctime = attrs.ctime_ns if attrs is not None else None
        moved = self.dir_times.get(path)
        if moved is not None:
            mtime = mtime if moved[0] is None else moved[0]
            ctime = moved[1]
        return dataclasses.replace(
            entry, kind=Kind.DIR, mtime_ns=mtime, atime_ns=atime, ctime_ns=ctime,
            mode=attrs.mode if attrs is not None and attrs.mode is not None else d.dir_mode,
            uid=attrs.uid if attrs is not None and attrs.uid is not None else d.uid,
            gid=attrs.gid if attrs is not None and attrs.gid is not None else d.gid,
            size=0, local=None, remote=None, known=known,
        )  # fmt: skip

    def dir_changed(self, path: str, entries: bool = True) -> None:
        """An entry was added to or removed from ``path``: its mtime and ctime move (with
        ``entries`` False: the directory itself was renamed, its ctime moves)."""
        now = time.time_ns()
        old = self.dir_times.pop(path, None)
        self.dir_times[path] = (now if entries else old[0] if old else None, now)
        if len(self.dir_times) > DIR_TIMES_KEPT:
            self.dir_times.popitem(last=False)
        self.on_dir_changed(path)

    # -- directories ---------------------------------------------------------------------

    def opendir(self, node: Node) -> int:
        if node.kind is not Kind.DIR:
            raise NotADirectory(f"{node.path!r} is not a directory")
        fh = next(self._fh)
        self.dirs[fh] = DirHandle(node)
        node.opens += 1
        return fh

    async def dir_entries(self, fh: int, start: int) -> Iterator[tuple[int, Node, Entry, bool]]:
        """Entries from offset ``start`` on, as (next offset, node, entry, counted), made one
        at a time as the caller takes them: a readdir call fills one buffer of the kernel's,
        so a directory of 100,000 names is read in ~1,000 calls that must not each walk (or
        make nodes for) everything after their offset.  '.' and '..' come first, on nodes
        outside the table (``counted`` False: the kernel keeps no reference to them).

        Offsets index a snapshot taken when the handle is first read (or rewound to 0),
        so they stay stable while the directory changes underneath.
        """
        handle = self.dirs.get(fh)
        if handle is None:
            raise BadHandle(f"directory handle {fh} is not open")
        path = handle.node.path
        if handle.entries is None or start == 0:
            here = await self.dir_entry(path, _dir(path, ""), fetch=False)
            parent = split(path)[0]
            up = await self.dir_entry(parent, _dir(parent, ""), fetch=False)
            dots = [
                (".", dataclasses.replace(here, name=".")),
                ("..", dataclasses.replace(up, name="..")),
            ]
            handle.entries = dots + await self.ns.children(path)
        return self._entries_from(path, handle.entries, start)

    def _entries_from(self, path: str, entries: list[tuple[str, Entry]],
                      start: int) -> Iterator[tuple[int, Node, Entry, bool]]:  # fmt: skip
        for i in range(start, len(entries)):
            name, entry = entries[i]
            if i < 2:  # '.' and '..'
                at = path if i == 0 else split(path)[0]
                yield i + 1, Node(self.inodes.peek_ino(at), at, Kind.DIR), entry, False
                continue
            child = join(path, name)
            if entry.kind is Kind.DIR:
                entry = self._dir_known(child, entry)
            yield i + 1, self.inodes.node(child, entry.kind), entry, True

    def _dir_known(self, path: str, entry: Entry) -> Entry:
        """A subdirectory's entry as far as it is known without a fetch (see dir_entry)."""
        marker = self.ns.overlay.entry(path)
        if marker is not None and marker.kind is Kind.DIR and marker.stored:
            return self._dir_shown(path, entry, marker, known=True)
        listing = self.ns.cached_listing(path)
        if listing is None:
            return self._dir_shown(path, entry, None, known=False)
        return self._dir_shown(path, entry, listing.marker, known=True)

    def releasedir(self, fh: int) -> None:
        handle = self.dirs.pop(fh, None)
        if handle is not None:
            self.inodes.release(handle.node)

    # -- files ---------------------------------------------------------------------------

    async def open_read(self, node: Node, flags: int) -> tuple[int, bool]:
        """Open for reading; returns (fh, keep the kernel's page cache)."""
        if node.kind is Kind.DIR:
            raise IsADirectory(f"{node.path!r} is a directory")
        entry = await self.entry(node)
        handle = FileHandle(node, flags, entry=entry)
        keep = False
        if entry.local is not None:
            handle.local = entry.local
            entry.local.readers += 1
        elif entry.remote is not None:
            handle.stream = ReadStream(self._object(node.path, entry))
            keep = node.page_cache_id == entry.remote.file_id
            node.page_cache_id = entry.remote.file_id
        return self.add_handle(handle), keep

    def add_handle(self, handle: FileHandle) -> int:
        fh = next(self._fh)
        self.files[fh] = handle
        handle.node.opens += 1
        return fh

    def _object(self, path: str, entry: Entry) -> ObjectRef:
        assert entry.remote is not None
        r = entry.remote
        return ObjectRef(r.file_id, entry.size, r.stored_size, r.file_info, name=self.shown(path))

    def shown(self, path: str) -> str:
        """How log lines name a path: itself, or its B2 name in an encrypted mount (logs must
        not hold plaintext names)."""
        if not self.ns.names.encrypted:
            return path or "/"
        try:
            return self.ns.encode(path)[0] if path else self.ns.root_stored or "/"
        except Exception:  # noqa: BLE001 - a name the codec refuses: say nothing of it
            return f"a name of {len(path.encode('utf-8', 'surrogateescape'))} bytes"

    def handle(self, fh: int) -> FileHandle:
        handle = self.files.get(fh)
        if handle is None:
            raise BadHandle(f"file handle {fh} is not open")
        return handle

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.handle(fh)
        local = handle.local
        if local is None and handle.stream is not None and not handle.node.gone:
            # Written through another handle since this one opened: read your own writes.
            pending = self.ns.overlay.entry(handle.node.path)
            local = pending.local if pending is not None else None
        if local is not None:
            return await self.read_pending(local, offset, size)
        if handle.stream is None:
            return b""
        return await self.reader.read(handle.stream, offset, size)

    async def read_pending(self, local: Any, offset: int, size: int) -> bytes:
        """Bytes of a pending version (its staging file kept while the read runs)."""
        local.readers += 1
        try:
            return await local.read(offset, size)
        finally:
            local.readers -= 1
            self.ns.overlay.reader_done(local)

    def release(self, fh: int) -> FileHandle | None:
        handle = self.files.pop(fh, None)
        if handle is not None:
            self.inodes.release(handle.node)
            if handle.local is not None and not handle.writable:
                handle.local.readers -= 1
                self.ns.overlay.reader_done(handle.local)
        return handle

    async def readlink(self, node: Node) -> str:
        entry = await self.entry(node)
        if entry.kind is not Kind.SYMLINK:
            raise InvalidArgument(f"{node.path!r} is not a symbolic link")
        if entry.local is not None:
            data = await entry.local.read(0, entry.size)
        else:
            data = await self.reader.read(ReadStream(self._object(node.path, entry)), 0, entry.size)
        return os.fsdecode(bytes(data))


def _dir(path: str, stored: str) -> Entry:
    return Entry(split(path)[1], Kind.DIR, stored)
