"""Downloads by id and by name: Range (206/416), HEAD, x-bz-* headers, query overrides,
download authorizations (header and ?Authorization=), public buckets."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import Raw

pytestmark = pytest.mark.timeout(60)
DATA = bytes(range(256)) * 4


def name_of(raw: Raw, bucket: str) -> str:
    return raw.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket)["buckets"][0][
        "bucketName"
    ]


def test_download_by_id_and_name(raw: Raw, bucket: str) -> None:
    f = raw.upload(
        bucket, "dir/ü b+c.bin", DATA, content_type="application/x-test", info={"mtime": "a b/ü"}
    )
    r = raw.by_id(f["fileId"])
    assert r.status_code == 200 and r.content == DATA
    h = r.headers
    assert h["x-bz-file-id"] == f["fileId"] and h["content-type"] == "application/x-test"
    assert h["x-bz-file-name"] == quote("dir/ü b+c.bin", safe="/")
    assert h["x-bz-content-sha1"] == f["contentSha1"] and h["x-bz-upload-timestamp"] == str(
        f["uploadTimestamp"]
    )
    assert h["x-bz-info-mtime"] == quote("a b/ü", safe="") and h["accept-ranges"] == "bytes"
    assert h["content-length"] == str(len(DATA)) and "date" in h
    r = raw.get(f"/file/{name_of(raw, bucket)}/{quote('dir/ü b+c.bin')}")
    assert r.status_code == 200 and r.content == DATA
    r = raw.http.head(f"{raw.realm}/file/{name_of(raw, bucket)}/{quote('dir/ü b+c.bin')}",
                      headers={"Authorization": raw.token})  # fmt: skip
    assert (
        r.status_code == 200 and r.headers["content-length"] == str(len(DATA)) and r.content == b""
    )


@pytest.mark.parametrize(
    "header,status,expected",
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=1000-2000", 206, (1000, 1023)),
        ("bytes=1020-", 206, (1020, 1023)),
        ("bytes=-4", 206, (1020, 1023)),
        ("bytes=0-1023", 206, (0, 1023)),
        ("bytes=1024-2000", 416, None),
    ],
)
def test_ranges(
    raw: Raw, bucket: str, header: str, status: int, expected: tuple[int, int] | None
) -> None:
    f = raw.upload(bucket, "r.bin", DATA)
    r = raw.by_id(f["fileId"], Range=header)
    assert r.status_code == status
    if expected is None:
        assert r.json()["code"] == "range_not_satisfiable"
        assert r.headers["content-range"] == "bytes */1024"
    else:
        a, b = expected
        assert r.content == DATA[a : b + 1]
        assert r.headers["content-range"] == f"bytes {a}-{b}/1024"


def test_not_found_and_hidden(raw: Raw, bucket: str) -> None:
    f = raw.upload(bucket, "gone", b"1")
    assert raw.by_id(f["fileId"].replace("_f", "_f0", 1)).status_code == 404
    assert raw.by_id("garbage").status_code == 400
    assert raw.get(f"/file/{name_of(raw, bucket)}/nothing").json()["code"] == "not_found"
    assert raw.get("/file/no-such-bucket/x").status_code == 404
    raw.call("b2_hide_file", bucketId=bucket, fileName="gone")
    assert raw.get(f"/file/{name_of(raw, bucket)}/gone").status_code == 404


def test_private_needs_auth_and_overrides(raw: Raw, bucket: str) -> None:
    f = raw.upload(bucket, "p.txt", b"secret")
    r = httpx.get(f"{raw.realm}/b2api/v4/b2_download_file_by_id?fileId={f['fileId']}")
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = raw.get(f"/b2api/v4/b2_download_file_by_id?fileId={f['fileId']}&b2ContentDisposition=attachment"
                "&b2ContentType=text/x-over&b2CacheControl=max-age%3D5")  # fmt: skip
    assert (
        r.headers["content-disposition"] == "attachment"
        and r.headers["content-type"] == "text/x-over"
    )
    assert r.headers["cache-control"] == "max-age=5"


def test_download_authorization(raw: Raw, bucket: str) -> None:
    name = name_of(raw, bucket)
    raw.upload(bucket, "share/a.txt", b"a")
    raw.upload(bucket, "other/b.txt", b"b")
    auth = raw.call("b2_get_download_authorization", bucketId=bucket, fileNamePrefix="share/",
                    validDurationInSeconds=60)  # fmt: skip
    token = auth["authorizationToken"]
    assert auth["fileNamePrefix"] == "share/" and auth["bucketId"] == bucket
    assert raw.get(f"/file/{name}/share/a.txt", token=token).content == b"a"
    assert (
        httpx.get(f"{raw.realm}/file/{name}/share/a.txt?Authorization={quote(token)}").content
        == b"a"
    )
    assert raw.get(f"/file/{name}/other/b.txt", token=token).status_code == 401
    for bad in (0, 604_801):
        r = raw.http.post(f"{raw.realm}/b2api/v4/b2_get_download_authorization", headers={"Authorization": raw.token},
                          json={"bucketId": bucket, "fileNamePrefix": "", "validDurationInSeconds": bad})  # fmt: skip
        assert r.status_code == 400
    # a download authorization is not an account token
    r = raw.http.post(
        f"{raw.realm}/b2api/v4/b2_list_buckets", json={}, headers={"Authorization": token}
    )
    assert r.json()["code"] == "bad_auth_token"


def test_public_bucket(server: LocalServer, raw: Raw) -> None:
    bucket = raw.bucket("allPublic")
    raw.upload(bucket, "open.txt", b"hi")
    r = httpx.get(f"{server.realm}/file/{name_of(raw, bucket)}/open.txt")
    assert r.status_code == 200 and r.content == b"hi"
    r = httpx.get(
        f"{server.realm}/file/{name_of(raw, bucket)}/open.txt", headers={"Authorization": "junk"}
    )
    assert r.status_code == 401


def test_empty_file(raw: Raw, bucket: str) -> None:
    f = raw.upload(bucket, "empty", b"")
    r = raw.by_id(f["fileId"])
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"


def test_client_leaving_mid_download_stops_the_send(
    server: LocalServer, raw: Raw, bucket: str
) -> None:
    import os

    size = 40_000_000
    f = raw.upload(bucket, "left.bin", os.urandom(size))
    server.reset_counters()
    url = f"{raw.realm}/b2api/v4/b2_download_file_by_id?fileId={f['fileId']}"
    with httpx.stream("GET", url, headers={"Authorization": raw.token}) as r:
        next(r.iter_raw(1 << 16))
    raw.names(bucket)  # the server is still fine
    sent = server.counters()["bytes_out"]
    assert 0 < sent < size // 2
