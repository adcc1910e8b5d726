"""Uploads: every source, small and large files, progress, resumable state, part reuse."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from b2fs.b2 import B2Client, Bucket, LargeFileUploadState, MissingPart, PartSha1Mismatch
from b2fs.emulator.process import LocalServer


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class XorSource:
    """An ``UploadSource`` producing content on the fly (like the mount's encryption),
    recording each read; ``fail_at`` makes reads of that offset raise."""

    def __init__(self, plain: bytes, fail_at: int | None = None) -> None:
        self.plain, self.size, self.fail_at = plain, len(plain), fail_at
        self.reads: list[tuple[int, int]] = []
        self.in_flight = self.max_in_flight = 0

    def expected(self) -> bytes:
        return bytes(b ^ 0x5A for b in self.plain)

    async def read(self, offset: int, length: int) -> bytes:
        if offset == self.fail_at:
            raise OSError("staging file unreadable")
        self.reads.append((offset, length))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await anyio.sleep(0.001)
        self.in_flight -= 1
        return bytes(b ^ 0x5A for b in self.plain[offset : offset + length])


async def chunks(data: bytes, step: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        await anyio.sleep(0)
        yield data[i : i + step]


async def test_small_uploads_from_every_source(
    client: B2Client,
    bucket: Bucket,
    data_file: Callable[..., tuple[Path, bytes]],
    psrv: LocalServer,
) -> None:
    path, data = data_file(3000)
    bid = bucket.bucket_id
    by_bytes = await client.upload_bytes(bid, "bytes", data)
    by_path = await client.upload_file(bid, "path", path)  # sha1 sent after the body
    by_stream = await client.upload_stream(bid, "stream", chunks(data, 777))
    src = XorSource(data)
    by_source = await client.upload(bid, "source", src)
    for f in (by_bytes, by_path, by_stream):
        assert (f.size, f.content_sha1) == (3000, sha1(data))
        assert await client.download_bytes(file_id=f.file_id) == data
    assert by_source.content_sha1 == sha1(src.expected())
    assert psrv.counters()["calls"]["b2_upload_file"] == 4
    assert psrv.counters()["calls"].get("b2_upload_part", 0) == 0
    assert psrv.counters()["calls"]["b2_get_upload_url"] == 1  # one URL, reused in turn


async def test_large_file_parts_in_parallel_with_a_short_last_part(
    client: B2Client,
    bucket: Bucket,
    data_file: Callable[..., tuple[Path, bytes]],
    psrv: LocalServer,
) -> None:
    path, data = data_file(25_500)
    seen: list[tuple[int, int | None]] = []
    f = await client.upload_file(bucket.bucket_id, "big", path, part_size=2000, concurrency=3,
                                 progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert (f.size, f.content_sha1, f.action) == (25_500, "none", "upload")
    assert f.file_info["large_file_sha1"] == sha1(data)  # a path is hashed first
    assert psrv.counters()["calls"]["b2_upload_part"] == 13  # 12 x 2000 + 1500
    assert seen[-1] == (25_500, 25_500)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))
    assert await client.download_bytes(file_id=f.file_id) == data
    # the parts went up in parallel, each URL used by one upload at a time
    assert 1 < psrv.counters()["calls"]["b2_get_upload_part_url"] <= 3


async def test_bytes_and_sources_as_large_files(client: B2Client, bucket: Bucket) -> None:
    data = os.urandom(10_001)
    f = await client.upload_bytes(bucket.bucket_id, "b", data, part_size=1000)
    assert f.file_info["large_file_sha1"] == sha1(data)  # known up front for bytes
    src = XorSource(data)
    g = await client.upload(bucket.bucket_id, "x", src, part_size=1000, concurrency=4)
    assert await client.download_bytes(file_id=g.file_id) == src.expected()
    assert src.max_in_flight > 1  # parts read in parallel, at random offsets
    assert "large_file_sha1" not in g.file_info  # a source is read once only
    assert sorted({o for o, _ in src.reads})[:2] == [0, 1000]


async def test_stream_of_unknown_size_becomes_a_large_file(
    client: B2Client, bucket: Bucket
) -> None:
    data = os.urandom(9_999)
    states: list[LargeFileUploadState] = []
    f = await client.upload_stream(bucket.bucket_id, "s", chunks(data, 333), part_size=1500,
                                   on_state=states.append)  # fmt: skip
    assert f.size == 9_999 and f.content_sha1 == "none"
    assert len(states[-1].parts) == 7 and states[-1].size is None
    assert await client.download_bytes(file_id=f.file_id) == data
    g = await client.upload_stream(bucket.bucket_id, "t", chunks(data[:1500], 100), part_size=1500)
    assert g.content_sha1 == sha1(data[:1500])  # exactly one part: a small file


async def test_failed_large_upload_without_state_is_cancelled(
    client: B2Client, bucket: Bucket
) -> None:
    src = XorSource(os.urandom(8000), fail_at=4000)
    with pytest.raises(OSError, match="staging file unreadable"):
        await client.upload(bucket.bucket_id, "broken", src, part_size=1000, concurrency=2)
    assert [f async for f in client.list_unfinished_large_files(bucket.bucket_id)] == []


RESUME = """
import anyio, sys
from b2fs.b2 import B2Client, LargeFileUploadState
realm, key_id, key, state_file, path = sys.argv[1:]
async def main():
    state = LargeFileUploadState.from_json(open(state_file).read())
    async with B2Client(key_id, key, realm) as c:
        f = await c.upload_file(state.bucket_id, state.file_name, path, resume=state)
        print(f.file_id, c.stats.calls["b2_upload_part"])
anyio.run(main)
"""


async def test_resume_an_interrupted_upload_in_another_process(
    client: B2Client, bucket: Bucket, tmp_path: Path, psrv: LocalServer
) -> None:
    plain = os.urandom(12_000)
    src = XorSource(plain, fail_at=9000)
    state_file = tmp_path / "journal.json"

    def save(state: LargeFileUploadState) -> None:  # what the mount's journal does
        state_file.write_text(state.to_json())

    with pytest.raises(OSError):
        await client.upload(bucket.bucket_id, "resumable", src, part_size=1000, concurrency=1,
                            on_state=save, mtime_millis=5)  # fmt: skip
    state = LargeFileUploadState.from_json(state_file.read_text())
    assert sorted(state.parts) == list(range(1, 10)) and state.size == 12_000
    unfinished = [f async for f in client.list_unfinished_large_files(bucket.bucket_id)]
    assert [f.file_id for f in unfinished] == [state.file_id]  # kept for resuming
    assert unfinished[0].file_info["src_last_modified_millis"] == "5"

    path = tmp_path / "staged"
    path.write_bytes(src.expected())
    out = subprocess.run(
        [sys.executable, "-c", RESUME, psrv.realm, psrv.key_id, psrv.key, str(state_file), str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert out == [state.file_id, "3"]  # only parts 10..12 were sent
    assert await client.download_bytes(file_id=state.file_id) == src.expected()

    # resuming an upload that was in fact finished returns the file, sends nothing
    before = psrv.counters()["calls"].get("b2_upload_part", 0)
    again = await client.upload_file(bucket.bucket_id, "resumable", path, resume=state)
    assert again.file_id == state.file_id
    assert psrv.counters()["calls"].get("b2_upload_part", 0) == before


async def test_resume_redoes_parts_b2_does_not_have(client: B2Client, bucket: Bucket) -> None:
    data = os.urandom(5000)
    started = await client.start_large_file(bucket.bucket_id, "r")
    p1 = await client.upload_part(started.file_id, 1, data[:1000])
    state = LargeFileUploadState(started.file_id, bucket.bucket_id, "r", 5000, 1000,
                                 {1: p1.sha1, 2: "0" * 40})  # part 2 never reached B2  # fmt: skip
    sent: list[int] = []
    f = await client.upload(bucket.bucket_id, "r", data, resume=state,
                            on_state=lambda s: sent.append(len(s.parts)))  # fmt: skip
    assert sent[-1] == 5 and sent[0] == 1
    assert await client.download_bytes(file_id=f.file_id) == data


async def test_large_file_from_copied_and_uploaded_parts(client: B2Client, bucket: Bucket) -> None:
    """What the mount does on a partial rewrite: unchanged ranges copied server-side,
    changed ones uploaded, in any order, sha1s collected for finish."""
    bid = bucket.bucket_id
    old = os.urandom(5000)
    base = await client.upload_bytes(bid, "doc", old, part_size=1000)
    new = old[:2000] + b"N" * 1000 + old[3000:4000] + b"tail"
    large = await client.start_large_file(bid, "doc", content_type="application/x-doc",
                                          mtime_millis=99)  # fmt: skip
    parts = {}
    p = await client.upload_part(large.file_id, 4, b"tail")
    parts[p.part_number] = p.sha1
    p = await client.copy_part(base.file_id, large.file_id, 3, range=(3000, 3999))
    parts[p.part_number] = p.sha1
    p = await client.upload_part(large.file_id, 2, new, offset=2000, length=1000)
    parts[p.part_number] = p.sha1
    p = await client.copy_part(base.file_id, large.file_id, 1, range=(0, 1999))
    assert (p.size, p.sha1) == (2000, sha1(old[:2000]))
    parts[p.part_number] = p.sha1
    listed = [x async for x in client.list_parts(large.file_id)]
    assert [(x.part_number, x.size) for x in listed] == [(1, 2000), (2, 1000), (3, 1000), (4, 4)]
    f = await client.finish_large_file(large.file_id, parts)
    assert f.size == len(new) and f.mtime_millis == 99
    assert await client.download_bytes(file_id=f.file_id) == new


async def test_large_file_primitives_and_their_errors(client: B2Client, bucket: Bucket) -> None:
    bid = bucket.bucket_id
    a = await client.start_large_file(bid, "u/a")
    b = await client.start_large_file(bid, "u/b", file_info={"x": "1"})
    assert a.action == "start"
    p1 = await client.upload_part(a.file_id, 1, b"1" * 1000)
    p1 = await client.upload_part(a.file_id, 1, b"2" * 1000)  # replaces part 1
    p3 = await client.upload_part(a.file_id, 3, b"3")
    with pytest.raises(MissingPart):
        await client.finish_large_file(a.file_id, [p1.sha1, p3.sha1])
    with pytest.raises(PartSha1Mismatch):
        await client.finish_large_file(a.file_id, [p3.sha1, p3.sha1, p3.sha1])
    page, nxt = await client.list_parts_page(a.file_id, max_part_count=1)
    assert [x.part_number for x in page] == [1] and nxt == 3
    assert page[0].sha1 == sha1(b"2" * 1000)

    page, nxt = await client.list_unfinished_large_files_page(bid, max_file_count=1)
    assert [f.file_id for f in page] == [a.file_id] and nxt == b.file_id
    assert [
        f.file_name async for f in client.list_unfinished_large_files(bid, name_prefix="u/b")
    ] == ["u/b"]
    cancelled = await client.cancel_large_file(a.file_id)
    assert (cancelled.file_id, cancelled.file_name) == (a.file_id, "u/a")
    assert [f.file_id async for f in client.list_unfinished_large_files(bid)] == [b.file_id]


async def test_threshold_and_part_size_rules(
    client: B2Client, bucket: Bucket, psrv: LocalServer
) -> None:
    # recommended part size here is 4000: that is the default threshold and part size
    f = await client.upload_bytes(bucket.bucket_id, "under", os.urandom(3999))
    assert f.content_sha1 != "none"
    f = await client.upload_bytes(bucket.bucket_id, "at", os.urandom(4000))
    assert f.content_sha1 == "none"  # two parts of 2000 (a large file needs two)
    assert psrv.counters()["calls"]["b2_upload_part"] == 2
    f = await client.upload_bytes(
        bucket.bucket_id, "forced", os.urandom(1999), large_file_threshold=100
    )
    assert f.content_sha1 != "none"  # below two minimum parts: must be small
    part = await client._part_size(10**9 * 50, None)
    assert math.ceil(10**9 * 50 / part) <= 10_000


def test_state_round_trips_through_json() -> None:
    s = LargeFileUploadState("id", "b", "n", 10, 5, {2: "b" * 40, 1: "a" * 40})
    again = LargeFileUploadState.from_json(s.to_json())
    assert again == s and json.loads(s.to_json())["parts"] == {"1": "a" * 40, "2": "b" * 40}


async def test_uploads_keep_their_connection_and_survive_an_idle_close(make_local_server):
    """Uploads go on kept connections of their own (one per upload URL); one the host closed
    while idle is opened again and the upload sent once more, without a new URL."""
    srv = make_local_server(extra_args=["--keep-alive", "1"])
    async with B2Client(srv.key_id, srv.key, realm=srv.realm) as client:
        bucket = await client.create_bucket("kept-connections", "allPrivate")
        for i in range(3):
            await client.upload(bucket.bucket_id, f"kept-{i}", b"x" * 1000)
        conns = list(client._upload_conns.values())
        assert len(conns) == 1 and conns[0]._stream is not None
        await anyio.sleep(2.5)  # the server closes connections idle for 1 s
        version = await client.upload(bucket.bucket_id, "after-idle", b"y" * 2000)
        assert version.size == 2000
        calls = srv.counters()["calls"]
        assert calls["b2_get_upload_url"] == 1 and calls["b2_upload_file"] == 4
        assert client.stats.upload_urls_discarded == 0


async def test_uploads_through_a_proxy_use_the_general_http_stack(make_client, bucket, psrv):
    async with make_client(proxy="http://127.0.0.1:9") as c:  # nothing listens on port 9
        assert not c._lean_uploads()
    async with make_client() as c:
        assert c._lean_uploads()
