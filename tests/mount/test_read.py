"""The read side of a real mount: the tree, attributes, contents, the block cache and API costs."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2fs.mount.control import read_status
from tests.mount.conftest import CRYPT_MODES

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120), CRYPT_MODES]

KB = 1024
MB = 1024 * 1024


def calls(server, name: str) -> int:
    return server.counters()["calls"].get(name, 0)


def downloads(server) -> int:
    c = server.counters()["calls"]
    return c.get("b2_download_file_by_id", 0) + c.get("b2_download_file_by_name", 0)


def test_tree_looks_like_the_bucket(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    files = {
        "top.txt": b"top",
        "dir/a.txt": b"a" * 10,
        "dir/sub/deep/b.bin": os.urandom(3000),
        "spaces in name/file with spaces.txt": b"spaces",
        "unicodé/日本語.txt": "ünïcödé".encode(),
        "empty-dir/.bzEmpty": b"",
        "plus+sign/x": b"plus",
    }
    for name, data in files.items():
        b2sync.upload(bucket, name, data, file_info={"src_last_modified_millis": "1500000000123"})
    # an older version of a name is shadowed by the newer one; a hidden name is invisible
    b2sync.upload(bucket, "dir/a.txt", b"old")
    b2sync.upload(bucket, "dir/a.txt", b"newest version")
    b2sync.upload(bucket, "gone.txt", b"hidden")
    bid = b2sync.bucket_id(bucket)
    b2sync.run(lambda c: c.hide_file(bid, b2sync.key("gone.txt")))

    m = mount_factory(bucket)
    seen = {}
    for root, dirs, names in os.walk(m.path):
        for n in names:
            p = Path(root, n)
            seen[str(p.relative_to(m.path))] = p.read_bytes()
        seen.update({str(Path(root, d).relative_to(m.path)) + "/": None for d in dirs})
    expected_files = {k: v for k, v in files.items() if not k.endswith(".bzEmpty")}
    expected_files["dir/a.txt"] = b"newest version"
    assert {k: v for k, v in seen.items() if v is not None} == expected_files
    assert "empty-dir/" in seen and "gone.txt" not in seen
    assert sorted(os.listdir(m.path / "empty-dir")) == []
    st_top = os.stat(m.path / "top.txt")
    assert st_top.st_size == 3
    assert st_top.st_mtime_ns == 1500000000123 * 1_000_000
    assert st_top.st_blocks == 1
    assert oct(st_top.st_mode & 0o777) == oct(0o644)
    assert os.path.isdir(m.path / "dir/sub/deep")
    assert os.stat(m.path / "dir/a.txt").st_size == len(b"newest version")
    # inode numbers are stable for the life of the mount
    assert os.stat(m.path / "dir/sub").st_ino == os.stat(m.path / "dir/sub").st_ino
    assert os.stat(m.path / "dir").st_ino != os.stat(m.path / "dir/sub").st_ino


def test_mount_options_set_owner_and_mode(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "d/f", b"x")
    m = mount_factory(bucket, uid=1234, gid=4321, umask="027")
    st_f = os.stat(m.path / "d/f")
    st_d = os.stat(m.path / "d")
    assert (st_f.st_uid, st_f.st_gid) == (1234, 4321)
    assert st_f.st_mode & 0o777 == 0o640
    assert st_d.st_mode & 0o777 == 0o750
    sv = os.statvfs(m.path)
    assert sv.f_namemax == 255 and sv.f_bavail > 0


@pytest.mark.plain_only("raw B2 names that only a plain mount shows (test_crypt: foreign names)")
def test_names_posix_cannot_show_are_skipped(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "ok.txt", b"ok")
    b2sync.upload(bucket, "a/./b", b"dot")
    b2sync.upload(bucket, "a/../c", b"dotdot")
    b2sync.upload(bucket, "a/fine", b"fine")
    m = mount_factory(bucket)
    assert sorted(os.listdir(m.path)) == ["a", "ok.txt"]
    assert sorted(os.listdir(m.path / "a")) == ["fine"]
    assert "skipping B2 name 'a/./'" in m.log() or "skipping B2 name 'a/./b'" in m.log()


def test_prefix_mount_shows_only_the_prefix(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "outside.txt", b"no", raw=True)
    b2sync.upload(bucket, "docs/inside.txt", b"yes", root="team/")
    m = mount_factory(bucket, prefix="team")
    assert os.listdir(m.path) == ["docs"]
    assert (m.path / "docs/inside.txt").read_bytes() == b"yes"


@pytest.mark.parametrize("size", [0, 1, 64 * KB - 1, 64 * KB, 64 * KB + 1, 3 * MB + 17])
def test_contents_are_byte_identical(mount_factory, b2sync, new_bucket_name, size):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = os.urandom(size)
    b2sync.upload(bucket, "f.bin", data)
    m = mount_factory(bucket, block_size="64K")
    assert (m.path / "f.bin").read_bytes() == data


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_300mb_file_reads_identical(mount_factory, b2sync, new_bucket_name, tmp_path):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(300):
            f.write(os.urandom(MB))
    b2sync.upload(bucket, "big.bin", str(src), part_size=50 * MB)
    m = mount_factory(bucket, cache_size="100M")
    h = hashlib.sha256()
    with open(m.path / "big.bin", "rb") as f:
        while chunk := f.read(4 * MB):
            h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ranged_data() -> bytes:
    return os.urandom(2 * MB + 12345)


def test_random_ranges_equal_the_source(mount_factory, b2sync, new_bucket_name, ranged_data):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "r.bin", ranged_data)
    m = mount_factory(bucket, block_size="64K", memory_cache="256K", cache_size="512K")
    fd = os.open(m.path / "r.bin", os.O_RDONLY)
    try:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.integers(0, len(ranged_data) + 100), st.integers(0, 300 * KB))
        def check(offset: int, size: int) -> None:
            assert os.pread(fd, size, offset) == ranged_data[offset : offset + size]

        check()
    finally:
        os.close(fd)


def test_second_read_costs_no_download(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = os.urandom(5 * MB)
    b2sync.upload(bucket, "f.bin", data)
    m = mount_factory(bucket)
    assert (m.path / "f.bin").read_bytes() == data
    first = downloads(server)
    assert first >= 1
    # dropped from the kernel's page cache: served by the block cache
    fd = os.open(m.path / "f.bin", os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    assert (m.path / "f.bin").read_bytes() == data
    assert downloads(server) == first
    # after a remount on the same cache directory: still no download (but the vault's)
    m.unmount()
    m.start()
    assert (m.path / "f.bin").read_bytes() == data
    assert downloads(server) == first + (1 if m.encrypted else 0)


def test_sequential_read_uses_few_large_requests(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = os.urandom(32 * MB)
    b2sync.upload(bucket, "f.bin", data)
    m = mount_factory(bucket, block_size="1M", max_request="8M")
    server.reset_counters()
    assert (m.path / "f.bin").read_bytes() == data
    n = downloads(server)
    assert 4 <= n <= 12, n  # read-ahead grows to 8 MiB requests: far fewer than 32 blocks
    assert server.counters()["bytes_out"] < 40 * MB


def test_cache_stays_within_its_budget(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = os.urandom(12 * MB)
    b2sync.upload(bucket, "f.bin", data)
    m = mount_factory(bucket, block_size="256K", cache_size="2M", memory_cache="1M",
                      cache_admit="all")  # fmt: skip
    assert (m.path / "f.bin").read_bytes() == data
    # Blocks are written (and older ones evicted) in worker threads after the reads are
    # served: a file listed here may be gone by the time it is measured.
    used = 0
    for p in m.cache_dir.rglob("blocks-*/*/*"):
        with contextlib.suppress(FileNotFoundError):
            used += p.stat().st_size
    assert 0 < used <= 2 * MB

    assert oct(os.stat(m.cache_dir).st_mode & 0o777) == oct(0o700)


def test_concurrent_readers_share_downloads(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    data = os.urandom(8 * MB)
    b2sync.upload(bucket, "f.bin", data)
    m = mount_factory(bucket, block_size="1M")
    server.reset_counters()
    results: list[bytes] = []
    errors: list[BaseException] = []

    def reader(direct: bool) -> None:
        try:
            flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
            fd = os.open(m.path / "f.bin", flags)
            try:
                out = bytearray()
                while len(out) < len(data):
                    chunk = os.pread(fd, 128 * KB, len(out))
                    if not chunk:
                        break
                    out += chunk
                results.append(bytes(out))
            finally:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results and all(r == data for r in results)
    assert server.counters()["bytes_out"] <= len(data) + 64 * KB  # each block fetched once


def test_missing_names_cost_one_listing(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    for i in range(20):
        b2sync.upload(bucket, f"d/f{i}", b"x")
    m = mount_factory(bucket, negative_timeout=0, entry_timeout=0, attr_timeout=0)
    os.listdir(m.path)  # the root's listing
    server.reset_counters()
    for i in range(1000):
        assert not (m.path / "d" / f"missing-{i}").exists()
    listings = calls(server, "b2_list_file_names")
    assert listings <= 2, listings
    assert calls(server, "b2_get_file_info") == 0


def test_readdir_of_a_large_directory(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    names = sorted(f"file-{i:05d}" for i in range(2500))
    bid = b2sync.bucket_id(bucket)

    async def fill(c):
        import trio

        limiter = trio.CapacityLimiter(16)

        async def one(n):
            async with limiter:
                await b2sync.aupload(c, bid, f"big/{n}", b"")

        async with trio.open_nursery() as nursery:
            for n in names:
                nursery.start_soon(one, n)

    b2sync.run(fill)
    m = mount_factory(bucket)
    assert os.listdir(m.path) == ["big"]
    server.reset_counters()

    # A program that reads only the start of the directory costs only that: nodes are
    # made for the entries handed to the kernel, not for everything after the offset
    # (which made listing 100,000 names quadratic: 15 s instead of 0.5 s).
    with os.scandir(m.path / "big") as it:
        next(it)
        held = read_status(str(m.path))["inodes"]
    assert held < len(names) // 2, held  # one getdents buffer: ~780 here

    # read the directory in small steps, as a program with a small getdents buffer would
    seen = []
    with os.scandir(m.path / "big") as it:
        for entry in it:
            seen.append(entry.name)
            assert entry.is_file()
    assert sorted(seen) == names
    assert calls(server, "b2_list_file_names") == 3  # 1,000 names a page


def test_a_vanished_version_gives_a_clear_error(mount_factory, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "f.bin", os.urandom(3 * MB))
    m = mount_factory(bucket, block_size="1M", max_readahead="1M", max_request="1M")
    fd = os.open(m.path / "f.bin", os.O_RDONLY)
    try:
        os.pread(fd, 100, 0)
        bid = b2sync.bucket_id(bucket)
        b2sync.run(lambda c: c.delete_all_versions(bid, b2sync.key("f.bin")))
        with pytest.raises(OSError) as e:
            os.pread(fd, 100, 2 * MB + 5)
        assert e.value.errno == errno.ESTALE
    finally:
        os.close(fd)
    assert "gone from B2" in m.log()


def test_network_failures_give_eio_not_a_hang(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "f.bin", os.urandom(MB))
    m = mount_factory(bucket, io_timeout=3)
    server.set_faults([{"call": "b2_download_file_by_id", "kinds": ["503"], "probability": 1.0}])
    try:
        with pytest.raises(OSError) as e:
            (m.path / "f.bin").read_bytes()
        assert e.value.errno == errno.EIO
    finally:
        server.clear_faults()
    assert "download failed" in m.log()
    assert (m.path / "f.bin").stat().st_size == MB  # the mount is still healthy
