"""Listing names and versions: paging, prefixes, delimiters, unicode, hidden names."""

from __future__ import annotations

from b2fs.b2 import B2Client, Bucket

NAMES = sorted(
    ["a/1", "a/2", "a/b/3", "a/b/4", "c", "dé/ü", "dé/日本語.txt", "e f+g", "z"]
    + [f"m/{i:02}" for i in range(12)]
)


async def _fill(client: B2Client, bucket: Bucket) -> None:
    for name in NAMES:
        await client.upload_bytes(bucket.bucket_id, name, name.encode())


async def test_names_page_by_page(client: B2Client, bucket: Bucket) -> None:
    await _fill(client, bucket)
    seen, start, pages = [], None, 0
    while True:
        files, start = await client.list_file_names_page(
            bucket.bucket_id, start_file_name=start, max_file_count=4
        )
        pages += 1
        assert len(files) <= 4
        seen += [f.file_name for f in files]
        if start is None:
            break
    assert seen == NAMES and pages >= 6
    lazily = [f.file_name async for f in client.list_file_names(bucket.bucket_id, page_size=5)]
    assert lazily == NAMES
    f = (await client.list_file_names_page(bucket.bucket_id, prefix="dé/日本語"))[0][0]
    assert f.file_name == "dé/日本語.txt" and f.size == len(f.file_name.encode())
    assert f.action == "upload" and f.file_id and f.bucket_id == bucket.bucket_id


async def test_prefix_delimiter_and_start(client: B2Client, bucket: Bucket) -> None:
    await _fill(client, bucket)

    async def names(**kw: object) -> list[str]:
        return [
            f.file_name async for f in client.list_file_names(bucket.bucket_id, page_size=2, **kw)
        ]

    assert await names(delimiter="/") == ["a/", "c", "dé/", "e f+g", "m/", "z"]
    assert await names(prefix="a/", delimiter="/") == ["a/1", "a/2", "a/b/"]
    assert await names(prefix="m/1") == ["m/10", "m/11"]
    assert await names(start_file_name="m/10") == ["m/10", "m/11", "z"]
    folders = [
        f async for f in client.list_file_names(bucket.bucket_id, delimiter="/") if f.is_folder
    ]
    assert [f.file_id for f in folders] == [None, None, None]


async def test_versions_and_hidden_names(client: B2Client, bucket: Bucket) -> None:
    bid = bucket.bucket_id
    v = [await client.upload_bytes(bid, "same", f"v{i}".encode()) for i in range(5)]
    await client.upload_bytes(bid, "gone", b"x")
    hide = await client.hide_file(bid, "gone")
    assert hide.action == "hide" and hide.size == 0

    names = [f.file_name async for f in client.list_file_names(bid)]
    assert names == ["same"]  # the hidden name is left out

    files, nxt_name, nxt_id = await client.list_file_versions_page(bid, max_file_count=3)
    assert [f.file_name for f in files] == ["gone", "gone", "same"]
    assert files[0].action == "hide" and files[1].action == "upload"
    assert nxt_name == "same" and nxt_id == v[3].file_id  # newest first
    every = [f async for f in client.list_file_versions(bid, page_size=2)]
    assert [f.file_id for f in every if f.file_name == "same"] == [x.file_id for x in reversed(v)]
    rest = [f.file_id async for f in client.list_file_versions(
        bid, start_file_name=nxt_name, start_file_id=nxt_id)]  # fmt: skip
    assert rest == [x.file_id for x in reversed(v[:4])]
    assert [f.file_id for f in await client.versions_of(bid, "same")] == [
        x.file_id for x in reversed(v)
    ]
