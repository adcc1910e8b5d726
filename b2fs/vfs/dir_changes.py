"""Changes to directories: mkdir, rmdir, and their attributes, kept in their markers.

B2 has no directories: a directory exists while some name has its prefix or
its marker ``DIR/.bzEmpty`` exists (what the B2 web UI writes).  ``mkdir``
makes a pending marker, uploaded by the write-back like a file (so it is
journaled and costs the caller no round trip); ``rmdir`` drops it and deletes
the remote one.  A directory's mode, owner, group and times live in its
marker's file info: ``chmod``, ``chown`` and ``utimens`` of a directory write
a new marker version (the first one, for a directory that had none).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.errors import Exists, NotADirectory, NotEmpty, NotFound
from b2fs.posix.fileinfo import Attrs
from b2fs.posix.paths import DIR_MARKER, check_length, join
from b2fs.vfs.change_base import ChangeBase
from b2fs.vfs.inodes import Node
from b2fs.vfs.listing import Listing


class DirChanges(ChangeBase):
    async def mkdir(self, parent: Node, name: str, mode: int, ctx: Any) -> tuple[Node, Entry]:
        path, _, _ = self._new_name(parent, name)
        if await self.ns.lookup(path) is not None:
            raise Exists(f"{path!r} exists")
        stored, long_info = self._marker_name(path)
        attrs = await self._new_attrs(Kind.DIR, mode, ctx, parent)
        d = self.wb.new(path, stored, long_info, attrs)
        self._settle(d)
        stored_dir = stored[: -len(DIR_MARKER)]
        self.ns.listings.seed(stored_dir, Listing({}, time.monotonic()))  # nothing there yet
        self.fs.dir_changed(parent.path)
        entry = await self.fs.dir_entry(path, Entry(name, Kind.DIR, stored_dir), fetch=False)
        return self.fs.inodes.node(path, Kind.DIR), entry

    async def rmdir(self, parent: Node, name: str) -> None:
        check_length(name)
        path = join(parent.path, name)
        entry = await self.ns.lookup(path)
        if entry is None:
            raise NotFound(f"{path!r} does not exist")
        if entry.kind is not Kind.DIR:
            raise NotADirectory(f"{path!r} is not a directory")
        if await self.ns.children(path):
            raise NotEmpty(f"{path!r} is not empty")
        await self._keep_dir(parent.path)
        stored_dir = await self._drop_marker(path)
        self._patch(parent.path, name, None)
        self.ns.listings.invalidate(stored_dir)
        self.fs.inodes.unlinked(path)
        self.fs.dir_changed(parent.path)
        self.fs.dir_times.pop(path, None)

    async def _drop_marker(self, path: str) -> str:
        """Forget the (empty) directory ``path``'s marker, pending and in B2: rmdir, and a
        rename onto it (whose tree brings a marker of its own).  Returns its stored prefix."""
        stored_dir = self.ns.stored_dir(path)
        listing = self.ns.cached_listing(path)
        remote_marker = listing is None or listing.has_marker
        marker = self._pending_marker(path)
        if marker is not None:
            async with self.wb.holding([marker]):  # an upload under way lands first
                remote_marker = remote_marker or marker.uploaded_generation >= 0
                remote_marker = remote_marker or marker.record.attempts > 0
                if self.wb.get(path) is marker:
                    await self.wb.discard(marker)
        if remote_marker:
            await self.remote.delete_marker(stored_dir)
            self.feed.tree(path)
        return stored_dir

    async def fsync_dir(self, node: Node) -> None:
        """fsync of a directory: returns when B2 holds its entries (what is pending in it, its
        subdirectories' markers) and its own marker; EIO after a failed upload."""
        pending = [d for d in self.wb.pending_in(node.path) if not d.deleted]
        async with trio.open_nursery() as nursery:
            for d in pending:
                nursery.start_soon(self.wb.wait_uploaded, d)

    async def set_dir_attrs(self, node: Node, entry: Entry, attr: Any, fields: Any) -> Entry:
        """chmod, chown, utimens of a directory: a new version of its marker."""
        if not (fields.update_mode or fields.update_uid or fields.update_gid
                or fields.update_mtime or fields.update_atime):  # fmt: skip
            return entry
        if not self.defaults.keep_attrs:
            self._check_fixed_attrs(entry, attr, fields)
            if not (fields.update_mtime or fields.update_atime):
                return entry
        path = node.path
        d = self._marker_for(path)
        if d is None:  # from what it shows now (the defaults it shows become its own)
            stored, long_info = self._marker_name(path)
            a = Attrs(Kind.DIR, entry.mode, entry.uid, entry.gid, entry.mtime_ns, entry.atime_ns,
                      entry.ctime_ns)  # fmt: skip
            d = self.wb.new(path, stored, long_info, a)
        d.writers += 1  # pinned while it changes
        try:
            async with d.lock:
                await self.wb.supersede(d)
                r = d.record
                moved = self.fs.dir_times.pop(path, None)  # the marker's times rule from now on
                if moved is not None and moved[0] is not None:
                    r.mtime_ns = moved[0]
                self._set_attrs(d, attr, fields, clear_setid=False)
        finally:
            d.writers -= 1
        self._settle(d)
        return await self.fs.dir_entry(path, entry, fetch=False)
