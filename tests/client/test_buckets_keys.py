"""Buckets (create, list, get, update with revision, delete) and application keys."""

from __future__ import annotations

import pytest

from b2fs.b2 import (
    B2Client,
    BadBucketId,
    BucketNotFound,
    Conflict,
    DuplicateBucketName,
    Unauthorized,
)
from b2fs.emulator.process import LocalServer

from .helpers import make_client_for, unique_bucket_name

LIFECYCLE = [{"fileNamePrefix": "logs/", "daysFromHidingToDeleting": 7,
              "daysFromUploadingToHiding": None}]  # fmt: skip
CORS = [{"corsRuleName": "all", "allowedOrigins": ["*"], "allowedOperations": ["b2_download_file_by_name"],
         "maxAgeSeconds": 60}]  # fmt: skip


async def test_bucket_lifecycle(client: B2Client) -> None:
    name = unique_bucket_name("life")
    b = await client.create_bucket(name, "allPublic", bucket_info={"owner": "tests"})
    assert (b.bucket_name, b.bucket_type, b.bucket_info) == (name, "allPublic", {"owner": "tests"})
    assert b.account_id == client.account.account_id

    got = await client.get_bucket(name)
    assert got.bucket_id == b.bucket_id and got.revision == b.revision
    assert (await client.get_bucket_by_id(b.bucket_id)).bucket_name == name
    names = [x.bucket_name for x in await client.list_buckets()]
    assert name in names and names == sorted(names)
    assert [x.bucket_name for x in await client.list_buckets(bucket_types=["allPrivate"])].count(
        name
    ) == 0

    up = await client.update_bucket(
        b.bucket_id,
        bucket_type="allPrivate",
        bucket_info={"owner": "others"},
        lifecycle_rules=LIFECYCLE,
        cors_rules=CORS,
        if_revision_is=b.revision,
    )
    assert up.revision == b.revision + 1
    assert (up.bucket_type, up.bucket_info) == ("allPrivate", {"owner": "others"})
    assert up.lifecycle_rules[0]["fileNamePrefix"] == "logs/"
    assert up.cors_rules[0]["corsRuleName"] == "all"
    with pytest.raises(Conflict):  # stale revision
        await client.update_bucket(b.bucket_id, bucket_info={}, if_revision_is=b.revision)

    gone = await client.delete_bucket(b.bucket_id)
    assert gone.bucket_id == b.bucket_id
    with pytest.raises(BucketNotFound):
        await client.get_bucket(name)
    with pytest.raises(BadBucketId):
        await client.delete_bucket(b.bucket_id)


async def test_duplicate_bucket_name(client: B2Client) -> None:
    name = unique_bucket_name("dup")
    await client.create_bucket(name)
    with pytest.raises(DuplicateBucketName):
        await client.create_bucket(name)


async def test_keys_create_list_paged_delete(client: B2Client, psrv: LocalServer) -> None:
    b = await client.create_bucket(unique_bucket_name("keys"))
    made = [
        await client.create_key(
            f"k{i}",
            ["listFiles", "readFiles"],
            bucket_ids=[b.bucket_id],
            name_prefix="p/",
            valid_duration_seconds=3600,
        )  # fmt: skip
        for i in range(5)
    ]
    k = made[0]
    assert k.application_key and k.application_key not in repr(k)
    assert k.bucket_ids == (b.bucket_id,) and k.name_prefix == "p/"
    assert set(k.capabilities) == {"listFiles", "readFiles"} and k.expiration_timestamp

    page, nxt = await client.list_keys_page(max_key_count=2)
    assert len(page) == 2 and nxt is not None
    listed = [x.key_id async for x in client.list_keys(page_size=2)]
    assert len(listed) == len(set(listed))
    assert {m.key_id for m in made} <= set(listed)

    assert (await client.delete_key(k.key_id)).key_id == k.key_id
    assert k.key_id not in [x.key_id async for x in client.list_keys()]


async def test_restricted_key_sees_only_its_bucket_and_prefix(
    client: B2Client, psrv: LocalServer
) -> None:
    mine = await client.create_bucket(unique_bucket_name("mine"))
    await client.create_bucket(unique_bucket_name("other"))
    await client.upload_bytes(mine.bucket_id, "p/in", b"1")
    await client.upload_bytes(mine.bucket_id, "out", b"2")
    key = await client.create_key(
        "restricted", ["listBuckets", "listFiles", "readFiles", "writeFiles"],
        bucket_ids=[mine.bucket_id], name_prefix="p/",
    )  # fmt: skip
    async with B2Client(key.key_id, key.application_key, psrv.realm) as rc:
        acct = await rc.authorize()
        assert [b.bucket_id for b in acct.allowed_buckets or ()] == [mine.bucket_id]
        assert acct.name_prefix == "p/"
        assert [b.bucket_id for b in await rc.list_buckets()] == [mine.bucket_id]
        files, _ = await rc.list_file_names_page(mine.bucket_id, prefix="p/")
        assert [f.file_name for f in files] == ["p/in"]
        with pytest.raises(Unauthorized):
            await rc.list_file_names_page(mine.bucket_id)
        with pytest.raises(Unauthorized):
            await rc.upload_bytes(mine.bucket_id, "elsewhere", b"no")
        assert rc.stats.retries == 0
        async with make_client_for(psrv) as again:  # the master key still sees everything
            assert len(await again.list_buckets()) >= 2
