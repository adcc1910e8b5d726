"""The history through a real mount: the versions view, mounts of the past, and restores.

Plain and encrypted (``CRYPT_MODES``).  A file is overwritten three times and
deleted; the view shows four versions and the deletion with the right contents;
``-o version_at`` before and after each change shows what was there; ``b2fs
restore`` brings back a file, a deleted tree and a version by id, each checked
after a remount with an empty cache (so what is compared is what B2 holds).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from b2fs.history.times import format_ms
from tests.mount.conftest import CRYPT_MODES, MountProcess, until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180), CRYPT_MODES]

VIEW = ".b2fs-versions"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z(-\d+)?(\.deleted)?")


def put(path: Path, data: bytes) -> float:
    """Write and fsync (B2 holds it when this returns); the time just after, in seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    time.sleep(0.01)  # the next change is at a later millisecond
    return time.time()


def fresh(m: MountProcess) -> MountProcess:
    """Unmount, drop the cache, mount again: what is read now comes from B2."""
    assert m.unmount() == 0, m.log()
    shutil.rmtree(m.cache_dir)
    return m.start()


def b2fs_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "b2fs", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


def history(m: MountProcess) -> tuple[MountProcess, dict[str, float]]:
    """d/f.txt written four times and deleted (each change in B2); the times between them."""
    f = m.path / "d" / "f.txt"
    times = {"before": time.time()}
    time.sleep(0.01)
    for i in range(1, 5):
        times[f"v{i}"] = put(f, f"version {i}\n".encode() * i)
    put(m.path / "d" / "other.txt", b"stays")
    f.unlink()
    time.sleep(0.01)
    times["deleted"] = time.time()
    return m, times


def test_the_view_shows_versions_and_the_deletion(mount_factory):
    m, _ = history(mount_factory())
    root = m.path / VIEW
    assert VIEW not in os.listdir(m.path)  # hidden from the root's readdir...
    assert root.is_dir()  # ...reachable by name
    assert sorted(os.listdir(root)) == ["d"]
    assert sorted(os.listdir(root / "d")) == ["f.txt", "other.txt"]
    leaves = sorted(os.listdir(root / "d" / "f.txt"))
    assert len(leaves) == 5 and all(STAMP.fullmatch(n) for n in leaves), leaves
    assert leaves[-1].endswith(".deleted") and not any(n.endswith(".deleted") for n in leaves[:-1])
    for i, name in enumerate(leaves[:4], start=1):
        leaf = root / "d" / "f.txt" / name
        data = f"version {i}\n".encode() * i
        assert leaf.read_bytes() == data
        st = leaf.stat()
        assert st.st_size == len(data)
        assert st.st_mode & 0o222 == 0  # read-only
        assert abs(st.st_mtime - st.st_ctime) < 5
    assert (root / "d" / "f.txt" / leaves[-1]).stat().st_size == 0
    assert not (m.path / "d" / "f.txt").exists()
    # Through a remount with an empty cache: the same, read from B2.
    m = fresh(m)
    assert [(root / "d" / "f.txt" / n).read_bytes() for n in leaves[:4]] == [
        f"version {i}\n".encode() * i for i in range(1, 5)
    ]


def test_the_view_is_read_only(mount_factory):
    m = mount_factory()
    put(m.path / "a.txt", b"one")
    view = m.path / VIEW
    leaf = next((view / "a.txt").iterdir())
    for attempt in (
        lambda: open(leaf, "ab"),
        lambda: open(view / "a.txt" / "new", "wb"),
        lambda: (view / "x").mkdir(),
        lambda: leaf.unlink(),
        lambda: os.chmod(leaf, 0o600),
        lambda: os.rename(m.path / "a.txt", view / "b.txt"),
        lambda: os.rename(leaf, m.path / "b.txt"),
        lambda: os.rmdir(view),
        lambda: os.symlink("a.txt", view / "l"),
    ):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS, attempt
    assert (m.path / "a.txt").read_bytes() == b"one"


def test_pending_version_is_the_newest(mount_factory):
    m = mount_factory(writeback_delay=60)
    put(m.path / "p.txt", b"uploaded")
    (m.path / "p.txt").write_bytes(b"not uploaded yet")  # closed, waiting for its upload
    leaves = sorted(os.listdir(m.path / VIEW / "p.txt"))
    assert leaves[-1] == "pending" and len(leaves) == 2, leaves
    assert (m.path / VIEW / "p.txt" / "pending").read_bytes() == b"not uploaded yet"
    assert (m.path / VIEW / "p.txt" / leaves[0]).read_bytes() == b"uploaded"
    (m.path / "new.txt").write_bytes(b"only local")
    assert os.listdir(m.path / VIEW / "new.txt") == ["pending"]


def test_view_options(mount_factory):
    m = mount_factory(show_versions=True)
    put(m.path / "x", b"x")
    assert sorted(os.listdir(m.path)) == [VIEW, "x"]
    assert sorted(os.listdir(m.path / VIEW)) == ["x"]
    m.unmount()
    m.options.pop("show_versions")
    m.options["versions"] = False
    m.start()
    assert os.listdir(m.path) == ["x"]
    assert not (m.path / VIEW).exists()
