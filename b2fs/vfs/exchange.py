"""``rename(RENAME_EXCHANGE)``: two names swap what they hold.

B2 cannot swap two names atomically, so an exchange is done in steps that a
crash cannot turn into a loss.  Two non-directories: a side held only in B2
is copied server-side to the other name (by fileId, so both copies read the
versions as they were), a pending side is re-pointed locally; the copies are
journaled and run again at the next mount after a crash (a repeated copy
only adds the same bytes as a newer version).  Two directories: every name
below the first moves to a temporary prefix, the second's to the first, the
temporary one's to the second (three tree moves, each journaled with its step,
resumed where it stopped after a crash); pending files below them are
re-pointed locally.  A directory and a non-directory: EINVAL.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.errors import InvalidArgument, NotFound
from b2fs.posix.paths import is_under, split
from b2fs.vfs.renames import Renames
from b2fs.writeback.manager import remote_entry

log = logging.getLogger(__name__)


class Exchanges(Renames):
    async def exchange(self, a: str, ea: Entry, b: str, eb: Entry) -> None:
        if (ea.kind is Kind.DIR) != (eb.kind is Kind.DIR):
            raise InvalidArgument("RENAME_EXCHANGE of a directory and a non-directory")
        if ea.kind is Kind.DIR:
            if b.startswith(a + "/") or a.startswith(b + "/"):
                raise InvalidArgument("cannot exchange a directory with one inside it")
            await self._exchange_dirs(a, b)
        else:
            await self._exchange_files(a, ea, b, eb)
        tmp = f"\0exchange-{uuid.uuid4().hex}"  # no path can be this: the nodes swap through it
        tree = ea.kind is Kind.DIR
        self.fs.inodes.rename(a, tmp, tree)
        self.fs.inodes.rename(b, a, tree)
        self.fs.inodes.rename(tmp, b, tree)
        if tree:
            self.ns.forget_stored(a)
            self.ns.forget_stored(b)
        for path in (a, b):
            self.fs.dir_changed(split(path)[0])
            if ea.kind is Kind.DIR:
                self.fs.dir_changed(path, entries=False)

    # -- files ---------------------------------------------------------------------------

    async def _exchange_files(self, a: str, ea: Entry, b: str, eb: Entry) -> None:
        held = [d for d in (self.wb.get(a), self.wb.get(b)) if d is not None]
        async with self.wb.holding(held):  # uploads under way land first (see Renames)
            ea, eb = await self._current(a, ea), await self._current(b, eb)
            await self._swap_files(a, ea, b, eb)

    async def _current(self, path: str, e: Entry) -> Entry:
        """``e`` again if it still holds, else what ``path`` shows now (its pending version
        uploaded meanwhile: a remote entry)."""
        if e.local is None or self.wb.get(path) is e.local:
            return e
        found = await self.ns.lookup(path)
        if found is None:
            raise NotFound(f"{path!r} does not exist")
        return found

    async def _swap_files(self, a: str, ea: Entry, b: str, eb: Entry) -> None:
        da, db = self.wb.get(a), self.wb.get(b)
        now = time.time_ns()
        sa, la = self.ns.encode(a)
        sb, lb = self.ns.encode(b)
        copies = []  # (source entry, destination stored name, its long info, destination path)
        if da is None:
            copies.append((ea, sb, lb, b))
        if db is None:
            copies.append((eb, sa, la, a))
        planned = []
        for e, dst, dst_long, _ in copies:
            assert e.remote is not None
            planned.append({"file_id": e.remote.file_id, "dst": dst, "size": e.remote.stored_size,
                            "info": self._copied_info(e, dst_long, now),
                            "content_type": e.remote.content_type})  # fmt: skip
        op = self.journal.add_op("exchange", {"copies": planned}) if planned else None
        versions = [await self._copy(c) for c in planned]
        moves = []
        for d, path, replaced in ((da, b, eb), (db, a, ea)):
            if d is not None:
                d.record.ctime_ns = now
                moves.append((d, path, *self.ns.encode(path)))
                self.feed.based(d, replaced)
        self.wb.move_many(moves)
        for d in (da, db):
            if d is not None:
                self.wb.schedule(d)
        if op is not None:
            self.journal.done_op(op)
        for (e, _, _, path), version in zip(copies, versions, strict=True):
            parent, name = split(path)
            self._patch(parent, name, remote_entry(name, version, e.size))
            self.feed.put(path, version)

    async def _copy(self, c: dict[str, Any]) -> Any:
        return await self.remote.copy(c["file_id"], c["dst"], c["info"], size=c["size"],
                                      content_type=c.get("content_type"))  # fmt: skip

    # -- directories ---------------------------------------------------------------------

    async def _exchange_dirs(self, a: str, b: str) -> None:
        sa, sb = self.ns.stored_dir(a), self.ns.stored_dir(b)
        tmp = self.ns.stored_dir(split(a)[0]) + f".b2fs-exchange-{uuid.uuid4().hex[:16]}/"
        la, lb = self.ns.encode(a)[1], self.ns.encode(b)[1]
        # Names too long in their new place are refused before anything moves.
        await self._tree_moves(sa, sb, lb)
        await self._tree_moves(sb, sa, la)
        args = {"a": sa, "b": sb, "tmp": tmp, "la": la, "lb": lb, "step": 0}
        below = [d for d in self.wb.files.values() if is_under(d.path, a) or is_under(d.path, b)]
        async with self.wb.holding(below):  # uploads under way land before the tree moves
            op = self.journal.add_op("exchange_dirs", args)
            pending = []
            for path, d in list(self.wb.files.items()):
                for old, new in ((a, b), (b, a)):
                    if is_under(path, old):
                        moved = new + path[len(old) :]
                        pending.append((d, moved, *self._stored_for(d, moved)))
            self.wb.move_many(pending)
            await self._dir_steps(op, args)
        self.feed.tree(a)
        self.feed.tree(b)
        for stored in (sa, sb, tmp):
            self.ns.listings.invalidate_below(stored)
        for path in [
            p for p in self.fs.dir_times if p.startswith((a + "/", b + "/")) or p in (a, b)
        ]:
            del self.fs.dir_times[path]

    async def _dir_steps(self, op: int, args: dict[str, Any]) -> None:
        steps = ((args["a"], args["tmp"], None), (args["b"], args["a"], args["la"]),
                 (args["tmp"], args["b"], args["lb"]))  # fmt: skip
        for i in range(args["step"], 3):
            await self.move_tree(*steps[i])
            args["step"] = i + 1
            self.journal.update_op(op, args)

    async def replay_exchange(self, op: int, kind: str, args: dict[str, Any]) -> None:
        """Finish an exchange a crash interrupted (from ``Renames.replay``)."""
        if kind == "exchange":
            log.info("journal: completing an exchange of two files")
            for c in args["copies"]:
                await self._copy(c)
        else:
            log.info("journal: completing an exchange of two directories (step %d of 3)",
                     args["step"] + 1)  # fmt: skip
            await self._dir_steps(op, args)
