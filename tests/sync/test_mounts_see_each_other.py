"""Two and three mounts of one bucket (separate cache dirs) see each other's changes within
``poll_interval`` + 1 s: through the change log, not their listing caches, which are kept for
ten minutes here, nor the kernel's, which keeps names and attributes for a minute here."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.mount.conftest import CRYPT_MODES, MountProcess, until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(240)]

POLL = 1.0
BATCH = 1.0  # the writer's batching of records (b2fs.sync.writer.BATCH)
# What a reader mount waits at most once the writer's change is in B2: its writer's batch, one
# poll, the second; and one more for a machine shared with other test runs.
LIMIT = BATCH + POLL + 1 + 1
OPTS = {
    "poll_interval": POLL,
    "change_log": True,
    "dir_cache_time": 600,
    "entry_timeout": 60,
    "attr_timeout": 60,
}


def settled(m: MountProcess) -> None:
    """``m``'s pending uploads are in B2."""
    until(lambda: not m.status()["writeback"]["pending"], 30, f"{m.path}: uploads done")


def seen(check, what: str) -> float:  # noqa: ANN001
    """Wait for ``check()`` on a reader mount (at most LIMIT s); how long it took."""

    def ok() -> bool:
        try:
            return bool(check())
        except FileNotFoundError:  # not there yet
            return False

    t = time.monotonic()
    until(ok, LIMIT, what)
    return time.monotonic() - t


