"""Building the kernel's view of an entry: ``EntryAttributes`` and ``statfs`` numbers."""

from __future__ import annotations

import pyfuse3

from b2fs.mount.options import MountOptions
from b2fs.vfs.entries import Entry
from b2fs.vfs.inodes import Kind, Node

BLKSIZE = 128 * 1024  # the largest read/write the kernel sends us; a hint for cp & co


class AttrMaker:
    def __init__(self, opts: MountOptions, dir_mtime_ns: int) -> None:
        self.opts = opts
        self.dir_mtime_ns = dir_mtime_ns
        self.file_mode = 0o666 & ~opts.umask
        self.dir_mode = 0o777 & ~opts.umask

    def __call__(self, node: Node, entry: Entry) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = self.opts.entry_timeout
        a.attr_timeout = self.opts.attr_timeout
        if entry.kind is Kind.DIR:
            perm = entry.mode if entry.mode is not None else self.dir_mode
            a.st_size = 0
            mtime = entry.mtime_ns or self.dir_mtime_ns
        elif entry.kind is Kind.SYMLINK:
            perm = 0o777
            a.st_size = entry.size
            mtime = entry.mtime_ns
        else:
            perm = entry.mode if entry.mode is not None else self.file_mode
            a.st_size = entry.size
            mtime = entry.mtime_ns
        a.st_mode = entry.kind.value | (perm & 0o7777)
        a.st_nlink = (
            1  # directories too: B2 has no link counts (find then skips its leaf optimisation)
        )
        a.st_uid = entry.uid if entry.uid is not None else self.opts.uid
        a.st_gid = entry.gid if entry.gid is not None else self.opts.gid
        a.st_rdev = 0
        a.st_blksize = BLKSIZE
        a.st_blocks = (a.st_size + 511) // 512
        a.st_mtime_ns = a.st_ctime_ns = a.st_atime_ns = mtime
        return a

    def negative(self) -> pyfuse3.EntryAttributes:
        """A cacheable "no such entry" answer to lookup."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = self.opts.negative_timeout
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
