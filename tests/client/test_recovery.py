"""Calls that took effect although their answer was lost (a relay drops the answer):
the retry must neither make a second version nor report a false error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from b2fs.b2 import B2Client, Bucket, ClientEvent
from b2fs.emulator.process import LocalServer

from .helpers import FAST_RETRY
from .relay import LossyRelay, lossy_relay


@pytest.fixture
async def relay(psrv: LocalServer) -> AsyncIterator[LossyRelay]:
    async with lossy_relay(psrv.realm) as r:
        yield r


@pytest.fixture
async def rclient(psrv: LocalServer, relay: LossyRelay) -> AsyncIterator[B2Client]:
    events: list[ClientEvent] = []
    async with B2Client(
        psrv.key_id, psrv.key, relay.url, retry=FAST_RETRY, on_event=events.append
    ) as c:
        c.events = events  # type: ignore[attr-defined]
        yield c


async def _versions(c: B2Client, bucket: Bucket, name: str) -> list[str]:
    return [f.action for f in await c.versions_of(bucket.bucket_id, name)]


async def test_lost_finish(rclient: B2Client, relay: LossyRelay, bucket: Bucket) -> None:
    relay.lose["b2_finish_large_file"] = 1
    data = bytes(range(256)) * 20
    f = await rclient.upload_bytes(bucket.bucket_id, "big", data, part_size=1000)
    assert relay.lost["b2_finish_large_file"] == 1 and rclient.stats.recoveries == 1
    assert f.action == "upload" and f.size == len(data)
    assert await _versions(rclient, bucket, "big") == ["upload"]
    assert await rclient.download_bytes(file_id=f.file_id) == data


async def test_lost_copy(rclient: B2Client, relay: LossyRelay, bucket: Bucket) -> None:
    src = await rclient.upload_bytes(bucket.bucket_id, "src", b"payload")
    relay.lose["b2_copy_file"] = 1
    f = await rclient.copy_file(src.file_id, "dst")
    assert relay.lost["b2_copy_file"] == 1 and rclient.stats.recoveries == 1
    assert await _versions(rclient, bucket, "dst") == ["upload"]  # not two copies
    assert f.file_id == (await rclient.versions_of(bucket.bucket_id, "dst"))[0].file_id
    assert [e.kind for e in rclient.events] == ["retry", "recovered"]


async def test_lost_hide(rclient: B2Client, relay: LossyRelay, bucket: Bucket) -> None:
    await rclient.upload_bytes(bucket.bucket_id, "h", b"1")
    relay.lose["b2_hide_file"] = 1
    marker = await rclient.hide_file(bucket.bucket_id, "h")  # no false AlreadyHidden
    assert relay.lost["b2_hide_file"] == 1 and marker.action == "hide"
    assert [e.kind for e in rclient.events] == ["retry", "recovered"]
    assert await _versions(rclient, bucket, "h") == ["hide", "upload"]


async def test_lost_start_large_file(rclient: B2Client, relay: LossyRelay, bucket: Bucket) -> None:
    relay.lose["b2_start_large_file"] = 1
    started = await rclient.start_large_file(bucket.bucket_id, "s", file_info={"a": "b"})
    assert relay.lost["b2_start_large_file"] == 1
    unfinished = [f.file_id async for f in rclient.list_unfinished_large_files(bucket.bucket_id)]
    assert unfinished == [started.file_id]  # one, not two


async def test_lost_deletes_and_cancel(
    rclient: B2Client, relay: LossyRelay, bucket: Bucket
) -> None:
    f = await rclient.upload_bytes(bucket.bucket_id, "d", b"1")
    relay.lose["b2_delete_file_version"] = 1
    gone = await rclient.delete_file_version(f.file_id, "d")
    assert relay.lost["b2_delete_file_version"] == 1 and gone.file_id == f.file_id
    assert await _versions(rclient, bucket, "d") == []

    started = await rclient.start_large_file(bucket.bucket_id, "c")
    relay.lose["b2_cancel_large_file"] = 1
    cancelled = await rclient.cancel_large_file(started.file_id)
    assert relay.lost["b2_cancel_large_file"] == 1 and cancelled.file_id == started.file_id
    assert [f async for f in rclient.list_unfinished_large_files(bucket.bucket_id)] == []


async def test_lost_part_answer_is_simply_resent(
    rclient: B2Client, relay: LossyRelay, bucket: Bucket
) -> None:
    relay.lose["b2_upload_part"] = 2
    data = bytes(range(200)) * 30
    f = await rclient.upload_bytes(bucket.bucket_id, "p", data, part_size=1000)
    assert relay.lost["b2_upload_part"] == 2
    assert await rclient.download_bytes(file_id=f.file_id) == data
