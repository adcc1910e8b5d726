"""Buckets: create, list, update with ifRevisionIs, delete, and their errors."""

from __future__ import annotations

import pytest

from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(60)


def fails(fn, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body


def test_bucket_lifecycle(raw: Raw) -> None:
    b = raw.call("b2_create_bucket", accountId=raw.account_id, bucketName="life-cycle-1",
                 bucketType="allPublic", bucketInfo={"k": "v"})  # fmt: skip
    assert (b["bucketName"], b["bucketType"], b["revision"], b["bucketInfo"]) == (
        "life-cycle-1",
        "allPublic",
        1,
        {"k": "v"},
    )
    listed = raw.call("b2_list_buckets", accountId=raw.account_id)["buckets"]
    names = [x["bucketName"] for x in listed]
    assert names == sorted(names) and "life-cycle-1" in names
    only = raw.call("b2_list_buckets", accountId=raw.account_id, bucketName="life-cycle-1")[
        "buckets"
    ]
    assert [x["bucketId"] for x in only] == [b["bucketId"]]
    assert (
        raw.call("b2_list_buckets", accountId=raw.account_id, bucketName="no-such-bucket")[
            "buckets"
        ]
        == []
    )
    assert b["bucketId"] not in [x["bucketId"] for x in raw.call(
        "b2_list_buckets", accountId=raw.account_id, bucketTypes=["allPrivate"])["buckets"]]  # fmt: skip
    up = raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                  bucketType="allPrivate", ifRevisionIs=1)  # fmt: skip
    assert (up["bucketType"], up["revision"]) == ("allPrivate", 2)
    fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                           bucketInfo={}, ifRevisionIs=1), 409, "conflict")  # fmt: skip
    raw.upload(b["bucketId"], "f", b"1")
    fails(lambda: raw.call("b2_delete_bucket", accountId=raw.account_id, bucketId=b["bucketId"]),
          400, "cannot_delete_non_empty_bucket")  # fmt: skip
    v = raw.names(b["bucketId"])["files"][0]
    raw.call("b2_delete_file_version", fileId=v["fileId"], fileName="f")
    gone = raw.call("b2_delete_bucket", accountId=raw.account_id, bucketId=b["bucketId"])
    assert gone["bucketName"] == "life-cycle-1"
    fails(lambda: raw.call("b2_delete_bucket", accountId=raw.account_id, bucketId=b["bucketId"]),
          400, "bad_bucket_id")  # fmt: skip


def test_bucket_errors(raw: Raw) -> None:
    raw.call(
        "b2_create_bucket",
        accountId=raw.account_id,
        bucketName="dup-bucket",
        bucketType="allPrivate",
    )
    fails(lambda: raw.call("b2_create_bucket", accountId=raw.account_id, bucketName="dup-bucket",
                           bucketType="allPrivate"), 400, "duplicate_bucket_name")  # fmt: skip
    for bad in ["short", "x" * 64, "has_underscore", "b2-reserved", "spa ce-bucket"]:
        with pytest.raises(ApiFailure) as e:
            raw.call(
                "b2_create_bucket",
                accountId=raw.account_id,
                bucketName=bad,
                bucketType="allPrivate",
            )
        assert e.value.status == 400, bad
    fails(lambda: raw.call("b2_create_bucket", accountId=raw.account_id, bucketName="fine-name",
                           bucketType="weird"), 400, "bad_request")  # fmt: skip
    fails(lambda: raw.names("0" * 24), 400, "bad_bucket_id")
    fails(lambda: raw.call("b2_get_upload_url", bucketId="nope"), 400, "bad_bucket_id")
    fails(lambda: raw.call("b2_list_buckets", accountId="000000000000"), 401, "unauthorized")
