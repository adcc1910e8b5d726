"""Forgetting what changed elsewhere: listings, directory times, and what the kernel caches.

The change log (``b2fs.sync``) hands over what other mounts changed, path by
path; ``Refresher.apply`` makes this mount show it.  A file's new version or
its removal: the cached listing of its directory is dropped (the next lookup
reads it again: one class C call per 1,000 names), or, for a directory of
more than one page whose changed names are fewer than its pages, just those
names are read again (one call each).  A directory's marker (made, or its
attributes changed): its entry in the parent and its own attributes.  A tree
(moved, removed, exchanged): every listing at and below it.  Nothing is
fetched for directories this mount has not cached.

What the kernel holds is returned as notes for ``b2fs.fs.kernel_cache``: the
names (dentries) to forget in their parents, and the inodes whose attributes
and pages to drop, so ``ls``, ``stat`` and the next ``open`` (close-to-open:
the page cache of a file whose version changed is never reused) show the new
state at once rather than after ``entry_timeout``/``attr_timeout``.
``forget`` and ``reread`` are ``b2fs refresh``: forget everything at and
below a path and read its listings again now.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from b2fs.posix.entries import Kind
from b2fs.posix.paths import split
from b2fs.vfs.filesystem import FileSystem
from b2fs.vfs.listing import PAGE, Listings

log = logging.getLogger(__name__)

Note = tuple[str, int, Any]  # ("entry", parent inode, name) or ("inode", inode, attributes only)


class Refresher:
    def __init__(self, fs: FileSystem, mirrors: Sequence[Listings] = ()) -> None:
        self.fs = fs
        self.ns = fs.ns
        self.listings = fs.ns.listings
        self.mirrors = mirrors  # listings of the same prefixes kept elsewhere (the versions view)
        self.names_refreshed = 0
        self.listings_dropped = 0

    async def apply(self, changes: list[Any]) -> list[Note]:
        """Make the mount show ``changes`` (``b2fs.sync.records.Change``); the kernel's notes."""
        notes: list[Note] = []
        names: dict[str, dict[str, str]] = {}  # big cached listings: name -> stored name
        for c in changes:
            try:
                if c.op in ("put", "gone"):
                    self._file(c.path, names, notes)
                elif c.op == "dir":
                    await self._dir(c.path, notes)
                elif c.op == "tree":
                    self._tree(c.path, notes)
            except Exception as e:  # noqa: BLE001 - a name this mount cannot encode: drop all
                log.debug("change of a path this mount cannot place (%s): its listings go", e)
                self._drop_all(notes)
        for prefix, changed in names.items():
            await self._refresh_names(prefix, changed)
        return notes

    def forget(self, path: str) -> list[Note]:
        """``b2fs refresh``, first step: forget ``path`` and everything below it."""
        notes: list[Note] = []
        if path:
            self._tree(path, notes)
        else:
            self._drop_all(notes)
        return notes

    async def reread(self, path: str) -> None:
        """``b2fs refresh``, second step: read the listings of ``path`` again now; NotFound
        when B2 has nothing there."""
        from b2fs.posix.errors import NotFound

        entry = await self.ns.lookup(path)
        if entry is None:
            raise NotFound(f"{path!r} does not exist")
        if entry.kind is Kind.DIR:
            await self.ns.listing(path)

    def drop_all(self) -> list[Note]:
        """Forget every listing (records may have been missed)."""
        notes: list[Note] = []
        self._drop_all(notes)
        return notes

    # -- kinds of change -----------------------------------------------------------------

    def _file(self, path: str, names: dict[str, dict[str, str]], notes: list[Note]) -> None:
        parent, name = split(path)
        prefix = self.ns.stored_dir(parent)
        listing = self.listings.cached(prefix)
        if listing is not None and len(listing.entries) > PAGE:
            names.setdefault(prefix, {})[name] = self.ns.encode(path)[0]
        else:
            self._drop(prefix)  # also when being fetched: that fetch may miss the change
        self._entry_notes(path, notes)
        node = self.fs.inodes.by_path(path)
        if node is not None:
            notes.append(("inode", node.ino, False))

    async def _dir(self, path: str, notes: list[Note]) -> None:
        if path:
            parent, name = split(path)
            prefix = self.ns.stored_dir(parent)
            listing = self.listings.cached(prefix)
            known = listing.entries.get(name) if listing is not None else None
            if known is None or known.kind is not Kind.DIR:
                self._drop(prefix)  # a new directory there
            self._entry_notes(path, notes)
        own = self.ns.stored_dir(path)
        listing = self.listings.cached(own)
        if listing is not None and len(listing.entries) > PAGE:
            try:
                if not await self.listings.refresh_marker(own):
                    self._drop(own)
            except Exception:  # noqa: BLE001 - B2 unreachable: read it all next time
                self._drop(own)
        else:
            self._drop(own)
        if self.ns.overlay.entry(path) is None or not path:
            self.fs.dir_times.pop(path, None)  # its marker's times rule (no pending one here)
        node = self.fs.inodes.by_path(path)
        if node is not None:
            notes.append(("inode", node.ino, True))

    def _tree(self, path: str, notes: list[Note]) -> None:
        parent, _ = split(path)
        self._drop(self.ns.stored_dir(parent))
        below = self.ns.stored_dir(path)
        for listings in (self.listings, *self.mirrors):
            listings.invalidate_below(below)
        self.listings_dropped += 1
        self._entry_notes(path, notes)
        inside = path + "/"
        for p in [p for p in self.fs.dir_times if p == path or p.startswith(inside)]:
            del self.fs.dir_times[p]
        for node in self.fs.inodes.nodes_below(path):
            notes.append(("inode", node.ino, False))

    def _drop_all(self, notes: list[Note]) -> None:
        for listings in (self.listings, *self.mirrors):
            listings.invalidate()
        self.listings_dropped += 1
        self.fs.dir_times.clear()
        for node in self.fs.inodes.nodes_below(""):
            notes.append(("inode", node.ino, False))

    # -- helpers -------------------------------------------------------------------------

    def _drop(self, prefix: str) -> None:
        for mirror in self.mirrors:
            mirror.invalidate(prefix)
        if self.listings.invalidate(prefix):
            self.listings_dropped += 1

    def _entry_notes(self, path: str, notes: list[Note]) -> None:
        """The kernel forgets the name in its parent, and the parent's times."""
        parent, name = split(path)
        up = self.fs.inodes.by_path(parent)
        if up is not None:
            notes.append(("entry", up.ino, name))
            notes.append(("inode", up.ino, True))

    async def _refresh_names(self, prefix: str, changed: dict[str, str]) -> None:
        listing = self.listings.cached(prefix)
        if listing is None:
            return
        if len(changed) >= -(-len(listing.entries) // PAGE):  # as dear as reading it all
            self._drop(prefix)
            return
        for name, stored in changed.items():
            try:
                done = await self.listings.refresh_file(prefix, name, stored)
            except Exception:  # noqa: BLE001 - B2 unreachable: read it all next time
                done = False
            if not done:
                self._drop(prefix)
                return
            self.names_refreshed += 1
