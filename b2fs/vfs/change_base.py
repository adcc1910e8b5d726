"""What every kind of change shares: new names, new entries' owners, listing patches.

``ChangeBase`` holds the parts a change needs (the ``FileSystem``, the namespace,
the write-back, the remote name helpers) and the steps several changes take:
checking a new name (length first, then what B2 can store), the attributes a
new entry gets (its creator's uid, the group of a set-group-ID parent), the
pending version of a file made from its remote one, patching a cached listing
after a change instead of dropping it, and keeping a directory that is about
to lose its last entry (B2 has no directories: it gets a marker).  The change
modules (``file_changes``, ``dir_changes``, ``renames``, ``exchange``) are
mixins over it, put together in ``changes.Changes``.
"""

from __future__ import annotations

import dataclasses
import stat
import time
from typing import Any

from b2fs.posix.entries import Defaults, Entry, Kind
from b2fs.posix.errors import FsError, NotADirectory, NotPermitted
from b2fs.posix.fileinfo import Attrs, read_info
from b2fs.posix.paths import DIR_MARKER, check_key, check_length, check_new_segment, join, split
from b2fs.vfs.feed import ChangeFeed, NoFeed
from b2fs.vfs.filesystem import FileSystem
from b2fs.vfs.inodes import Node
from b2fs.vfs.listing import Listing
from b2fs.vfs.remote import RemoteNames
from b2fs.writeback.dirty import DirtyFile
from b2fs.writeback.manager import WriteBack, remote_entry


def kill_priv(mode: int | None) -> int | None:
    """The mode once a write or chown has cleared set-user-ID and set-group-ID (the latter
    only with group execute: without it, it means mandatory locking, and stays)."""
    if mode is None:
        return None
    if mode & stat.S_ISGID and mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode & ~stat.S_ISUID


