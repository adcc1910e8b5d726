"""Changes to files: create, mknod, symlink, open for writing, write, truncate, attributes.

File contents change locally and reach B2 through the write-back
(``b2fs.writeback``): a file opened for writing becomes a ``DirtyFile`` shown
in the mount at once and uploaded after it is closed.  Special files (FIFOs,
devices, sockets) are empty objects whose type and ``rdev`` are kept in file
info; the kernel does their I/O.  Attributes (mode, owner, times) are kept in
file info when the mount keeps attributes (the default); otherwise changing
mode or owner to other values than shown is EPERM.  As on Linux, a write or a
truncate by another user than root, and any chown of a file, clear the
set-user-ID bit and the set-group-ID bit of a group-executable file (the
kernel leaves that to the file system: FUSE's ``handle_killpriv``).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from typing import Any

from b2fs.posix.entries import SPECIAL, Entry, Kind, Remote
from b2fs.posix.errors import BadHandle, Exists, InvalidArgument, IsADirectory, NotFound
from b2fs.vfs.change_base import ChangeBase, kill_priv
from b2fs.vfs.filesystem import FileHandle
from b2fs.vfs.inodes import Node
from b2fs.writeback.dirty import DirtyFile


class FileChanges(ChangeBase):
    def _open_handle(self, node: Node, d: DirtyFile, flags: int, uid: int,
                     counted: bool = False) -> int:  # fmt: skip
        if not counted:
            d.writers += 1
        node.page_cache_id = None
        return self.fs.add_handle(FileHandle(node, flags, local=d, writable=True, uid=uid))

    async def create(
        self, parent: Node, name: str, mode: int, flags: int, ctx: Any
    ) -> tuple[int, Node, Entry]:
        self.wb.active()
        path, stored, long_info = self._new_name(parent, name)
        existing = await self.ns.lookup(path)
        if existing is not None:
            if flags & os.O_EXCL:
                raise Exists(f"{path!r} exists")
            if existing.kind is Kind.DIR:
                raise IsADirectory(f"{path!r} is a directory")
            if existing.kind is not Kind.FILE:
                raise Exists(f"{path!r} exists (a {existing.kind.name.lower()})")
            # The kernel thought the name free (a "no such name" it keeps for negative_timeout,
            # from before the file came, made elsewhere): open the file there, as open(2) would.
            node = self.fs.inodes.node(path, Kind.FILE)
            fh = await self.open_write(node, flags, ctx)
            return fh, node, await self.fs.entry(node)
        old = self.wb.get(path)
        if old is not None:
            await self.wb.discard(old)
        attrs = await self._new_attrs(Kind.FILE, mode, ctx, parent)
        d = self.wb.new(path, stored, long_info, attrs)
        self.feed.based(d, existing)
        node = self.fs.inodes.node(path, Kind.FILE)
        fh = self._open_handle(node, d, flags, getattr(ctx, "uid", 0))
        if existing is None:
            self.fs.dir_changed(parent.path)
        return fh, node, d.as_entry(name)

    async def mknod(
        self, parent: Node, name: str, mode: int, rdev: int, ctx: Any
    ) -> tuple[Node, Entry]:
        kind = Kind.of_mode(mode) if stat.S_IFMT(mode) else Kind.FILE
        if kind is Kind.FILE:
            fh, node, entry = await self.create(parent, name, mode, os.O_WRONLY | os.O_EXCL, ctx)
            await self.release(fh)
            return node, entry
        if kind not in SPECIAL:
            raise InvalidArgument(f"mknod of a {kind.name.lower()} is not defined")
        path, stored, long_info = self._new_name(parent, name)
        if await self.ns.lookup(path) is not None:
            raise Exists(f"{path!r} exists")
        attrs = await self._new_attrs(kind, mode, ctx, parent, rdev)
        d = self.wb.new(path, stored, long_info, attrs)
        self._settle(d)
        self.fs.dir_changed(parent.path)
        return self.fs.inodes.node(path, kind), d.as_entry(name)

    async def symlink(self, parent: Node, name: str, target: str, ctx: Any) -> tuple[Node, Entry]:
        path, stored, long_info = self._new_name(parent, name)
        if await self.ns.lookup(path) is not None:
            raise Exists(f"{path!r} exists")
        attrs = await self._new_attrs(Kind.SYMLINK, 0o777, ctx, parent)
        d = self.wb.new(path, stored, long_info, attrs)
        async with d.lock:
            await d.write(0, os.fsencode(target))
        self._settle(d)
        self.fs.dir_changed(parent.path)
        return self.fs.inodes.node(path, Kind.SYMLINK), d.as_entry(name)

    async def open_write(self, node: Node, flags: int, ctx: Any = None) -> int:
        entry = await self.fs.entry(node)
        if entry.kind is Kind.DIR:
            raise IsADirectory(f"{node.path!r} is a directory")
        uid = getattr(ctx, "uid", 0)
        truncate = bool(flags & os.O_TRUNC)
        d = await self._dirty_for(node, entry, truncate)
        d.writers += 1  # before any await: an upload finishing meanwhile must not drop it
        try:
            if truncate:  # the file's times move even when it was empty already (POSIX)
                async with d.lock:
                    await self.wb.supersede(d)
                    if d.size:
                        await d.truncate(0)
                    r = d.record
                    r.base_limit = 0
                    r.mtime_ns = r.ctime_ns = time.time_ns()
                    if uid != 0:
                        r.mode = kill_priv(r.mode)
                    d.touch()
        except BaseException:
            d.writers -= 1
            raise
        return self._open_handle(node, d, flags, uid, counted=True)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self.fs.handle(fh)
        d = handle.local
        if not handle.writable or d is None:
            raise BadHandle("the file is not open for writing")
        self.wb.active()
        if d.uploading is None and d.record.base_limit == 0 and not d.lock.locked() and data:
            # The common case (a new file): nothing to stop or fetch, so no lock and no await.
            return self._written(d, handle, d.write_staged(offset, data))
        async with d.lock:
            await self.wb.supersede(d)
            return self._written(d, handle, await d.write(offset, data))

    def _written(self, d: DirtyFile, handle: FileHandle, n: int) -> int:
        r = d.record
        r.mtime_ns = r.ctime_ns = time.time_ns()
        if handle.uid != 0 and r.mode is not None and r.mode & (stat.S_ISUID | stat.S_ISGID):
            r.mode = kill_priv(r.mode)
        return n

    async def flush(self, fh: int) -> None:
        handle = self.fs.handle(fh)
        d = handle.local
        if handle.writable and d is not None and not d.deleted and not _untouched(d):
            await self.wb.journal_async(d)

    async def release(self, fh: int) -> None:
        handle = self.fs.release(fh)
        if handle is None or not handle.writable or handle.local is None:
            return
        d: DirtyFile = handle.local
        d.writers -= 1
        if d.deleted:
            self.wb.handle_closed(d)
            return
        if d.writers:
            return
        if _untouched(d):  # opened for writing, never written: nothing to upload
            self.fs.unpin(d, _base_entry(d, handle.node.path.rpartition("/")[2]))
            await self.wb.discard(d)
            return
        await self.wb.journal_async(d)
        if not d.deleted:
            self.wb.closed(d)

    async def fsync(self, fh: int) -> None:
        handle = self.fs.handle(fh)
        d = handle.local
        if d is None or d.deleted or _untouched(d):
            return
        await self.wb.wait_uploaded(d)

    async def setattr(self, node: Node, attr: Any, fields: Any, fh: int | None, ctx: Any) -> Entry:
        entry = await self.fs.entry(node)
        if entry.kind is Kind.DIR:
            if fields.update_size:
                raise IsADirectory(f"{node.path!r} is a directory")
            return await self.set_dir_attrs(node, entry, attr, fields)  # dir_changes
        if not (fields.update_size or fields.update_mtime or fields.update_atime
                or fields.update_mode or fields.update_uid or fields.update_gid):  # fmt: skip
            return entry  # ctime alone: it moves with every change anyway
        if not self.defaults.keep_attrs:
            self._check_fixed_attrs(entry, attr, fields)
            if not (fields.update_size or fields.update_mtime or fields.update_atime):
                return entry
        handle = self.fs.files.get(fh) if fh else None
        if handle is not None and handle.writable and handle.local is not None:
            d = handle.local  # ftruncate/futimens: the version this handle writes
        elif node.gone:  # unlinked or replaced while open (the kernel's write-back cache
            # writes times back with no handle): the version a handle holds, if any
            d = self.fs.held_version(node)
            if d is None:
                return self._restamp(node, entry, attr, fields)
        else:
            d = await self._dirty_for(node, entry, truncate=False)
        d.writers += 1  # pinned while it changes (see open_write)
        try:
            await self._apply_attrs(d, attr, fields, getattr(ctx, "uid", 0))
        finally:
            d.writers -= 1
        if not d.deleted:
            self._settle(d)
        return d.as_entry(node.path.rpartition("/")[2])

    def _restamp(self, node: Node, entry: Entry, attr: Any, fields: Any) -> Entry:
        """Attributes of a file that lost its name and has no pending version: what its open
        handles show changes; its size cannot (no handle writes it)."""
        if fields.update_size:
            raise NotFound(f"{node.path!r} was removed; change it through an open handle")
        changes: dict[str, Any] = {"ctime_ns": time.time_ns()}
        if fields.update_mtime:
            changes["mtime_ns"] = attr.st_mtime_ns
        if fields.update_atime:
            changes["atime_ns"] = attr.st_atime_ns
        if self.defaults.keep_attrs:
            if fields.update_mode:
                changes["mode"] = stat.S_IMODE(attr.st_mode)
            if fields.update_uid:
                changes["uid"] = attr.st_uid
            if fields.update_gid:
                changes["gid"] = attr.st_gid
        return self.fs.restamp(node, **changes) or dataclasses.replace(entry, **changes)

    async def _apply_attrs(self, d: DirtyFile, attr: Any, fields: Any, uid: int) -> None:
        if d.uploading is None and not fields.update_size and not d.lock.locked():
            self._set_attrs(d, attr, fields)  # nothing to stop or fetch: no lock, no await
            return
        async with d.lock:
            await self.wb.supersede(d)
            r = d.record
            if fields.update_size:
                if attr.st_size != r.size:
                    r.mtime_ns = time.time_ns()
                await d.truncate(attr.st_size)
                if uid != 0:
                    r.mode = kill_priv(r.mode)
            self._set_attrs(d, attr, fields)


def _base_entry(d: DirtyFile, name: str) -> Entry:
    """The remote version an untouched pending version was made from (and is equal to)."""
    r = d.record
    assert r.base_file_id is not None
    remote = Remote(r.base_file_id, r.base_stored_size, dict(r.base_info), r.base_type)
    return dataclasses.replace(d.as_entry(name), local=None, remote=remote)


def _untouched(d: DirtyFile) -> bool:
    """A pending version made from a remote one that nothing has changed yet."""
    return d.generation == 0 and d.record.base_file_id is not None and d.row_id is None
