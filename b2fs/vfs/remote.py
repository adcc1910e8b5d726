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

log = logging.getLogger(__name__)

COPY_FILE_MAX = 5 * 1000**3  # b2_copy_file's limit on the source


class RemoteNames:
    def __init__(self, client: Any, bucket_id: str, *, hard_delete: bool) -> None:
        self.client = client
        self.bucket_id = bucket_id
        self.hard_delete = hard_delete

    async def remove(self, stored: str) -> None:
        """Make ``stored`` disappear from listings; quiet when it has no visible version."""
        from b2fs.b2.errors import AlreadyHidden, NoSuchFile

        if self.hard_delete:
            await self.client.delete_all_versions(self.bucket_id, stored)
            return
        try:
            await self.client.hide_file(self.bucket_id, stored)
        except (NoSuchFile, AlreadyHidden):
            pass

    async def put_marker(self, stored_dir: str, file_info: dict[str, str] | None = None) -> Any:
        """Write a directory marker (``.bzEmpty``), as the B2 web UI does."""
        return await self.client.upload(
            self.bucket_id, stored_dir + ".bzEmpty", b"", file_info=file_info or {}
        )

    async def delete_marker(self, stored_dir: str) -> None:
        await self.client.delete_all_versions(self.bucket_id, stored_dir + ".bzEmpty")

    async def copy(self, file_id: str, new_stored: str, file_info: dict[str, str] | None) -> Any:
        """Copy a version (≤ 5 GB) to a new name; ``file_info`` replaces the metadata when given."""
        return await self.client.copy_file(file_id, new_stored, file_info=file_info)
