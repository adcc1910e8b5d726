"""Times: atime apart from mtime, UTIME_NOW and UTIME_OMIT, nanoseconds, dates before 1970 and
after 2038, ctime on every change, directory times when entries come and go (issue 10).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

import pytest

from tests.posix.helpers import (
    NOW,
    OMIT,
    OTHER,
    ROOT,
    SHARED_GID,
    USER,
    Identity,
    Persistent,
    as_user,
    deferred,
    expect_errno,
    no_deferred,
    utimensat,
    write,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

NS = 1_000_000_000
A1 = 1_500_000_000 * NS + 123_456_789  # 2017
M1 = 1_400_000_000 * NS + 987_654_321  # 2014: older than the atime
BEFORE_1970 = -315_619_200 * NS + 250_000_001  # 1960-01-01 00:00:00.250000001
AFTER_2038 = 4_102_444_800 * NS + 999_999_999  # 2100-01-01 00:00:00.999999999
JUST_AFTER_2038 = 2**31 * NS + 1  # 2038-01-19 03:14:08.000000001
OLD = 1_000_000_000 * NS  # 2001
SLACK = 50_000_000  # the kernel's clock may lag time.time_ns() by a tick
TICK = 0.03  # between two changes that must show different times


def times(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_atime_ns, st.st_mtime_ns


KINDS = (  # (kind, follow symlinks?, make); the FIFO last: a special file (its own rule)
    ("file", True, lambda name: write(name, b"x")),
    ("dir", True, os.mkdir),
    ("link", False, lambda name: os.symlink("target", name)),
    ("fifo", True, os.mkfifo),
)


# -- utimensat ------------------------------------------------------------------------------


def test_utimensat_keeps_atime_apart_and_honours_now_and_omit(ws, actor):
    def body() -> None:
        for name, follow, make in KINDS:
            make(name)
            utimensat(name, A1, M1, follow)
            assert times(name) == (A1, M1), f"{name}: {times(name)}"
            utimensat(name, OMIT, M1 + 1, follow)
            assert times(name) == (A1, M1 + 1), f"{name}, atime omitted: {times(name)}"
            utimensat(name, A1 + 1, OMIT, follow)
            assert times(name) == (A1 + 1, M1 + 1), f"{name}, mtime omitted: {times(name)}"
            ctime = os.lstat(name).st_ctime_ns
            time.sleep(TICK)
            utimensat(name, OMIT, OMIT, follow)  # changes nothing, not even ctime
            assert times(name) == (A1 + 1, M1 + 1) and os.lstat(name).st_ctime_ns == ctime
            t0 = time.time_ns()
            utimensat(name, NOW, OMIT, follow)
            atime, mtime = times(name)
            assert t0 - SLACK <= atime <= time.time_ns() and mtime == M1 + 1, f"{name}: NOW, OMIT"
            utimensat(name, A1, NOW, follow)
            atime, mtime = times(name)
            assert atime == A1 and t0 - SLACK <= mtime <= time.time_ns(), f"{name}: A1, NOW"
            for when in (BEFORE_1970, AFTER_2038, JUST_AFTER_2038):
                utimensat(name, when, when + 7 * NS, follow)
                assert times(name) == (when, when + 7 * NS), f"{name}: {when} gave {times(name)}"

    ws.run(body)


def test_utimensat_by_others_than_the_owner(ws):
    def body() -> None:
        write("writable", b"", 0o666)
        os.chmod("writable", 0o666)
        write("readonly", b"", 0o644)
        write("own", b"", 0o444)
        os.chown("own", USER.uid, USER.gid)
        as_user(USER, user)

    def user() -> None:
        utimensat("writable", NOW, NOW)  # write permission suffices for the current time
        expect_errno(errno.EPERM, utimensat, "writable", A1, M1)  # not for any other
        expect_errno(errno.EACCES, utimensat, "readonly", NOW, NOW)
        expect_errno(errno.EPERM, utimensat, "readonly", A1, M1)
        utimensat("own", A1, M1)  # the owner may, without write permission
        utimensat("own", NOW, OMIT)

    ws.run(body)


# -- ctime ----------------------------------------------------------------------------------


def _moves(what: str, path: str, change: Callable[[], object], *, mtime: bool | None) -> None:
    """``change()`` (which may return the entry's new name) moves ``path``'s ctime to now;
    its mtime moves too when ``mtime``, stays when False (None: not checked)."""
    before = os.lstat(path)
    time.sleep(TICK)
    t0 = time.time_ns()
    new_path = change() or path
    after = os.lstat(str(new_path))
    assert after.st_ctime_ns > before.st_ctime_ns and after.st_ctime_ns >= t0 - SLACK, (
        f"{what}: ctime {before.st_ctime_ns} -> {after.st_ctime_ns} (changed at {t0})"
    )
    if mtime is None:
        return
    if mtime:
        assert after.st_mtime_ns > before.st_mtime_ns, f"{what}: mtime did not move"
    else:
        assert after.st_mtime_ns == before.st_mtime_ns, f"{what}: mtime moved"


def test_ctime_moves_on_chmod_chown_rename_truncate_and_write(ws, actor):
    def body(me: Identity) -> None:
        write("f", b"0123456789")
        os.utime("f", ns=(OLD, OLD))
        _moves("chmod", "f", lambda: os.chmod("f", 0o600), mtime=False)
        if me == ROOT:
            _moves("chown", "f", lambda: os.chown("f", OTHER.uid, SHARED_GID), mtime=False)
            _moves("chown back", "f", lambda: os.chown("f", 0, 0), mtime=False)
        else:
            _moves("chgrp", "f", lambda: os.chown("f", -1, SHARED_GID), mtime=False)
        _moves("rename", "f", lambda: os.rename("f", "g") or "g", mtime=False)
        _moves("truncate down", "g", lambda: os.truncate("g", 4), mtime=True)
        _moves("truncate up", "g", lambda: os.truncate("g", 40), mtime=True)

        def append() -> None:
            with open("g", "ab") as f:
                f.write(b"more")

        def ftruncate() -> None:
            fd = os.open("g", os.O_RDWR)
            os.ftruncate(fd, 2)
            os.close(fd)

        _moves("write", "g", append, mtime=True)
        _moves("ftruncate", "g", ftruncate, mtime=True)
        _moves("utime", "g", lambda: os.utime("g", ns=(OLD, OLD)), mtime=None)
        os.mkdir("d")
        _moves("chmod of a directory", "d", lambda: os.chmod("d", 0o700), mtime=False)
        os.symlink("g", "l")
        _moves("lchown of a symlink", "l", lambda: os.lchown("l", -1, SHARED_GID), mtime=False)

    ws.run(body, actor)


def test_directory_mtime_and_ctime_move_when_entries_change(ws, actor):
    def body() -> None:
        os.mkdir("d")
        os.mkdir("e")
        steps = [
            ("create", ["d"], lambda: write("d/a", b"a")),
            ("mkdir", ["d"], lambda: os.mkdir("d/sub")),
            ("symlink", ["d"], lambda: os.symlink("a", "d/l")),
            ("rename within", ["d"], lambda: os.rename("d/a", "d/b")),
            ("rename out and in", ["d", "e"], lambda: os.rename("d/b", "e/b")),
            ("rename a directory", ["d", "e"], lambda: os.rename("d/sub", "e/sub")),
            ("unlink", ["d"], lambda: os.unlink("d/l")),
            ("rmdir", ["e"], lambda: os.rmdir("e/sub")),
            ("create another", ["e"], lambda: write("e/c", b"c")),
            ("rename over", ["e"], lambda: os.rename("e/c", "e/b")),
            ("mkfifo", ["d"], lambda: os.mkfifo("d/p")),  # special files last: their own rule
            ("unlink a FIFO", ["d"], lambda: os.unlink("d/p")),
        ]
        for what, dirs, change in steps:
            before = {d: os.stat(d) for d in dirs}
            time.sleep(TICK)
            change()
            for d in dirs:
                b, a = before[d], os.stat(d)
                assert a.st_mtime_ns > b.st_mtime_ns and a.st_ctime_ns > b.st_ctime_ns, (
                    f"{what}: directory {d} mtime {b.st_mtime_ns} -> {a.st_mtime_ns}, "
                    f"ctime {b.st_ctime_ns} -> {a.st_ctime_ns}"
                )

    ws.run(body)


# -- what lasts -------------------------------------------------------------------------------


def build_times(me: Identity) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """Times set on every kind of entry, a ctime moved by chmod, a directory's mtime moved by a
    new entry; expected (atime, mtime, ctime) with ctime and the moved mtime to a second."""
    want: dict[str, tuple[int, int, int]] = {}
    failures: list[str] = []
    write("changed", b"c")
    os.utime("changed", ns=(OLD, OLD))
    time.sleep(TICK)
    os.chmod("changed", 0o600)
    want["changed"] = (OLD, OLD, os.lstat("changed").st_ctime_ns)
    os.mkdir("grown")
    os.utime("grown", ns=(OLD, OLD))
    time.sleep(TICK)
    write("grown/new", b"n")
    st = os.stat("grown")
    want["grown"] = (OLD, st.st_mtime_ns, st.st_ctime_ns)
    for kind, follow, make in KINDS:
        for prefix, (atime, mtime) in (("ns-", (A1, M1)), ("pre-", (BEFORE_1970, BEFORE_1970 + 1)),
                                       ("post-", (AFTER_2038, JUST_AFTER_2038))):  # fmt: skip
            name = prefix + kind
            if kind != "fifo":
                make(name)
            elif not deferred(failures, make, name):  # a special file: its own rule
                continue
            utimensat(name, atime, mtime, follow)
            want[name] = (atime, mtime, -1)
    return want, failures


def check_times(me: Identity, built: tuple[dict[str, tuple[int, int, int]], list[str]]) -> None:
    want, failures = built
    for name, (atime, mtime, ctime) in want.items():
        st = os.lstat(name)
        if name == "grown":
            assert abs(st.st_mtime_ns - mtime) < NS, f"{name}: mtime {st.st_mtime_ns}, was {mtime}"
        else:
            assert (st.st_atime_ns, st.st_mtime_ns) == (atime, mtime), (
                f"{name}: atime/mtime {st.st_atime_ns}/{st.st_mtime_ns}, set {atime}/{mtime}"
            )
        if ctime >= 0:
            assert abs(st.st_ctime_ns - ctime) < NS, f"{name}: ctime {st.st_ctime_ns}, was {ctime}"
    no_deferred(failures)


TIMES = Persistent("times", build_times, check_times)


def test_times_set_and_moved_are_kept(ws, actor):
    want = ws.run(TIMES.build, actor)
    ws.run(TIMES.check, actor, want)


PERSISTENT = [TIMES]
