"""The write side of a real mount: programs that write, and what lands in B2.

Each test checks the result after a remount with an empty cache, so what is
compared is what B2 holds, not what the mount remembers.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

import pytest

from tests.mount.conftest import CRYPT_MODES, MountProcess, until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180), CRYPT_MODES]

KB = 1024
MB = 1024 * 1024


def fresh(m: MountProcess) -> MountProcess:
    """Unmount (uploads drain), drop the cache, mount again: reads now come from B2."""
    assert m.unmount() == 0, m.log()
    shutil.rmtree(m.cache_dir)
    return m.start()


def tree_equal(a: Path, b: Path) -> None:
    """Recursive comparison of names, kinds, contents and symlink targets."""
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only, (a, cmp.left_only, cmp.right_only)
    for name in cmp.common_files:
        pa, pb = a / name, b / name
        if pa.is_symlink():
            assert os.readlink(pa) == os.readlink(pb), name
        else:
            assert pa.read_bytes() == pb.read_bytes(), pa
    for name in cmp.common_dirs:
        tree_equal(a / name, b / name)


def stdlib_tarball(tmp_path: Path) -> tuple[Path, Path]:
    """A real source tree: Python's standard library (thousands of files), as a tarball."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tar_path = tmp_path / "stdlib.tar"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if "__pycache__" in parts or (len(parts) > 1 and (parts[1] in ("site-packages", "lib-dynload")
                                                          or parts[1].startswith("config-"))):  # fmt: skip
            return None
        return info

    with tarfile.open(tar_path, "w") as tar:
        tar.add(stdlib, arcname="stdlib", filter=keep)
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["tar", "xf", str(tar_path), "-C", str(ref)], check=True)
    return tar_path, ref / "stdlib"


