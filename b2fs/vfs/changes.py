"""Writes and namespace changes: what create, write, truncate, mkdir, unlink, rename... do in B2.

File contents change locally and reach B2 through the write-back
(``b2fs.writeback``): a file opened for writing becomes a ``DirtyFile`` shown
in the mount at once and uploaded after it is closed.  Namespace changes of
names already in B2 are made in B2 before the call returns: ``mkdir`` writes a
``.bzEmpty`` marker, ``rmdir`` deletes it, ``unlink`` hides the name (or
deletes every version with ``-o hard_delete``), ``rename`` copies server-side
then removes the source.  A directory rename is journaled first, so a crash
half-way is completed at the next mount.  A directory that would vanish when
its last entry goes (B2 has no directories; an unmarked one exists only
through its contents) gets a marker, so ``rm dir/f; rmdir dir`` works.

Directory permissions, owners and times are not stored (B2 has no
directories): changing them succeeds and has no lasting effect.  File
attributes are stored in file info when the mount keeps attributes (the
default); otherwise changing them to other values than shown is EPERM.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from typing import Any

import pyfuse3
import trio

from b2fs.mount.options import MountOptions
from b2fs.vfs.entries import Entry
from b2fs.vfs.errors import (
    BadHandle,
    Exists,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotPermitted,
)
from b2fs.vfs.filesystem import FileHandle, FileSystem
from b2fs.vfs.inodes import Kind, Node
from b2fs.vfs.listing import Listing
from b2fs.vfs.paths import DIR_MARKER, check_key, check_new_segment, join, split
from b2fs.vfs.remote import COPY_FILE_MAX, RemoteNames
from b2fs.writeback.dirty import DirtyFile
from b2fs.writeback.manager import WriteBack, remote_entry

log = logging.getLogger(__name__)


class Changes:
    def __init__(
        self, fs: FileSystem, wb: WriteBack, remote: RemoteNames, opts: MountOptions
    ) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.wb = wb
        self.remote = remote
        self.opts = opts
        self.journal = wb.journal
        wb.on_uploaded = self._uploaded
        wb.remove_name = remote.remove

    # -- helpers -------------------------------------------------------------------------

    def _new_name(self, parent: Node, name: str) -> tuple[str, str, dict[str, str] | None]:
        """(path, stored name, long info) for a name about to be created, or a clear error."""
        if parent.kind is not Kind.DIR:
            raise NotADirectory(f"{parent.path!r} is not a directory")
        if not self.ns.names.encrypted:  # an encrypted name is checked by its codec (≤ 255 bytes)
            check_new_segment(name)
        path = join(parent.path, name)
        stored, long_info = self.ns.encode(path)
        check_key(stored)
        return path, stored, long_info

    def _attrs(self, mode: int, ctx: Any) -> tuple[int | None, int | None, int | None]:
        if not self.opts.keep_attrs:
            return None, None, None
        return mode & 0o7777, getattr(ctx, "uid", None), getattr(ctx, "gid", None)

    def _listing(self, dir_path: str) -> Listing | None:
        return self.ns.cached_listing(dir_path)

    def _patch(self, dir_path: str, name: str, entry: Entry | None) -> None:
        listing = self._listing(dir_path)
        if listing is None:
            return
        if entry is None:
            listing.remove(name)
        else:
            entry.name = name
            listing.put(entry)

    def _uploaded(self, d: DirtyFile, version: Any) -> None:
        parent, name = split(d.path)
        self._patch(parent, name, remote_entry(name, version, d.size, d.kind))
        node = self.fs.inodes.by_path(d.path)
        if node is not None:
            node.page_cache_id = None

    def _open_handle(self, node: Node, d: DirtyFile, flags: int, counted: bool = False) -> int:
        if not counted:
            d.writers += 1
        node.page_cache_id = None
        return self.fs.add_handle(FileHandle(node, flags, local=d, writable=True))

    async def _dirty_for(self, node: Node, entry: Entry, truncate: bool) -> DirtyFile:
        """The pending version of a file, made from its remote version when there is none."""
        d = self.wb.get(node.path)
        if d is not None:
            return d
        stored, long_info = self.ns.encode(node.path)
        base = None if truncate else entry
        return self.wb.new(node.path, stored, long_info, kind="symlink" if entry.kind is Kind.SYMLINK else "file",
                           base=base, mtime_ns=time.time_ns() if truncate else entry.mtime_ns,
                           mode=entry.mode, uid=entry.uid, gid=entry.gid)  # fmt: skip

    def _settle(self, d: DirtyFile) -> None:
        """A change with no open writer: journal it and queue the upload."""
        if d.writers == 0:
            self.wb.journal_now(d)
            self.wb.schedule(d)

    async def _keep_dir(self, dir_path: str) -> None:
        """Give an unmarked directory a marker when its last entry is about to go."""
        if not dir_path:
            return
        listing = await self.ns.listing(dir_path)
        if listing.has_marker:
            return
        if len(listing.entries) + len(self.wb.children(dir_path)) > 1:
            return
        await self.remote.put_marker(self.ns.stored_dir(dir_path), self.ns.encode(dir_path)[1])
        listing.has_marker = True

    # -- files ---------------------------------------------------------------------------

    async def create(
        self, parent: Node, name: str, mode: int, flags: int, ctx: Any
    ) -> tuple[int, Node, Entry]:
        path, stored, long_info = self._new_name(parent, name)
        existing = await self.ns.lookup(path)
        if existing is not None:
            if flags & os.O_EXCL:
                raise Exists(f"{path!r} exists")
            if existing.kind is Kind.DIR:
                raise IsADirectory(f"{path!r} is a directory")
        old = self.wb.get(path)
        if old is not None:
            await self.wb.discard(old)
        m, uid, gid = self._attrs(mode, ctx)
        d = self.wb.new(path, stored, long_info, mtime_ns=time.time_ns(), mode=m, uid=uid, gid=gid)
        node = self.fs.inodes.node(path, Kind.FILE)
        fh = self._open_handle(node, d, flags)
        entry = self.wb.entry(path)
        assert entry is not None
        return fh, node, entry

    async def open_write(self, node: Node, flags: int) -> int:
        entry = await self.fs.entry(node)
        if entry.kind is Kind.DIR:
            raise IsADirectory(f"{node.path!r} is a directory")
        truncate = bool(flags & os.O_TRUNC)
        d = await self._dirty_for(node, entry, truncate)
        d.writers += 1  # before any await: an upload finishing meanwhile must not drop it
        try:
            if truncate and d.size:
                async with d.lock:
                    await self.wb.supersede(d)
                    await d.truncate(0)
                    d.record.base_limit = 0
                    d.record.mtime_ns = time.time_ns()
        except BaseException:
            d.writers -= 1
            raise
        return self._open_handle(node, d, flags, counted=True)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self.fs.handle(fh)
        d = handle.local
        if not handle.writable or d is None:
            raise BadHandle("the file is not open for writing")
        async with d.lock:
            await self.wb.supersede(d)
            if handle.flags & os.O_APPEND:
                offset = d.size
            n = await d.write(offset, data)
            d.record.mtime_ns = time.time_ns()
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
            await self.wb.discard(d)
            return
        await self.wb.journal_async(d)
        if not d.deleted:
            self.wb.schedule(d)

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
            return entry  # directory attributes are not stored (see the module docstring)
        changes_meta = (
            fields.update_mtime or fields.update_mode or fields.update_uid or fields.update_gid
        )
        if not (fields.update_size or changes_meta):
            return entry
        if not self.opts.keep_attrs:
            self._check_fixed_attrs(entry, attr, fields)
            if not (fields.update_size or fields.update_mtime):
                return entry
        handle = self.fs.files.get(fh) if fh else None
        if handle is not None and handle.writable and handle.local is not None:
            d = handle.local  # ftruncate/futimens: the version this handle writes
        elif node.gone:
            raise NotFound(f"{node.path!r} was removed; change it through an open handle")
        else:
            d = await self._dirty_for(node, entry, truncate=False)
        d.writers += 1  # pinned while it changes (see open_write)
        try:
            await self._apply_attrs(d, attr, fields)
        finally:
            d.writers -= 1
        if not d.deleted:
            self._settle(d)
        return d.as_entry(node.path.rpartition("/")[2])

    async def _apply_attrs(self, d: DirtyFile, attr: Any, fields: Any) -> None:
        async with d.lock:
            await self.wb.supersede(d)
            r = d.record
            if fields.update_size:
                await d.truncate(attr.st_size)
                r.mtime_ns = time.time_ns()
            if fields.update_mtime:
                r.mtime_ns = attr.st_mtime_ns
            if self.opts.keep_attrs:
                if fields.update_mode:
                    r.mode = stat.S_IMODE(attr.st_mode)
                if fields.update_uid:
                    r.uid = attr.st_uid
                if fields.update_gid:
                    r.gid = attr.st_gid
            d.touch()

    def _check_fixed_attrs(self, entry: Entry, attr: Any, fields: Any) -> None:
        shown = self.fs.opts
        if fields.update_mode:
            current = entry.mode if entry.mode is not None else 0o666 & ~shown.umask
            if stat.S_IMODE(attr.st_mode) != current:
                raise NotPermitted(
                    "file modes are fixed by the mount options (mount with keep_attrs to store them)"
                )
        if fields.update_uid and attr.st_uid != (entry.uid if entry.uid is not None else shown.uid):
            raise NotPermitted(
                "file owners are fixed by the mount options (mount with keep_attrs to store them)"
            )
        if fields.update_gid and attr.st_gid != (entry.gid if entry.gid is not None else shown.gid):
            raise NotPermitted(
                "file groups are fixed by the mount options (mount with keep_attrs to store them)"
            )

    async def symlink(self, parent: Node, name: str, target: str, ctx: Any) -> tuple[Node, Entry]:
        path, stored, long_info = self._new_name(parent, name)
        if await self.ns.lookup(path) is not None:
            raise Exists(f"{path!r} exists")
        _, uid, gid = self._attrs(0o777, ctx)
        d = self.wb.new(
            path,
            stored,
            long_info,
            kind="symlink",
            mtime_ns=time.time_ns(),
            mode=None,
            uid=uid,
            gid=gid,
        )
        async with d.lock:
            await d.write(0, os.fsencode(target))
        self._settle(d)
        entry = self.wb.entry(path)
        assert entry is not None
        return self.fs.inodes.node(path, Kind.SYMLINK), entry

    # -- directories ---------------------------------------------------------------------

    async def mkdir(self, parent: Node, name: str, mode: int, ctx: Any) -> tuple[Node, Entry]:
        path, _, long_info = self._new_name(parent, name)
        if await self.ns.lookup(path) is not None:
            raise Exists(f"{path!r} exists")
        stored_dir = self.ns.stored_dir(path)
        check_key(stored_dir + DIR_MARKER)
        await self.remote.put_marker(stored_dir, long_info)
        entry = Entry(name, Kind.DIR, stored_dir)
        self._patch(parent.path, name, entry)
        self.ns.listings.seed(stored_dir, Listing({}, time.monotonic(), has_marker=True))
        return self.fs.inodes.node(path, Kind.DIR), entry

    async def rmdir(self, parent: Node, name: str) -> None:
        path = join(parent.path, name)
        entry = await self.ns.lookup(path)
        if entry is None:
            raise NotFound(f"{path!r} does not exist")
        if entry.kind is not Kind.DIR:
            raise NotADirectory(f"{path!r} is not a directory")
        if await self.ns.children(path):
            raise NotEmpty(f"{path!r} is not empty")
        await self._keep_dir(parent.path)
        stored_dir = self.ns.stored_dir(path)
        await self.remote.delete_marker(stored_dir)
        self._patch(parent.path, name, None)
        self.ns.listings.invalidate(stored_dir)
        self.fs.inodes.unlinked(path)

    # -- removing and renaming -----------------------------------------------------------

    async def unlink(self, parent: Node, name: str) -> None:
        path = join(parent.path, name)
        entry = await self.ns.lookup(path)
        if entry is None:
            raise NotFound(f"{path!r} does not exist")
        if entry.kind is Kind.DIR:
            raise IsADirectory(f"{path!r} is a directory")
        await self._keep_dir(parent.path)
        d = self.wb.get(path)
        remote_too = self._has_remote(parent.path, name)
        if d is not None:
            remote_too = (
                remote_too or d.record.base_file_id is not None or d.uploaded_generation >= 0
            )
            await self.wb.discard(d)
        if remote_too:
            await self.remote.remove(entry.stored)
        self._patch(parent.path, name, None)
        self.fs.inodes.unlinked(path)

    def _has_remote(self, dir_path: str, name: str) -> bool:
        listing = self._listing(dir_path)
        return listing is None or name in listing.entries

    async def rename(
        self, old_parent: Node, old_name: str, new_parent: Node, new_name: str, flags: int
    ) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise InvalidArgument("RENAME_EXCHANGE cannot be done atomically on B2")
        if flags & ~pyfuse3.RENAME_NOREPLACE:
            raise InvalidArgument(f"rename flags {flags:#x} are not supported (RENAME_WHITEOUT?)")
        old = join(old_parent.path, old_name)
        new, new_stored, new_long = self._new_name(new_parent, new_name)
        if old == new:
            return
        src = await self.ns.lookup(old)
        if src is None:
            raise NotFound(f"{old!r} does not exist")
        dst = await self.ns.lookup(new)
        if dst is not None and flags & pyfuse3.RENAME_NOREPLACE:
            raise Exists(f"{new!r} exists")
        if src.kind is Kind.DIR:
            if new.startswith(old + "/"):
                raise InvalidArgument("cannot move a directory into itself")
            if dst is not None:
                if dst.kind is not Kind.DIR:
                    raise NotADirectory(f"{new!r} is not a directory")
                if await self.ns.children(new):
                    raise NotEmpty(f"{new!r} is not empty")
            await self._keep_dir(old_parent.path)
            await self._rename_dir(old, new)
        else:
            if dst is not None and dst.kind is Kind.DIR:
                raise IsADirectory(f"{new!r} is a directory")
            await self._keep_dir(old_parent.path)
            await self._rename_file(old, src, new, new_stored, new_long)
        self.fs.inodes.rename(old, new)
        self.ns.forget_stored(old)

    async def _rename_file(
        self, old: str, src: Entry, new: str, new_stored: str, new_long: dict[str, str] | None
    ) -> None:
        old_parent, old_name = split(old)
        new_parent, new_name = split(new)
        replaced = self.wb.get(new)
        if replaced is not None:
            await self.wb.discard(replaced)
        d = self.wb.get(old)
        if d is not None:
            await self.wb.supersede(d)
            remote_too = self._has_remote(old_parent, old_name) or d.record.base_file_id is not None
            if remote_too and self.remote.hard_delete:
                async with d.lock:
                    await d.fill_range(0, d.size)  # the base is about to be deleted
                    d.record.base_limit = 0
            self.wb.move(d, new, new_stored, new_long)
            if remote_too:
                await self.remote.remove(src.stored)
            self._patch(old_parent, old_name, None)
            self.wb.schedule(d)
            return
        assert src.remote is not None
        if src.remote.stored_size > COPY_FILE_MAX:
            # Too big for b2_copy_file: a pending version copied part by part, then the source goes.
            d = self.wb.new(new, new_stored, new_long, kind="symlink" if src.kind is Kind.SYMLINK else "file",
                            base=src, mtime_ns=src.mtime_ns, mode=src.mode, uid=src.uid, gid=src.gid)  # fmt: skip
            d.record.hide_after.append(src.stored)
            self.wb.journal_now(d)
            self.wb.schedule(d, 0)
            self._patch(old_parent, old_name, None)
            return
        info = self._copied_info(src, new_long)
        args = {"file_id": src.remote.file_id, "src": src.stored, "dst": new_stored, "info": info}
        op = self.journal.add_op("rename_file", args)
        version = await self.remote.copy(src.remote.file_id, new_stored, info)
        await self.remote.remove(src.stored)
        self.journal.done_op(op)
        self._patch(old_parent, old_name, None)
        self._patch(new_parent, new_name, remote_entry(new_name, version, src.size, src.kind))

    def _copied_info(self, src: Entry, new_long: dict[str, str] | None) -> dict[str, str] | None:
        """Metadata for a copy: kept as is, unless the long-name info must change."""
        assert src.remote is not None
        info = dict(src.remote.file_info)
        from b2fs.codec.names import LONG_INFO_KEY

        had_long = LONG_INFO_KEY in info
        if not had_long and not new_long:
            return None
        info.pop(LONG_INFO_KEY, None)
        info.update(new_long or {})
        return info

    async def _rename_dir(self, old: str, new: str) -> None:
        old_stored = self.ns.stored_dir(old)
        new_stored = self.ns.stored_dir(new)
        top_long = self.ns.encode(new)[1]
        moves = await self._tree_moves(old_stored, new_stored, top_long)  # refuses names too long
        pending = {path: self.ns.encode(new + path[len(old) :]) for path in self.wb.files
                   if path.startswith(old + "/")}  # fmt: skip
        for stored, _ in pending.values():
            check_key(stored)
        op = self.journal.add_op("rename_dir", {"old": old, "new": new, "old_stored": old_stored,
                                                "new_stored": new_stored, "top_long": top_long})  # fmt: skip
        for path, (stored, long_info) in pending.items():
            d = self.wb.files[path]
            await self.wb.supersede(d)
            self.wb.move(d, new + path[len(old) :], stored, long_info)
        await self.move_tree(old_stored, new_stored, top_long, moves)
        self.journal.done_op(op)
        old_parent, old_name = split(old)
        new_parent, new_name = split(new)
        self._patch(old_parent, old_name, None)
        self._patch(new_parent, new_name, Entry(new_name, Kind.DIR, new_stored))
        self.ns.listings.invalidate_below(old_stored)
        self.ns.listings.invalidate_below(new_stored)

    async def _tree_moves(self, old_stored: str, new_stored: str, top_long: dict[str, str] | None
                          ) -> list[tuple[Any, str, dict[str, str] | None]]:  # fmt: skip
        """(version, new name, new metadata or None) for every name below ``old_stored``;
        NameTooLong, before anything moves, if one would pass B2's limit."""
        client = self.remote.client
        files = [f async for f in client.list_file_names(self.remote.bucket_id, prefix=old_stored)]
        markers = {f.file_name[: -len(DIR_MARKER)]: dict(f.file_info or {}) for f in files
                   if f.file_name.endswith(DIR_MARKER)}  # fmt: skip
        moves = []
        for f in files:
            target, info = self._moved_name(old_stored, new_stored, f, markers, top_long)
            check_key(target)
            moves.append((f, target, info))
        return moves

    async def move_tree(self, old_stored: str, new_stored: str, top_long: dict[str, str] | None,
                        moves: list[tuple[Any, str, dict[str, str] | None]] | None = None) -> None:  # fmt: skip
        """Copy every name below ``old_stored`` to ``new_stored``, then remove it (idempotent:
        a crash half-way is finished by running it again)."""
        if moves is None:
            moves = await self._tree_moves(old_stored, new_stored, top_long)
        if top_long:
            await self.remote.put_marker(new_stored, top_long)
        limiter = trio.CapacityLimiter(8)
        errors: list[BaseException] = []

        async def one(f: Any, target: str, info: dict[str, str] | None) -> None:
            async with limiter:
                try:
                    await self.remote.copy(f.file_id, target, info, size=f.size)
                    await self.remote.remove(f.file_name)
                except Exception as e:
                    log.warning("directory rename: moving %r failed (%s); the rename gets EIO and "
                                "is finished at the next mount (it is in the journal)",
                                f.file_name, e)  # fmt: skip
                    errors.append(e)

        async with trio.open_nursery() as nursery:
            for move in moves:
                nursery.start_soon(one, *move)
        if errors:
            raise errors[0]

    def _moved_name(self, old_stored: str, new_stored: str, f: Any, markers: dict[str, dict[str, str]],
                    top_long: dict[str, str] | None) -> tuple[str, dict[str, str] | None]:  # fmt: skip
        """The new stored name (and metadata, when it changes) of ``f`` after its tree moved."""
        rel = f.file_name[len(old_stored) :]
        if not self.ns.names.encrypted:
            return new_stored + rel, None
        # Encrypted names are bound to their parents: decode under the old tree, encode under the
        # new one.  A long directory name is in its marker's info; a file's in its own.
        from b2fs.codec import LONG_INFO_KEY, EncodedName, UndecodableName

        segments = rel.split("/")
        old_parent, new_parent = old_stored, new_stored
        long_info = top_long  # of the directory or file the last segment names
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            if last and seg == DIR_MARKER:
                new_parent += seg
                break
            info = dict(f.file_info or {}) if last else markers.get(old_parent + seg + "/")
            try:
                name = self.ns.names.decode(self.ns.relative(old_parent), seg, info)
                encoded = self.ns.names.encode(self.ns.relative(new_parent), name)
            except UndecodableName:  # not this vault's (hidden in the mount): moves as it is
                encoded = EncodedName(seg, None)
            old_parent += seg + "/"
            new_parent += encoded.segment + ("" if last else "/")
            long_info = encoded.long_info
        info = dict(f.file_info or {})
        if LONG_INFO_KEY not in info and not long_info:
            return new_parent, None
        info.pop(LONG_INFO_KEY, None)
        info.update(long_info or {})
        return new_parent, info

    async def replay(self) -> None:
        """Finish renames a crash interrupted (run at mount, before the mount is up)."""
        from b2fs.b2.errors import NotFound as B2NotFound

        for op_id, kind, args in self.journal.ops():
            try:
                if kind == "rename_dir":
                    names = (
                        ("old_stored", "new_stored") if self.ns.names.encrypted else ("old", "new")
                    )
                    log.info(
                        "journal: completing the rename of %s to %s", *(args[n] for n in names)
                    )
                    await self.move_tree(
                        args["old_stored"], args["new_stored"], args.get("top_long")
                    )
                elif kind == "rename_file":
                    log.info("journal: completing the rename of %s to %s", args["src"], args["dst"])
                    try:  # copying again is harmless: the same bytes become the newest version
                        await self.remote.copy(args["file_id"], args["dst"], args["info"])
                    except B2NotFound:
                        log.warning(
                            "journal: %s is gone; its rename cannot be completed", args["src"]
                        )
                    await self.remote.remove(args["src"])
            except Exception as e:  # the mount still starts; the next one tries again
                log.error("journal: completing a %s failed (%s: %s); retried at the next mount",
                          kind, type(e).__name__, e)  # fmt: skip
                continue
            self.journal.done_op(op_id)


def _untouched(d: DirtyFile) -> bool:
    """A pending version made from a remote one that nothing has changed yet."""
    return d.generation == 0 and d.record.base_file_id is not None and d.row_id is None
