"""Directory entries as the POSIX view shows them, built from B2 file versions.

An ``Entry`` is what a directory listing says about one name: its kind, its
stored B2 name, the remote version (for files and symlinks), its plaintext
size and mtime, and the attributes kept in file info.  Entries are kept small
(``__slots__``, no copy of the B2 record) since a listing of a large
directory holds one per name.

File info keys b2fs reads and writes (B2 stores them lower-case):
``src_last_modified_millis`` (mtime, as the B2 CLI, rclone and the web UI),
``b2fs-mode``, ``b2fs-uid``, ``b2fs-gid`` (octal mode and owner, when the mount
keeps attributes) and ``b2fs-type`` (``symlink`` for symbolic links).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from b2fs.vfs.inodes import Kind

MTIME_KEY = "src_last_modified_millis"
MODE_KEY = "b2fs-mode"
UID_KEY = "b2fs-uid"
GID_KEY = "b2fs-gid"
TYPE_KEY = "b2fs-type"


@dataclass(slots=True)
class Remote:
    """The B2 file version behind an entry (immutable)."""

    file_id: str
    stored_size: int
    file_info: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Entry:
    name: str
    kind: Kind
    stored: str  # the B2 file name (files, symlinks) or prefix ending in "/" (directories)
    size: int = 0  # plaintext size
    mtime_ns: int = 0
    mode: int | None = None  # permission bits kept in file info, if any
    uid: int | None = None
    gid: int | None = None
    remote: Remote | None = None
    local: object | None = None  # a pending local version (writeback), shadowing ``remote``


def attrs_from_info(file_info: dict[str, str]) -> tuple[int | None, int | None, int | None]:
    """(mode, uid, gid) as kept in file info; None where absent or unreadable."""

    def num(key: str, base: int) -> int | None:
        value = file_info.get(key)
        if value is None:
            return None
        try:
            return int(value, base)
        except ValueError:
            return None

    mode = num(MODE_KEY, 8)
    return (mode & 0o7777 if mode is not None else None), num(UID_KEY, 10), num(GID_KEY, 10)


def mtime_ns_of(file_info: dict[str, str], upload_timestamp_ms: int) -> int:
    """mtime from ``src_last_modified_millis``, else the upload time."""
    value = file_info.get(MTIME_KEY)
    if value is not None:
        try:
            return int(value) * 1_000_000
        except ValueError:
            pass
    return int(upload_timestamp_ms) * 1_000_000


def kind_of(file_info: dict[str, str]) -> Kind:
    return Kind.SYMLINK if file_info.get(TYPE_KEY) == "symlink" else Kind.FILE
