"""Retries under the server's injected faults: kinds, bounds, Retry-After, token
expiry, upload URLs, timeouts and bandwidth limits."""

from __future__ import annotations

import os

import anyio
import pytest

from b2fs.b2 import (
    B2Client,
    BadRequest,
    Bucket,
    ClientEvent,
    NetworkError,
    RetryPolicy,
    ServiceUnavailable,
    Timeouts,
)
from b2fs.emulator.process import LocalServer

from .helpers import make_client_for


@pytest.mark.parametrize("kind", ["503", "500", "408", "429", "drop"])
async def test_transient_failures_are_retried(psrv: LocalServer, kind: str) -> None:
    psrv.set_faults([{"call": "b2_list_buckets", "sequence": [kind, kind], "retry_after": 0}])
    events: list[ClientEvent] = []
    async with make_client_for(psrv, on_event=events.append) as c:
        await c.list_buckets()
    assert c.stats.retries == 2 and [e.kind for e in events] == ["retry", "retry"]
    assert [e.attempt for e in events] == [1, 2] and events[0].call == "b2_list_buckets"
    assert psrv.counters()["calls"]["b2_list_buckets"] == 3


async def test_retry_after_is_honoured(psrv: LocalServer) -> None:
    psrv.set_faults([{"call": "b2_list_buckets", "sequence": ["429"], "retry_after": 1}])
    async with make_client_for(psrv) as c:
        await c.authorize()
        t0 = anyio.current_time()
        await c.list_buckets()
        assert anyio.current_time() - t0 >= 1.0


async def test_caller_errors_are_not_retried(client: B2Client, psrv: LocalServer) -> None:
    with pytest.raises(BadRequest):
        await client.create_bucket("b2-not allowed")
    assert client.stats.retries == 0
    assert psrv.counters()["calls"]["b2_create_bucket"] == 1


async def test_attempts_and_total_time_are_bounded(psrv: LocalServer) -> None:
    psrv.set_faults([{"call": "b2_list_buckets", "kinds": ["503"], "probability": 1.0}])
    async with make_client_for(psrv, retry=RetryPolicy(max_attempts=3, initial_delay=0.01)) as c:
        with pytest.raises(ServiceUnavailable) as err:
            await c.list_buckets()
    assert err.value.attempts == 3 and psrv.counters()["calls"]["b2_list_buckets"] == 3
    slow = RetryPolicy(max_attempts=100, initial_delay=0.2, multiplier=1.0, max_total=1.0)
    async with make_client_for(psrv, retry=slow) as c:
        await c.authorize()
        t0 = anyio.current_time()
        with pytest.raises(ServiceUnavailable):
            await c.list_buckets()
        assert anyio.current_time() - t0 < 1.5 and 3 <= c.stats.retries < 10


async def test_expired_token_reauthorizes_once_for_many_calls(psrv: LocalServer) -> None:
    async with make_client_for(psrv) as c:
        b = await c.create_bucket(f"exp-{os.getpid()}-bkt")
        psrv.expire_tokens()
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(c.list_file_names_page, b.bucket_id)
        assert c.stats.reauthorizations == 1 and c.stats.retries == 0
        psrv.set_faults([{"call": "b2_list_file_names", "sequence": ["expire_token"]}])
        await c.list_file_names_page(b.bucket_id)
        assert c.stats.reauthorizations == 2
    assert psrv.counters()["calls"]["b2_authorize_account"] == 3


async def test_failed_upload_gets_a_new_upload_url(
    client: B2Client, bucket: Bucket, psrv: LocalServer
) -> None:
    await client.upload_bytes(bucket.bucket_id, "warm", b"x")
    psrv.reset_counters()
    psrv.set_faults([{"call": "b2_upload_file", "sequence": ["503", "expire_token", "drop"]}])
    f = await client.upload_bytes(bucket.bucket_id, "f", b"data")
    assert await client.download_bytes(file_id=f.file_id) == b"data"
    assert client.stats.upload_urls_discarded == 3
    assert psrv.counters()["calls"]["b2_get_upload_url"] == 3  # one per failed attempt
    assert psrv.counters()["calls"]["b2_upload_file"] == 4


async def test_failed_part_gets_a_new_part_url(
    client: B2Client, bucket: Bucket, psrv: LocalServer
) -> None:
    data = os.urandom(6000)
    psrv.set_faults(
        [{"call": "b2_upload_part", "sequence": ["ok", "500", "ok", "drop", "expire_token"]}]
    )
    f = await client.upload_bytes(bucket.bucket_id, "big", data, part_size=1000, concurrency=2)
    assert await client.download_bytes(file_id=f.file_id) == data
    assert client.stats.upload_urls_discarded == 3
    assert psrv.counters()["calls"]["b2_upload_part"] == 9


