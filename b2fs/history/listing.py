"""Every version in one directory: ``b2_list_file_versions`` of its prefix, cached like listings.

``VersionListings`` is the versions view's counterpart of ``b2fs.vfs.listing``
(whose cache, single flight and name decoding it inherits): one listing of a
directory is the paged ``b2_list_file_versions`` of its stored prefix with
``delimiter="/"`` — subdirectories that ever had a name in them (deleted ones
too), every version and hide marker of each name, and the directory's
markers (``.bzEmpty``: its attributes, never shown as a file).  A listing is
reused for ``dir_cache_time``, and until this mount changes anything in B2
(an upload, copy, hide or delete by its client), so the view shows the
mount's own changes at once.  Unfinished large files are left out.

``grouped`` pages through a versions listing and hands out each name's
versions together, which ``past`` and ``restore`` use as well.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from b2fs.history.versions import Version
from b2fs.posix.paths import DIR_MARKER
from b2fs.vfs.listing import PAGE, Listings

log = logging.getLogger(__name__)

# Calls by which a mount changes what B2 lists: a cached versions listing is stale after one.
WRITE_CALLS = ("b2_upload_file", "b2_copy_file", "b2_hide_file", "b2_delete_file_version",
               "b2_finish_large_file")  # fmt: skip


async def grouped(client: Any, bucket_id: str, prefix: str, *, delimiter: str | None = None,
                  calls: Counter[str] | None = None, start: str | None = None,
                  page: int = PAGE) -> AsyncIterator[tuple[str, Any, list[Any]]]:  # fmt: skip
    """(name, folder, versions) in name order: a folder (``versions`` empty) or a name and all
    its versions, newest first (``folder`` None); unfinished large files left out. Each page
    fetched is counted in ``calls``."""
    name: str | None = start
    fid: str | None = None
    group: list[Any] = []
    while True:
        files, name, fid = await client.list_file_versions_page(
            bucket_id, prefix=prefix, delimiter=delimiter, start_file_name=name,
            start_file_id=fid, max_file_count=page,
        )  # fmt: skip
        if calls is not None:
            calls["b2_list_file_versions"] += 1
        for f in files:
            if group and f.file_name != group[0].file_name:
                yield group[0].file_name, None, group
                group = []
            if f.action == "folder":
                yield f.file_name, f, []
            elif f.action != "start":
                group.append(f)
        if not name:
            break
    if group:
        yield group[0].file_name, None, group


@dataclass(slots=True)
class VersionListing:
    """One directory's history: names (plaintext) -> versions, newest first."""

    fetched_at: float
    generation: int
    folders: dict[str, str] = field(default_factory=dict)  # name -> stored prefix ("a/b/")
    files: dict[str, list[Version]] = field(default_factory=dict)
    markers: list[Version] = field(default_factory=list)  # the directory's own .bzEmpty

    @property
    def marker(self) -> Version | None:
        """The marker that gives the directory its attributes: the newest one not hidden."""
        return next((m for m in self.markers if not m.hidden), None)


class VersionListings(Listings):
    """The versions listings of one mount (same cache rules as its listings)."""

    def generation(self) -> int:
        calls = self.client.stats.calls
        return sum(calls[name] for name in WRITE_CALLS)

    def cached(self, prefix: str) -> Any:
        listing = self._cache.get(prefix)
        if listing is None or time.monotonic() - listing.fetched_at >= self.ttl:
            return None
        return listing if listing.generation == self.generation() else None

    async def _fetch(self, prefix: str) -> Any:  # type: ignore[override]
        self.fetches += 1
        out = VersionListing(time.monotonic(), self.generation())
        async for stored, folder, versions in grouped(self.client, self.bucket_id, prefix,
                                                      delimiter="/"):  # fmt: skip
            rel = stored[len(prefix) :]
            if stored in self.hidden:  # the vault, the change log's folder
                continue
            if folder is not None:
                entry = await self._folder_entry(prefix, rel[:-1], folder)
                if entry is not None:
                    out.folders[entry.name] = stored
                continue
            if rel == DIR_MARKER:
                out.markers = [Version.of(f, 0) for f in versions]
                continue
            kept = self._versions(prefix, rel, versions)
            if kept is not None:
                out.files[kept[0]] = kept[1]
        return out

    def _versions(
        self, prefix: str, rel: str, versions: list[Any]
    ) -> tuple[str, list[Version]] | None:
        """(plaintext name, versions) of one stored name; None when the mount cannot show it."""
        info = next((dict(f.file_info) for f in versions if f.action != "hide"), {})
        name = self._decode(prefix, rel, versions[0].file_name, info)
        if name is None:
            return None
        out = []
        for f in versions:
            if f.action == "hide":
                out.append(Version.of(f, 0))
                continue
            try:
                out.append(Version.of(f, self.content.plain_size(f.size)))
            except Exception as e:  # a size no object of this mount's codec has
                self._warn(f"{f.file_name} ({f.file_id})",
                           f"its size fits no object this mount wrote ({type(e).__name__})")  # fmt: skip
        return (name, out) if out else None

    async def _dir_long_info(self, stored_dir: str) -> dict[str, str] | None:
        """A long encrypted directory name, from any version of its marker (a deleted
        directory's too)."""
        return await marker_info(self.client, self.bucket_id, stored_dir)


async def marker_info(client: Any, bucket_id: str, stored_dir: str) -> dict[str, str] | None:
    """The file info of the newest version of a directory's marker that has some, visible or
    not (a long encrypted directory name lives there)."""
    name = stored_dir + DIR_MARKER
    files, _, _ = await client.list_file_versions_page(
        bucket_id, prefix=name, start_file_name=name, max_file_count=10
    )
    for f in files:
        if f.file_name == name and f.action != "hide" and f.file_info:
            return dict(f.file_info)
    return None
