"""Simple uploads (sha1 modes, names, file info), get_file_info, hide, delete, copy."""

from __future__ import annotations

import hashlib

import pytest

from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(60)


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def test_upload_sha1_modes(raw: Raw, bucket: str) -> None:
    data = b"hello world"
    sha = hashlib.sha1(data).hexdigest()
    f = raw.upload(bucket, "plain.txt", data, info={"src_last_modified_millis": "1234"})
    assert (f["contentSha1"], f["contentLength"], f["action"]) == (sha, 11, "upload")
    assert f["contentType"] == "text/plain" and f["fileInfo"] == {
        "src_last_modified_millis": "1234"
    }
    f = raw.upload(bucket, "end.txt", data + sha.encode(), sha1="hex_digits_at_end")
    assert (f["contentSha1"], f["contentLength"]) == (sha, 11)
    assert raw.by_id(f["fileId"]).content == data
    f = raw.upload(bucket, "nv.txt", data, sha1="do_not_verify")
    assert f["contentSha1"] == f"unverified:{sha}"
    e = fails(lambda: raw.upload(bucket, "bad.txt", data, sha1="0" * 40), 400, "bad_request")
    assert "match" in e.body["message"].lower()
    fails(
        lambda: raw.upload(bucket, "bad.txt", data + b"0" * 40, sha1="hex_digits_at_end"),
        400,
        "bad_request",
    )
    fails(lambda: raw.upload(bucket, "bad.txt", data, sha1="xyz"), 400, "bad_request")
    assert [x["fileName"] for x in raw.names(bucket)["files"]] == ["end.txt", "nv.txt", "plain.txt"]


def test_upload_names_are_percent_decoded(raw: Raw, bucket: str) -> None:
    for name in ["a b/c+d.txt", "ünïcödé/日本語 ファイル", "tab?#%&=.txt", "~tilde!"]:
        f = raw.upload(bucket, name, b"1")
        assert f["fileName"] == name
    f = raw.upload(bucket, "x", b"1", headers={"X-Bz-File-Name": "plus+means+space"}, encode=False)
    assert f["fileName"] == "plus means space"
    info = raw.upload(bucket, "i", b"1", info={"author": "Zoë & co/ü"})["fileInfo"]
    assert info == {"author": "Zoë & co/ü"}


@pytest.mark.parametrize(
    "name",
    ["a" * 1025, "ctl\x01char", "del\x7f", "/leading", "trailing/", "dou//ble", "s" * 251 + "/x"],
)
def test_bad_names(raw: Raw, bucket: str, name: str) -> None:
    fails(lambda: raw.upload(bucket, name, b"1"), 400, "bad_request")


def test_file_info_limits(raw: Raw, bucket: str) -> None:
    raw.upload(bucket, "ten", b"1", info={f"k{i}": "v" for i in range(10)})
    fails(
        lambda: raw.upload(bucket, "eleven", b"1", info={f"k{i}": "v" for i in range(11)}),
        400,
        "bad_request",
    )
    fails(lambda: raw.upload(bucket, "big", b"1", info={"k": "v" * 7000}), 400, "bad_request")
    fails(lambda: raw.upload(bucket, "b2", b"1", info={"b2-secret": "v"}), 400, "bad_request")
    ok = raw.upload(bucket, "disp", b"1", info={"b2-content-disposition": "attachment"})
    assert ok["fileInfo"] == {"b2-content-disposition": "attachment"}
    assert raw.by_id(ok["fileId"]).headers["content-disposition"] == "attachment"
    fails(lambda: raw.call("b2_start_large_file", bucketId=bucket, fileName="l", contentType="a/b",
                           fileInfo={"k" * 51: "v"}), 400, "bad_request")  # fmt: skip


def test_upload_needs_headers(raw: Raw, bucket: str) -> None:
    u = raw.call("b2_get_upload_url", bucketId=bucket)
    base = {"Authorization": u["authorizationToken"], "X-Bz-File-Name": "n",
            "Content-Type": "text/plain", "X-Bz-Content-Sha1": "do_not_verify"}  # fmt: skip
    for drop in ["X-Bz-File-Name", "Content-Type", "X-Bz-Content-Sha1"]:
        h = {k: v for k, v in base.items() if k != drop}
        r = raw.http.post(u["uploadUrl"], content=b"1", headers=h)
        assert (r.status_code, r.json()["code"]) == (400, "bad_request"), drop
    r = raw.http.post(u["uploadUrl"], content=b"1", headers={**base, "Authorization": raw.token})
    assert (r.status_code, r.json()["code"]) == (401, "bad_auth_token")
    r = raw.http.post(u["uploadUrl"], content=iter([b"chunked"]), headers=base)
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")


