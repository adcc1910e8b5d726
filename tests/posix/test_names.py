"""Names: segments of 255 bytes work, 256 is ENAMETOOLONG, and so is a path past B2's key limit.

255 bytes (NAME_MAX) work for every kind of entry on plain mounts as on
encrypted ones, in ASCII and in two-byte characters; 256 bytes is
ENAMETOOLONG for every call that takes a name.  A path whose B2 name would
pass 1,024 bytes is ENAMETOOLONG at create, mkdir, mkfifo, symlink and
rename, never ENOENT or EIO, and nothing moves (issue 10).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import pytest

from tests.posix.helpers import (
    Identity,
    Persistent,
    assert_meta,
    deferred,
    errname,
    errno_of,
    expect_errno,
    multibyte_name,
    name_of,
    names,
    no_deferred,
    read,
    write,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

LONG_TARGET = "/".join(name_of(250, f"t{i}") for i in range(16))[:4000]  # a symlink's target


# -- 255 bytes --------------------------------------------------------------------------------


def build_long_names(me: Identity) -> dict[str, Any]:
    n = {
        "file": name_of(255, "file"),
        "mb": multibyte_name(255, "mb"),
        "dir": name_of(255, "dir"),
        "inner": name_of(255, "inner"),
        "link": name_of(255, "link"),
        "fifo": name_of(255, "fifo"),
        "src": name_of(255, "src"),
        "dst": name_of(255, "dst"),
        "far": name_of(255, "far"),
    }
    assert all(len(v.encode()) == 255 for v in n.values())
    write(n["file"], b"long name")
    write(n["mb"], b"multibyte")
    os.mkdir(n["dir"])
    write(f"{n['dir']}/{n['inner']}", b"inner")
    os.symlink(n["file"], n["link"])
    os.symlink(LONG_TARGET, n["far"])
    write(n["src"], b"renamed")
    os.rename(n["src"], n["dst"])
    failures: list[str] = []
    deferred(failures, os.mkfifo, n["fifo"])  # a special file: its own rule
    return {**n, "failures": failures}


def check_long_names(me: Identity, n: dict[str, Any]) -> None:
    listed = set(names())
    missing = [k for k in ("file", "mb", "dir", "link", "far", "dst") if n[k] not in listed]
    assert not missing, f"readdir lacks the 255-byte names of {missing}"
    assert n["src"] not in listed
    assert read(n["file"]) == b"long name"
    assert read(n["mb"]) == b"multibyte"
    assert read(f"{n['dir']}/{n['inner']}") == b"inner"
    assert names(n["dir"]) == [n["inner"]]
    assert os.readlink(n["link"]) == n["file"]
    assert read(n["link"]) == b"long name"
    assert os.readlink(n["far"]) == LONG_TARGET
    assert read(n["dst"]) == b"renamed"
    assert stat.S_ISDIR(os.stat(n["dir"]).st_mode)
    no_deferred(n["failures"])
    assert n["fifo"] in listed
    assert_meta(n["fifo"], ("p", 0o644, me.uid, me.gid))


LONG_NAMES = Persistent("long-names", build_long_names, check_long_names)


def test_names_of_255_bytes_work(ws, actor):
    n = ws.run(LONG_NAMES.build, actor)
    ws.run(LONG_NAMES.check, actor, n)

    def more(n: dict[str, Any]) -> None:
        other_dir = name_of(255, "dir2")
        os.rename(n["dir"], other_dir)  # a directory with an entry, to another 255-byte name
        assert read(f"{other_dir}/{n['inner']}") == b"inner"
        os.unlink(f"{other_dir}/{n['inner']}")
        os.rmdir(other_dir)
        for k in ("file", "mb", "link", "far", "fifo", "dst"):
            os.unlink(n[k])
        assert names() == []

    ws.run(more, n)


# -- 256 bytes ----------------------------------------------------------------------------------


def test_names_of_256_bytes_are_enametoolong(ws, actor):
    def body() -> None:
        write("f", b"f")
        os.mkdir("d")
        too_long = (name_of(256, "n"), multibyte_name(256, "m"))
        for name in too_long:
            assert len(name.encode()) == 256
            expect_errno(errno.ENAMETOOLONG, os.open, name, os.O_WRONLY | os.O_CREAT, 0o644)
            expect_errno(errno.ENAMETOOLONG, os.mkdir, name)
            expect_errno(errno.ENAMETOOLONG, os.symlink, "f", name)
            expect_errno(errno.ENAMETOOLONG, os.rename, "f", name)
            expect_errno(errno.ENAMETOOLONG, os.rename, "d", name)
            expect_errno(errno.ENAMETOOLONG, os.link, "f", name)
            expect_errno(errno.ENAMETOOLONG, os.stat, name)
            expect_errno(errno.ENAMETOOLONG, os.lstat, name)
            expect_errno(errno.ENAMETOOLONG, os.stat, f"{name}/f")
            expect_errno(errno.ENAMETOOLONG, os.stat, f"d/{name}")
            expect_errno(errno.ENAMETOOLONG, os.unlink, name)
            expect_errno(errno.ENAMETOOLONG, os.rmdir, name)
            expect_errno(errno.ENAMETOOLONG, os.rename, name, "g")
        assert names() == ["d", "f"]
        assert read("f") == b"f"
        for name in too_long:  # last: special files (their own rule)
            expect_errno(errno.ENAMETOOLONG, os.mknod, name, stat.S_IFREG | 0o644)
            expect_errno(errno.ENAMETOOLONG, os.mkfifo, name)

    ws.run(body)


# -- B2's 1,024-byte names ----------------------------------------------------------------------


def _descend_to_the_limit() -> list[str]:
    """mkdir ever deeper (255-byte names, shorter ones once those are refused) until even a
    one-byte name is refused; each refusal must be ENAMETOOLONG.  The directories' names."""
    chain = ["c"]
    os.mkdir("c")
    fd = os.open("c", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth in range(80):
            for length in (255, 128, 32, 1):
                name = name_of(length, f"L{depth}") if length > 1 else "k"
                code = errno_of(os.mkdir, name, dir_fd=fd)
                if code == 0:
                    break
                assert code == errno.ENAMETOOLONG, (
                    f"mkdir of a {length}-byte name at depth {depth + 1}: {errname(code)}, "
                    f"expected ENAMETOOLONG"
                )
            else:
                return chain
            chain.append(name)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        raise AssertionError("80 levels of 255-byte names and no ENAMETOOLONG")
    finally:
        os.close(fd)


def _open_chain(chain: list[str]) -> int:
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    for name in chain:
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def test_paths_past_b2s_key_limit_are_enametoolong(ws, actor, posix_fs, b2fs_only):
    strict = posix_fs.kind == "plain"  # where a longer name certainly makes a longer key

    def body() -> None:
        chain = _descend_to_the_limit()
        assert len(chain) > 3, f"refused at depth {len(chain)}: the limit came too early"
        write("short", b"s")
        os.mkdir("shortdir")
        top = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        deep = _open_chain(chain)
        try:
            long = name_of(200, "z")  # a length every segment limit allows
            for call, args, kw in (
                (os.open, (long, os.O_WRONLY | os.O_CREAT, 0o644), {"dir_fd": deep}),
                (os.mkdir, (long,), {"dir_fd": deep}),
                (os.symlink, ("target", long), {"dir_fd": deep}),
                (os.rename, ("short", long), {"src_dir_fd": top, "dst_dir_fd": deep}),
                (os.rename, ("shortdir", long), {"src_dir_fd": top, "dst_dir_fd": deep}),
                (os.link, ("short", long), {"src_dir_fd": top, "dst_dir_fd": deep}),  # not EPERM
            ):
                code = errno_of(call, *args, **kw)
                assert code == errno.ENAMETOOLONG, (
                    f"{call.__name__} of a 200-byte name in the deepest directory: "
                    f"{errname(code)}, expected ENAMETOOLONG"
                )
            assert read("short") == b"s" and os.path.isdir("shortdir")
            assert os.listdir(deep) == []
        finally:
            os.close(top)
            os.close(deep)
        # renaming the top of the chain to a long name lengthens every name below it
        code = errno_of(os.rename, "c", name_of(200, "c"))
        if strict or code != 0:
            assert code == errno.ENAMETOOLONG, f"rename of the chain: {errname(code)}"
            assert not os.path.exists(name_of(200, "c"))
        else:  # the stored names may not have grown enough: then all of it moved
            chain[0] = name_of(200, "c")
        deep = _open_chain(chain)  # nothing lost
        try:  # last: a special file (its own rule)
            code = errno_of(os.mkfifo, name_of(200, "z"), dir_fd=deep)
            assert code == errno.ENAMETOOLONG, f"mkfifo in the deepest directory: {errname(code)}"
        finally:
            os.close(deep)

    ws.run(body)


PERSISTENT = [LONG_NAMES]