async def test_call_timeout(psrv: LocalServer) -> None:
    psrv.set_faults([{"call": "b2_list_buckets", "sequence": ["delay:3", "delay:3"]}])
    async with make_client_for(
        psrv, timeouts=Timeouts(call=0.3), retry=RetryPolicy(max_attempts=2, initial_delay=0.01)
    ) as c:
        await c.authorize()
        t0 = anyio.current_time()
        with pytest.raises(NetworkError, match="no answer within"):
            await c.list_buckets()
        assert anyio.current_time() - t0 < 1.5


async def test_read_timeout_on_a_stalled_download(
    client: B2Client, bucket: Bucket, psrv: LocalServer
) -> None:
    f = await client.upload_bytes(bucket.bucket_id, "f", b"data")
    psrv.set_faults([{"call": "b2_download_file_by_id", "sequence": ["delay:3", "delay:3"]}])
    async with make_client_for(
        psrv,
        timeouts=Timeouts(read=0.3),
        retry=RetryPolicy(max_transfer_attempts=2, initial_delay=0.01),
    ) as c:
        await c.authorize()
        t0 = anyio.current_time()
        with pytest.raises(NetworkError, match="ReadTimeout"):
            await c.download_range(f.file_id, 0, 3)
        assert anyio.current_time() - t0 < 1.5


async def test_bandwidth_limits(psrv: LocalServer, bucket: Bucket) -> None:
    data = os.urandom(100_000)
    async with make_client_for(psrv, upload_limit=200_000, download_limit=200_000) as c:
        await c.authorize()
        t0 = anyio.current_time()
        f = await c.upload_bytes(bucket.bucket_id, "slow", data, large_file_threshold=10**6)
        up = anyio.current_time() - t0
        t0 = anyio.current_time()
        assert await c.download_bytes(file_id=f.file_id) == data
        down = anyio.current_time() - t0
    # 100 kB at 200 kB/s with a 0.25 s burst: at least 0.25 s each
    assert 0.22 < up < 3 and 0.22 < down < 3
    async with make_client_for(psrv) as c:
        t0 = anyio.current_time()
        await c.download_bytes(file_id=f.file_id)
        assert anyio.current_time() - t0 < 0.2


async def test_a_failed_reauthorization_is_retried(psrv: LocalServer) -> None:
    """Re-authorizing is a call like any other: its transient failures (a token answer, a
    503, a dropped connection) are retried; only a key B2 refuses ends in an error."""
    async with make_client_for(psrv) as c:
        b = await c.create_bucket(f"reauth-{os.getpid()}-bkt")
        psrv.set_faults([
            {"call": "b2_authorize_account", "sequence": ["expire_token", "503", "drop"]},
            {"call": "b2_list_file_names", "sequence": ["expire_token"]},
        ])  # fmt: skip
        await c.list_file_names_page(b.bucket_id)
        assert c.stats.reauthorizations == 1
    assert psrv.counters()["calls"]["b2_authorize_account"] == 5  # the first, 3 failed, 1


async def test_dropped_connections_and_500s_are_retried_at_once(
    psrv: LocalServer, bucket: Bucket
) -> None:
    """B2's guidance: a dropped connection or a 500 is tried again at once (a fresh
    connection), a 503 or 429 after a backoff."""
    slow = RetryPolicy(initial_delay=2.0, max_delay=2.0)
    async with make_client_for(psrv, retry=slow) as c:
        f = await c.upload_bytes(bucket.bucket_id, "f", b"0123456789" * 1000)
        for kind in ("drop", "500"):
            psrv.set_faults([{"call": "b2_download_file_by_id", "sequence": [kind]}])
            t0 = anyio.current_time()
            assert await c.download_range(f.file_id, 5, 9) == b"56789"
            assert anyio.current_time() - t0 < 0.9, kind
        psrv.set_faults([{"call": "b2_download_file_by_id", "sequence": ["503"]}])
        t0 = anyio.current_time()
        assert await c.download_range(f.file_id, 5, 9) == b"56789"
        assert anyio.current_time() - t0 >= 1.0  # backed off: random in [1, 2] s
    assert c.stats.retries == 3


async def test_expired_token_reauthorizes_once_for_many_downloads(
    psrv: LocalServer, bucket: Bucket
) -> None:
    async with make_client_for(psrv) as c:
        f = await c.upload_bytes(bucket.bucket_id, "f", b"x" * 5000)
        psrv.expire_tokens()
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(c.download_range, f.file_id, i, i + 100)
        assert c.stats.reauthorizations == 1 and c.stats.retries == 0
