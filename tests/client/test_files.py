"""One file at a time: info, metadata, hide, delete, copy (whole, range, metadata, bucket)."""

from __future__ import annotations

import hashlib

import pytest

from b2fs.b2 import (
    AlreadyHidden,
    B2Client,
    Bucket,
    FileNotPresent,
    NoSuchFile,
    NotFound,
)

INFO = {"color": "blue", "b2-cache-control": "max-age=60"}


async def test_upload_metadata_and_file_info(client: B2Client, bucket: Bucket) -> None:
    data = "日本語 text".encode()
    f = await client.upload_bytes(
        bucket.bucket_id, "meta/ü.txt", data, content_type="text/x-test", file_info=INFO,
        mtime_millis=1_600_000_000_123,
    )  # fmt: skip
    assert f.size == len(data) and f.content_sha1 == hashlib.sha1(data).hexdigest()
    assert f.content_type == "text/x-test"
    assert f.file_info == {**INFO, "src_last_modified_millis": "1600000000123"}
    assert f.mtime_millis == 1_600_000_000_123 and f.sha1 == f.content_sha1
    info = await client.get_file_info(f.file_id)
    assert info == f
    auto = await client.upload_bytes(bucket.bucket_id, "plain.html", b"<p>")
    assert auto.content_type == "text/html"  # b2/x-auto
    assert auto.mtime_millis == auto.upload_timestamp
    await client.delete_file_version(auto.file_id, auto.file_name)
    with pytest.raises(NotFound):
        await client.get_file_info(auto.file_id)


async def test_hide_delete_and_delete_all(client: B2Client, bucket: Bucket) -> None:
    bid = bucket.bucket_id
    with pytest.raises(NoSuchFile):
        await client.hide_file(bid, "never")
    v1 = await client.upload_bytes(bid, "f", b"1")
    v2 = await client.upload_bytes(bid, "f", b"2")
    hidden = await client.hide_file(bid, "f")
    with pytest.raises(AlreadyHidden):
        await client.hide_file(bid, "f")
    assert [x.file_id for x in await client.versions_of(bid, "f")] == [
        hidden.file_id, v2.file_id, v1.file_id,
    ]  # fmt: skip

    gone = await client.delete_file_version(v1.file_id, "f")
    assert (gone.file_id, gone.file_name) == (v1.file_id, "f")
    with pytest.raises((FileNotPresent, NotFound)):
        await client.delete_file_version(v1.file_id, "f")

    await client.upload_bytes(bid, "f/child", b"keep")  # same prefix, other name
    deleted = await client.delete_all_versions(bid, "f")
    assert {d.file_id for d in deleted} == {hidden.file_id, v2.file_id}
    assert await client.versions_of(bid, "f") == []
    assert [f.file_name async for f in client.list_file_versions(bid)] == ["f/child"]


async def test_copy_whole_range_metadata_and_other_bucket(client: B2Client, bucket: Bucket) -> None:
    bid = bucket.bucket_id
    data = bytes(range(256)) * 40
    src = await client.upload_bytes(bid, "src", data, content_type="application/x-src",
                                    file_info=INFO, mtime_millis=42)  # fmt: skip

    same = await client.copy_file(src.file_id, "copy")
    assert same.file_name == "copy" and same.size == len(data)
    assert same.content_type == "application/x-src" and same.file_info == src.file_info
    assert await client.download_bytes(file_id=same.file_id) == data

    part = await client.copy_file(src.file_id, "part", range=(10, 1033))
    assert part.size == 1024
    assert await client.download_bytes(file_id=part.file_id) == data[10:1034]

    new = await client.copy_file(src.file_id, "new", content_type="text/plain",
                                 file_info={"k": "v"}, mtime_millis=7)  # fmt: skip
    assert new.content_type == "text/plain"
    assert new.file_info == {"k": "v", "src_last_modified_millis": "7"}
    kept_type = await client.copy_file(src.file_id, "info-only", file_info={"only": "info"})
    assert kept_type.content_type == "application/x-src" and kept_type.file_info == {"only": "info"}

    other = await client.create_bucket(bucket.bucket_name[:-4] + "-dst")
    moved = await client.copy_file(src.file_id, "there", destination_bucket_id=other.bucket_id)
    assert moved.bucket_id == other.bucket_id
    assert [f.file_name async for f in client.list_file_names(other.bucket_id)] == ["there"]
    assert (await client.get_file_info(moved.file_id)).action in ("upload", "copy")
