"""What close and fsync promise (docs/semantics.md), under kill -9 and a simulated power cut,
and what writing costs afterwards: no duplicate uploads, no downloads to read it back.

- ``close`` returns once the change is journaled: the mount process may die at once
  (``kill -9``) and every closed file comes back whole at the next mount;
- a power cut loses what the background sync (every 5 s) or ``-o sync_close`` had not
  put on disk yet, and nothing else: simulated by changing the boot id the journal keeps;
- ``fsync`` returns once B2 holds the content, and the journal says so: a crash then does
  not upload it again;
- content written through the mount is read back from the block cache, not downloaded.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.mount.conftest import CRYPT_MODES, until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180), CRYPT_MODES]

KB = 1024
MB = 1024 * 1024

WRITER = r"""
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    data = (b"%06d" % i) * (1 + (i * 37) % 3000)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(data)
    print(i, flush=True)  # printed only after close returned
"""


def content(i: int) -> bytes:
    return (b"%06d" % i) * (1 + (i * 37) % 3000)


def versions(b2sync, bucket: str) -> list:
    bid = b2sync.bucket_id(bucket)

    async def go(c):
        return [f async for f in c.list_file_versions(bid) if f.action == "upload"]

    return b2sync.run(go)


def test_kill_9_mid_write_keeps_every_closed_file(mount_factory, tmp_path):
    m = mount_factory(writeback_delay=30)  # nothing uploads: everything is in the journal
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(m.path), "100000"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert writer.stdout is not None
    closed = []
    for line in writer.stdout:
        closed.append(int(line))
        if len(closed) == 300:
            break
    m.kill()  # the mount dies while the writer is in the middle of a file
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    closed.extend(int(line) for line in writer.stdout.read().split())
    m.start()
    for i in closed:
        path = m.path / f"d{i % 7:02d}" / f"f{i:05d}"
        assert path.read_bytes() == content(i), path
    assert m.unmount() == 0
    assert "lost" not in m.log()


def test_a_power_cut_loses_only_what_was_not_synced(mount_factory, b2sync):
    m = mount_factory(writeback_delay=60)
    old = os.urandom(200 * KB)  # a staging file
    (m.path / "old.bin").write_bytes(old)
    until(lambda: _synced(m, "old.bin"), timeout=20, what="the background sync")
    (m.path / "new.bin").write_bytes(os.urandom(200 * KB))
    (m.path / "small.txt").write_bytes(b"a small file: its bytes are in its journal row")
    m.kill()
    _reboot(m)  # new.bin's staging file may have lost its last writes: not uploaded
    m.start()
    assert (m.path / "old.bin").read_bytes() == old
    assert not (m.path / "new.bin").exists()
    assert (m.path / "small.txt").read_bytes() == b"a small file: its bytes are in its journal row"
    assert m.unmount() == 0
    names = b2sync.names(m.bucket)
    assert "new.bin" not in names and {"old.bin", "small.txt"} <= set(names)
    if not m.encrypted:
        assert "journal: new.bin was closed but not yet on disk when the machine went down" in (
            m.log()
        )


def test_sync_close_survives_a_power_cut_at_once(mount_factory, b2sync):
    m = mount_factory(writeback_delay=60, sync_close=True)
    (m.path / "f.txt").write_bytes(b"closed with sync_close")
    m.kill()
    _reboot(m)
    m.start()
    assert (m.path / "f.txt").read_bytes() == b"closed with sync_close"
    assert m.unmount() == 0
    assert b2sync.read(m.bucket, "f.txt") == b"closed with sync_close"


def test_fsync_then_kill_uploads_nothing_twice(mount_factory, b2sync):
    m = mount_factory(writeback_delay=30)
    for i in range(40):
        fd = os.open(m.path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"content %d" % i)
        if i % 2:
            os.fsync(fd)  # B2 holds it now; the journal row says so
        os.close(fd)
    fd = os.open(m.path / "held", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"fsynced while still open")
    os.fsync(fd)
    m.kill()  # "held" is still open, its row still there
    with pytest.raises(OSError):
        os.close(fd)  # the mount is gone: the kernel cannot flush it
    m.start()
    assert m.unmount() == 0
    names = [f.file_name for f in versions(b2sync, m.bucket) if not f.file_name.endswith("vault")]
    assert len(names) == len(set(names)) == 41, sorted(names)
    assert b2sync.read(m.bucket, "held") == b"fsynced while still open"


def test_a_closed_fsynced_file_leaves_the_queue_at_once(mount_factory):
    m = mount_factory(writeback_delay=60)
    with open(m.path / "f", "wb") as f:
        f.write(b"x" * 1000)
        f.flush()
        os.fsync(f.fileno())
    until(lambda: not m.status()["writeback"]["pending"], timeout=5, what="the queue empty")


def test_written_content_is_read_back_without_downloads(mount_factory, server):
    m = mount_factory(writeback_delay=0)
    small = {f"s{i}.txt": os.urandom(3000 + i) for i in range(20)}
    big = os.urandom(3 * MB + 12345)  # several blocks
    for name, data in small.items():
        (m.path / name).write_bytes(data)
    (m.path / "big.bin").write_bytes(big)
    until(lambda: not m.status()["writeback"]["pending"], what="uploads done")
    server.reset_counters()
    for name, data in small.items():
        assert (m.path / name).read_bytes() == data
    assert (m.path / "big.bin").read_bytes() == big
    os.chmod(m.path / "big.bin", 0o600)  # a copy with new file info: the same cached bytes
    until(lambda: not m.status()["writeback"]["pending"], what="the chmod")
    os.rename(m.path / "s0.txt", m.path / "moved.txt")  # a server-side copy: the same too
    assert _downloads(server) == 0
    assert m.unmount() == 0
    m.start()  # the kernel's page cache is gone: reads reach the mount, and its disk cache
    server.reset_counters()  # (an encrypted mount downloads its vault when it starts)
    assert (m.path / "big.bin").read_bytes() == big
    assert (m.path / "moved.txt").read_bytes() == small["s0.txt"]
    for name, data in list(small.items())[1:]:
        assert (m.path / name).read_bytes() == data
    assert _downloads(server) == 0


def _downloads(server) -> int:
    calls = server.counters()["calls"]
    return calls.get("b2_download_file_by_id", 0) + calls.get("b2_download_file_by_name", 0)


def _synced(m, name: str) -> bool:
    """Is the journal row of ``name`` on disk (its write number at most the synced one)?
    (Plain mounts: rows are found by their path column.)"""
    db = sqlite3.connect(m.cache_dir / "journal.sqlite")
    try:
        rows = db.execute("SELECT path, seq FROM pending").fetchall()
        synced = db.execute("SELECT value FROM meta WHERE key='synced'").fetchone()
    finally:
        db.close()
    if m.encrypted:  # rows are sealed: wait for the sync interval instead
        time.sleep(6)
        return True
    return synced is not None and any(p == name and seq <= int(synced[0]) for p, seq in rows)


def _reboot(m) -> None:
    """What the next mount sees after the machine went down: another boot id."""
    db = sqlite3.connect(m.cache_dir / "journal.sqlite")
    try:
        db.execute("UPDATE meta SET value='another-boot' WHERE key='boot'")
        db.commit()
    finally:
        db.close()
    shutil.rmtree(m.cache_dir / "blocks-1048576", ignore_errors=True)
