"""The POSIX view of a bucket: what each file-system call means in terms of B2.

``FileSystem`` owns the inode table, the open handles and the namespace, and
answers the kernel's questions (lookup, attributes, directory contents, file
contents) from the listings, the reader and the local overlay.  The pyfuse3
layer (``b2fs.fs.operations``) only converts arguments and results.  Writes
and namespace changes live in ``b2fs.vfs.changes`` on top of this class.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from b2fs.mount.options import MountOptions
from b2fs.reader import ObjectRef, Reader, ReadStream
from b2fs.vfs.entries import Entry
from b2fs.vfs.errors import BadHandle, InvalidArgument, IsADirectory, NotADirectory, NotFound
from b2fs.vfs.inodes import InodeTable, Kind, Node
from b2fs.vfs.namespace import Namespace
from b2fs.vfs.paths import join

log = logging.getLogger(__name__)


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


class FileSystem:
    def __init__(self, namespace: Namespace, reader: Reader, opts: MountOptions) -> None:
        self.ns = namespace
        self.reader = reader
        self.opts = opts
        self.inodes = InodeTable()
        self.mounted_at_ns = time.time_ns()
        self._fh = itertools.count(1)
        self.files: dict[int, FileHandle] = {}
        self.dirs: dict[int, DirHandle] = {}

    # -- lookups -------------------------------------------------------------------------

    async def lookup(self, parent: Node, name: str) -> tuple[Node, Entry] | None:
        if parent.kind is not Kind.DIR:
            raise NotADirectory(f"{parent.path!r} is not a directory")
        if name == ".":
            return parent, await self.entry(parent)
        if name == "..":
            up = self.inodes.by_path(parent.path.rpartition("/")[0]) or self.inodes.root
            return up, await self.entry(up)
        path = join(parent.path, name)
        entry = await self.ns.lookup(path)
        if entry is None:
            return None
        node = self.inodes.node(path, entry.kind)
        return node, entry

    async def entry(self, node: Node) -> Entry:
        """The current entry of a node the kernel holds (an unlinked one still open: as held)."""
        entry = None if node.gone else await self.ns.lookup(node.path)
        if entry is None:
            entry = self._held(node)
            if entry is None:
                raise NotFound(f"{node.path!r} is gone")
        return entry

    def _held(self, node: Node) -> Entry | None:
        """What an open handle on a node that lost its name still sees."""
        for handle in self.files.values():
            if handle.node is node:
                if handle.local is not None:
                    return handle.local.as_entry(node.path.rpartition("/")[2])
                if handle.entry is not None:
                    return handle.entry
        return None

    # -- directories ---------------------------------------------------------------------

    def opendir(self, node: Node) -> int:
        if node.kind is not Kind.DIR:
            raise NotADirectory(f"{node.path!r} is not a directory")
        fh = next(self._fh)
        self.dirs[fh] = DirHandle(node)
        node.opens += 1
        return fh

    async def dir_entries(self, fh: int, start: int) -> Iterator[tuple[int, Node, Entry]]:
        """Entries from offset ``start`` on, as (next offset, node, entry), made one at a
        time as the caller takes them: a readdir call fills one buffer of the kernel's, so
        a directory of 100,000 names is read in ~1,000 calls that must not each walk (or
        make nodes for) everything after their offset.

        Offsets index a snapshot taken when the handle is first read (or rewound to 0),
        so they stay stable while the directory changes underneath.
        """
        handle = self.dirs.get(fh)
        if handle is None:
            raise BadHandle(f"directory handle {fh} is not open")
        if handle.entries is None or start == 0:
            handle.entries = await self.ns.children(handle.node.path)
        return self._entries_from(handle.node.path, handle.entries, start)

    def _entries_from(self, path: str, entries: list[tuple[str, Entry]],
                      start: int) -> Iterator[tuple[int, Node, Entry]]:  # fmt: skip
        for i in range(start, len(entries)):
            name, entry = entries[i]
            yield i + 1, self.inodes.node(join(path, name), entry.kind), entry

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
        shown = entry.stored if self.ns.names.encrypted else path  # no plaintext names in logs
        return ObjectRef(r.file_id, entry.size, r.stored_size, r.file_info, name=shown)

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
            local.readers += 1  # keeps the staging file while the read runs
            try:
                return await local.read(offset, size)
            finally:
                local.readers -= 1
                self.ns.overlay.reader_done(local)
        if handle.stream is None:
            return b""
        return await self.reader.read(handle.stream, offset, size)

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
