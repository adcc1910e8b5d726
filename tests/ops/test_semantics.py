"""Claims of docs/semantics.md that no other test makes, checked on a real mount.

What the page says b2fs does not provide is tested as the behaviour it describes
(EOPNOTSUPP, ENOTSUP...): when one is provided, its test fails and the page gets
updated with it. The POSIX rules themselves are tests/posix's.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import shutil
import subprocess
import time

import pytest

pytestmark = [pytest.mark.mount, pytest.mark.timeout(90)]

RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags: int) -> None:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def errno_of(fn) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def synced(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_what_you_do_not_get(mount_factory):
    m = mount_factory()
    x, y = m.path / "x", m.path / "y"
    x.write_bytes(b"x")
    y.write_bytes(b"y")
    assert errno_of(lambda: renameat2(x, y, RENAME_NOREPLACE)) == errno.EEXIST
    (m.path / "d").mkdir()
    assert errno_of(lambda: renameat2(x, m.path / "d", RENAME_EXCHANGE)) == errno.EINVAL
    assert (x.read_bytes(), y.read_bytes()) == (b"x", b"y")
    assert errno_of(lambda: os.open(m.path, os.O_TMPFILE | os.O_RDWR, 0o600)) == errno.EOPNOTSUPP
    assert errno_of(lambda: os.setxattr(x, "user.note", b"1")) == errno.ENOTSUP
    assert errno_of(lambda: os.getxattr(x, "user.note")) == errno.ENOTSUP
    r = subprocess.run(["fallocate", "-n", "-l", "10", str(x)], capture_output=True, text=True)
    assert r.returncode != 0 and "unsupported" in r.stderr
    fd = os.open(x, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 100)  # the C library writes zeros instead
        assert os.fstat(fd).st_size == 100
    finally:
        os.close(fd)
    with open(y, "r+b") as f, mmap.mmap(f.fileno(), 1) as mm:
        mm[0:1] = b"Y"  # a shared writable mapping
        mm.flush()
    assert y.read_bytes() == b"Y"


def test_directories_and_attributes(mount_factory):
    m = mount_factory(attr_timeout=0, entry_timeout=0)  # every stat asks the mount
    d = m.path / "d"
    d.mkdir()
    os.chmod(d, 0o1750)  # kept in the directory's marker
    os.chown(d, 4321, 4322)
    st = os.stat(d)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_nlink) == (0o1750, 4321, 4322, 1)
    f = d / "f"
    f.write_bytes(b"12345")  # d's mtime moves
    os.utime(f, ns=(1_600_000_000_000_000_001, 1_700_000_000_123_456_789))
    os.utime(d, ns=(-86_400_000_000_001, 4_102_444_800_000_000_007))  # 1969, 2100
    synced(f)
    synced(d)
    m.unmount()
    shutil.rmtree(m.cache_dir)
    m.start()  # from B2 alone
    st = os.stat(d)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o1750, 4321, 4322)
    assert (st.st_atime_ns, st.st_mtime_ns) == (-86_400_000_000_001, 4_102_444_800_000_000_007)
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (
        1_600_000_000_000_000_001,
        1_700_000_000_123_456_789,
    )
    assert st.st_ctime_ns > st.st_mtime_ns and st.st_blocks == 1  # ctime: when utime ran
    vfs = os.statvfs(m.path)
    assert vfs.f_namemax == 255 and vfs.f_blocks * vfs.f_frsize == 1 << 50
    assert vfs.f_bfree == vfs.f_blocks
    ino = os.stat(f).st_ino
    m.unmount()
    m.start()
    assert os.stat(f).st_ino == ino  # a hash of the path: stable across remounts


def test_other_mounts_see_changes_after_their_listing_ttl(mount_factory, b2sync):
    writer = mount_factory()
    reader = mount_factory(writer.bucket, dir_cache_time=5)
    (writer.path / "v").write_bytes(b"version 1")
    synced(writer.path / "v")
    assert (reader.path / "v").read_bytes() == b"version 1"  # listed now, cached for 5 s
    held = os.open(reader.path / "v", os.O_RDONLY)
    try:
        (writer.path / "v").write_bytes(b"version 2!")
        synced(writer.path / "v")
        (writer.path / "new").write_bytes(b"n")
        synced(writer.path / "new")
        assert not (reader.path / "new").exists()  # not before the reader's listing expires
        deadline = time.monotonic() + 15
        while not (reader.path / "new").exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert os.pread(held, 100, 0) == b"version 1"  # opened before: the version it opened
        assert (reader.path / "v").read_bytes() == b"version 2!"  # opened after: the new one
    finally:
        os.close(held)
    # A version hidden by another mount stays readable through a descriptor opened before.
    unread = os.open(reader.path / "new", os.O_RDONLY)  # nothing read yet: no page cache
    try:
        os.unlink(writer.path / "new")
        assert os.pread(unread, 10, 0) == b"n"
    finally:
        os.close(unread)


# -- open files that lost their name (POSIX keeps them usable) -----------------------------


def test_a_file_unlinked_while_written_stays_usable(mount_factory, b2sync):
    m = mount_factory()
    fd = os.open(m.path / "tmp", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"scratch")
    os.unlink(m.path / "tmp")
    os.write(fd, b" more")
    assert os.pread(fd, 100, 0) == b"scratch more"
    assert os.fstat(fd).st_size == len(b"scratch more")
    os.ftruncate(fd, 3)
    assert os.pread(fd, 100, 0) == b"scr"
    os.close(fd)
    assert os.listdir(m.path) == []
    m.unmount()
    assert "tmp" not in b2sync.names(m.bucket)  # never uploaded


def test_fstat_of_an_unlinked_open_file(mount_factory):
    m = mount_factory()
    (m.path / "f").write_bytes(b"data")
    synced(m.path / "f")
    fd = os.open(m.path / "f", os.O_RDONLY)
    try:
        os.unlink(m.path / "f")
        assert os.pread(fd, 10, 0) == b"data"
        assert os.fstat(fd).st_size == 4
    finally:
        os.close(fd)


def test_rename_whiteout_is_refused(mount_factory):
    m = mount_factory()
    (m.path / "a").write_bytes(b"a")
    assert errno_of(lambda: renameat2(m.path / "a", m.path / "b", RENAME_WHITEOUT)) == errno.EINVAL
