"""What the vfs tells about the changes it puts into B2: the hooks of the change log.

Other mounts of the same bucket learn of this mount's changes through change
records (``b2fs.sync``); the vfs reports each change where it reaches B2,
through a ``ChangeFeed``: a version uploaded by the write-back (files,
symlinks, special files, directory markers), a version made by a server-side
copy (renames, exchanges), a name removed (unlink, the old name of a rename,
rmdir), a directory tree moved.  It also says which remote version a pending
version was made from, so an upload can tell whether that version was still
the newest (conflicts).  ``NoFeed`` is the feed of a mount without a change
log.  Paths are the mount's plaintext paths ("" is the root).
"""

from __future__ import annotations

from typing import Any, Protocol

from b2fs.posix.entries import Entry


class ChangeFeed(Protocol):
    def based(self, d: Any, entry: Entry | None) -> None:
        """The pending version ``d`` replaces what ``entry`` showed (None: nothing there)."""

    def uploaded(self, d: Any, version: Any) -> None:
        """The write-back put ``d`` in B2 as ``version`` (before the listings show it)."""

    def put(self, path: str, version: Any) -> None:
        """A server-side copy made ``version`` the newest at ``path``."""

    def gone(self, path: str) -> None:
        """The name at ``path`` was hidden or deleted (a file, or a directory's marker)."""

    def gone_after(self, d: Any, path: str) -> None:
        """``path`` goes once ``d`` is uploaded (the source of a rename copied in parts)."""

    def tree(self, path: str) -> None:
        """Everything at and below the directory ``path`` changed (moved away or in)."""


class NoFeed:
    def based(self, d: Any, entry: Entry | None) -> None:
        pass

    def uploaded(self, d: Any, version: Any) -> None:
        pass

    def put(self, path: str, version: Any) -> None:
        pass

    def gone(self, path: str) -> None:
        pass

    def gone_after(self, d: Any, path: str) -> None:
        pass

    def tree(self, path: str) -> None:
        pass