def test_get_file_info(raw: Raw, bucket: str) -> None:
    f = raw.upload(bucket, "info.txt", b"abc", content_type="application/x-thing")
    got = raw.call("b2_get_file_info", fileId=f["fileId"])
    assert got == f
    fails(lambda: raw.call("b2_get_file_info", fileId="garbage"), 400, "bad_request")
    missing = f["fileId"].replace("_f", "_f0", 1)
    fails(lambda: raw.call("b2_get_file_info", fileId=missing), 404, "not_found")


def test_hide_and_delete(raw: Raw, bucket: str) -> None:
    fails(
        lambda: raw.call("b2_hide_file", bucketId=bucket, fileName="nothing"), 400, "no_such_file"
    )
    v1 = raw.upload(bucket, "h.txt", b"1")
    v2 = raw.upload(bucket, "h.txt", b"22")
    hidden = raw.call("b2_hide_file", bucketId=bucket, fileName="h.txt")
    assert (hidden["action"], hidden["contentType"], hidden["contentLength"]) == (
        "hide", "application/x-bz-hide-marker", 0)  # fmt: skip
    fails(
        lambda: raw.call("b2_hide_file", bucketId=bucket, fileName="h.txt"), 400, "already_hidden"
    )
    assert raw.names(bucket)["files"] == []
    versions = raw.versions(bucket)["files"]
    assert [(v["fileId"], v["action"]) for v in versions] == [
        (hidden["fileId"], "hide"), (v2["fileId"], "upload"), (v1["fileId"], "upload")]  # fmt: skip
    assert raw.get(f"/file/{bucket_name(raw, bucket)}/h.txt").status_code == 404
    assert raw.by_id(v2["fileId"]).content == b"22"
    out = raw.call("b2_delete_file_version", fileId=hidden["fileId"], fileName="h.txt")
    assert out == {"fileId": hidden["fileId"], "fileName": "h.txt"}
    assert [f["fileId"] for f in raw.names(bucket)["files"]] == [v2["fileId"]]
    fails(lambda: raw.call("b2_delete_file_version", fileId=hidden["fileId"], fileName="h.txt"),
          400, "file_not_present")  # fmt: skip
    fails(lambda: raw.call("b2_delete_file_version", fileId=v1["fileId"], fileName="other"),
          400, "file_not_present")  # fmt: skip
    raw.call("b2_delete_file_version", fileId=v2["fileId"], fileName="h.txt")
    assert [f["fileId"] for f in raw.names(bucket)["files"]] == [v1["fileId"]]
    assert raw.by_id(v2["fileId"]).status_code == 404


def bucket_name(raw: Raw, bucket_id: str) -> str:
    return raw.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket_id)["buckets"][0][
        "bucketName"
    ]


def test_copy_file(raw: Raw, bucket: str) -> None:
    data = bytes(range(256)) * 40
    src = raw.upload(bucket, "src.bin", data, content_type="application/x-src", info={"a": "1"})
    c = raw.call("b2_copy_file", sourceFileId=src["fileId"], fileName="copy.bin")
    assert (c["action"], c["contentSha1"], c["contentType"], c["fileInfo"]) == (
        "copy", src["contentSha1"], "application/x-src", {"a": "1"})  # fmt: skip
    assert raw.by_id(c["fileId"]).content == data
    part = raw.call("b2_copy_file", sourceFileId=src["fileId"], fileName="part.bin", range="bytes=10-109",
                    metadataDirective="REPLACE", contentType="text/plain", fileInfo={"b": "2"})  # fmt: skip
    assert (part["contentLength"], part["contentSha1"]) == (
        100,
        hashlib.sha1(data[10:110]).hexdigest(),
    )
    assert (part["contentType"], part["fileInfo"]) == ("text/plain", {"b": "2"})
    assert raw.by_id(part["fileId"]).content == data[10:110]
    other = raw.bucket()
    x = raw.call(
        "b2_copy_file", sourceFileId=src["fileId"], fileName="x", destinationBucketId=other
    )
    assert x["bucketId"] == other
    # the source can be deleted; the copies keep their bytes
    raw.call("b2_delete_file_version", fileId=src["fileId"], fileName="src.bin")
    assert raw.by_id(c["fileId"]).content == data
    fails(
        lambda: raw.call("b2_copy_file", sourceFileId=c["fileId"], fileName="y", contentType="a/b"),
        400,
        "bad_request",
    )
    fails(lambda: raw.call("b2_copy_file", sourceFileId=c["fileId"], fileName="y", metadataDirective="REPLACE"),
          400, "bad_request")  # fmt: skip
    fails(lambda: raw.call("b2_copy_file", sourceFileId=c["fileId"], fileName="y", range="bytes=0-999999"),
          416, "range_not_satisfiable")  # fmt: skip
    fails(
        lambda: raw.call("b2_copy_file", sourceFileId=src["fileId"], fileName="y"),
        400,
        "file_not_present",
    )