def read(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return None


def mounts(mount_factory, n: int, **opts) -> list[MountProcess]:  # noqa: ANN001
    first = mount_factory(**OPTS, **opts)
    return [first] + [mount_factory(first.bucket, **OPTS, **opts) for _ in range(n - 1)]


@CRYPT_MODES
def test_each_kind_of_change_shows_on_the_other_mount(mount_factory):
    a, b = mounts(mount_factory, 2)
    assert os.listdir(b.path) == []  # b caches the root's listing (for ten minutes)
    # create
    (a.path / "d").mkdir()
    (a.path / "d" / "f").write_bytes(b"one")
    settled(a)
    seen(lambda: read(b.path / "d" / "f") == b"one", "the new file on b")
    assert os.stat(b.path / "d" / "f").st_size == 3
    # overwrite (same size: only a new version tells them apart)
    (a.path / "d" / "f").write_bytes(b"two")
    settled(a)
    seen(lambda: read(b.path / "d" / "f") == b"two", "the overwritten file on b")
    # append
    with open(a.path / "d" / "f", "ab") as f:
        f.write(b"+more")
    settled(a)
    seen(lambda: os.stat(b.path / "d" / "f").st_size == 8, "the appended size on b")
    assert read(b.path / "d" / "f") == b"two+more"
    # chmod
    os.chmod(a.path / "d" / "f", 0o640)
    settled(a)
    seen(lambda: stat.S_IMODE(os.stat(b.path / "d" / "f").st_mode) == 0o640, "the mode on b")
    # rename a tree
    (a.path / "d" / "sub" / "deeper").mkdir(parents=True)
    (a.path / "d" / "sub" / "deeper" / "g").write_bytes(b"deep")
    settled(a)
    seen(lambda: read(b.path / "d" / "sub" / "deeper" / "g") == b"deep", "the tree on b")
    os.rename(a.path / "d", a.path / "moved")
    settled(a)
    seen(lambda: os.listdir(b.path) == ["moved"], "the renamed tree on b")
    assert read(b.path / "moved" / "sub" / "deeper" / "g") == b"deep"
    assert read(b.path / "moved" / "f") == b"two+more"
    assert not (b.path / "d").exists()
    # delete
    os.unlink(a.path / "moved" / "f")
    settled(a)
    seen(lambda: sorted(os.listdir(b.path / "moved")) == ["sub"], "the deleted file on b")
    os.unlink(a.path / "moved" / "sub" / "deeper" / "g")
    os.rmdir(a.path / "moved" / "sub" / "deeper")
    settled(a)
    seen(lambda: os.listdir(b.path / "moved" / "sub") == [], "the removed directory on b")
    # and the other way round
    (b.path / "from-b").write_bytes(b"b was here")
    settled(b)
    seen(lambda: read(a.path / "from-b") == b"b was here", "b's file on a")
    assert a.status()["sync"]["poll"]["records_read"] >= 1
    assert b.status()["sync"]["log"]["records_written"] >= 1


def test_close_to_open_reads_the_new_content_not_the_page_cache(mount_factory):
    """A file the reader holds in its page cache, and open: its next open reads the writer's
    content (the kernel's pages are per file, not per descriptor: docs/semantics.md)."""
    a, b = mounts(mount_factory, 2)
    old, new = b"a" * (1 << 20), b"b" * (1 << 20)
    (a.path / "f").write_bytes(old)
    settled(a)
    seen(lambda: read(b.path / "f") == old, "the file on b")
    assert read(b.path / "f") == old  # opened again: the kernel keeps its pages now
    held = open(b.path / "f", "rb")  # noqa: SIM115 - closed below
    try:
        assert held.read(10) == b"a" * 10
        (a.path / "f").write_bytes(new)
        settled(a)
        seen(lambda: read(b.path / "f") == new, "the new content on b")
        assert os.stat(b.path / "f").st_size == len(new)
    finally:
        held.close()


def test_three_mounts(mount_factory):
    a, b, c = mounts(mount_factory, 3)
    for m in (b, c):
        assert os.listdir(m.path) == []
    (a.path / "tree" / "x").mkdir(parents=True)
    for i in range(5):
        (a.path / "tree" / "x" / f"f{i}").write_bytes(b"%d" % i)
    settled(a)
    for m in (b, c):
        seen(lambda m=m: len(os.listdir(m.path / "tree" / "x")) == 5, f"the tree on {m.path}")
    os.rename(c.path / "tree", c.path / "renamed")
    (c.path / "renamed" / "x" / "f0").write_bytes(b"changed by c")
    settled(c)
    for m in (a, b):
        seen(
            lambda m=m: read(m.path / "renamed" / "x" / "f0") == b"changed by c", f"c's on {m.path}"
        )
        assert os.listdir(m.path) == ["renamed"]
    os.unlink(b.path / "renamed" / "x" / "f4")
    settled(b)
    for m in (a, c):
        seen(lambda m=m: not (m.path / "renamed" / "x" / "f4").exists(), f"b's unlink on {m.path}")
        assert len(os.listdir(m.path / "renamed" / "x")) == 4


def test_own_records_are_skipped_and_a_burst_makes_few_records(mount_factory):
    a, b = mounts(mount_factory, 2)
    for i in range(40):
        (a.path / f"f{i:02d}").write_bytes(b"x")
    settled(a)
    seen(lambda: len(os.listdir(b.path)) == 40, "the 40 files on b")
    time.sleep(POLL * 2)
    log, poll = a.status()["sync"]["log"], a.status()["sync"]["poll"]
    assert log["changes_written"] >= 40
    assert log["records_written"] <= 8, log  # batched: one record a second at most
    assert poll["records_read"] == 0 and poll["changes_applied"] == 0, poll  # its own: skipped


def test_the_change_log_is_hidden_and_its_name_reserved(mount_factory, b2sync):
    a, b = mounts(mount_factory, 2)
    assert os.listdir(b.path) == []
    (a.path / "f").write_bytes(b"x")
    settled(a)
    seen(lambda: os.listdir(b.path) == ["f"], "f on b")
    names = b2sync.names(a.bucket, records=True)
    assert any(n.startswith(".b2fs/changes/") for n in names), names
    assert os.listdir(a.path) == ["f"]
    with pytest.raises(OSError) as e:
        os.mkdir(a.path / ".b2fs")
    assert e.value.errno == 22  # EINVAL: reserved at the mount's root, as the vault's name
    (a.path / "sub" / ".b2fs").mkdir(parents=True)  # below it, an ordinary name
    assert os.listdir(a.path / "sub") == [".b2fs"]
