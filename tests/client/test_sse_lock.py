"""The fields beyond content round-trip through the client: SSE-B2 and SSE-C (per call and
as the client's default, on uploads, large files, copies and downloads), Object Lock
retention and legal hold, replication status, custom upload timestamps."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from b2fs.b2 import (
    AccessDenied,
    B2Client,
    BadRequest,
    Bucket,
    CustomTimestampNotAllowed,
    FileLockError,
    FileRetention,
    ServerSideEncryption,
)
from b2fs.emulator.process import LocalServer

from .helpers import MIN_PART, make_client_for, unique_bucket_name

KEY = os.urandom(32)
SSE_C = ServerSideEncryption.customer(KEY)


def test_keys_stay_out_of_reprs() -> None:
    assert KEY.hex() not in repr(SSE_C) and str(KEY) not in repr(SSE_C)
    with pytest.raises(ValueError):
        ServerSideEncryption.customer(b"short")


async def test_sse_b2(client: B2Client, bucket: Bucket) -> None:
    sse = ServerSideEncryption.b2()
    small = await client.upload_bytes(bucket.bucket_id, "s", b"abc", server_side_encryption=sse)
    big = await client.upload_bytes(bucket.bucket_id, "b", os.urandom(3 * MIN_PART),
                                    server_side_encryption=sse, large_file_threshold=MIN_PART)  # fmt: skip
    assert big.content_sha1 == "none"  # a large file
    for f in (small, big, await client.get_file_info(big.file_id)):
        assert (f.encryption_mode, f.customer_key_md5) == ("SSE-B2", None)
    copy = await client.copy_file(small.file_id, "c", server_side_encryption=sse)
    assert copy.encryption_mode == "SSE-B2"
    async with client.download_stream(file_id=small.file_id) as s:
        assert s.file.encryption_mode == "SSE-B2" and await s.read_all() == b"abc"
    default = await client.create_bucket(
        unique_bucket_name(), default_server_side_encryption=sse.json()
    )
    assert default.default_encryption_mode == "SSE-B2"
    assert (await client.upload_bytes(default.bucket_id, "d", b"1")).encryption_mode == "SSE-B2"


async def test_sse_c_as_the_clients_default(
    psrv: LocalServer, bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(5 * MIN_PART + 7)
    async with make_client_for(psrv, server_side_encryption=SSE_C) as c:
        small = await c.upload_bytes(bucket.bucket_id, "small", data[:100])
        big = await c.upload(bucket.bucket_id, "big", data, large_file_threshold=MIN_PART,
                             part_size=MIN_PART)  # fmt: skip
        for f in (small, big):
            assert (f.encryption_mode, f.customer_key_md5) == ("SSE-C", SSE_C.key_md5)
        assert await c.download_bytes(file_id=big.file_id) == data
        assert (
            await c.download_range(big.file_id, MIN_PART - 2, MIN_PART + 1)
            == data[MIN_PART - 2 : MIN_PART + 2]
        )
        got = await c.download_file(
            tmp_path / "big", bucket_name=bucket.bucket_name, file_name="big"
        )
        assert (tmp_path / "big").read_bytes() == data and got.encryption_mode == "SSE-C"
        head = await c.get_file_info_by_name(bucket.bucket_name, "small")
        assert head.customer_key_md5 == SSE_C.key_md5
        copy = await c.copy_file(
            small.file_id, "copy", mtime_millis=5
        )  # REPLACE: one get_file_info
        assert copy.encryption_mode == "SSE-C"
        start = await c.start_large_file(bucket.bucket_id, "parts")
        parts = [await c.copy_part(big.file_id, start.file_id, 1, (0, MIN_PART - 1)),
                 await c.upload_part(start.file_id, 2, data[:10])]  # fmt: skip
        done = await c.finish_large_file(start.file_id, [p.sha1 for p in parts])
        assert done.encryption_mode == "SSE-C"
        assert await c.download_bytes(file_id=done.file_id) == data[:MIN_PART] + data[:10]
    async with make_client_for(psrv) as plain:  # without the key: B2's refusals
        with pytest.raises(BadRequest, match="Server Side Encryption"):
            await plain.download_bytes(file_id=small.file_id)
        other = ServerSideEncryption.customer(os.urandom(32))
        with pytest.raises(AccessDenied):
            await plain.download_bytes(file_id=small.file_id, server_side_encryption=other)
        assert (
            await plain.download_bytes(file_id=small.file_id, server_side_encryption=SSE_C)
            == data[:100]
        )


async def test_retention_and_legal_hold(client: B2Client) -> None:
    b = await client.create_bucket(unique_bucket_name(), file_lock_enabled=True)
    assert b.is_file_lock_enabled is True
    b = await client.update_bucket(
        b.bucket_id,
        default_retention={"mode": "governance", "period": {"duration": 1, "unit": "days"}},
    )
    assert b.default_retention == {"mode": "governance", "period": {"duration": 1, "unit": "days"}}
    until = int(time.time() * 1000) + 3_600_000
    retention = FileRetention("governance", until)
    f = await client.upload_bytes(b.bucket_id, "f", b"x", file_retention=retention, legal_hold=True)
    assert (f.file_retention, f.legal_hold) == (retention, "on")
    async with client.download_stream(file_id=f.file_id) as s:
        assert (s.file.file_retention, s.file.legal_hold) == (retention, "on")
    assert await client.update_file_legal_hold(f.file_id, "f", False) == "off"
    with pytest.raises(AccessDenied):
        await client.update_file_retention(f.file_id, "f", FileRetention("governance", until - 1))
    shorter = await client.update_file_retention(
        f.file_id, "f", FileRetention("governance", until - 1), bypass_governance=True
    )
    assert shorter == FileRetention("governance", until - 1)
    copy = await client.copy_file(f.file_id, "g", legal_hold=True)
    assert copy.legal_hold == "on" and copy.file_retention.mode == "governance"  # the default
    with pytest.raises(AccessDenied):
        await client.delete_file_version(f.file_id, "f")
    await client.delete_file_version(f.file_id, "f", bypass_governance=True)
    plain = await client.create_bucket(unique_bucket_name())
    with pytest.raises(FileLockError):
        await client.upload_bytes(plain.bucket_id, "f", b"x", legal_hold=True)
    with pytest.raises(FileLockError):
        await client.update_bucket(b.bucket_id, file_lock_enabled=False)


async def test_replication_status(client: B2Client) -> None:
    src_key = await client.create_key("c-src", ["readFiles"])
    dst_key = await client.create_key("c-dst", ["writeFiles"])
    dst = await client.create_bucket(unique_bucket_name(), replication_configuration={
        "asReplicationDestination": {"sourceToDestinationKeyMapping": {src_key.key_id: dst_key.key_id}}})  # fmt: skip
    src = await client.create_bucket(unique_bucket_name(), replication_configuration={
        "asReplicationSource": {"sourceApplicationKeyId": src_key.key_id, "replicationRules": [
            {"destinationBucketId": dst.bucket_id, "fileNamePrefix": "", "includeExistingFiles": False,
             "isEnabled": True, "priority": 1, "replicationRuleName": "client-rule"}]}})  # fmt: skip
    assert (
        src.replication["asReplicationSource"]["replicationRules"][0]["replicationRuleName"]
        == "client-rule"
    )
    f = await client.upload_bytes(src.bucket_id, "r", b"replicated")
    assert f.replication_status == "pending"
    with anyio.fail_after(10):
        while (await client.get_file_info(f.file_id)).replication_status != "completed":
            await anyio.sleep(0.05)
    files, _ = await client.list_file_names_page(dst.bucket_id)
    assert [(x.file_name, x.replication_status, x.sha1) for x in files] == [
        ("r", "replica", hashlib.sha1(b"replicated").hexdigest())]  # fmt: skip


async def test_custom_upload_timestamp(
    client: B2Client, bucket: Bucket, make_local_server: Callable[..., LocalServer]
) -> None:
    with pytest.raises(CustomTimestampNotAllowed):
        await client.upload_bytes(bucket.bucket_id, "t", b"1", custom_upload_timestamp=1000)
    srv = make_local_server(min_part_size=MIN_PART, extra_args=["--custom-upload-timestamps"])
    async with make_client_for(srv) as c:
        b = await c.create_bucket(unique_bucket_name())
        f = await c.upload_bytes(b.bucket_id, "t", b"1", custom_upload_timestamp=1000)
        big = await c.upload_bytes(b.bucket_id, "big", os.urandom(3 * MIN_PART), part_size=MIN_PART,
                                   large_file_threshold=MIN_PART, custom_upload_timestamp=2000)  # fmt: skip
        assert (f.upload_timestamp, big.upload_timestamp) == (1000, 2000)
