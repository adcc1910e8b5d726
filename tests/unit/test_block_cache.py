"""The block cache's policy: budget, least-recently-used eviction, rebuild at start, bad disks."""

from __future__ import annotations

import os

import trio

from b2fs.cache.blocks import BlockCache


def test_keeps_within_budget_evicting_least_recently_used(tmp_path):
    cache = BlockCache(tmp_path, budget=3000, block_size=1000, small_max=0)  # files
    cache.open()
    for i in range(3):
        assert cache.put("file", i, bytes([i]) * 1000)
    assert cache.get("file", 0) == b"\0" * 1000  # 0 is now the most recent
    assert cache.put("file", 3, b"3" * 1000)
    assert cache.get("file", 1) is None  # the least recently used went
    assert cache.get("file", 0) is not None and cache.get("file", 3) is not None
    assert cache.used == 3000
    files = [p for p in (tmp_path / "blocks-1000").rglob("*.?") if p.is_file()]
    assert len(files) == 3 and sum(p.stat().st_size for p in files) == 3000


def test_index_is_rebuilt_from_disk_in_recency_order(tmp_path):
    cache = BlockCache(tmp_path, budget=10_000, block_size=1000, small_max=0)
    cache.open()
    for i in range(4):
        cache.put("f", i, b"x" * 1000)
    for i, path in enumerate(sorted((tmp_path / "blocks-1000").rglob("*.?"), key=lambda p: p.name)):
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "blocks-1000" / "ab").mkdir(exist_ok=True)
    (tmp_path / "blocks-1000" / "ab" / "leftover.0.tmp").write_bytes(b"partial")
    again = BlockCache(tmp_path, budget=2000, block_size=1000, small_max=0)
    again.open()  # over budget now: the oldest two go
    assert again.used == 2000
    assert not (tmp_path / "blocks-1000" / "ab" / "leftover.0.tmp").exists()
    assert [again.get("f", i) is not None for i in range(4)] == [False, False, True, True]


def test_a_short_block_is_never_served(tmp_path):
    cache = BlockCache(tmp_path, budget=10_000, block_size=1000, small_max=0)
    cache.open()
    cache.put("f", 0, b"y" * 1000)
    path = next((tmp_path / "blocks-1000").rglob("*.0"))
    path.write_bytes(b"y" * 10)  # damaged behind our back
    assert cache.get("f", 0, expected_size=1000) is None
    assert not path.exists()


def test_an_unwritable_directory_disables_the_cache_not_reads(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("file in the way")
    cache = BlockCache(blocker, budget=10_000, block_size=1000)
    cache.open()
    assert not cache.enabled
    assert cache.put("f", 0, b"z") is False
    assert cache.get("f", 0) is None


def test_a_full_disk_degrades_to_uncached(small_tmpfs, caplog):
    cache = BlockCache(small_tmpfs("256k"), budget=10 << 20, block_size=65536, small_max=0)
    cache.open()
    results = [cache.put("f", i, b"q" * 65536) for i in range(8)]
    assert results[0] is True and results[-1] is False
    assert "cannot store a block" in caplog.text
    assert cache.get("f", 0) == b"q" * 65536  # what is there still serves


def test_directory_is_private(tmp_path):
    cache = BlockCache(tmp_path, budget=10, block_size=1000)
    cache.open()
    assert oct(os.stat(tmp_path / "blocks-1000").st_mode & 0o777) == oct(0o700)


def test_small_blocks_are_rows_kept_by_recency_across_restarts(tmp_path):
    """Blocks up to small_max live in small.sqlite: same budget, LRU and rebuild as files."""
    cache = BlockCache(tmp_path, budget=10_000, block_size=1000)
    cache.open()
    for i in range(4):
        assert cache.put("f", i, bytes([65 + i]) * 1000)
    assert not [p for p in (tmp_path / "blocks-1000").rglob("f*") if p.is_file()]
    assert [p.name for p in (tmp_path / "blocks-1000").iterdir() if p.is_file()][0].startswith(
        "small.sqlite"
    )
    assert cache.get("f", 1) == b"B" * 1000  # used again: the newest now
    assert cache.read_range("f", 2, 10, 5) == b"C" * 5
    assert cache.get("f", 3, expected_size=999) is None  # not what is expected: dropped
    assert cache.link("f", "copy", 1) and cache.get("copy", 1) == b"B" * 1000
    cache.small.close()
    again = BlockCache(tmp_path, budget=2000, block_size=1000)
    again.open()  # over budget: the oldest rows go (by when they were written this session)
    assert [again.get("f", i) is not None for i in range(4)] == [False, False, True, False]
    assert again.get("copy", 1) == b"B" * 1000 and again.used == 2000


def test_a_held_block_reads_from_memory_until_its_batch_is_written(tmp_path):
    """The write-back keeps an uploaded small file's block (``hold``) and writes it with
    others a moment later: a read meanwhile finds it, not B2."""
    cache = BlockCache(tmp_path, budget=10_000, block_size=1000)
    cache.open()
    cache.hold("f", 0, b"abcdef")
    assert ("f", 0) in cache and cache.read_range("f", 0, 2, 3) == b"cde"
    assert cache.link("f", "copy", 0) and cache.get("copy", 0) == b"abcdef"  # a rename's copy
    assert cache.get("f", 0, expected_size=5) is None  # not the size asked for
    trio.run(cache.put_many_async, [("f", 0, b"abcdef")])
    assert cache._queued == {}  # written: the disk answers
    assert cache.get("f", 0) == b"abcdef" and cache.used == 12
    cache.hold("g", 0, b"xyz")
    cache.discard("g", 0)  # never served again
    assert cache.get("g", 0) is None and ("g", 0) not in cache
