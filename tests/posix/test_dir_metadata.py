"""Directory metadata is kept, and the kernel's permission checks see it (issue 10).

chmod (sticky and setgid bits included), chown and utimens of a directory
last; a user may create in a 0777 or 1777 directory of another user and not
in a 0755 one; the sticky bit stops others deleting or renaming; a setgid
directory passes its group to new entries and its setgid bit to new
subdirectories.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.posix.helpers import (
    OTHER,
    ROOT,
    SHARED_GID,
    USER,
    Identity,
    Persistent,
    as_user,
    assert_meta,
    deferred,
    expect_errno,
    names,
    no_deferred,
    read,
    write,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

T_ATIME = 1_234_567_890_123_456_789  # 2009, with nanoseconds
T_MTIME = 1_111_111_111_987_654_321  # 2005: an mtime older than the atime


# -- chmod, chown, utimens of directories -------------------------------------------------------


def build_dir_metadata(me: Identity) -> dict[str, tuple[str, int, int, int]]:
    want: dict[str, tuple[str, int, int, int]] = {}
    os.mkdir("made0750", 0o750)  # mkdir's mode, less the umask (022), owned by its creator
    want["made0750"] = ("d", 0o750, me.uid, me.gid)
    os.mkdir("made0777", 0o777)
    want["made0777"] = ("d", 0o755, me.uid, me.gid)
    for name, mode in (("d0700", 0o700), ("d0751", 0o751), ("d1777", 0o1777),
                       ("d2775", 0o2775), ("d3755", 0o3755), ("d0555", 0o555)):  # fmt: skip
        os.mkdir(name)
        os.chmod(name, mode)
        want[name] = ("d", mode, me.uid, me.gid)
    os.mkdir("owned")
    if me == ROOT:
        os.chown("owned", OTHER.uid, SHARED_GID)
        want["owned"] = ("d", 0o755, OTHER.uid, SHARED_GID)
    else:  # an owner may only change the group, to one of its own
        os.chown("owned", -1, SHARED_GID)
        want["owned"] = ("d", 0o755, me.uid, SHARED_GID)
    os.mkdir("timed")
    os.utime("timed", ns=(T_ATIME, T_MTIME))
    want["timed"] = ("d", 0o755, me.uid, me.gid)
    return want


def check_dir_metadata(me: Identity, want: dict[str, tuple[str, int, int, int]]) -> None:
    for name, expected in want.items():
        assert_meta(name, expected)
    st = os.stat("timed")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T_ATIME, T_MTIME), (
        f"directory times {st.st_atime_ns}/{st.st_mtime_ns}, set {T_ATIME}/{T_MTIME}"
    )


DIR_METADATA = Persistent("dir-metadata", build_dir_metadata, check_dir_metadata)


def test_directory_chmod_chown_and_utimens_are_kept(ws, actor):
    want = ws.run(DIR_METADATA.build, actor)
    ws.run(DIR_METADATA.check, actor, want)


# -- the kernel's checks see the owner and mode -----------------------------------------------


def build_others_dirs(_: Identity) -> None:
    """As root: directories of OTHER with several modes, one of them private with a file."""
    for name, mode, gid in (("open0777", 0o777, OTHER.gid), ("open1777", 0o1777, OTHER.gid),
                            ("closed0755", 0o755, OTHER.gid), ("private0700", 0o700, OTHER.gid),
                            ("group0770", 0o770, SHARED_GID)):  # fmt: skip
        os.mkdir(name)
        os.chown(name, OTHER.uid, gid)
        os.chmod(name, mode)
    write("private0700/secret", b"secret", 0o644)
    os.chown("private0700/secret", OTHER.uid, OTHER.gid)


def _user_in_others_dirs() -> None:
    for d in ("open0777", "open1777", "group0770"):
        tag = f"{d}/u{os.getpid()}"
        write(f"{tag}-f", b"mine", 0o644)
        os.mkdir(f"{tag}-d")
        os.symlink("target", f"{tag}-l")
        for suffix, letter, mode in (("-f", "-", 0o644), ("-d", "d", 0o755)):
            assert_meta(tag + suffix, (letter, mode, USER.uid, USER.gid))  # the creator's
        for suffix in ("-f", "-l"):
            os.unlink(f"{tag}{suffix}")
        os.rmdir(f"{tag}-d")
    expect_errno(errno.EACCES, write, "closed0755/u", b"")
    expect_errno(errno.EACCES, os.mkdir, "closed0755/u")
    expect_errno(errno.EACCES, os.symlink, "t", "closed0755/u")
    names("closed0755")  # readable: 0755
    expect_errno(errno.EACCES, os.listdir, "private0700")
    expect_errno(errno.EACCES, os.stat, "private0700/secret")


def _other_in_own_dir() -> None:
    write("closed0755/o", b"the owner may", 0o644)
    os.unlink("closed0755/o")


def check_others_dirs(_: Identity, __: None) -> None:
    as_user(USER, _user_in_others_dirs)
    as_user(OTHER, _other_in_own_dir)


OTHERS_DIRS = Persistent("others-dirs", build_others_dirs, check_others_dirs, actors=(ROOT,))


def test_permission_checks_see_the_owner_and_mode_of_directories(ws):
    ws.run(OTHERS_DIRS.build, ROOT)
    ws.run(OTHERS_DIRS.check, ROOT, None)


# -- sticky directories -------------------------------------------------------------------------


def _other_fills_sticky() -> None:
    write("sticky/theirs", b"theirs", 0o666)
    os.mkdir("sticky/theirdir", 0o777)
    write("usersticky/theirs", b"theirs", 0o666)


def _user_fills_sticky() -> None:
    write("sticky/mine", b"mine", 0o666)


def build_sticky(_: Identity) -> None:
    os.mkdir("sticky")
    os.chmod("sticky", 0o1777)
    os.mkdir("usersticky")
    os.chown("usersticky", USER.uid, USER.gid)
    os.chmod("usersticky", 0o1777)
    as_user(OTHER, _other_fills_sticky)
    as_user(USER, _user_fills_sticky)


def _user_in_sticky() -> None:
    # the entries of others: neither removed nor renamed, though the directory is 1777
    expect_errno(errno.EPERM, os.unlink, "sticky/theirs")
    expect_errno(errno.EPERM, os.rename, "sticky/theirs", "sticky/taken")
    expect_errno(errno.EPERM, os.rename, "sticky/mine", "sticky/theirs")  # replacing is removing
    expect_errno(errno.EPERM, os.rmdir, "sticky/theirdir")
    expect_errno(errno.EPERM, os.rename, "sticky/theirdir", "sticky/taken")
    assert read("sticky/theirs") == b"theirs"  # still there
    # one's own entries: as in any writable directory
    os.rename("sticky/mine", "sticky/mine2")
    os.rename("sticky/mine2", "sticky/mine")
    write(f"sticky/tmp{os.getpid()}", b"")
    os.unlink(f"sticky/tmp{os.getpid()}")
    # the directory's owner may remove and rename anyone's entries
    os.rename("usersticky/theirs", "usersticky/moved")
    os.rename("usersticky/moved", "usersticky/theirs")


def _other_in_sticky() -> None:
    expect_errno(errno.EPERM, os.unlink, "sticky/mine")
    os.rename("sticky/theirs", "sticky/theirs2")
    os.rename("sticky/theirs2", "sticky/theirs")


def check_sticky(_: Identity, __: None) -> None:
    assert_meta("sticky", ("d", 0o1777, 0, 0))
    assert_meta("usersticky", ("d", 0o1777, USER.uid, USER.gid))
    assert_meta("sticky/theirs", ("-", 0o644, OTHER.uid, OTHER.gid))
    as_user(USER, _user_in_sticky)
    as_user(OTHER, _other_in_sticky)
    os.rename("sticky/theirs", "sticky/by-root")  # root may
    os.rename("sticky/by-root", "sticky/theirs")


STICKY = Persistent("sticky", build_sticky, check_sticky, actors=(ROOT,))


def test_sticky_directory_stops_others_deleting_and_renaming(ws):
    ws.run(STICKY.build, ROOT)
    ws.run(STICKY.check, ROOT, None)


# -- setgid directories -------------------------------------------------------------------------


def build_setgid(me: Identity) -> list[str]:
    os.mkdir("sg")
    os.chown("sg", -1, SHARED_GID)  # USER is a member of SHARED_GID, root may anyway
    os.chmod("sg", 0o2775)
    write("sg/file", b"f", 0o644)
    os.mkdir("sg/sub", 0o755)
    os.symlink("file", "sg/link")
    os.mkdir("sg/sub/deeper", 0o700)
    failures: list[str] = []
    deferred(failures, os.mkfifo, "sg/fifo", 0o644)  # a special file: its own rule
    return failures


def check_setgid(me: Identity, failures: list[str]) -> None:
    assert_meta("sg", ("d", 0o2775, me.uid, SHARED_GID))
    assert_meta("sg/file", ("-", 0o644, me.uid, SHARED_GID))  # the group, not the bit
    assert_meta("sg/sub", ("d", 0o2755, me.uid, SHARED_GID))  # subdirectories: both
    assert_meta("sg/sub/deeper", ("d", 0o2700, me.uid, SHARED_GID))
    st = os.lstat("sg/link")
    assert (stat.S_ISLNK(st.st_mode), st.st_uid, st.st_gid) == (True, me.uid, SHARED_GID)
    no_deferred(failures)
    assert_meta("sg/fifo", ("p", 0o644, me.uid, SHARED_GID))


SETGID = Persistent("setgid", build_setgid, check_setgid)


def test_setgid_directory_passes_its_group_on(ws, actor):
    failures = ws.run(SETGID.build, actor)
    ws.run(SETGID.check, actor, failures)


PERSISTENT = [DIR_METADATA, OTHERS_DIRS, STICKY, SETGID]
