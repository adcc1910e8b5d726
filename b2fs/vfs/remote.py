"""Server-side changes of names: remove (hide or delete) and copy, as one-call helpers.

``remove`` hides a name by default (B2 keeps the version; lifecycle rules
purge it) or, with ``-o hard_delete``, deletes its versions: all but those
written elsewhere after the one this mount showed (another mount's change it
never saw: kept, the name hidden, reported as a conflict) and those a
conflict superseded here (``keep``: the other mount's content stays in B2's
history, as it would without ``hard_delete``).  ``copy``
is ``b2_copy_file`` for versions up to 5 GB (keeping the metadata, or
replacing it when names are encrypted, since a long encrypted name lives in
the file info); bigger versions are copied part by part by the write-back
instead (``Changes`` routes them there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

COPY_FILE_MAX = 5 * 1000**3  # b2_copy_file's limit on the source


class RemoteNames:
    def __init__(self, client: Any, bucket_id: str, *, hard_delete: bool, can_delete: bool = True,
                 part_size: int = 1 << 30) -> None:  # fmt: skip
        self.client = client
        self.bucket_id = bucket_id
        self.hard_delete = hard_delete
        self.can_delete = can_delete  # the key has deleteFiles (else markers are hidden)
        self.part_size = part_size  # for server-side copies of files over 5 GB
        self.keep: set[str] = set()  # versions hard_delete leaves alone (conflicts: b2fs.sync)
        # Told of versions written elsewhere that a hard delete kept: (stored name, versions).
        self.on_kept: Callable[[str, list[Any]], None] = lambda stored, newer: None

    async def remove(self, stored: str, seen: str | None = None) -> None:
        """Make ``stored`` disappear from listings; quiet when it has no visible version.
        ``seen``: the version this mount showed (with ``hard_delete``, newer ones are kept)."""
        if self.hard_delete:
            await self._delete(stored, seen)
        else:
            await self._hide(stored)

    async def _delete(self, stored: str, seen: str | None) -> None:
        """Delete the versions of ``stored`` but the newer-than-seen and kept ones; when some
        stay, the name is hidden (the unlink holds, their content stays in B2's history)."""
        versions = await self.client.versions_of(self.bucket_id, stored)  # newest first
        ids = [v.file_id for v in versions]
        newer: list[Any] = []
        if seen is not None:
            cut = ids.index(seen) if seen in ids else len(ids)
            newer = [v for v in versions[:cut] if v.action not in ("hide", "start")]
        kept = {v.file_id for v in newer} | (self.keep & set(ids))
        for v in versions:
            if v.file_id and v.file_id not in kept:
                await self.delete_version(stored, v.file_id)
        if kept:
            await self._hide(stored)
        if newer:
            self.on_kept(stored, newer)

    async def _hide(self, stored: str) -> None:
        from b2fs.b2.errors import AlreadyHidden, NoSuchFile

        try:
            await self.client.hide_file(self.bucket_id, stored)
        except (NoSuchFile, AlreadyHidden):
            pass

    async def put_marker(self, stored_dir: str, file_info: dict[str, str] | None = None) -> Any:
        """Write a directory marker (``.bzEmpty``), as the B2 web UI does."""
        return await self.client.upload(
            self.bucket_id, stored_dir + ".bzEmpty", b"", file_info=file_info or {}
        )

    async def delete_version(self, stored: str, file_id: str) -> None:
        """Delete one version (quiet when it is gone already)."""
        from b2fs.b2.errors import NoSuchFile, NotFound

        try:
            await self.client.delete_file_version(file_id, stored)
        except (NoSuchFile, NotFound):
            pass

    async def delete_marker(self, stored_dir: str) -> None:
        """Remove a directory marker: its versions hold no data, so they are deleted outright
        when the key may delete (else hidden, which needs only writeFiles)."""
        name = stored_dir + ".bzEmpty"
        if self.can_delete:
            await self.client.delete_all_versions(self.bucket_id, name)
        else:
            await self._hide(name)

    async def copy(self, file_id: str, new_stored: str, file_info: dict[str, str] | None,
                   size: int = 0, content_type: str | None = None) -> Any:  # fmt: skip
        """Copy a version to a new name; ``file_info`` replaces the metadata when given (with
        ``content_type``, the source's when known: else the client asks B2 for it).

        Up to 5 GB this is one ``b2_copy_file``; above, a large file made of ``b2_copy_part``
        pieces (server-side, nothing travels), keeping the source's metadata unless replaced.
        """
        if size <= COPY_FILE_MAX:
            if file_info is None:
                content_type = None  # B2's COPY keeps it
            return await self.client.copy_file(
                file_id, new_stored, file_info=file_info, content_type=content_type
            )
        if file_info is None:
            file_info = dict((await self.client.get_file_info(file_id)).file_info)
        started = await self.client.start_large_file(
            self.bucket_id, new_stored, file_info=file_info, content_type=content_type
        )
        try:
            sha1s = {}
            step = max(self.part_size, -(-size // 10_000))
            for number, start in enumerate(range(0, size, step), start=1):
                part = await self.client.copy_part(
                    file_id, started.file_id, number, (start, min(start + step, size) - 1)
                )
                sha1s[number] = part.sha1
            return await self.client.finish_large_file(started.file_id, sha1s)
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await self.client.cancel_large_file(started.file_id)
                except Exception as e:
                    log.warning("cancelling the unfinished copy %s failed (%s); B2 keeps its parts "
                                "until b2_cancel_large_file or a lifecycle rule", new_stored, e)  # fmt: skip
            raise