class ChangeBase:
    def __init__(self, fs: FileSystem, wb: WriteBack, remote: RemoteNames) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.wb = wb
        self.remote = remote
        self.defaults: Defaults = fs.defaults
        self.journal = wb.journal
        self.feed: ChangeFeed = NoFeed()  # the change log's hooks (b2fs.sync), when it has one
        wb.on_uploaded = self._uploaded
        wb.remove_name = remote.remove
        wb.delete_version = remote.delete_version if remote.can_delete else None
        fs.on_dir_changed = self._dir_times_changed

    # -- names ---------------------------------------------------------------------------

    def _new_name(self, parent: Node, name: str) -> tuple[str, str, dict[str, str] | None]:
        """(path, stored name, long info) for a name about to be created, or a clear error."""
        if parent.kind is not Kind.DIR:
            raise NotADirectory(f"{parent.path!r} is not a directory")
        check_length(name)
        if not self.ns.names.encrypted:  # an encrypted name is checked by its codec
            check_new_segment(name)
        path = join(parent.path, name)
        stored, long_info = self.ns.encode(path)
        check_key(stored)
        return path, stored, long_info

    def check_new_name(self, parent: Node, name: str) -> None:
        """The errors creating ``name`` in ``parent`` would give (for link, which B2 refuses
        after them)."""
        self._new_name(parent, name)

    def _marker_name(self, path: str) -> tuple[str, dict[str, str] | None]:
        """(stored marker name, long info) of the directory at ``path``."""
        stored = self.ns.stored_dir(path) + DIR_MARKER
        check_key(stored)
        return stored, (self.ns.encode(path)[1] if path else None)

    def _stored_for(self, d: DirtyFile, path: str) -> tuple[str, dict[str, str] | None]:
        """Where a pending version goes once it is at ``path`` (a marker: its directory's)."""
        return self._marker_name(path) if d.kind is Kind.DIR else self.ns.encode(path)

    def _set_attrs(self, d: DirtyFile, attr: Any, fields: Any, clear_setid: bool = True) -> None:
        """Times, mode and owner of a pending version (the size is the caller's); ctime moves.
        A chown without a mode clears set-user-ID and set-group-ID (``clear_setid``: files;
        Linux keeps them on directories)."""
        r = d.record
        if fields.update_mtime:
            r.mtime_ns = attr.st_mtime_ns
        if fields.update_atime:
            r.atime_ns = attr.st_atime_ns
        if self.defaults.keep_attrs:
            if fields.update_mode:
                r.mode = stat.S_IMODE(attr.st_mode)
            if fields.update_uid:
                r.uid = attr.st_uid
            if fields.update_gid:
                r.gid = attr.st_gid
            if clear_setid and (fields.update_uid or fields.update_gid) and not fields.update_mode:
                r.mode = kill_priv(r.mode)
        r.ctime_ns = time.time_ns()
        d.touch()

    # -- attributes ----------------------------------------------------------------------

    async def _new_attrs(self, kind: Kind, mode: int, ctx: Any, parent: Node,
                         rdev: int = 0) -> Attrs:  # fmt: skip
        """A new entry's attributes: its creator's uid and gid (the parent's group, and for a
        directory the set-group-ID bit too, when the parent has it), times now."""
        now = time.time_ns()
        a = Attrs(kind, None, None, None, now, now, now, rdev)
        if not self.defaults.keep_attrs:
            return a
        a.uid = getattr(ctx, "uid", None)
        a.gid = getattr(ctx, "gid", None)
        if kind is not Kind.SYMLINK:
            a.mode = stat.S_IMODE(mode)
        up = await self.fs.dir_entry(parent.path, Entry("", Kind.DIR, ""), fetch=True)
        if up.mode is not None and up.mode & stat.S_ISGID:
            a.gid = up.gid
            if kind is Kind.DIR and a.mode is not None:
                a.mode |= stat.S_ISGID
        return a

    def _check_fixed_attrs(self, entry: Entry, attr: Any, fields: Any) -> None:
        shown = self.defaults
        if fields.update_mode:
            default = shown.dir_mode if entry.kind is Kind.DIR else shown.file_mode
            current = entry.mode if entry.mode is not None else default
            if stat.S_IMODE(attr.st_mode) != current:
                raise NotPermitted(
                    "modes are fixed by the mount options (mount with keep_attrs to store them)"
                )
        if fields.update_uid and attr.st_uid != (entry.uid if entry.uid is not None else shown.uid):
            raise NotPermitted(
                "owners are fixed by the mount options (mount with keep_attrs to store them)"
            )
        if fields.update_gid and attr.st_gid != (entry.gid if entry.gid is not None else shown.gid):
            raise NotPermitted(
                "groups are fixed by the mount options (mount with keep_attrs to store them)"
            )

    # -- pending versions ----------------------------------------------------------------

    async def _dirty_for(self, node: Node, entry: Entry, truncate: bool) -> DirtyFile:
        """The pending version of a file, made from its remote version when there is none."""
        d = self.wb.get(node.path)
        if d is not None:
            return d
        stored, long_info = self.ns.encode(node.path)
        a = Attrs(entry.kind, entry.mode, entry.uid, entry.gid, entry.mtime_ns, entry.atime_ns,
                  entry.ctime_ns, entry.rdev)  # fmt: skip
        if truncate:
            a.mtime_ns = a.ctime_ns = time.time_ns()
        d = self.wb.new(node.path, stored, long_info, a, base=None if truncate else entry)
        self.feed.based(d, entry)
        return d

    def _settle(self, d: DirtyFile) -> None:
        """A change with no open writer: journal it and queue the upload."""
        if d.writers == 0:
            self.wb.journal_now(d)
            self.wb.schedule(d)

    def _pending_marker(self, path: str) -> DirtyFile | None:
        d = self.wb.get(path)
        return d if d is not None and d.kind is Kind.DIR else None

    def _marker_for(self, path: str) -> DirtyFile | None:
        """The directory's pending marker, made from the one its cached listing shows (whose
        version it replaces) when there is none; None when its listing is not cached (what it
        stores is not known here)."""
        d = self._pending_marker(path)
        if d is not None:
            return d
        listing = self.ns.cached_listing(path)
        if listing is None:
            return None
        if listing.marker is not None:
            a = dataclasses.replace(listing.marker, kind=Kind.DIR)
        else:  # none yet: a first one, storing only its times
            shown = self.fs._dir_shown(path, Entry("", Kind.DIR, ""), None, known=True)
            a = Attrs(Kind.DIR, mtime_ns=shown.mtime_ns, ctime_ns=shown.ctime_ns)
        stored, long_info = self._marker_name(path)
        d = self.wb.new(path, stored, long_info, a)
        if listing.marker_id is not None:
            d.record.replaces.append([stored, listing.marker_id])
        return d

    def _dir_times_changed(self, path: str) -> None:
        """A directory's mtime/ctime moved (an entry came or went): its marker keeps them,
        uploaded after the write-back's delay (changes in a row make one upload).  Not the
        mount root's: a marker at the top of a bucket or prefix only for that would surprise
        other tools (chmod/chown/utime of the root do write one)."""
        moved = self.fs.dir_times.get(path)
        if moved is None or not path:  # the mount root's move in memory only: no marker for it
            return
        try:
            d = self._marker_for(path)
        except FsError:  # a marker name B2 cannot hold: the times stay in memory
            return
        if d is None:
            return
        r = d.record
        if moved[0] is not None:
            r.mtime_ns = moved[0]
        r.ctime_ns = moved[1]
        d.touch()
        if d.writers == 0:
            self.wb.schedule(d)

    # -- listings ------------------------------------------------------------------------

    def _listing(self, dir_path: str) -> Listing | None:
        return self.ns.cached_listing(dir_path)

    def _patch(self, dir_path: str, name: str, entry: Entry | None) -> None:
        self.ns.listings.patch(self.ns.stored_dir(dir_path), name, entry)

    def _listed(self, dir_path: str, name: str) -> Entry | None:
        """What the cached listing of ``dir_path`` shows at ``name`` (None: nothing, or not
        cached)."""
        listing = self._listing(dir_path)
        return listing.entries.get(name) if listing is not None else None

    def _has_remote(self, dir_path: str, name: str) -> bool:
        listing = self._listing(dir_path)
        return listing is None or name in listing.entries

    def _uploaded(self, d: DirtyFile, version: Any) -> None:
        """The write-back put a pending version in B2: the listings show it from now on."""
        self.feed.uploaded(d, version)
        parent, name = split(d.path)
        if d.kind is Kind.DIR:
            stored_dir = d.record.stored[: -len(DIR_MARKER)]
            listing = self.ns.listings.cached(stored_dir)
            if listing is not None:
                listing.has_marker = True
                listing.marker = read_info(dict(version.file_info or {}), version.upload_timestamp)
                listing.marker_id = version.file_id
            if d.path:
                self._patch(parent, name, Entry(name, Kind.DIR, stored_dir))
            return
        entry = remote_entry(name, version, d.size)
        self._patch(parent, name, entry)
        node = self.fs.inodes.by_path(d.path)
        if node is None:
            return
        current = d.uploaded_generation == d.generation
        # The kernel's pages of the file are this version's if unchanged since.
        node.page_cache_id = version.file_id if current else None
        if current:  # handles opened on an older version read this one
            self.fs.repoint(node, entry)

    def _copied(self, src_id: str, dst_id: str, plain_size: int) -> None:
        """A server-side copy has the same stored bytes: its cached blocks are the source's
        (hard links), and the kernel's pages of a node showing the source stay valid."""
        cache, bs = self.fs.reader.cache, self.fs.reader.block_size
        for i in range(-(-plain_size // bs)):
            cache.link(src_id, dst_id, i)

    async def _keep_dir(self, dir_path: str) -> None:
        """Give an unmarked directory a marker when its last entry is about to go."""
        if not dir_path or self._pending_marker(dir_path) is not None:
            return
        listing = await self.ns.listing(dir_path)
        if listing.has_marker:
            return
        if len(listing.entries) + len(self.wb.children(dir_path)) > 1:
            return
        # No marker, so nothing stored of its attributes: the marker stores none either.
        entry = await self.fs.dir_entry(dir_path, Entry("", Kind.DIR, ""), fetch=False)
        stored, long_info = self._marker_name(dir_path)
        a = Attrs(Kind.DIR, mtime_ns=entry.mtime_ns, ctime_ns=entry.ctime_ns)
        self._settle(self.wb.new(dir_path, stored, long_info, a))
