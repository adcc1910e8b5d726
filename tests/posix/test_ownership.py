"""Ownership rules (issue 10).

chown by a non-owner is EPERM; an owner who is not root may change the group
only to one of its groups and may not give a file away; root may chown
anything; a write or truncate by non-root clears set-user-ID and
set-group-ID (root's keeps them); chown clears them on a file (not on a
directory); open(O_TRUNC) without write permission is EACCES; an unlinked
open file shows st_nlink 0 and stays readable.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

from tests.posix.helpers import (
    FOREIGN_GID,
    OTHER,
    ROOT,
    SHARED_GID,
    USER,
    Identity,
    Persistent,
    as_user,
    assert_meta,
    expect_errno,
    names,
    no_deferred,
    read,
    write,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

KINDS = ("file", "dir")
SPECIAL_KINDS = ("fifo", "sock")


def make(kind: str, name: str, mode: int = 0o644) -> None:
    """An entry of ``kind`` with exactly ``mode`` (plus search bits for a directory)."""
    if kind == "file":
        write(name, b"content")
    elif kind == "dir":
        os.mkdir(name)
        mode |= 0o111
    elif kind == "fifo":
        os.mkfifo(name)
    else:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(name)
    os.chmod(name, mode)


def letter(kind: str) -> str:
    return {"file": "-", "dir": "d", "fifo": "p", "sock": "s"}[kind]


# -- chown by others ----------------------------------------------------------------------------


def test_chown_by_a_non_owner_is_eperm(ws):
    def body() -> None:
        for kinds in (KINDS, SPECIAL_KINDS):  # special files last (their own rule)
            for k in kinds:
                make(k, f"root-{k}", 0o666)  # world-writable does not make it theirs
            if kinds == KINDS:
                os.symlink("root-file", "root-link")
                write("users", b"", 0o644)
                os.chown("users", USER.uid, USER.gid)
            ctimes = {n: os.lstat(n).st_ctime_ns for n in names()}
            as_user(USER, user, kinds)
            for k in kinds:
                assert (os.lstat(f"root-{k}").st_uid, os.lstat(f"root-{k}").st_gid) == (0, 0)
            assert (os.lstat("users").st_uid, os.lstat("users").st_gid) == (USER.uid, USER.gid)
            changed = [n for n, c in ctimes.items() if os.lstat(n).st_ctime_ns != c]
            assert not changed, f"a refused chown moved the ctime of {changed}"
            as_user(USER, no_change, kinds)

    def no_change(kinds: tuple[str, ...]) -> None:
        for k in kinds:
            os.chown(f"root-{k}", -1, -1)  # changes nothing: allowed to anyone

    def user(kinds: tuple[str, ...]) -> None:
        for name in [f"root-{k}" for k in kinds]:
            expect_errno(errno.EPERM, os.chown, name, USER.uid, -1)
            expect_errno(errno.EPERM, os.chown, name, -1, USER.gid)
            expect_errno(errno.EPERM, os.chown, name, USER.uid, USER.gid)
        expect_errno(errno.EPERM, os.lchown, "root-link", USER.uid, USER.gid)
        expect_errno(errno.EPERM, os.chown, "users", OTHER.uid, -1)  # giving it away
        expect_errno(errno.EPERM, os.chown, "users", 0, -1)
        expect_errno(errno.EPERM, os.chown, "users", -1, FOREIGN_GID)

    ws.run(body)


# -- chgrp by the owner, chown by root ------------------------------------------------------------


def _user_changes_groups(kinds: tuple[str, ...]) -> None:
    for k in kinds:
        name = f"u-{k}"
        os.chown(name, -1, SHARED_GID)  # one of its groups
        expect_errno(errno.EPERM, os.chown, name, -1, FOREIGN_GID)
        os.chown(name, USER.uid, -1)  # to itself: allowed, a no-op
    if kinds == KINDS:
        os.lchown("u-link", -1, SHARED_GID)
        expect_errno(errno.EPERM, os.lchown, "u-link", -1, FOREIGN_GID)


def _chown_each(kinds: tuple[str, ...]) -> None:
    for k in kinds:
        make(k, f"u-{k}")
        os.chown(f"u-{k}", USER.uid, USER.gid)
        make(k, f"r-{k}")
        os.chown(f"r-{k}", 123, 456)
        os.chown(f"r-{k}", OTHER.uid, FOREIGN_GID)
    if kinds == KINDS:
        os.symlink("u-file", "u-link")
        os.lchown("u-link", USER.uid, USER.gid)
        os.symlink("r-file", "r-link")
        os.lchown("r-link", 4_000_000_000, 3_999_999_999)  # uid_t is 32 bits (-1 excluded)
    as_user(USER, _user_changes_groups, kinds)


def build_owners(_: Identity) -> list[str]:
    _chown_each(KINDS)
    failures: list[str] = []
    try:  # special files: their own rule, reported after the rest is checked
        _chown_each(SPECIAL_KINDS)
    except (OSError, AssertionError) as e:
        failures.append(f"special files: {str(e).splitlines()[0]}")
    return failures


def check_owners(_: Identity, failures: list[str]) -> None:
    st = os.lstat("u-link")
    assert (st.st_uid, st.st_gid) == (USER.uid, SHARED_GID)
    st = os.lstat("r-link")
    assert (st.st_uid, st.st_gid) == (4_000_000_000, 3_999_999_999)
    for kinds in (KINDS, SPECIAL_KINDS):
        if kinds == SPECIAL_KINDS:
            no_deferred(failures)
        for k in kinds:
            mode = 0o755 if k == "dir" else 0o644
            assert_meta(f"u-{k}", (letter(k), mode, USER.uid, SHARED_GID))
            assert_meta(f"r-{k}", (letter(k), mode, OTHER.uid, FOREIGN_GID))


OWNERS = Persistent("owners", build_owners, check_owners, actors=(ROOT,))


def test_root_chowns_anything_and_an_owner_only_to_its_groups(ws):
    failures = ws.run(OWNERS.build, ROOT)
    ws.run(OWNERS.check, ROOT, failures)


# -- set-user-ID and set-group-ID -----------------------------------------------------------------


def build_setid(me: Identity) -> dict[str, int]:
    """Writes, truncates and chowns of set-id files and a setgid directory; expected modes."""
    cleared = me != ROOT  # CAP_FSETID keeps them for root's writes
    want: dict[str, int] = {}
    for name, mode in (("suid", 0o4777), ("sgid", 0o2777), ("both", 0o6777)):
        for how in ("write", "truncate"):
            path = f"{how}-{name}"
            write(path, b"0123")
            os.chmod(path, mode)
            if how == "write":
                with open(path, "r+b") as f:
                    f.write(b"x")
            else:
                os.truncate(path, 2)
            want[path] = 0o777 if cleared else mode
    write("chowned", b"")  # chown clears them, for root too
    os.chmod("chowned", 0o6555)
    os.chown("chowned", OTHER.uid if me == ROOT else -1, SHARED_GID)
    want["chowned"] = 0o555
    os.mkdir("chowned-dir")  # not on a directory
    os.chmod("chowned-dir", 0o2755)
    os.chown("chowned-dir", -1, SHARED_GID)
    want["chowned-dir"] = 0o2755
    return want


def check_setid(me: Identity, want: dict[str, int]) -> None:
    for name, mode in want.items():
        got = stat.S_IMODE(os.lstat(name).st_mode)
        assert got == mode, f"{name}: mode {got:#o}, expected {mode:#o}"


SETID = Persistent("setid-bits", build_setid, check_setid)


def test_write_by_non_root_and_chown_clear_setid_bits(ws, actor):
    want = ws.run(SETID.build, actor)
    ws.run(SETID.check, actor, want)


# -- O_TRUNC --------------------------------------------------------------------------------------


def test_open_with_o_trunc_needs_write_permission(ws, actor):
    def body(me: Identity) -> None:
        write("ro", b"data", 0o444)
        write("rw", b"data", 0o644)
        if me == ROOT:  # root may write anything
            os.close(os.open("ro", os.O_WRONLY | os.O_TRUNC))
            assert read("ro") == b""
        else:
            expect_errno(errno.EACCES, os.open, "ro", os.O_RDONLY | os.O_TRUNC)
            expect_errno(errno.EACCES, os.open, "ro", os.O_WRONLY | os.O_TRUNC)
            expect_errno(errno.EACCES, os.open, "ro", os.O_RDWR | os.O_TRUNC | os.O_CREAT, 0o644)
            assert read("ro") == b"data" and os.stat("ro").st_size == 4
        os.close(os.open("rw", os.O_WRONLY | os.O_TRUNC))
        assert os.stat("rw").st_size == 0

    ws.run(body, actor)


# -- unlink of an open file -----------------------------------------------------------------------


def test_an_unlinked_open_file_has_no_links_and_stays_readable(ws, actor):
    def body() -> None:
        data = os.urandom(300_000)
        for variant, sync in (("pending", False), ("uploaded", True)):
            write(variant, data, sync=sync)
            fd = os.open(variant, os.O_RDONLY)
            try:
                os.unlink(variant)
                st = os.fstat(fd)
                assert (st.st_nlink, st.st_size) == (0, len(data)), (
                    f"{variant}: fstat after unlink: nlink {st.st_nlink}, size {st.st_size}"
                )
                assert os.pread(fd, len(data) + 1, 0) == data
                assert os.pread(fd, 1000, 123_456) == data[123_456:124_456]
                assert variant not in names()
                expect_errno(errno.ENOENT, os.stat, variant)
            finally:
                os.close(fd)
        write("old", b"old", sync=True)
        write("new", b"new")
        fd = os.open("old", os.O_RDONLY)
        try:
            os.rename("new", "old")  # replaces: the open one loses its last name
            assert os.fstat(fd).st_nlink == 0
            assert os.pread(fd, 10, 0) == b"old"
            assert read("old") == b"new"
        finally:
            os.close(fd)

    ws.run(body)


PERSISTENT = [OWNERS, SETID]
