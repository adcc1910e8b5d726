"""The vfs's change hooks (``b2fs.vfs.feed.ChangeFeed``) of a mount with a change log.

Each change the vfs reports becomes a ``Change`` for the writer (the records
other mounts read) and a fact for the conflict check: an upload is checked
against the version its pending version was made from (``based``), which is
kept here per pending version (weakly: a version that is dropped takes its
note with it), then becomes the base of that pending version's next upload.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from b2fs.posix.entries import Entry, Kind
from b2fs.posix.paths import split
from b2fs.sync.conflicts import Conflicts
from b2fs.sync.records import Change
from b2fs.sync.writer import ChangeWriter


class MountFeed:
    def __init__(self, writer: ChangeWriter | None, conflicts: Conflicts, ns: Any,
                 now_ms: Callable[[], int]) -> None:  # fmt: skip
        self.writer = writer
        self.conflicts = conflicts
        self.ns = ns
        self.now_ms = now_ms  # B2's clock, as the client estimates it
        self._bases: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
        self._after: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()

    def _note(self, change: Change) -> None:
        if self.writer is not None:
            self.writer.note(change)

    def _seen(self, d: Any) -> str | None:
        if d in self._bases:
            return self._bases[d]
        return d.uploaded_file_id or d.record.base_file_id

    # -- ChangeFeed ----------------------------------------------------------------------

    def based(self, d: Any, entry: Entry | None) -> None:
        if entry is None:
            seen = None
        elif entry.remote is not None:
            seen = entry.remote.file_id
        elif entry.local is not None:  # a pending version shown there: what it came from
            seen = self._seen(entry.local)
        else:
            seen = None
        self._bases[d] = seen

    def uploaded(self, d: Any, version: Any) -> None:
        ts = version.upload_timestamp
        if d.kind is Kind.DIR:
            self._note(Change("dir", d.path, version.file_id, ts))
            return
        parent, name = split(d.path)
        listing = self.ns.cached_listing(parent)
        listed = listing.entries.get(name) if listing is not None else None
        self.conflicts.mine(
            d.path, version.file_id, ts, self._seen(d),
            listed.remote.file_id if listed is not None and listed.remote is not None else None,
        )  # fmt: skip
        self._bases[d] = version.file_id  # its next upload replaces this one
        self._note(Change("put", d.path, version.file_id, ts))
        for old in self._after.pop(d, []):
            self.gone(old)

    def put(self, path: str, version: Any) -> None:
        self.conflicts.mine(path, version.file_id, version.upload_timestamp, check=False)
        self._note(Change("put", path, version.file_id, version.upload_timestamp))

    def gone(self, path: str) -> None:
        ts = self.now_ms()
        self.conflicts.mine(path, None, ts, check=False)
        self._note(Change("gone", path, None, ts))

    def gone_after(self, d: Any, path: str) -> None:
        self._after.setdefault(d, []).append(path)

    def tree(self, path: str) -> None:
        self._note(Change("tree", path, None, self.now_ms()))
