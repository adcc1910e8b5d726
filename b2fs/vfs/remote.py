"""Server-side changes of names: remove (hide or delete) and copy, as one-call helpers.

``remove`` hides a name by default (B2 keeps the version; lifecycle rules
purge it) or, with ``-o hard_delete``, deletes every version of it.  ``copy``
is ``b2_copy_file`` for versions up to 5 GB (keeping the metadata, or
replacing it when names are encrypted, since a long encrypted name lives in
the file info); bigger versions are copied part by part by the write-back
instead (``Changes`` routes them there).
"""

from __future__ import annotations

import logging
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

    async def remove(self, stored: str) -> None:
        """Make ``stored`` disappear from listings; quiet when it has no visible version."""
        if self.hard_delete:
            await self.client.delete_all_versions(self.bucket_id, stored)
        else:
            await self._hide(stored)

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
