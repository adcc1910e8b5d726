"""Removing and renaming names: unlink, rename of files and of directory trees.

Names already in B2 change in B2 before the call returns: ``unlink`` hides
the name (or deletes every version with ``-o hard_delete``); ``rename`` of a
file copies it server-side (``b2_copy_file``, or part by part above 5 GB
through the write-back) with its ctime moved, then removes the source; a
pending file is renamed locally.  A directory rename is journaled, then every
name below it is copied to the new prefix and removed at the old one (names
re-encoded under their new parent in an encrypted mount), so a crash half-way
is completed at the next mount.  Every new name is checked against B2's
1,024-byte limit before anything moves.  ``RENAME_EXCHANGE`` lives in
``b2fs.vfs.exchange``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import pyfuse3
import trio

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.errors import (
    Exists,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
)
from b2fs.posix.fileinfo import Attrs, write_info
from b2fs.posix.paths import DIR_MARKER, check_key, check_length, is_under, join, split
from b2fs.vfs.change_base import ChangeBase
from b2fs.vfs.inodes import Node
from b2fs.vfs.remote import COPY_FILE_MAX
from b2fs.writeback.manager import remote_entry

log = logging.getLogger(__name__)


class Renames(ChangeBase):
    async def unlink(self, parent: Node, name: str) -> None:
        check_length(name)
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
            async with self.wb.holding([d]):
                remote_too = remote_too or _in_b2(d) or self._has_remote(parent.path, name)
                if self.wb.get(path) is d:  # else its upload landed and it left the overlay
                    await self._drop_named(path, d)
        seen = _seen(entry, d, self._listed(parent.path, name))
        if remote_too:
            await self.remote.remove(entry.stored, seen)
            self.feed.gone(path)
        self._patch(parent.path, name, None)
        self.fs.inodes.unlinked(path)
        self.fs.dir_changed(parent.path)

    async def rename(
        self, old_parent: Node, old_name: str, new_parent: Node, new_name: str, flags: int
    ) -> None:
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise InvalidArgument(f"rename flags {flags:#x} are not supported (RENAME_WHITEOUT?)")
        check_length(old_name)
        old = join(old_parent.path, old_name)
        new, new_stored, new_long = self._new_name(new_parent, new_name)
        if old == new:
            return
        src = await self.ns.lookup(old)
        if src is None:
            raise NotFound(f"{old!r} does not exist")
        dst = await self.ns.lookup(new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            if dst is None:
                raise NotFound(f"{new!r} does not exist")
            await self.exchange(old, src, new, dst)  # b2fs.vfs.exchange
            return
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
            await self._rename_dir(old, new, replaces=dst is not None)
        else:
            if dst is not None and dst.kind is Kind.DIR:
                raise IsADirectory(f"{new!r} is a directory")
            await self._keep_dir(old_parent.path)
            await self._rename_file(old, src, new, new_stored, new_long)
            moved = self.wb.get(new)
            if moved is not None:  # uploaded later: it replaces what the new name showed
                self.feed.based(moved, dst)
        tree = src.kind is Kind.DIR
        self.fs.inodes.rename(old, new, tree=tree)
        if tree:  # stored names are remembered for directories only
            self.ns.forget_stored(old)
        self.fs.dir_changed(old_parent.path)
        self.fs.dir_changed(new_parent.path)

    async def _rename_file(
        self, old: str, src: Entry, new: str, new_stored: str, new_long: dict[str, str] | None
    ) -> None:
        old_parent, old_name = split(old)
        new_parent, new_name = split(new)
        replaced = self.wb.get(new)
        if replaced is not None:
            async with self.wb.holding([replaced]):
                if self.wb.get(new) is replaced:  # else uploaded: the copy below replaces it
                    await self._drop_named(new, replaced)
        now = time.time_ns()
        while (d := self.wb.get(old)) is not None or src.local is not None:
            if d is None:  # pending when looked up; its upload has landed and left the overlay
                found = await self.ns.lookup(old)
                if found is None:
                    raise NotFound(f"{old!r} does not exist")
                src = found
                continue
            async with self.wb.holding([d]):
                if self.wb.get(old) is d:
                    await self._move_pending(d, old, src, new, new_stored, new_long, now)
                    return
        assert src.remote is not None
        if src.remote.stored_size > COPY_FILE_MAX:
            # Too big for b2_copy_file: a pending version copied part by part, then the source goes.
            a = _attrs_of(src)
            a.ctime_ns = now
            d = self.wb.new(new, new_stored, new_long, a, base=src)
            d.record.hide_after.append(src.stored)
            self.feed.gone_after(d, old)
            self.wb.journal_now(d)
            self.wb.schedule(d, 0)
            self._patch(old_parent, old_name, None)
            return
        info = self._copied_info(src, new_long, ctime_ns=now)
        args = {"file_id": src.remote.file_id, "src": src.stored, "dst": new_stored, "info": info,
                "content_type": src.remote.content_type}  # fmt: skip
        op = self.journal.add_op("rename_file", args)
        version = await self.remote.copy(src.remote.file_id, new_stored, info,
                                         content_type=src.remote.content_type)  # fmt: skip
        self._copied(src.remote.file_id, version.file_id, src.size)
        node = self.fs.inodes.by_path(old)
        if node is not None and node.page_cache_id == src.remote.file_id:
            node.page_cache_id = version.file_id
        self.feed.put(new, version)
        await self.remote.remove(src.stored, src.remote.file_id)
        self.feed.gone(old)
        self.journal.done_op(op)
        self._patch(old_parent, old_name, None)
        self._patch(new_parent, new_name, remote_entry(new_name, version, src.size))

    async def _move_pending(self, d: Any, old: str, src: Entry, new: str, new_stored: str,
                            new_long: dict[str, str] | None, now: int) -> None:  # fmt: skip
        """Rename a pending version (held: no upload of it runs): a local move, and the old
        name removed in B2 when it is there."""
        old_parent, old_name = split(old)
        remote_too = self._has_remote(old_parent, old_name) or _in_b2(d)
        if remote_too and self.remote.hard_delete:
            async with d.lock:
                await d.fill_range(0, d.size)  # the base is about to be deleted
                d.record.base_limit = 0
        d.record.ctime_ns = now
        seen = _seen(src, d, self._listed(old_parent, old_name))
        self.wb.move(d, new, new_stored, new_long)
        if remote_too:
            await self.remote.remove(src.stored, seen)
            self.feed.gone(old)
        self._patch(old_parent, old_name, None)
        self.wb.schedule(d)

    async def _drop_named(self, path: str, d: Any) -> None:
        """``path`` loses its name with ``d``, its pending version: handles still open on the
        file keep reading ``d`` (its content when the name went), B2 never gets it."""
        node = self.fs.inodes.by_path(path)
        if node is not None:
            self.fs.pin(node, d)
        await self.wb.discard(d)

    def _copied_info(self, src: Entry, new_long: dict[str, str] | None,
                     ctime_ns: int) -> dict[str, str]:  # fmt: skip
        """Metadata for a copy of ``src`` under a new name: its own, with the new name's long
        info and the ctime the move gives it."""
        from b2fs.codec.names import LONG_INFO_KEY

        assert src.remote is not None
        info = dict(src.remote.file_info)
        info.pop(LONG_INFO_KEY, None)
        info.update(new_long or {})
        a = _attrs_of(src)
        a.ctime_ns = ctime_ns
        info.update(write_info(a, keep_owner=False))  # mode and owner stay as they are
        return info

    async def _rename_dir(self, old: str, new: str, replaces: bool = False) -> None:
        old_stored = self.ns.stored_dir(old)
        new_stored = self.ns.stored_dir(new)
        top_long = self.ns.encode(new)[1]
        async with contextlib.AsyncExitStack() as held:
            # The pending versions below: held (an upload under way lands first, so the
            # listing shows it; none starts until they have moved), then the tree listed,
            # again if one came meanwhile.
            below: dict[int, Any] = {}
            moves: list[tuple[Any, str, dict[str, str] | None]] | None = None
            while True:
                fresh = [d for d in self.wb.files.values()
                         if is_under(d.path, old) and id(d) not in below]  # fmt: skip
                if not fresh and moves is not None:
                    break
                if fresh:
                    below.update((id(d), d) for d in fresh)
                    await held.enter_async_context(self.wb.holding(fresh))
                moves = await self._tree_moves(old_stored, new_stored, top_long)  # names checked
            pending = [(d, new + d.path[len(old) :], *self._stored_for(d, new + d.path[len(old) :]))
                       for d in self.wb.files.values() if is_under(d.path, old)]  # fmt: skip
            for _, _, stored, _ in pending:
                check_key(stored)
            if replaces:  # the empty directory at ``new`` goes first (b2fs.vfs.dir_changes)
                await self._drop_marker(new)
            op = self.journal.add_op("rename_dir", {"old": old, "new": new, "old_stored": old_stored,
                                                    "new_stored": new_stored, "top_long": top_long})  # fmt: skip
            self.wb.move_many(pending)
            await self.move_tree(old_stored, new_stored, top_long, moves)
        self.feed.tree(old)
        self.feed.tree(new)
        self.journal.done_op(op)
        old_parent, old_name = split(old)
        new_parent, new_name = split(new)
        self._patch(old_parent, old_name, None)
        self._patch(new_parent, new_name, Entry(new_name, Kind.DIR, new_stored))
        self.ns.listings.invalidate_below(old_stored)
        self.ns.listings.invalidate_below(new_stored)
        for path in [p for p in self.fs.dir_times if p == old or p.startswith(old + "/")]:
            del self.fs.dir_times[path]
        self.fs.dir_changed(new, entries=False)

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
        if top_long and not any(t == new_stored + DIR_MARKER for _, t, _ in moves):
            await self.remote.put_marker(new_stored, top_long)
        limiter = trio.CapacityLimiter(8)
        errors: list[BaseException] = []

        async def one(f: Any, target: str, info: dict[str, str] | None) -> None:
            async with limiter:
                try:
                    copy = await self.remote.copy(f.file_id, target, info, size=f.size,
                                                  content_type=f.content_type)  # fmt: skip
                    if not target.endswith(DIR_MARKER):
                        with contextlib.suppress(Exception):  # a foreign size: nothing cached
                            self._copied(
                                f.file_id, copy.file_id, self.fs.reader.codec.plain_size(f.size)
                            )
                    await self.remote.remove(f.file_name, f.file_id)
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
        from b2fs.codec import LONG_INFO_KEY, EncodedName, UndecodableName

        rel = f.file_name[len(old_stored) :]
        if not self.ns.names.encrypted:
            if rel == DIR_MARKER and (top_long or LONG_INFO_KEY in (f.file_info or {})):
                info = dict(f.file_info or {})  # the directory's own marker: its new long name
                info.pop(LONG_INFO_KEY, None)
                info.update(top_long or {})
                return new_stored + rel, info
            return new_stored + rel, None
        # Encrypted names are bound to their parents: decode under the old tree, encode under the
        # new one.  A long directory name is in its marker's info; a file's in its own.
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
                    self.feed.tree(args["old"])
                    self.feed.tree(args["new"])
                elif kind == "rename_file":
                    log.info("journal: completing the rename of %s to %s", args["src"], args["dst"])
                    try:  # copying again is harmless: the same bytes become the newest version
                        await self.remote.copy(args["file_id"], args["dst"], args["info"],
                                               content_type=args.get("content_type"))  # fmt: skip
                    except B2NotFound:
                        log.warning(
                            "journal: %s is gone; its rename cannot be completed", args["src"]
                        )
                    await self.remote.remove(args["src"])
                elif kind in ("exchange", "exchange_dirs"):
                    await self.replay_exchange(op_id, kind, args)  # b2fs.vfs.exchange
            except Exception as e:  # the mount still starts; the next one tries again
                log.error("journal: completing a %s failed (%s: %s); retried at the next mount",
                          kind, type(e).__name__, e)  # fmt: skip
                continue
            self.journal.done_op(op_id)


def _seen(entry: Entry | None, d: Any, listed: Entry | None) -> str | None:
    """The remote version a name showed here: its own, or that of its pending version (the
    one it uploaded last, or was made from), or its listing's."""
    if entry is not None and entry.remote is not None:
        return entry.remote.file_id
    if d is not None and (d.uploaded_file_id or d.record.base_file_id):
        return d.uploaded_file_id or d.record.base_file_id
    return listed.remote.file_id if listed is not None and listed.remote is not None else None


def _in_b2(d: Any) -> bool:
    """Whether B2 may hold a version at a pending file's name: the one it was made from, one
    it uploaded, or one a failed attempt may have left (B2 received it, the answer was lost)."""
    r = d.record
    return r.base_file_id is not None or d.uploaded_generation >= 0 or r.attempts > 0


def _attrs_of(e: Entry) -> Attrs:
    return Attrs(e.kind, e.mode, e.uid, e.gid, e.mtime_ns, e.atime_ns, e.ctime_ns, e.rdev)
