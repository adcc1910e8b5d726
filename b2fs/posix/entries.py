"""Directory entries as the POSIX view shows them, built from B2 file versions.

An ``Entry`` is what a directory listing says about one name: its kind, its
stored B2 name, the remote version (for everything but directories), its
plaintext size, its times and the attributes kept in file info.  Entries are
kept small (``__slots__``, no copy of the B2 record) since a listing of a
large directory holds one per name.  ``Defaults`` is what an entry shows where
B2 holds no attribute (files written by other tools, directories without a
marker).
"""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass, field


class Kind(enum.Enum):
    FILE = stat.S_IFREG
    DIR = stat.S_IFDIR
    SYMLINK = stat.S_IFLNK
    FIFO = stat.S_IFIFO
    CHR = stat.S_IFCHR
    BLK = stat.S_IFBLK
    SOCK = stat.S_IFSOCK

    @property
    def special(self) -> bool:
        """A FIFO, device or socket: stored as an empty object, its I/O is the kernel's."""
        return self in SPECIAL

    @classmethod
    def of_mode(cls, mode: int) -> Kind:
        return cls(stat.S_IFMT(mode))


SPECIAL = frozenset({Kind.FIFO, Kind.CHR, Kind.BLK, Kind.SOCK})


@dataclass(slots=True)
class Remote:
    """The B2 file version behind an entry (immutable)."""

    file_id: str
    stored_size: int
    file_info: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # kept by a copy that replaces the file info


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
    atime_ns: int | None = None  # None: as mtime
    ctime_ns: int | None = None  # None: as mtime
    rdev: int = 0  # devices: major/minor
    known: bool = True  # a directory whose attributes are not known yet (defaults shown)


@dataclass(frozen=True, slots=True)
class Defaults:
    """What entries show where B2 holds no attributes (the mount's options)."""

    uid: int
    gid: int
    umask: int = 0o022
    keep_attrs: bool = True

    @property
    def file_mode(self) -> int:
        return 0o666 & ~self.umask

    @property
    def dir_mode(self) -> int:
        return 0o777 & ~self.umask
