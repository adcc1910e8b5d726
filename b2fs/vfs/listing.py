"""Directory listings from B2, cached for ``dir_cache_time``.

One listing of a directory is the paged result of ``b2_list_file_names``
with the directory's stored prefix and ``delimiter="/"``: ``folder`` entries
become subdirectories, ``.bzEmpty`` markers say the directory exists but are
not shown, and every other name is a file or symlink.  Names a POSIX view
cannot show (empty, ``.``/``..``, over 255 bytes, or not decodable by the
mount's name codec) are skipped with one warning each per mount; a file that
shares its name with a directory is shadowed by the directory, with a warning.

Listings are keyed by stored prefix, fetched once however many lookups wait
on them (single flight), and answer every lookup inside the directory until
they expire, so 1,000 stats of missing names cost one listing.  The vfs
patches a cached listing after its own changes instead of dropping it
(``patch``); a change made while the directory is being listed is applied to
that listing when it arrives (B2 may have answered from before the change), and
a listing invalidated while being fetched is not kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from b2fs.posix.entries import Entry, Kind, Remote
from b2fs.posix.fileinfo import Attrs, read_info
from b2fs.posix.paths import DIR_MARKER, showable_segment

log = logging.getLogger(__name__)

PAGE = 1000  # B2 bills a listing call per 1,000 names asked for, so larger pages save nothing


@dataclass(slots=True)
class Listing:
    entries: dict[str, Entry]
    fetched_at: float
    has_marker: bool = False
    marker: Attrs | None = None  # the directory's own attributes, from its marker's file info
    marker_id: str | None = None  # the marker's fileId
    _names: list[str] | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        """Names in a stable order (sorted), for readdir offsets."""
        if self._names is None:
            self._names = sorted(self.entries)
        return self._names

    def put(self, entry: Entry) -> None:
        if entry.name not in self.entries:
            self._names = None
        self.entries[entry.name] = entry

    def remove(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self._names = None


def _apply(listing: Listing, name: str, entry: Entry | None) -> None:
    if entry is None:
        listing.remove(name)
    else:
        entry.name = name
        listing.put(entry)


class Listings:
    """The listing cache of one mount."""

    def __init__(self, client: Any, bucket_id: str, *, root: str, names: Any, content: Any,
                 ttl: float, hidden: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.client = client
        self.root = root  # the mount's stored prefix: names are bound to paths below it
        self.bucket_id = bucket_id
        self.names = names
        self.content = content
        self.ttl = ttl
        self.hidden = hidden  # stored names (full keys) never shown, e.g. the vault object
        self._cache: dict[str, Listing] = {}
        self._pending: dict[str, trio.Event] = {}
        # For each listing being fetched, the changes this mount made meanwhile (absent: it
        # was invalidated, so its answer is not kept).
        self._late: dict[str, list[tuple[str, Entry | None]]] = {}
        self._warned: set[str] = set()
        self.fetches = 0

    def cached(self, prefix: str) -> Listing | None:
        listing = self._cache.get(prefix)
        if listing is not None and time.monotonic() - listing.fetched_at < self.ttl:
            return listing
        return None

    async def get(self, prefix: str) -> Listing:
        """The listing of the directory whose stored prefix is ``prefix``."""
        while True:
            listing = self.cached(prefix)
            if listing is not None:
                return listing
            pending = self._pending.get(prefix)
            if pending is None:
                break
            await pending.wait()
        event = self._pending[prefix] = trio.Event()
        self._late[prefix] = []
        try:
            listing = await self._fetch(prefix)
            late = self._late.get(prefix)
            if late is None:  # invalidated while it was fetched: it may miss that change
                return listing
            for name, entry in late:  # changes made while it was fetched
                _apply(listing, name, entry)
            self._cache[prefix] = listing
            self._trim()
            return listing
        finally:
            del self._pending[prefix]
            self._late.pop(prefix, None)
            event.set()

    def patch(self, prefix: str, name: str, entry: Entry | None) -> None:
        """This mount changed a name (None: removed it): the cached listing shows it, and so
        does one being fetched meanwhile (its answer may predate the change)."""
        listing = self.cached(prefix)
        if listing is not None:
            _apply(listing, name, entry)
        late = self._late.get(prefix)
        if late is not None:
            late.append((name, entry))

    def seed(self, prefix: str, listing: Listing) -> None:
        """A listing known without asking B2 (a directory this mount just made)."""
        self._cache[prefix] = listing

    def invalidate(self, prefix: str | None = None) -> bool:
        """Drop a listing (every one with None); one being fetched now is not kept. True
        when one was cached."""
        if prefix is None:
            dropped = bool(self._cache)
            self._cache.clear()
            self._late.clear()  # fetches under way are not kept either
            return dropped
        self._late.pop(prefix, None)
        return self._cache.pop(prefix, None) is not None

    def invalidate_below(self, prefix: str) -> None:
        """Drop the listings at and below a stored prefix."""
        for key in [k for k in self._cache if k.startswith(prefix)]:
            del self._cache[key]
        for key in [k for k in self._late if k.startswith(prefix)]:
            del self._late[key]

    async def refresh_file(self, prefix: str, name: str, stored: str) -> bool:
        """Bring one file's entry of a cached listing up to date with B2 (one class C call,
        however large the directory); False when the listing is not cached or is being
        fetched (nothing to patch: the next fetch sees the change)."""
        listing = self.cached(prefix)
        if listing is None or prefix in self._pending:
            return False
        before = listing.entries.get(name)
        files, _ = await self.client.list_file_names_page(
            self.bucket_id, prefix=stored, start_file_name=stored, max_file_count=1
        )
        listing = self.cached(prefix)
        if listing is None or prefix in self._pending:
            return False
        old = listing.entries.get(name)
        if old is not before or (old is not None and old.kind is Kind.DIR):
            return True  # this mount changed it meanwhile (newer); or a directory shadows it
        f = files[0] if files and files[0].file_name == stored else None
        entry = self._file_entry(prefix, stored[len(prefix) :], f) if f is not None else None
        if entry is None or entry.name != name:
            listing.remove(name)
        else:
            listing.put(entry)
        return True

    async def refresh_marker(self, prefix: str) -> bool:
        """Bring a cached listing's directory marker (the directory's own attributes) up to
        date (one class C call); False when the listing is not cached."""
        if self.cached(prefix) is None or prefix in self._pending:
            return False
        stored = prefix + DIR_MARKER
        files, _ = await self.client.list_file_names_page(
            self.bucket_id, prefix=stored, start_file_name=stored, max_file_count=1
        )
        listing = self.cached(prefix)
        if listing is None or prefix in self._pending:
            return False
        f = files[0] if files and files[0].file_name == stored else None
        listing.has_marker = f is not None
        listing.marker = read_info(dict(f.file_info or {}), f.upload_timestamp) if f else None
        listing.marker_id = f.file_id if f else None
        return True

    def _trim(self) -> None:
        """Drop expired listings so memory follows what is in use."""
        if len(self._cache) < 256:
            return
        now = time.monotonic()
        for key in [k for k, v in self._cache.items() if now - v.fetched_at >= self.ttl]:
            del self._cache[key]

    async def _fetch(self, prefix: str) -> Listing:
        self.fetches += 1
        fetched_at = time.monotonic()
        entries: dict[str, Entry] = {}
        has_marker = False
        marker = marker_id = None
        start: str | None = None
        while True:
            files, start = await self.client.list_file_names_page(
                self.bucket_id,
                prefix=prefix,
                delimiter="/",
                start_file_name=start,
                max_file_count=PAGE,
            )
            for f in files:
                rel = f.file_name[len(prefix) :]
                if f.file_name in self.hidden:
                    continue
                if f.action == "folder":
                    entry = await self._folder_entry(prefix, rel[:-1], f)
                elif rel == DIR_MARKER:
                    has_marker = True
                    marker = read_info(dict(f.file_info or {}), f.upload_timestamp)
                    marker_id = f.file_id
                    continue
                else:
                    entry = self._file_entry(prefix, rel, f)
                if entry is not None:
                    self._put(entries, entry)
            if not start:
                break
        return Listing(entries, fetched_at, has_marker, marker, marker_id)

    def _put(self, entries: dict[str, Entry], entry: Entry) -> None:
        """Add an entry; a directory shadows a file of the same name (with a warning)."""
        old = entries.get(entry.name)
        if old is not None:
            if old.kind is Kind.DIR and entry.kind is not Kind.DIR:
                self._warn(entry.stored, "a directory of the same name shadows this file")
                return
            if entry.kind is Kind.DIR and old.kind is not Kind.DIR:
                self._warn(old.stored, "a directory of the same name shadows this file")
        entries[entry.name] = entry

    def _decode(
        self, parent: str, segment: str, stored: str, long_info: dict[str, str] | None
    ) -> str | None:
        if not showable_segment(segment):
            self._warn(stored, "the name has an empty, '.' or '..' segment, or one over 255 bytes")
            return None
        try:
            name = self.names.decode(parent[len(self.root) :].rstrip("/"), segment, long_info)
        except Exception as e:  # the codec's UndecodableName & co: not ours to show
            self._warn(stored, f"its name cannot be decoded ({type(e).__name__})")
            return None
        if not showable_segment(name) or "/" in name:
            self._warn(stored, "its decoded name cannot be shown")
            return None
        return name

    async def _folder_entry(self, prefix: str, segment: str, f: Any) -> Entry | None:
        stored = f.file_name
        long_info = None
        if self.names.is_long_stub(segment):
            long_info = await self._dir_long_info(stored)
        name = self._decode(prefix, segment, stored, long_info)
        if name is None:
            return None
        return Entry(name, Kind.DIR, stored)

    def _file_entry(self, prefix: str, segment: str, f: Any) -> Entry | None:
        info = dict(f.file_info or {})
        name = self._decode(prefix, segment, f.file_name, info)
        if name is None:
            return None
        try:
            size = self.content.plain_size(f.size)
        except Exception as e:
            self._warn(
                f.file_name, f"its size fits no object this mount wrote ({type(e).__name__})"
            )
            return None
        a = read_info(info, f.upload_timestamp)
        return Entry(name, a.kind, f.file_name, size=size, mtime_ns=a.mtime_ns, mode=a.mode,
                     uid=a.uid, gid=a.gid, remote=Remote(f.file_id, f.size, info, f.content_type),
                     atime_ns=a.atime_ns, ctime_ns=a.ctime_ns, rdev=a.rdev)  # fmt: skip

    async def _dir_long_info(self, stored_dir: str) -> dict[str, str] | None:
        """A long encrypted directory name is kept in its marker's file info."""
        files, _ = await self.client.list_file_names_page(
            self.bucket_id, prefix=stored_dir + DIR_MARKER, max_file_count=1
        )
        for f in files:
            if f.file_name == stored_dir + DIR_MARKER:
                return dict(f.file_info or {})
        return None

    def _warn(self, stored: str, why: str) -> None:
        if stored not in self._warned:
            self._warned.add(stored)
            log.warning("skipping B2 name %r: %s; the mount does not show it", stored, why)
