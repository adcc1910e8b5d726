"""Building the kernel's view of an entry: ``EntryAttributes`` and ``statfs`` numbers."""

from __future__ import annotations

import pyfuse3

from b2fs.posix.entries import Defaults, Entry, Kind
from b2fs.vfs.inodes import Node

BLKSIZE = 128 * 1024  # the largest read/write the kernel sends us; a hint for cp & co


class AttrMaker:
    def __init__(self, defaults: Defaults, *, entry_timeout: float, attr_timeout: float,
                 negative_timeout: float) -> None:  # fmt: skip
        self.defaults = defaults
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout
        self.negative_timeout = negative_timeout

    def __call__(self, node: Node, entry: Entry) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = self.entry_timeout
        # A directory whose attributes are not known yet: the kernel asks again (getattr)
        # before it relies on them, e.g. for a permission check.
        a.attr_timeout = self.attr_timeout if entry.known else 0
        if entry.kind is Kind.SYMLINK:
            perm = 0o777
        elif entry.mode is not None:
            perm = entry.mode
        else:
            perm = self.defaults.dir_mode if entry.kind is Kind.DIR else self.defaults.file_mode
        a.st_size = 0 if entry.kind is Kind.DIR else entry.size
        a.st_mode = entry.kind.value | (perm & 0o7777)
        # Files lose their last link when unlinked while open (fstat then says 0). Directories
        # say 1: B2 cannot count their subdirectories cheaply (find then skips its leaf
        # optimisation, as on btrfs).
        a.st_nlink = 0 if node.gone else 1
        a.st_uid = entry.uid if entry.uid is not None else self.defaults.uid
        a.st_gid = entry.gid if entry.gid is not None else self.defaults.gid
        a.st_rdev = entry.rdev
        a.st_blksize = BLKSIZE
        a.st_blocks = (a.st_size + 511) // 512
        a.st_mtime_ns = entry.mtime_ns
        a.st_atime_ns = entry.mtime_ns if entry.atime_ns is None else entry.atime_ns
        a.st_ctime_ns = entry.mtime_ns if entry.ctime_ns is None else entry.ctime_ns
        return a

    def negative(self) -> pyfuse3.EntryAttributes:
        """A cacheable "no such entry" answer to lookup."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = self.negative_timeout
        return a


def statfs() -> pyfuse3.StatvfsData:
    """B2 has no capacity limit: report a large, constant size with everything free."""
    s = pyfuse3.StatvfsData()
    s.f_bsize = BLKSIZE
    s.f_frsize = BLKSIZE
    total = (1 << 50) // BLKSIZE  # 1 PiB
    s.f_blocks = total
    s.f_bfree = total
    s.f_bavail = total
    s.f_files = 1 << 32
    s.f_ffree = 1 << 32
    s.f_favail = 1 << 32
    s.f_namemax = 255
    return s
