"""One version of a name as the history keeps it, and which version a name shows at a time.

``Version`` is a slim copy of what ``b2_list_file_versions`` says of a version
(no raw JSON: a directory's listing holds one per version).  B2 lists a name's
versions newest first; a name shows its newest version unless that is a hide
marker; at a past time T it showed the newest version uploaded at or before T,
unless that was a hide marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Version:
    file_id: str
    stored: str  # the B2 file name
    upload_ms: int
    hidden: bool  # a hide marker: the name was deleted then
    stored_size: int
    size: int  # plaintext size (0 for a hide marker)
    sha1: str | None = None
    file_info: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    @classmethod
    def of(cls, f: Any, size: int) -> Version:
        """From a ``b2fs.b2.FileVersion`` whose plaintext size is ``size``."""
        return cls(f.file_id, f.file_name, f.upload_timestamp, f.action == "hide", f.size, size,
                   f.sha1, dict(f.file_info or {}), f.content_type)  # fmt: skip


def visible_at(versions: Sequence[Any], ms: int) -> Any | None:
    """The version a name showed at ``ms`` (versions newest first, each with ``upload_ms`` and
    ``hidden``, or ``upload_timestamp`` and ``action``); None when it showed nothing."""
    for v in versions:
        if _ms(v) <= ms:
            return None if _hidden(v) else v
    return None


def current(versions: Sequence[Any]) -> Any | None:
    """The version a name shows now: its newest, unless that is a hide marker."""
    return None if not versions or _hidden(versions[0]) else versions[0]


def _ms(v: Any) -> int:
    return v.upload_ms if isinstance(v, Version) else v.upload_timestamp


def _hidden(v: Any) -> bool:
    return v.hidden if isinstance(v, Version) else v.action == "hide"


def not_uploaded(local: Any) -> bool:
    """A pending version of the write-back (``b2fs.writeback.dirty.DirtyFile``) that B2 does
    not hold yet (one uploaded but still open stays in the overlay until closed)."""
    return local is not None and local.uploaded_generation != local.generation
