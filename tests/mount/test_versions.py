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


def test_the_view_shows_versions_and_the_deletion(mount_factory, server):
    m, _ = history(mount_factory())
    os.listdir(m.path / "d")
    assert not server.counters()["calls"].get("b2_list_file_versions")  # only when browsed
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
    # Through a remount with an empty cache: the same, read from B2...
    m = fresh(m)
    assert [(root / "d" / "f.txt" / n).read_bytes() for n in leaves[:4]] == [
        f"version {i}\n".encode() * i for i in range(1, 5)
    ]
    # ...into the block cache, by fileId: after a remount that keeps it, no download.
    assert m.unmount() == 0
    m.start()
    server.reset_counters()
    assert (root / "d" / "f.txt" / leaves[0]).read_bytes() == b"version 1\n"
    assert not server.counters()["calls"].get("b2_download_file_by_id")


def test_the_view_is_read_only(mount_factory):
    m = mount_factory()
    put(m.path / "a.txt", b"one")
    view = m.path / VIEW
    leaf = next((view / "a.txt").iterdir())
    for attempt in (
        lambda: os.open(leaf, os.O_WRONLY | os.O_APPEND),
        lambda: os.open(view / "a.txt" / "new", os.O_WRONLY | os.O_CREAT),
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


def _rfc3339(seconds: float) -> str:
    return format_ms(int(seconds * 1000))


def test_version_at_before_and_after_each_change(mount_factory):
    m, times = history(mount_factory())
    seen = {}
    for label, t in times.items():
        at = _rfc3339(t) if label != "v2" else f"{t:.3f}"  # RFC 3339, and epoch seconds
        past = mount_factory(m.bucket, version_at=at)
        d = past.path / "d"
        seen[label] = (
            sorted(os.listdir(d)) if d.is_dir() else None,
            (d / "f.txt").read_bytes() if (d / "f.txt").exists() else None,
        )
        with pytest.raises(OSError) as e:
            (past.path / "new").write_bytes(b"x")
        assert e.value.errno == errno.EROFS
        past.unmount()
    assert seen == {
        "before": (None, None),
        **{f"v{i}": (["f.txt"], f"version {i}\n".encode() * i) for i in range(1, 5)},
        "deleted": (["other.txt"], None),
    }


def test_version_at_needs_a_time_zone(mount_factory):
    m = mount_factory(version_at="2026-01-01T00:00:00", start=False).start(expect_failure=True)
    assert m.proc is not None and m.proc.wait(10) != 0
    assert "time zone" in m.log()


def test_b2fs_versions_lists_a_file_and_a_directory(mount_factory):
    m, _ = history(mount_factory())
    r = b2fs_cli("versions", str(m.path / "d" / "f.txt"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "SIZE"]
    states = [line.split()[2] for line in lines[1:]]
    assert states == ["deleted", "old", "old", "old", "old"], r.stdout
    doc = json.loads(b2fs_cli("versions", "--json", str(m.path / "d" / "f.txt")).stdout)
    sizes = [v["size"] for v in doc["versions"]]
    assert sizes == [0, 40, 30, 20, 10]
    assert all(v["file_id"] for v in doc["versions"])
    assert all(len(v["sha1"]) == 40 for v in doc["versions"][1:])
    listed = json.loads(b2fs_cli("versions", "--json", str(m.path / "d")).stdout)
    assert [(e["name"], len(e["versions"])) for e in listed["entries"]] == [
        ("f.txt", 5), ("other.txt", 1)
    ]  # fmt: skip
    r = b2fs_cli("versions", str(m.path / "d" / "never"))
    assert r.returncode == 1 and "no versions" in r.stderr


def test_restore_a_deleted_file_by_deleting_its_hide_marker(mount_factory, server):
    m, _ = history(mount_factory())
    server.reset_counters()
    r = b2fs_cli("restore", str(m.path / "d" / "f.txt"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "undeleted: d/f.txt" in r.stdout and "b2_delete_file_version (class A)" in r.stdout
    assert "  40B  " in r.stdout  # the file's size (encrypted: not the ciphertext's)
    assert (m.path / "d" / "f.txt").read_bytes() == b"version 4\n" * 4  # at once, in the mount
    calls = server.counters()["calls"]
    assert calls.get("b2_delete_file_version") == 1 and not calls.get("b2_copy_file")
    assert not calls.get("b2_download_file_by_id")  # nothing travelled
    m = fresh(m)
    assert (m.path / "d" / "f.txt").read_bytes() == b"version 4\n" * 4


def test_restore_at_a_time_and_a_version(mount_factory, server):
    m, times = history(mount_factory())
    r = b2fs_cli("restore", str(m.path / "d"), "--at", _rfc3339(times["v2"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "copied back: d/f.txt" in r.stdout
    assert "left: did not exist then: d/other.txt" in r.stdout
    assert (m.path / "d" / "f.txt").read_bytes() == b"version 2\n" * 2
    assert (m.path / "d" / "other.txt").read_bytes() == b"stays"
    leaves = sorted(os.listdir(m.path / VIEW / "d" / "f.txt"))
    assert len(leaves) == 6  # the copy is a new version
    server.reset_counters()
    r = b2fs_cli("restore", str(m.path / VIEW / "d" / "f.txt" / leaves[0]))  # version 1
    assert r.returncode == 0, r.stdout + r.stderr
    assert server.counters()["calls"].get("b2_copy_file") == 1
    m = fresh(m)
    assert (m.path / "d" / "f.txt").read_bytes() == b"version 1\n"
    r = b2fs_cli("restore", str(m.path / "d" / "f.txt"), "--version", "4_zbogus")
    assert r.returncode == 1 and "not a version" in r.stderr


def test_restore_a_deleted_tree(mount_factory, server):
    m = mount_factory()
    files = {"t/a.txt": b"a", "t/sub/b.txt": b"b" * 3000, "t/sub/deep/c.txt": b"c"}
    for name, data in files.items():
        put(m.path / name, data)
    (m.path / "t" / "empty").mkdir()
    os.sync()
    until(lambda: m.status()["writeback"]["pending"] == [], what="uploads")
    shutil.rmtree(m.path / "t")
    assert not (m.path / "t").exists()
    deleted = m.path / VIEW / "t" / "sub" / "deep" / "c.txt"  # the view shows the deleted tree
    assert sorted(os.listdir(m.path / VIEW / "t")) == ["a.txt", "sub"]
    assert [n.endswith(".deleted") for n in sorted(os.listdir(deleted))] == [False, True]
    r = b2fs_cli("restore", "--dry-run", str(m.path / "t"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("would undelete") == 3, r.stdout
    assert "b2_list_file_versions (class C)" in r.stdout
    assert "3 b2_delete_file_version (class A)" in r.stdout
    assert not (m.path / "t").exists()  # a dry run changes nothing
    r = b2fs_cli("restore", str(m.path / "t"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "brought back 3 name(s)" in r.stdout
    m = fresh(m)
    for name, data in files.items():
        assert (m.path / name).read_bytes() == data


def test_restore_refuses_what_it_cannot_do(mount_factory):
    m = mount_factory(writeback_delay=60)
    put(m.path / "f", b"one")
    (m.path / "f").unlink()
    r = b2fs_cli("restore", str(m.path / "f"), "--at", "2026-01-01T00:00")
    assert r.returncode == 1 and "time zone" in r.stderr
    (m.path / "f").write_bytes(b"two, not uploaded")  # pending: a restore would be undone
    t = put(m.path / "g", b"three")
    (m.path / "g").write_bytes(b"four, pending")
    r = b2fs_cli("restore", str(m.path / "g"), "--at", f"{t:.3f}")
    assert r.returncode == 1 and "skipped: changes not uploaded yet: g" in r.stdout, r.stdout
    r = b2fs_cli("restore", str(m.path))  # f: deleted in B2, but written again here
    assert r.returncode == 1 and "skipped: changes not uploaded yet: f" in r.stdout, r.stdout
    r = b2fs_cli("restore", "/proc/self")
    assert r.returncode == 1 and "not inside a running b2fs mount" in r.stderr
    past = mount_factory(m.bucket, version_at=f"{time.time():.3f}")
    r = b2fs_cli("restore", str(past.path / "g"))
    assert r.returncode == 1 and "read-only" in r.stderr
