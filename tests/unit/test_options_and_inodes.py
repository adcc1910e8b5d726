"""Mount option parsing and the inode table."""

from __future__ import annotations

import pytest

from b2fs.mount.options import OptionError, parse_options, parse_size
from b2fs.mount.source import SourceError, parse_source
from b2fs.posix.entries import Kind
from b2fs.vfs.inodes import ROOT_INODE, InodeTable


def test_sizes_and_types():
    assert parse_size("64M") == 64 << 20
    assert parse_size("1.5G") == int(1.5 * (1 << 30))
    assert parse_size("4096") == 4096
    o = parse_options(
        "uid=1000,gid=100,umask=027,ro,cache_size=2G,dir_cache_time=30,nokeep_attrs,_netdev,noauto"
    )
    assert (o.uid, o.gid, o.umask, o.read_only, o.cache_size, o.dir_cache_time, o.keep_attrs) == (
        1000, 100, 0o27, True, 2 << 30, 30.0, False)  # fmt: skip


@pytest.mark.parametrize(
    "bad", ["no_such=1", "cache_size=lots", "block_size=100", "uid=x", "credentials="]
)
def test_bad_options_are_refused(bad):
    with pytest.raises(OptionError):
        parse_options(bad)


def test_sources():
    assert parse_source("b2://my-bucket").prefix == ""
    assert parse_source("my-bucket/a/b/").prefix == "a/b/"
    for bad in ("b2://x", "b2://b2-reserved", "bad bucket name", "b2://bucket/a//b"):
        with pytest.raises(SourceError):
            parse_source(bad)


def test_inode_numbers_are_stable_and_renames_keep_them():
    t = InodeTable()
    a = t.node("dir/a", Kind.FILE)
    assert t.node("dir/a", Kind.FILE) is a
    assert a.ino not in (0, ROOT_INODE)
    d = t.node("dir", Kind.DIR)
    t.rename("dir", "moved")
    assert t.by_path("moved/a") is a and a.path == "moved/a" and t.by_path("dir/a") is None
    assert t.get(d.ino).path == "moved"
    # forgotten nodes go; the same path gets the same number again
    b = t.node("moved/b", Kind.FILE)
    ino = b.ino
    b.lookups = 1
    t.forget(ino, 1)
    assert t.by_path("moved/b") is None
    assert t.node("moved/b", Kind.FILE).ino == ino
    assert t.node("moved/a", Kind.FILE) is a  # a renamed node keeps its number while held
    # a path whose kind changed gets a new number
    assert t.node("moved/b", Kind.DIR).ino != ino
