"""Downloads: ranges at the edges, streams, files (verify, resume), names, authorizations."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import httpx
import pytest

from b2fs.b2 import (
    B2Client,
    Bucket,
    NetworkError,
    RangeNotSatisfiable,
    RetryPolicy,
    Sha1Mismatch,
    Unauthorized,
)
from b2fs.emulator.process import LocalServer

from .helpers import make_client_for
from .relay import lossy_relay

SIZE = 10_000


@pytest.fixture
async def stored(client: B2Client, bucket: Bucket) -> tuple[str, bytes]:
    data = os.urandom(SIZE)
    f = await client.upload_bytes(
        bucket.bucket_id,
        "dir/the file+ü.bin",
        data,
        file_info={"k": "v"},
        large_file_threshold=SIZE + 1,
    )
    return f.file_id, data


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),
        (SIZE - 1, SIZE - 1),
        (0, SIZE - 1),
        (1, SIZE - 2),
        (4096, 8191),
        (SIZE - 10, SIZE + 100),
    ],
)
async def test_download_range_edges(
    client: B2Client, stored: tuple[str, bytes], start: int, end: int
) -> None:
    file_id, data = stored
    assert await client.download_range(file_id, start, end) == data[start : end + 1]


async def test_range_past_the_end_and_empty_files(
    client: B2Client, bucket: Bucket, stored: tuple[str, bytes]
) -> None:
    with pytest.raises(RangeNotSatisfiable):
        await client.download_range(stored[0], SIZE, SIZE + 5)
    empty = await client.upload_bytes(bucket.bucket_id, "empty", b"")
    async with client.download_stream(file_id=empty.file_id) as s:
        assert await s.read_all() == b""
        assert s.sha1_verified and s.file.size == 0
    with pytest.raises(RangeNotSatisfiable):
        await client.download_range(empty.file_id, 0, 0)


async def test_stream_by_id_and_by_name(
    client: B2Client, bucket: Bucket, stored: tuple[str, bytes]
) -> None:
    file_id, data = stored
    progress: list[tuple[int, int | None]] = []
    async with client.download_stream(
        file_id=file_id, progress=lambda d, t: progress.append((d, t))
    ) as s:
        assert s.file.file_name == "dir/the file+ü.bin" and s.file.file_info == {"k": "v"}
        assert (s.file.size, s.file.range_start, s.file.range_end) == (SIZE, 0, SIZE - 1)
        got = b"".join([c async for c in s])
    assert got == data and s.sha1_verified and progress[-1] == (SIZE, SIZE)
    async with client.download_stream(bucket_name=bucket.bucket_name, file_name="dir/the file+ü.bin",
                                      range=(5000, None)) as s:  # fmt: skip
        assert s.file.file_id == file_id and await s.read_all() == data[5000:]
        assert not s.sha1_verified  # a range: nothing to check against
    info = await client.get_file_info_by_name(bucket.bucket_name, "dir/the file+ü.bin")
    assert (info.file_id, info.size, info.sha1) == (file_id, SIZE, hashlib.sha1(data).hexdigest())


async def test_download_file_whole_and_range(
    client: B2Client, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    file_id, data = stored
    f = await client.download_file(tmp_path / "out", file_id=file_id)
    assert (tmp_path / "out").read_bytes() == data and f.size == SIZE
    await client.download_file(tmp_path / "part", file_id=file_id, range=(100, 199))
    assert (tmp_path / "part").read_bytes() == data[100:200]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "part"]  # no leftovers


@pytest.mark.parametrize("by", ["id", "name"])
async def test_interrupted_download_file_resumes_from_its_partial(
    psrv: LocalServer, client: B2Client, bucket: Bucket, stored: tuple[str, bytes], tmp_path: Path,
    by: str,
) -> None:  # fmt: skip
    file_id, data = stored
    which = (
        {"file_id": file_id}
        if by == "id"
        else {"bucket_name": bucket.bucket_name, "file_name": "dir/the file+ü.bin"}
    )
    psrv.set_faults([{"call": f"b2_download_file_by_{by}", "sequence": ["drop"]}])
    async with make_client_for(psrv, retry=RetryPolicy(max_transfer_attempts=1)) as fragile:
        with pytest.raises(NetworkError):
            await fragile.download_file(tmp_path / "out", **which)
    partial = list(tmp_path.iterdir())
    assert len(partial) == 1 and partial[0].name.startswith(".out.")
    assert partial[0].name.endswith(".b2fs-part")
    have = partial[0].stat().st_size
    assert 0 < have < SIZE
    psrv.reset_counters()
    f = await client.download_file(tmp_path / "out", **which)
    assert (tmp_path / "out").read_bytes() == data and f.file_id == file_id
    assert psrv.counters()["bytes_out"] == SIZE - have  # only the rest travelled
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


async def test_sha1_mismatch_removes_the_partial_file(
    client: B2Client, bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(3000)
    f = await client.upload_bytes(bucket.bucket_id, "lying", data, large_file_threshold=1000,
                                  large_file_sha1="0" * 40)  # a wrong whole-file sha1  # fmt: skip
    with pytest.raises(Sha1Mismatch):
        await client.download_file(tmp_path / "lying", file_id=f.file_id)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Sha1Mismatch):
        await client.download_bytes(file_id=f.file_id)


async def test_broken_connection_resumes_mid_stream(
    psrv: LocalServer, client: B2Client, stored: tuple[str, bytes]
) -> None:
    file_id, data = stored
    psrv.set_faults([{"call": "b2_download_file_by_id", "sequence": ["drop", "drop", "503"]}])
    assert await client.download_bytes(file_id=file_id) == data
    assert client.stats.retries == 3
    assert psrv.counters()["calls"]["b2_download_file_by_id"] == 4


async def test_server_that_ignores_range_is_trimmed(
    psrv: LocalServer, stored: tuple[str, bytes]
) -> None:
    file_id, data = stored
    async with lossy_relay(psrv.realm) as relay:
        relay.strip_range = True
        async with B2Client(psrv.key_id, psrv.key, relay.url) as c:
            await c.authorize()
            psrv.reset_counters()
            assert await c.download_range(file_id, 123, 4567) == data[123:4568]
            assert await c.download_range(file_id, SIZE - 5, SIZE + 5) == data[-5:]
    assert psrv.counters()["bytes_out"] >= 2 * SIZE  # the relay did strip Range: whole files came


async def test_download_authorization_and_urls(
    client: B2Client, bucket: Bucket, psrv: LocalServer
) -> None:
    await client.upload_bytes(bucket.bucket_id, "pub/a", b"shared")
    await client.upload_bytes(bucket.bucket_id, "priv/b", b"secret")
    auth = await client.get_download_authorization(bucket.bucket_id, "pub/", 60)
    assert auth.file_name_prefix == "pub/" and auth.authorization_token not in repr(auth)
    assert await client.download_bytes(bucket_name=bucket.bucket_name, file_name="pub/a",
                                       authorization=auth) == b"shared"  # fmt: skip
    with pytest.raises(Unauthorized):
        await client.download_bytes(
            bucket_name=bucket.bucket_name, file_name="priv/b", authorization=auth
        )
    url = client.download_url_by_name(bucket.bucket_name, "pub/a", auth)
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url)).content == b"shared"
        assert (
            await plain.get(client.download_url_by_name(bucket.bucket_name, "pub/a"))
        ).status_code == 401


async def test_readinto_fills_the_callers_buffers_on_kept_connections(
    client: B2Client, stored: tuple[str, bytes]
) -> None:
    """``readinto`` receives the range into the caller's buffers; downloads reuse a kept
    connection (one opened for several downloads, one after another)."""
    file_id, data = stored
    for start, end in ((0, SIZE - 1), (10, 4999), (SIZE - 3, SIZE - 1)):
        buf = bytearray(end - start + 1)
        view = memoryview(buf)
        async with client.download_stream(file_id=file_id, range=(start, end)) as s:
            filled = 0
            while n := await s.readinto(view[filled:]):
                filled += n
        assert filled == len(buf) and bytes(buf) == data[start : end + 1]
    pool = client._download_pool
    assert pool is not None and pool.opened == 1


async def test_downloads_survive_an_idle_close_of_their_connection(make_local_server) -> None:
    srv = make_local_server(extra_args=["--keep-alive", "1"])
    data = os.urandom(50_000)
    async with make_client_for(srv) as c:
        b = await c.create_bucket("kept-downloads", "allPrivate")
        f = await c.upload_bytes(b.bucket_id, "f", data)
        assert await c.download_range(f.file_id, 0, 999) == data[:1000]
        await anyio.sleep(2.5)  # the server closes connections idle for 1 s
        assert await c.download_range(f.file_id, 1000, 2999) == data[1000:3000]
        assert c.stats.retries == 0  # reopened and sent again: not a failure


async def test_downloads_through_a_proxy_use_the_general_http_stack(
    psrv: LocalServer, stored: tuple[str, bytes]
) -> None:
    file_id, data = stored
    async with lossy_relay(psrv.realm) as relay, make_client_for(psrv, proxy=relay.url) as c:
        buf = bytearray(SIZE)
        async with c.download_stream(file_id=file_id) as s:
            filled = 0
            while n := await s.readinto(memoryview(buf)[filled:]):
                filled += n
        assert bytes(buf) == data and s.sha1_verified
        assert c._download_pool is None
