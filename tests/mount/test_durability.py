"""No data loss: crashes, failing uploads, a full staging disk, large files rebuilt from parts."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.mount.conftest import SyncB2

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

KB = 1024
MB = 1024 * 1024


@pytest.fixture
def parts_server(make_local_server):
    """A server whose large files may have 1 MB parts, so tests make many-part files fast."""
    return make_local_server(min_part_size=MB)


def unfinished(b2: SyncB2, bucket: str) -> list:
    bid = b2.bucket_id(bucket)

    async def go(c):
        return [f async for f in c.list_unfinished_large_files(bid)]

    return b2.run(go)


def large_opts(**extra):
    return dict(large_file_threshold="4M", part_size="2M", block_size="256K", **extra)


def test_kill_9_mid_upload_loses_nothing(mount_factory, parts_server, tmp_path):
    b2 = SyncB2(parts_server)
    small = {f"small-{i}.txt": os.urandom(1000 + i) for i in range(20)}
    big = os.urandom(24 * MB + 333)
    m = mount_factory(srv=parts_server, writeback_delay=0, upload_concurrency=2, **large_opts())
    # slow uploads down so the kill lands in the middle of them
    parts_server.set_faults([
        {"call": "b2_upload_part", "kinds": ["delay:0.3"], "probability": 1.0},
        {"call": "b2_upload_file", "kinds": ["delay:0.05"], "probability": 1.0},
    ])  # fmt: skip
    for name, data in small.items():
        (m.path / name).write_bytes(data)
    (m.path / "big.bin").write_bytes(big)
    time.sleep(1.5)
    assert unfinished(b2, m.bucket), "the large upload should be under way"
    m.kill()
    parts_server.clear_faults()
    m.start()  # the journal puts everything back in the queue
    assert (m.path / "big.bin").read_bytes() == big  # shown from staging meanwhile
    m.unmount()
    for name, data in small.items():
        assert b2.read(m.bucket, name) == data
    assert b2.read(m.bucket, "big.bin") == big
    assert unfinished(b2, m.bucket) == []
    assert list((m.cache_dir / "staging").iterdir()) == []


def test_uploads_survive_faults_and_token_expiry(mount_factory, parts_server):
    b2 = SyncB2(parts_server)
    m = mount_factory(srv=parts_server, writeback_delay=0, upload_concurrency=8, **large_opts())
    parts_server.set_faults([
        {"call": "b2_upload_part", "kinds": ["503", "500", "drop"], "probability": 0.3},
        {"call": "b2_upload_file", "kinds": ["503", "500", "drop"], "probability": 0.3},
        {"call": "b2_get_upload_url", "kinds": ["503"], "probability": 0.1},
        {"call": "b2_finish_large_file", "kinds": ["503"], "probability": 0.3},
    ])  # fmt: skip
    big = os.urandom(60 * MB)
    small = {f"d{i % 10}/f{i}": os.urandom(100 + i) for i in range(300)}
    try:
        (m.path / "big.bin").write_bytes(big)
        for name, data in small.items():
            (m.path / name).parent.mkdir(exist_ok=True)
            (m.path / name).write_bytes(data)
            if name == "d5/f150":
                parts_server.expire_tokens()
        assert m.terminate(timeout=240) == 0
    finally:
        parts_server.clear_faults()
    injected = sum(parts_server.counters()["faults_injected"].values())
    assert injected > 50
    assert b2.read(m.bucket, "big.bin") == big
    names = set(b2.names(m.bucket))
    assert {n for n in small} <= names
    for name in list(small)[::37]:
        assert b2.read(m.bucket, name) == small[name]
    assert unfinished(b2, m.bucket) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_300mb_and_1000_files_under_30_percent_failures(mount_factory, make_local_server):
    srv = make_local_server(min_part_size=5 * MB)
    b2 = SyncB2(srv)
    m = mount_factory(srv=srv, writeback_delay=0, upload_concurrency=8, large_file_threshold="20M",
                      part_size="10M")  # fmt: skip
    srv.set_faults([
        {"call": "b2_upload_part", "kinds": ["503", "500", "drop"], "probability": 0.3},
        {"call": "b2_upload_file", "kinds": ["503", "500", "drop"], "probability": 0.3},
    ])  # fmt: skip
    src = Path(m.root) / "big.src"
    with open(src, "wb") as f:
        for _ in range(300):
            f.write(os.urandom(MB))
    try:
        shutil.copyfile(src, m.path / "big.bin")
        for i in range(1000):
            if i == 500:
                srv.expire_tokens()
            (m.path / f"f{i:04d}").write_bytes(i.to_bytes(4, "big") * 50)
        assert m.terminate(timeout=500) == 0
    finally:
        srv.clear_faults()
    assert sum(srv.counters()["faults_injected"].values()) > 100
    names = set(b2.names(m.bucket))
    assert {f"f{i:04d}" for i in range(1000)} <= names
    assert b2.read(m.bucket, "f0999") == (999).to_bytes(4, "big") * 50
    got = b2.read(m.bucket, "big.bin")
    assert got == src.read_bytes()


def test_appending_to_a_large_file_copies_the_unchanged_parts(mount_factory, parts_server):
    b2 = SyncB2(parts_server)
    bucket = f"append-{os.urandom(4).hex()}"
    b2.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    original = os.urandom(40 * MB)
    bid = b2.bucket_id(bucket)
    b2.run(lambda c: c.upload(bid, "log.bin", original, part_size=8 * MB))
    m = mount_factory(bucket, srv=parts_server, writeback_delay=0, **large_opts())
    parts_server.reset_counters()
    extra = os.urandom(3 * MB)
    with open(m.path / "log.bin", "ab") as f:
        f.write(extra)
    m.unmount()
    counters = parts_server.counters()
    assert counters["calls"].get("b2_copy_part", 0) >= 1
    assert counters["bytes_in"] < 8 * MB, counters["bytes_in"]  # not 43 MB
    assert b2.read(bucket, "log.bin") == original + extra


def test_a_full_staging_disk_gives_enospc_not_corruption(small_tmpfs, mount_factory):
    m = mount_factory(start=False, writeback_delay=30)
    m.cache_dir = small_tmpfs("6m") / "cache"
    m.start()
    ok = os.urandom(MB)
    (m.path / "fits.bin").write_bytes(ok)
    with pytest.raises(OSError) as e, open(m.path / "too-big.bin", "wb") as f:
        for _ in range(20):
            f.write(os.urandom(MB))
            f.flush()
    assert e.value.errno == errno.ENOSPC
    assert (m.path / "fits.bin").read_bytes() == ok  # other files are fine
    os.unlink(m.path / "too-big.bin")
    m.unmount()
    assert SyncB2(m.server).read(m.bucket, "fits.bin") == ok


class FileModel(RuleBasedStateMachine):
    """Random writes, truncates, appends and reopenings of one file against a bytearray."""

    mount = None  # set by the test
    path: Path

    def __init__(self) -> None:
        super().__init__()
        self.model = bytearray(self.initial)
        self.fd = os.open(self.path, os.O_RDWR)

    @rule(offset=st.integers(0, 600 * KB), data=st.binary(min_size=1, max_size=100 * KB))
    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)
        if offset > len(self.model):
            self.model.extend(bytes(offset - len(self.model)))
        self.model[offset : offset + len(data)] = data

    @rule(size=st.integers(0, 700 * KB))
    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    @rule(data=st.binary(min_size=1, max_size=70 * KB))
    def append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.model.extend(data)

    @rule()
    def reopen(self) -> None:
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def read_range(self, data) -> None:
        offset = data.draw(st.integers(0, len(self.model)))
        size = data.draw(st.integers(0, 200 * KB))
        assert os.pread(self.fd, size, offset) == bytes(self.model[offset : offset + size])

    @invariant()
    def size_matches(self) -> None:
        assert os.fstat(self.fd).st_size == len(self.model)

    def teardown(self) -> None:
        os.close(self.fd)
        assert self.path.read_bytes() == bytes(self.model)
        FileModel.final = bytes(self.model)


def test_random_writes_truncates_appends_match_a_model(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    initial = os.urandom(300 * KB + 7)
    b2sync.upload(bucket, "model.bin", initial)
    m = mount_factory(bucket, block_size="64K", writeback_delay=0.1, memory_cache="256K")
    FileModel.path = m.path / "model.bin"
    FileModel.initial = initial
    for example in range(6):
        FileModel.TestCase.settings = settings(max_examples=1, stateful_step_count=25, deadline=None,
                                               suppress_health_check=list(HealthCheck))  # fmt: skip
        FileModel.TestCase().runTest()
        FileModel.initial = FileModel.final
        if example % 2:
            time.sleep(0.3)  # let some versions reach B2 between examples
    final = FileModel.final
    m.unmount()
    shutil.rmtree(m.cache_dir)
    assert b2sync.read(bucket, "model.bin") == final
    m.start()
    assert (m.path / "model.bin").read_bytes() == final


def test_file_rename_interrupted_by_a_crash_completes(mount_factory, server, b2sync):
    m = mount_factory(writeback_delay=0)
    (m.path / "a.txt").write_bytes(b"renamed content")
    m.unmount()
    m.start()
    server.set_faults([{"call": "b2_hide_file", "kinds": ["delay:3"], "probability": 1.0}])
    proc = subprocess.Popen(["mv", str(m.path / "a.txt"), str(m.path / "b.txt")])
    time.sleep(1.0)  # copied, not yet hidden
    m.kill()
    proc.wait(timeout=30)
    server.clear_faults()
    m.start()
    assert os.listdir(m.path) == ["b.txt"]
    assert (m.path / "b.txt").read_bytes() == b"renamed content"
    assert b2sync.names(m.bucket) == ["b.txt"]
