"""renameat2: RENAME_NOREPLACE works; RENAME_EXCHANGE swaps two entries of the same kind (files
pending or in B2, directories with what they hold, across directories) with their contents and
attributes, and for two kinds swaps them too or refuses with EINVAL, changing nothing (issue 10).
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.posix.helpers import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Identity,
    Persistent,
    errname,
    errno_of,
    expect_errno,
    names,
    read,
    renameat2,
    write,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]


def test_rename_noreplace(ws, actor):
    def body() -> None:
        write("a", b"a")
        write("b", b"b")
        os.mkdir("d1")
        write("d1/child", b"c")
        os.mkdir("d2")
        expect_errno(errno.EEXIST, renameat2, "a", "b", RENAME_NOREPLACE)
        expect_errno(errno.EEXIST, renameat2, "d1", "d2", RENAME_NOREPLACE)  # even onto empty
        expect_errno(errno.EEXIST, renameat2, "a", "d2", RENAME_NOREPLACE)
        assert (read("a"), read("b"), read("d1/child")) == (b"a", b"b", b"c")
        renameat2("a", "c", RENAME_NOREPLACE)
        renameat2("d1", "d3", RENAME_NOREPLACE)
        assert (read("c"), read("d3/child")) == (b"a", b"c")
        assert names() == ["b", "c", "d2", "d3"]
        expect_errno(errno.EINVAL, renameat2, "b", "c", RENAME_NOREPLACE | RENAME_EXCHANGE)
        expect_errno(errno.ENOENT, renameat2, "missing", "new", RENAME_NOREPLACE)

    ws.run(body)


PAIRS = (("p1", "p2"), ("u1", "u2"), ("m1", "m2"), ("x/f", "y/g"))


def build_exchange(_: Identity) -> dict[str, str]:
    """Exchanges of files (pending, in B2, one of each, across directories), directories, and
    of two kinds; the outcome of the last ones ('exchanged' or 'refused')."""
    os.mkdir("x")
    os.mkdir("y")
    for (a, b), (sync_a, sync_b) in zip(PAIRS, ((0, 0), (1, 1), (0, 1), (1, 0)), strict=True):
        write(a, f"content of {a}".encode(), 0o600, sync=bool(sync_a))
        write(b, f"content of {b}".encode(), 0o640, sync=bool(sync_b))
        os.chmod(a, 0o600)
        os.chmod(b, 0o640)
        renameat2(a, b, RENAME_EXCHANGE)
    os.makedirs("da/sub")
    write("da/a1", b"a1", sync=True)
    write("da/sub/deep", b"deep")
    os.chmod("da", 0o750)
    os.mkdir("db")
    write("db/b1", b"b1")
    renameat2("da", "db", RENAME_EXCHANGE)
    expect_errno(errno.ENOENT, renameat2, "p1", "missing", RENAME_EXCHANGE)
    outcome = {}
    write("kf", b"a file", sync=True)  # a file and a directory
    os.mkdir("kd")
    write("kd/child", b"child")
    write("lf", b"another file")  # a file and a symbolic link
    os.symlink("kf", "ll")
    for a, b in (("kf", "kd"), ("lf", "ll")):
        code = errno_of(renameat2, a, b, RENAME_EXCHANGE)
        assert code in (0, errno.EINVAL), f"exchange of {a} and {b}: {errname(code)}"
        outcome[a] = "exchanged" if code == 0 else "refused"
    return outcome


def check_exchange(_: Identity, outcome: dict[str, str]) -> None:
    for a, b in PAIRS:
        assert read(a) == f"content of {b}".encode(), f"{a} holds {read(a)!r}"
        assert read(b) == f"content of {a}".encode(), f"{b} holds {read(b)!r}"
        assert stat.S_IMODE(os.stat(a).st_mode) == 0o640, f"{a}: the mode did not follow"
        assert stat.S_IMODE(os.stat(b).st_mode) == 0o600, f"{b}: the mode did not follow"
    assert names("da") == ["b1"]
    assert names("db") == ["a1", "sub"]
    assert (read("da/b1"), read("db/a1"), read("db/sub/deep")) == (b"b1", b"a1", b"deep")
    assert stat.S_IMODE(os.stat("db").st_mode) == 0o750
    listed = os.listdir(".")
    assert len(listed) == len(set(listed)), f"a name listed twice: {sorted(listed)}"
    if outcome["kf"] == "exchanged":
        assert read("kd") == b"a file" and read("kf/child") == b"child"
    else:
        assert read("kf") == b"a file" and read("kd/child") == b"child"
    if outcome["lf"] == "exchanged":
        assert os.readlink("lf") == "kf" and read("ll") == b"another file"
    else:
        assert read("lf") == b"another file" and os.readlink("ll") == "kf"


EXCHANGE = Persistent("rename-exchange", build_exchange, check_exchange)


def test_rename_exchange(ws, actor):
    outcome = ws.run(EXCHANGE.build, actor)
    ws.run(EXCHANGE.check, actor, outcome)


PERSISTENT = [EXCHANGE]
