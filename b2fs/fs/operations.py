"""pyfuse3 operations: the kernel's requests, converted to calls on the vfs. Thin by design.

Each handler turns bytes names into text, calls ``b2fs.vfs``, and builds the
reply (attributes from ``b2fs.fs.attrs``).  Every handler runs under
``fuse_errors``, the single place errors become errnos.

Inode numbers and handles with ``VIRTUAL`` set belong to the versions view
(``b2fs.history.view``), reached by its name at the mount root: they are
routed there, and every change inside it (or of its name) is EROFS.  When the
view is listed in the root (``-o show_versions``) it comes first, and the
root's other offsets are the file system's plus one.
"""

from __future__ import annotations

import errno
import logging
import os
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import pyfuse3
import trio

from b2fs.fs.attrs import AttrMaker, statfs
from b2fs.fs.errno_map import fuse_errors
from b2fs.posix.errors import FsError, NotPermitted, ReadOnly
from b2fs.posix.paths import check_length, decode_name
from b2fs.vfs.filesystem import FileSystem

log = logging.getLogger(__name__)


class Operations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, fs: FileSystem, attrs: AttrMaker, changes: Any = None,
                 versions: Any = None) -> None:  # fmt: skip
        super().__init__()
        self.fs = fs
        self.changes = changes  # b2fs.vfs.changes.Changes, or None on a read-only mount
        self.versions = versions  # b2fs.history.view.VersionsView, or None (-o noversions)
        self.warned_shadow = False
        self.attrs = attrs
        self.nfc = fs.ns.names.encrypted  # encrypted names are stored (and listed) in NFC
        self.after_init: Callable[[], None] | None = None  # runs once the kernel's INIT is answered
        self.warned_link = False

    def init(self) -> None:
        if self.after_init is not None:  # INIT is answered when this callback returns: after it
            trio.lowlevel.current_trio_token().run_sync_soon(self.after_init)

    def _name(self, name: bytes) -> str:
        text = decode_name(name)
        return unicodedata.normalize("NFC", text) if self.nfc else text

    # -- the versions view ---------------------------------------------------------------

    def _virtual(self, number: int) -> bool:
        """An inode number or handle of the versions view."""
        return self.versions is not None and self.versions.owns(number)

    def _is_view(self, parent_inode: int, name: bytes) -> bool:
        return self.versions is not None and self.versions.is_view(parent_inode, self._name(name))

    def _real(self, inode: int) -> Any:
        """A node of the mount's own tree, for a change: EROFS in the versions view."""
        if self._virtual(inode):
            raise ReadOnly("the versions view is read-only (b2fs restore brings a version back)")
        return self.fs.inodes.get(inode)

    def _not_view(self, parent_inode: int, name: bytes) -> None:
        if self._is_view(parent_inode, name):
            raise ReadOnly(f"{self.versions.name} is the versions view: read-only")

    def invalidate(self, paths: Sequence[str]) -> None:
        """Have the kernel forget what it cached of these paths (changed behind its back: a
        restore), so the next access looks them up again."""
        for path in paths:
            parent, _, name = path.rpartition("/")
            node = self.fs.inodes.by_path(parent)
            if node is not None and name:
                pyfuse3.invalidate_entry_async(node.ino, name.encode("utf-8", "surrogateescape"),
                                               ignore_enoent=True)  # fmt: skip

    # -- metadata ------------------------------------------------------------------------

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        if self._virtual(parent_inode):
            found = await self.versions.lookup(self.versions.nodes.get(parent_inode),
                                               self._name(name))  # fmt: skip
        elif self._is_view(parent_inode, name):
            found = self.versions.root()
        else:
            parent = self.fs.inodes.get(parent_inode)
            found = await self.fs.lookup(parent, self._name(name))
        if found is None:
            return self.attrs.negative()
        node, entry = found
        node.lookups += 1
        return self.attrs(node, entry)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            if self._virtual(ino):
                self.versions.nodes.forget(ino, count)
            else:
                self.fs.inodes.forget(ino, count)

    @fuse_errors
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if self._virtual(inode):
            node = self.versions.nodes.get(inode)
            return self.attrs(node, await self.versions.getattr(node))
        node = self.fs.inodes.get(inode)
        return self.attrs(node, await self.fs.entry(node))

    @fuse_errors
    async def readlink(self, inode: int, ctx: Any = None) -> bytes:
        if self._virtual(inode):
            return os.fsencode(await self.versions.readlink(self.versions.nodes.get(inode)))
        return os.fsencode(await self.fs.readlink(self.fs.inodes.get(inode)))

    @fuse_errors
    async def statfs(self, ctx: Any = None) -> pyfuse3.StatvfsData:
        return statfs()

    # -- directories ---------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: Any = None) -> int:
        if self._virtual(inode):
            return self.versions.opendir(self.versions.nodes.get(inode))
        return self.fs.opendir(self.fs.inodes.get(inode))

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        if self._virtual(fh):
            await self._reply(token, await self.versions.dir_entries(fh, start_id),
                              self.versions.nodes)  # fmt: skip
            return
        view = self.versions
        handle = self.fs.dirs.get(fh)
        at_root = view is not None and handle is not None and handle.node is self.fs.inodes.root
        if not (at_root and view.shown):
            await self._reply(token, await self.fs.dir_entries(fh, start_id), self.fs.inodes,
                              hide=view.name if at_root else None)  # fmt: skip
            return
        if start_id == 0:  # the view first; the file system's offsets shifted by one
            node, entry = view.root()
            if not pyfuse3.readdir_reply(token, view.name.encode(), self.attrs(node, entry), 1):
                view.nodes.drop_if_unused(node)
                return
            node.lookups += 1
        entries = await self.fs.dir_entries(fh, max(0, start_id - 1))
        shifted = ((n + 1, node, entry, counted) for n, node, entry, counted in entries)
        await self._reply(token, shifted, self.fs.inodes, hide=view.name)

    async def _reply(self, token: Any, entries: Any, table: Any, hide: str | None = None) -> None:
        for next_id, node, entry, counted in entries:
            if entry.name == hide and counted:  # a real object of the view's name: not shown
                if not self.warned_shadow:
                    self.warned_shadow = True
                    log.warning("the mount root holds an entry named %s, which the versions view "
                                "shadows (mount with -o noversions to see it)", hide)  # fmt: skip
                table.drop_if_unused(node)
                continue
            if not pyfuse3.readdir_reply(
                token, entry.name.encode(), self.attrs(node, entry), next_id
            ):
                if counted:
                    table.drop_if_unused(node)  # the kernel's buffer is full: not given
                break
            if counted:  # the kernel keeps a reference to what it was given, but '.' and '..'
                node.lookups += 1

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        if self._virtual(fh):
            self.versions.releasedir(fh)
        else:
            self.fs.releasedir(fh)

    @fuse_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        if self._virtual(fh):
            return
        handle = self.fs.dirs.get(fh)
        if self.changes is not None and handle is not None:
            await self.changes.fsync_dir(handle.node)

    # -- files ---------------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: Any = None) -> pyfuse3.FileInfo:
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND)
        if self._virtual(inode):
            node = self.versions.nodes.get(inode)
            if writes:
                raise ReadOnly("the versions view is read-only (b2fs restore brings a version "
                               "back; cp makes a copy)")  # fmt: skip
            fh, keep = await self.versions.open(node, flags)
            return pyfuse3.FileInfo(fh=fh, keep_cache=keep)
        node = self.fs.inodes.get(inode)
        if writes:
            if self.changes is None:
                raise FsError("the mount is read-only", errno=errno.EROFS)
            fh = await self.changes.open_write(node, flags, ctx)
            return pyfuse3.FileInfo(fh=fh, keep_cache=False)
        fh, keep = await self.fs.open_read(node, flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        if self._virtual(fh):
            data = await self.versions.read(fh, off, size)
        else:
            data = await self.fs.read(fh, off, size)
        if len(data) > size:  # the kernel would refuse the reply (EINVAL) and the program see EIO
            raise FsError(f"read gave {len(data)} bytes for {size} asked (a b2fs bug)",
                          plain_names=False)  # fmt: skip
        return data

    @fuse_errors
    async def flush(self, fh: int) -> None:
        if self.changes is not None and not self._virtual(fh):
            await self.changes.flush(fh)

    @fuse_errors
    async def release(self, fh: int) -> None:
        if self._virtual(fh):
            self.versions.release(fh)
        elif self.changes is not None:
            await self.changes.release(fh)
        else:
            self.fs.release(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        if self.changes is not None and not self._virtual(fh):
            await self.changes.fsync(fh)

    # -- changes (only on a writable mount) ---------------------------------------------

    def _changes(self) -> Any:
        if self.changes is None:
            raise FsError("the mount is read-only", errno=errno.EROFS)
        return self.changes

    def _entry_reply(self, node: Any, entry: Any) -> pyfuse3.EntryAttributes:
        node.lookups += 1
        return self.attrs(node, entry)

    @fuse_errors
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any = None
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._not_view(parent_inode, name)
        parent = self._real(parent_inode)
        fh, node, entry = await self._changes().create(parent, self._name(name), mode, flags, ctx)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._entry_reply(node, entry)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        if self._virtual(fh):
            raise ReadOnly("the versions view is read-only")
        return await self._changes().write(fh, off, buf)

    @fuse_errors
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: Any,
        fh: int | None,
        ctx: Any = None,
    ) -> pyfuse3.EntryAttributes:
        node = self._real(inode)
        entry = await self._changes().setattr(node, attr, fields, fh, ctx)
        return self.attrs(node, entry)

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        self._not_view(parent_inode, name)
        parent = self._real(parent_inode)
        node, entry = await self._changes().mkdir(parent, self._name(name), mode, ctx)
        return self._entry_reply(node, entry)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        self._not_view(parent_inode, name)
        await self._changes().rmdir(self._real(parent_inode), self._name(name))

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        self._not_view(parent_inode, name)
        await self._changes().unlink(self._real(parent_inode), self._name(name))

    @fuse_errors
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: Any = None,
    ) -> None:
        self._not_view(parent_inode_old, name_old)
        self._not_view(parent_inode_new, name_new)
        old = self._real(parent_inode_old)
        new = self._real(parent_inode_new)
        await self._changes().rename(old, self._name(name_old), new, self._name(name_new), flags)

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        self._not_view(parent_inode, name)
        parent = self._real(parent_inode)
        node, entry = await self._changes().symlink(
            parent, self._name(name), os.fsdecode(target), ctx
        )
        return self._entry_reply(node, entry)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        check_length(self._name(new_name))  # the errors POSIX checks first come first
        self._not_view(new_parent_inode, new_name)
        self._real(inode)
        self._changes().check_new_name(self._real(new_parent_inode), self._name(new_name))
        if not self.warned_link:  # an expected refusal (git falls back to rename): said once
            self.warned_link = True
            log.warning("link: B2 has no hard links; link() is EPERM on this mount (said once)")
        raise NotPermitted("B2 has no hard links", plain_names=False, quiet=True)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        self._not_view(parent_inode, name)
        parent = self._real(parent_inode)
        node, entry = await self._changes().mknod(parent, self._name(name), mode, rdev, ctx)
        return self._entry_reply(node, entry)
