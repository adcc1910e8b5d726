"""pyfuse3 operations: the kernel's requests, converted to calls on the vfs. Thin by design.

Each handler turns bytes names into text, calls ``b2fs.vfs``, and builds the
reply (attributes from ``b2fs.fs.attrs``).  Every handler runs under
``fuse_errors``, the single place errors become errnos.
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
from b2fs.posix.errors import FsError, NotPermitted
from b2fs.posix.paths import check_length, decode_name
from b2fs.vfs.filesystem import FileSystem

log = logging.getLogger(__name__)


class Operations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, fs: FileSystem, attrs: AttrMaker, changes: Any = None) -> None:
        super().__init__()
        self.fs = fs
        self.changes = changes  # b2fs.vfs.changes.Changes, or None on a read-only mount
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

    # -- metadata ------------------------------------------------------------------------

    @fuse_errors
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        parent = self.fs.inodes.get(parent_inode)
        found = await self.fs.lookup(parent, self._name(name))
        if found is None:
            return self.attrs.negative()
        node, entry = found
        node.lookups += 1
        return self.attrs(node, entry)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.fs.inodes.forget(ino, count)

    @fuse_errors
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        node = self.fs.inodes.get(inode)
        return self.attrs(node, await self.fs.entry(node))

    @fuse_errors
    async def readlink(self, inode: int, ctx: Any = None) -> bytes:
        return os.fsencode(await self.fs.readlink(self.fs.inodes.get(inode)))

    @fuse_errors
    async def statfs(self, ctx: Any = None) -> pyfuse3.StatvfsData:
        return statfs()

    # -- directories ---------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: Any = None) -> int:
        return self.fs.opendir(self.fs.inodes.get(inode))

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        for next_id, node, entry, counted in await self.fs.dir_entries(fh, start_id):
            if not pyfuse3.readdir_reply(
                token, entry.name.encode(), self.attrs(node, entry), next_id
            ):
                if counted:
                    self.fs.inodes.drop_if_unused(node)  # the kernel's buffer is full: not given
                break
            if counted:  # the kernel keeps a reference to what it was given, but '.' and '..'
                node.lookups += 1

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        self.fs.releasedir(fh)

    @fuse_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        handle = self.fs.dirs.get(fh)
        if self.changes is not None and handle is not None:
            await self.changes.fsync_dir(handle.node)

    # -- files ---------------------------------------------------------------------------

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: Any = None) -> pyfuse3.FileInfo:
        node = self.fs.inodes.get(inode)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            if self.changes is None:
                raise FsError("the mount is read-only", errno=errno.EROFS)
            fh = await self.changes.open_write(node, flags, ctx)
            return pyfuse3.FileInfo(fh=fh, keep_cache=False)
        fh, keep = await self.fs.open_read(node, flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        data = await self.fs.read(fh, off, size)
        if len(data) > size:  # the kernel would refuse the reply (EINVAL) and the program see EIO
            raise FsError(f"read gave {len(data)} bytes for {size} asked (a b2fs bug)",
                          plain_names=False)  # fmt: skip
        return data

    @fuse_errors
    async def flush(self, fh: int) -> None:
        if self.changes is not None:
            await self.changes.flush(fh)

    @fuse_errors
    async def release(self, fh: int) -> None:
        if self.changes is not None:
            await self.changes.release(fh)
        else:
            self.fs.release(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        if self.changes is not None:
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
        parent = self.fs.inodes.get(parent_inode)
        fh, node, entry = await self._changes().create(parent, self._name(name), mode, flags, ctx)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._entry_reply(node, entry)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
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
        node = self.fs.inodes.get(inode)
        entry = await self._changes().setattr(node, attr, fields, fh, ctx)
        return self.attrs(node, entry)

    @fuse_errors
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        parent = self.fs.inodes.get(parent_inode)
        node, entry = await self._changes().mkdir(parent, self._name(name), mode, ctx)
        return self._entry_reply(node, entry)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        await self._changes().rmdir(self.fs.inodes.get(parent_inode), self._name(name))

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any = None) -> None:
        await self._changes().unlink(self.fs.inodes.get(parent_inode), self._name(name))

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
        old = self.fs.inodes.get(parent_inode_old)
        new = self.fs.inodes.get(parent_inode_new)
        await self._changes().rename(old, self._name(name_old), new, self._name(name_new), flags)

    @fuse_errors
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        parent = self.fs.inodes.get(parent_inode)
        node, entry = await self._changes().symlink(
            parent, self._name(name), os.fsdecode(target), ctx
        )
        return self._entry_reply(node, entry)

    @fuse_errors
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        check_length(self._name(new_name))  # the errors POSIX checks first come first
        self._changes()
        if not self.warned_link:  # an expected refusal (git falls back to rename): said once
            self.warned_link = True
            log.warning("link: B2 has no hard links; link() is EPERM on this mount (said once)")
        raise NotPermitted("B2 has no hard links", plain_names=False, quiet=True)

    @fuse_errors
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        parent = self.fs.inodes.get(parent_inode)
        node, entry = await self._changes().mknod(parent, self._name(name), mode, rdev, ctx)
        return self._entry_reply(node, entry)
