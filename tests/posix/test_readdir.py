"""readdir returns '.' and '..' (issue 10), each once, with the inode numbers stat gives, in
directories of any size, read in small pieces or in one.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.posix.helpers import Identity, Persistent, dirents, write

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

MANY = 120


def check_dot_entries(path: str, entries: list[str], bufsize: int = 32768) -> None:
    got = dirents(path, bufsize)
    counts = Counter(name for name, _, _ in got)
    dup = sorted(n for n, c in counts.items() if c > 1)
    assert not dup, f"{path}: readdir returned {dup} more than once"
    assert set(counts) == {".", "..", *entries}, (
        f"{path}: readdir returned {len(counts)} names {sorted(counts)[:5]}..., "
        f"expected '.', '..' and {len(entries)} entries"
    )
    by_name = {name: (ino, kind) for name, ino, kind in got}
    assert by_name["."] == (os.stat(path).st_ino, "d"), f"{path}: '.' is {by_name['.']}"
    assert by_name[".."] == (os.stat(f"{path}/..").st_ino, "d"), f"{path}: '..' is {by_name['..']}"


def build_dirs(_: Identity) -> None:
    os.mkdir("empty")
    os.mkdir("full")
    for i in range(MANY):
        write(f"full/f{i:03}", b"")
    os.mkdir("full/sub")
    os.mkdir("full/sub/inner")


def check_dirs(_: Identity, __: None) -> None:
    check_dot_entries("empty", [])
    full = [f"f{i:03}" for i in range(MANY)] + ["sub"]
    check_dot_entries("full", full)
    check_dot_entries("full", full, bufsize=512)  # many getdents calls: offsets must hold
    check_dot_entries("full/sub", ["inner"])
    check_dot_entries("full/sub/inner", [])
    check_dot_entries(".", ["empty", "full"])
    assert {".", ".."} <= {name for name, _, _ in dirents("..")}  # the mount's root


DIRS = Persistent("readdir", build_dirs, check_dirs)


def test_readdir_returns_dot_and_dotdot(ws, actor):
    ws.run(DIRS.build, actor)
    ws.run(DIRS.check, actor, None)


PERSISTENT = [DIRS]
