"""Path resolution: plaintext mount paths to stored B2 names, and lookups through the listings.

The namespace joins three sources: the mount's root (the bucket, or a prefix
of it), cached remote listings (``b2fs.vfs.listing``), and the local overlay
of versions not yet in B2 (``b2fs.writeback``), which shadows the remote view
so a program sees its own writes at once.  Stored names are a function of
the plaintext path (per-segment encoding by the mount's name codec, with the
parent's stored path bound in), so they are computed, not looked up.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.paths import split
from b2fs.vfs.listing import Listing, Listings


def relative(root_stored: str, stored_prefix: str) -> str:
    return stored_prefix[len(root_stored) :].rstrip("/")


class Overlay(Protocol):
    """Local state that shadows the remote listings (pending uploads)."""

    def entry(self, path: str) -> Entry | None: ...
    def children(self, dir_path: str) -> dict[str, Entry]: ...
    def reader_done(self, local: Any) -> None: ...


class _NoOverlay:
    def reader_done(self, local: Any) -> None:
        pass

    def entry(self, path: str) -> Entry | None:
        return None

    def children(self, dir_path: str) -> dict[str, Entry]:
        return {}


class Namespace:
    def __init__(
        self, listings: Listings, names: Any, root_stored: str, overlay: Overlay | None = None
    ) -> None:
        self.listings = listings
        self.names = names
        self.root_stored = root_stored  # "" or "some/prefix/"
        self.overlay: Overlay = overlay or _NoOverlay()
        self._stored: OrderedDict[str, str] = OrderedDict()

    # -- stored names --------------------------------------------------------------------

    def stored_dir(self, path: str) -> str:
        """The stored prefix of a directory, ending in "/" (the root's may be "")."""
        if not path:
            return self.root_stored
        hit = self._stored.get(path)
        if hit is not None:
            return hit
        parent, name = split(path)
        prefix = self.stored_dir(parent)
        stored = prefix + self.names.encode(self.relative(prefix), name).segment + "/"
        self._stored[path] = stored
        if len(self._stored) > 65536:
            self._stored.popitem(last=False)
        return stored

    def encode(self, path: str) -> tuple[str, dict[str, str] | None]:
        """(stored file name, long-name info to keep in file info or None)."""
        parent, name = split(path)
        prefix = self.stored_dir(parent)
        encoded = self.names.encode(self.relative(prefix), name)
        return prefix + encoded.segment, encoded.long_info

    def relative(self, stored_prefix: str) -> str:
        """A directory's stored path below the mount root, as names are bound to it ("" at the root)."""
        return relative(self.root_stored, stored_prefix)

    # -- lookups -------------------------------------------------------------------------

    async def listing(self, dir_path: str) -> Listing:
        return await self.listings.get(self.stored_dir(dir_path))

    async def lookup(self, path: str) -> Entry | None:
        """The entry at ``path``, or None when nothing is there."""
        if not path:
            return Entry("", Kind.DIR, self.root_stored)
        local = self.overlay.entry(path)
        if local is not None:
            return local
        parent, name = split(path)
        listing = await self.listing(parent)
        return listing.entries.get(name)

    async def children(self, dir_path: str) -> list[tuple[str, Entry]]:
        """The directory's entries in a stable order: remote names (sorted), then local-only ones."""
        listing = await self.listing(dir_path)
        local = self.overlay.children(dir_path)
        out = [(n, local.pop(n, None) or listing.entries[n]) for n in listing.names]
        out.extend(sorted(local.items()))
        return out

    def cached_listing(self, dir_path: str) -> Listing | None:
        return self.listings.cached(self.stored_dir(dir_path))

    def forget_stored(self, path: str) -> None:
        """Drop memoised stored names at and below ``path`` (after a directory rename)."""
        for key in [k for k in self._stored if k == path or k.startswith(path + "/")]:
            del self._stored[key]
