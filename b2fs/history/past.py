"""The listings of a mount of the past (``-o version_at=TIME``): the bucket as it was at TIME.

``PastListings`` replaces the mount's ``Listings``: one listing of a directory
is the paged ``b2_list_file_versions`` of its prefix with ``delimiter="/"``,
and each name shows the newest version uploaded at or before TIME, unless a
hide marker came after it (then, as now, nothing).  A subdirectory B2 lists
existed at TIME only if some name below it showed then: each one is asked
(``b2_list_file_versions`` of its prefix, from its first name on, until a
name that showed then; mostly one page), at most 8 at once.  Everything else
(the cache, lookups, decoding, the directory's marker) is the mount's own
listing code; the mount is read-only.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any

import trio

from b2fs.history.listing import grouped, marker_info
from b2fs.history.versions import visible_at
from b2fs.posix.entries import Entry
from b2fs.posix.fileinfo import read_info
from b2fs.posix.paths import DIR_MARKER
from b2fs.vfs.listing import Listing, Listings

CHECKS_AT_ONCE = 8  # subdirectories whose past is asked at the same time


class PastListings(Listings):
    def __init__(self, client: Any, bucket_id: str, *, at_ms: int, **kwargs: Any) -> None:
        super().__init__(client, bucket_id, **kwargs)
        self.at_ms = at_ms  # TIME, in milliseconds since the epoch

    async def _fetch(self, prefix: str) -> Listing:
        self.fetches += 1
        fetched_at = time.monotonic()
        entries: dict[str, Entry] = {}
        listing = Listing(entries, fetched_at)
        folders: list[tuple[str, Any]] = []
        async for stored, folder, versions in grouped(self.client, self.bucket_id, prefix,
                                                      delimiter="/"):  # fmt: skip
            rel = stored[len(prefix) :]
            if folder is not None:
                if stored not in self.hidden:  # the change log's folder
                    folders.append((rel[:-1], folder))
                continue
            shown = visible_at(versions, self.at_ms)
            if shown is None or stored in self.hidden:
                continue
            if rel == DIR_MARKER:
                listing.has_marker = True
                listing.marker = read_info(dict(shown.file_info or {}), shown.upload_timestamp)
                listing.marker_id = shown.file_id
                continue
            entry = self._file_entry(prefix, rel, shown)
            if entry is not None:
                self._put(entries, entry)
        existed = await self._existed([f.file_name for _, f in folders])
        for segment, f in folders:
            if f.file_name in existed:
                entry = await self._folder_entry(prefix, segment, f)
                if entry is not None:
                    self._put(entries, entry)
        return listing

    async def _existed(self, prefixes: list[str]) -> set[str]:
        """The subdirectories (stored prefixes) that had a name showing at TIME."""
        out: set[str] = set()
        limiter = trio.CapacityLimiter(CHECKS_AT_ONCE)

        async def check(prefix: str) -> None:
            async with limiter, aclosing(grouped(self.client, self.bucket_id, prefix)) as names:
                async for _, _, versions in names:
                    if visible_at(versions, self.at_ms) is not None:
                        out.add(prefix)
                        return

        async with trio.open_nursery() as nursery:
            for prefix in prefixes:
                nursery.start_soon(check, prefix)
        return out

    async def _dir_long_info(self, stored_dir: str) -> dict[str, str] | None:
        return await marker_info(self.client, self.bucket_id, stored_dir)