@pytest.mark.timeout(400)
def test_untar_a_source_tree_and_diff(mount_factory, tmp_path, server):
    tar_path, ref = stdlib_tarball(tmp_path)
    count = sum(len(files) for _, _, files in os.walk(ref))
    assert count > 2000
    m = mount_factory(upload_concurrency=8)
    subprocess.run(["tar", "xf", str(tar_path), "-C", str(m.path)], check=True, timeout=300)
    tree_equal(ref, m.path / "stdlib")  # before upload: from staging
    fresh(m)
    tree_equal(ref, m.path / "stdlib")  # from B2
    r = subprocess.run(
        ["diff", "-r", str(ref), str(m.path / "stdlib")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[:2000]


def test_rsync_in_and_back_out(mount_factory, tmp_path):
    src = tmp_path / "src"
    for i in range(30):
        d = src / f"d{i % 4}" / f"sub{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(i * 997))
    (src / "empty-dir").mkdir()
    os.symlink("d0/sub0/f0.bin", src / "link")
    os.utime(src / "d1", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    m = mount_factory()
    subprocess.run(["rsync", "-a", f"{src}/", f"{m.path}/in/"], check=True, timeout=120)
    fresh(m)
    out = tmp_path / "out"
    subprocess.run(["rsync", "-a", f"{m.path}/in/", f"{out}/"], check=True, timeout=120)
    tree_equal(src, out)
    st_src, st_out = os.stat(src / "d0/sub0/f0.bin"), os.stat(out / "d0/sub0/f0.bin")
    assert st_src.st_mtime_ns // 1_000_000 == st_out.st_mtime_ns // 1_000_000  # ms, as B2 keeps it
    # a second rsync finds nothing to send
    r = subprocess.run(["rsync", "-a", "--itemize-changes", f"{src}/", f"{m.path}/in/"], capture_output=True,
                       text=True, check=True)  # fmt: skip
    changed = [line for line in r.stdout.splitlines() if line.startswith(">f")]
    assert changed == []


def test_sqlite_database(mount_factory):
    m = mount_factory()
    db = sqlite3.connect(m.path / "app.db")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    with db:
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}" * 20,) for i in range(2000)])
    with db:
        db.execute("UPDATE t SET v = 'changed' WHERE id % 7 = 0")
        db.execute("DELETE FROM t WHERE id % 11 = 0")
    db.close()
    fresh(m)
    db = sqlite3.connect(m.path / "app.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2000 - 2000 // 11
    assert db.execute("SELECT v FROM t WHERE id = 14").fetchone()[0] == "changed"
    db.close()


def test_git_repository(mount_factory):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    m = mount_factory()
    repo = m.path / "repo"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", HOME=str(m.root))  # fmt: skip

    def git(*args: str) -> str:
        r = subprocess.run(
            ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    repo.mkdir()
    git("init", "-q", "-b", "main")
    for i in range(3):
        (repo / f"file{i}.txt").write_text(f"version {i}\n" * 100)
        (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (repo / "run.sh").chmod(0o755)
        git("add", "-A")
        git("commit", "-q", "-m", f"commit {i}")
    fresh(m)
    log = git("log", "--oneline")
    assert [line.split(" ", 1)[1] for line in log.splitlines()] == [
        "commit 2",
        "commit 1",
        "commit 0",
    ]
    assert git("status", "--porcelain") == ""
    git("fsck", "--strict")
    assert os.stat(repo / "run.sh").st_mode & 0o111  # the executable bit is kept


def test_renames_of_files_and_trees(mount_factory, b2sync):
    m = mount_factory(writeback_delay=0)
    p = m.path
    (p / "a/b/c").mkdir(parents=True)
    (p / "a/b/c/deep.txt").write_bytes(b"deep")
    (p / "a/top.txt").write_bytes(b"top")
    (p / "a/b/mid.bin").write_bytes(os.urandom(300 * KB))
    (p / "empty").mkdir()
    time.sleep(1)  # let the uploads land, so the renames below are server-side copies
    os.rename(p / "a/top.txt", p / "top-renamed.txt")
    (p / "victim.txt").write_bytes(b"will be replaced")
    os.replace(p / "top-renamed.txt", p / "victim.txt")
    os.rename(p / "a", p / "z")
    os.rename(p / "empty", p / "z/empty-moved")
    expected = {"victim.txt": b"top", "z/b/c/deep.txt": b"deep", "z/b/mid.bin": None}
    mid = (p / "z/b/mid.bin").read_bytes()
    fresh(m)
    assert (p / "victim.txt").read_bytes() == expected["victim.txt"]
    assert (p / "z/b/c/deep.txt").read_bytes() == b"deep"
    assert (p / "z/b/mid.bin").read_bytes() == mid
    assert (p / "z/empty-moved").is_dir()
    assert sorted(os.listdir(p)) == ["victim.txt", "z"]
    names = b2sync.names(m.bucket)
    assert not any(n.startswith("a/") for n in names), names


def test_rename_before_upload_costs_no_copy(mount_factory, server):
    m = mount_factory(writeback_delay=2)
    server.reset_counters()
    (m.path / "tmp.lock").write_bytes(b"content")
    os.rename(m.path / "tmp.lock", m.path / "final")
    assert m.unmount() == 0
    calls = server.counters()["calls"]
    assert calls.get("b2_copy_file", 0) == 0
    assert calls.get("b2_upload_file", 0) == 1
    m.start()
    assert os.listdir(m.path) == ["final"]


def test_rename_directory_resumes_after_a_crash(mount_factory, server, b2sync):
    m = mount_factory(writeback_delay=0)
    (m.path / "src").mkdir()
    for i in range(40):
        (m.path / "src" / f"f{i:02d}").write_bytes(b"x" * i)
    time.sleep(1.5)
    server.set_faults([{"call": "b2_copy_file", "kinds": ["delay:0.3"], "probability": 1.0}])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os; os.rename({str(m.path / 'src')!r}, {str(m.path / 'dst')!r})",
        ]
    )
    time.sleep(1.0)
    m.kill()  # mid-rename
    proc.wait(timeout=30)
    server.clear_faults()
    m.start()  # the journal completes the rename before the mount is up
    assert sorted(os.listdir(m.path)) == ["dst"]
    assert sorted(os.listdir(m.path / "dst")) == [f"f{i:02d}" for i in range(40)]
    assert all((m.path / "dst" / f"f{i:02d}").read_bytes() == b"x" * i for i in range(40))
    assert not any(n.startswith("src/") for n in b2sync.names(m.bucket))


def test_symlinks(mount_factory):
    m = mount_factory()
    (m.path / "target.txt").write_bytes(b"pointed at")
    os.symlink("target.txt", m.path / "rel")
    os.symlink("/etc/hostname", m.path / "abs")
    os.symlink("dangling/nowhere", m.path / "dangle")
    assert os.readlink(m.path / "rel") == "target.txt"
    fresh(m)
    assert os.readlink(m.path / "rel") == "target.txt"
    assert os.readlink(m.path / "abs") == "/etc/hostname"
    assert os.readlink(m.path / "dangle") == "dangling/nowhere"
    assert (m.path / "rel").read_bytes() == b"pointed at"
    assert os.lstat(m.path / "rel").st_size == len("target.txt")


def test_what_b2_cannot_do_gets_posix_errors(mount_factory):
    m = mount_factory()
    (m.path / "f").write_bytes(b"x")
    (m.path / "d").mkdir()
    (m.path / "d/child").write_bytes(b"y")
    with pytest.raises(OSError) as e:
        os.link(m.path / "f", m.path / "hard")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.rmdir(m.path / "d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.unlink(m.path / "d")
    assert e.value.errno in (errno.EISDIR, errno.EPERM)
    with pytest.raises(OSError) as e:
        (m.path / ("n" * 256)).write_bytes(b"")
    assert e.value.errno == errno.ENAMETOOLONG
    if m.encrypted:  # an encrypted name may hold control characters: B2 never sees them
        (m.path / "ctl\x01char").write_bytes(b"")
        os.unlink(m.path / "ctl\x01char")
    else:
        with pytest.raises(OSError) as e:
            (m.path / "ctl\x01char").write_bytes(b"")
        assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.rename(m.path / "d", m.path / "d/inside")
    assert e.value.errno == errno.EINVAL
    assert sorted(os.listdir(m.path)) == ["d", "f"]  # nothing half-done


def test_unlink_hides_and_hard_delete_deletes(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "soft.txt", b"1")
    b2sync.upload(bucket, "hard.txt", b"2")
    m = mount_factory(bucket)
    os.unlink(m.path / "soft.txt")
    m.unmount()
    bid = b2sync.bucket_id(bucket)
    versions = b2sync.run(lambda c: c.versions_of(bid, b2sync.key("soft.txt")))
    assert [v.action for v in versions] == ["hide", "upload"]  # B2 keeps the version
    m2 = mount_factory(bucket, hard_delete=True)
    os.unlink(m2.path / "hard.txt")
    assert b2sync.run(lambda c: c.versions_of(bid, b2sync.key("hard.txt"))) == []


def test_directories(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "implicit/only-file", b"x")  # a directory with no marker
    m = mount_factory(bucket)
    os.mkdir(m.path / "made")  # the marker is uploaded by the write-back, like a file
    assert os.listdir(m.path) == ["implicit", "made"]
    until(lambda: "made/.bzEmpty" in b2sync.names(bucket))
    os.unlink(m.path / "implicit/only-file")
    assert os.listdir(m.path / "implicit") == []  # it stays, as POSIX wants
    os.rmdir(m.path / "implicit")
    os.rmdir(m.path / "made")
    with pytest.raises(FileExistsError):
        os.mkdir(m.path / "x") or os.mkdir(m.path / "x")
    fresh(m)
    assert os.listdir(m.path) == ["x"]
    assert b2sync.names(bucket) == ["x/.bzEmpty"]


def test_attributes_persist(mount_factory):
    m = mount_factory()
    f = m.path / "f.txt"
    f.write_bytes(b"attrs")
    os.chmod(f, 0o640)
    os.chown(f, 1234, 5678)
    os.utime(f, ns=(1_700_000_000_123_000_000, 1_700_000_000_123_000_000))
    time.sleep(0.5)
    os.utime(f, ns=(1_700_000_001_000_000_000, 1_700_000_001_000_000_000))  # after the upload
    fresh(m)
    st = os.stat(f)
    assert st.st_mode & 0o777 == 0o640
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert st.st_mtime_ns == 1_700_000_001_000_000_000
    assert f.read_bytes() == b"attrs"


def test_without_keep_attrs_modes_are_fixed(mount_factory):
    m = mount_factory(keep_attrs=False)
    f = m.path / "f"
    f.write_bytes(b"x")
    os.chmod(f, 0o644)  # what it already shows: fine
    with pytest.raises(PermissionError):
        os.chmod(f, 0o600)


def test_read_your_writes_before_the_upload(mount_factory, b2sync):
    m = mount_factory(writeback_delay=30)
    data = os.urandom(700 * KB)
    start = time.monotonic()
    (m.path / "pending.bin").write_bytes(data)
    assert time.monotonic() - start < 5  # close returns at local speed
    assert (m.path / "pending.bin").read_bytes() == data
    assert os.stat(m.path / "pending.bin").st_size == len(data)
    assert "pending.bin" in os.listdir(m.path)
    assert "pending.bin" not in b2sync.names(m.bucket)
    status = m.status()["writeback"]
    assert [p["path"] for p in status["pending"]] == ["pending.bin"]
    out = subprocess.run(
        [sys.executable, "-m", "b2fs", "status", str(m.path)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "pending.bin" in out.stdout


def test_fsync_returns_when_b2_has_the_data(mount_factory, b2sync):
    m = mount_factory(writeback_delay=60)
    data = os.urandom(200 * KB)
    fd = os.open(m.path / "synced.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        assert b2sync.read(m.bucket, "synced.bin") == data
        os.write(fd, b"more")
        os.fsync(fd)
        assert b2sync.read(m.bucket, "synced.bin") == data + b"more"
    finally:
        os.close(fd)


def test_rewrite_supersedes_the_pending_upload(mount_factory, b2sync, server):
    m = mount_factory(writeback_delay=1)
    server.reset_counters()
    for i in range(5):
        (m.path / "f").write_bytes(f"version {i}".encode() * 1000)
    m.unmount()
    assert b2sync.read(m.bucket, "f") == b"version 4" * 1000
    assert server.counters()["calls"].get("b2_upload_file", 0) == 1


def test_partial_write_fetches_only_the_blocks_it_needs(
    mount_factory, b2sync, new_bucket_name, server
):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = bytearray(os.urandom(8 * MB))
    b2sync.upload(bucket, "f.bin", bytes(data))
    m = mount_factory(bucket, block_size="1M", writeback_delay=30)
    server.reset_counters()
    with open(m.path / "f.bin", "r+b") as f:
        f.seek(3 * MB + 10)
        f.write(b"PATCH")
    data[3 * MB + 10 : 3 * MB + 15] = b"PATCH"
    assert server.counters()["bytes_out"] <= MB + 64 * KB  # one block fetched for the partial write
    fresh(m)
    assert (m.path / "f.bin").read_bytes() == bytes(data)


def test_unmount_waits_for_pending_uploads(mount_factory, b2sync, server):
    m = mount_factory(writeback_delay=60)
    server.set_faults([{"call": "b2_upload_file", "kinds": ["delay:0.2"], "probability": 1.0}])
    try:
        for i in range(10):
            (m.path / f"f{i}").write_bytes(b"x" * i)
        assert m.terminate() == 0
    finally:
        server.clear_faults()
    assert sorted(b2sync.names(m.bucket)) == [f"f{i}" for i in range(10)]
    assert "unmount: " in m.log() and "upload(s) left" in m.log()


def test_opening_for_write_without_writing_uploads_nothing(
    mount_factory, b2sync, new_bucket_name, server
):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "db.bin", b"unchanged")
    m = mount_factory(bucket, writeback_delay=0)
    server.reset_counters()
    fd = os.open(m.path / "db.bin", os.O_RDWR)
    assert os.read(fd, 100) == b"unchanged"
    os.fsync(fd)
    os.close(fd)
    m.unmount()
    calls = server.counters()["calls"]
    assert not any(
        calls.get(c) for c in ("b2_copy_file", "b2_upload_file", "b2_start_large_file")
    ), calls


def test_o_creat_of_a_name_the_kernel_thinks_free_opens_the_file_there(mount_factory, b2sync):
    """open(O_CREAT) without O_TRUNC of a file made elsewhere while the kernel still keeps the
    name's earlier "no such name" (negative_timeout) opens that file: its content stays."""
    m = mount_factory(negative_timeout=60, dir_cache_time=0)
    f = m.path / "f"
    assert not f.exists()  # the kernel keeps this answer for a minute
    b2sync.upload(m.bucket, "f", b"made elsewhere")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)  # the kernel sends CREATE
    os.close(fd)
    assert f.read_bytes() == b"made elsewhere"
    fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, b", and here")
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fresh(m)
    assert f.read_bytes() == b"made elsewhere, and here"


def test_read_past_the_old_end_of_a_grown_file(mount_factory, b2sync):
    """Issue 10: a file in B2 grown by truncate reads zeros past its old end, also from a
    read that starts past the old end inside the base version's last block."""
    m = mount_factory(writeback_delay=30)
    data = os.urandom(10000)
    b2sync.upload(m.bucket, "f", data)
    f = m.path / "f"
    os.truncate(f, 100000)
    fd = os.open(f, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 3 * 4096) == bytes(4096)  # past 10000, inside block 0
        assert os.pread(fd, 8192, 8000) == data[8000:] + bytes(8192 - 2000)
        assert os.pread(fd, 200000, 0) == data + bytes(90000)
    finally:
        os.close(fd)
    os.truncate(f, 5000)  # cut inside the base, then grown again past the cut
    os.truncate(f, 20000)
    assert f.read_bytes() == data[:5000] + bytes(15000)
    fresh(m)
    assert f.read_bytes() == data[:5000] + bytes(15000)


def test_times_and_mode_through_a_descriptor_of_an_unlinked_file(mount_factory):
    """futimens and fchmod of a file unlinked while open reach the kernel as a SETATTR with no
    handle: they change what the descriptor's fstat shows, as on a local disk, for a file with
    pending changes and for one only in B2 (they were ENOENT)."""
    m = mount_factory(writeback_delay=30)
    for variant in ("pending", "uploaded"):
        f = m.path / variant
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x" * 1000)
            if variant == "uploaded":
                os.fsync(fd)
                os.close(fd)
                fd = os.open(f, os.O_RDONLY)
            os.unlink(f)
            os.utime(fd, ns=(1_000_000_000_123, 2_000_000_000_456))
            os.chmod(fd, 0o600)
            st = os.fstat(fd)
            assert (st.st_atime_ns, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_size) == (
                1_000_000_000_123, 2_000_000_000_456, 0o600, 1000,
            ), variant  # fmt: skip
            assert os.pread(fd, 2000, 0) == b"x" * 1000
        finally:
            os.close(fd)
    assert os.listdir(m.path) == []


def test_the_kernel_write_back_cache_keeps_the_rules(mount_factory):
    """-o writeback_cache: the kernel caches writes and owns sizes and times while it holds the
    file; appends, read-modify-write of a write-only descriptor, explicit times and truncation
    still give what ext4 gives."""
    m = mount_factory(writeback_cache=True, writeback_delay=0.2)
    f = m.path / "f"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o644)  # the kernel reads pages it half-writes
    os.pwrite(fd, b"a" * 5000, 0)
    os.pwrite(fd, b"B" * 10, 4090)
    os.close(fd)
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"tail")
    os.write(fd, b"!")
    os.close(fd)
    expected = b"a" * 4090 + b"B" * 10 + b"a" * 900 + b"tail!"
    assert f.read_bytes() == expected and os.stat(f).st_size == len(expected)
    os.truncate(f, 100)
    with open(f, "r+b") as h:
        h.seek(200)
        h.write(b"z")
    expected = expected[:100] + bytes(100) + b"z"
    os.utime(f, ns=(1_000_000_000_000_000_123, 1_500_000_000_000_000_456))
    assert f.read_bytes() == expected
    fresh(m)
    assert f.read_bytes() == expected
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (
        1_000_000_000_000_000_123,
        1_500_000_000_000_000_456,
    )
