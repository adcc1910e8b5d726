"""Authorization: the authorize call per API version, tokens, keys, capabilities and
bucket/name-prefix restrictions, token expiry."""

from __future__ import annotations

import time

import httpx
import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_authorize_shapes(server: LocalServer, version: int, method: str) -> None:
    r = httpx.request(method, f"{server.realm}/b2api/v{version}/b2_authorize_account",
                      auth=(server.key_id, server.key), json={} if method == "POST" else None)  # fmt: skip
    assert r.status_code == 200
    assert r.headers["date"].endswith("GMT")
    body = r.json()
    assert body["authorizationToken"] and body["accountId"]
    if version <= 2:
        info = body
        assert info["allowed"]["bucketId"] is None
    else:
        info = body["apiInfo"]["storageApi"]
        if version == 4:
            assert info["allowed"]["buckets"] is None
            assert "listFiles" in info["allowed"]["capabilities"]
        else:
            assert "listFiles" in info["capabilities"]
    assert info["apiUrl"] == server.realm
    assert info["downloadUrl"] == server.realm
    assert info["absoluteMinimumPartSize"] == 5_000_000
    assert info["recommendedPartSize"] == 100_000_000


def test_bad_credentials(server: LocalServer) -> None:
    """Wrong credentials: B2's 401 ``unauthorized`` with its empty message (a missing
    Basic header is a bad token, not a bad key)."""
    url = f"{server.realm}/b2api/v4/b2_authorize_account"
    for auth in [(server.key_id, "wrong"), ("nosuchkey", server.key)]:
        r = httpx.get(url, auth=auth)
        assert r.status_code == 401
        assert r.json() == {"status": 401, "code": "unauthorized", "message": ""}
        assert server.key not in r.text
    assert httpx.get(url).json()["code"] == "bad_auth_token"


def test_bad_and_missing_token(server: LocalServer) -> None:
    url = f"{server.realm}/b2api/v4/b2_list_buckets"
    r = httpx.post(url, json={}, headers={"Authorization": "nope"})
    assert (r.status_code, r.json()["code"]) == (401, "bad_auth_token")
    r = httpx.post(url, json={})
    assert (r.status_code, r.json()["code"]) == (401, "bad_auth_token")


def test_expire_tokens(server: LocalServer, raw: Raw) -> None:
    bucket = raw.bucket()
    upload_url = raw.call("b2_get_upload_url", bucketId=bucket)
    server.expire_tokens()
    with pytest.raises(ApiFailure) as e:
        raw.call("b2_list_buckets", accountId=raw.account_id)
    assert (e.value.status, e.value.code) == (401, "expired_auth_token")
    r = httpx.post(upload_url["uploadUrl"], content=b"x", headers={
        "Authorization": upload_url["authorizationToken"], "X-Bz-File-Name": "a",
        "Content-Type": "text/plain", "X-Bz-Content-Sha1": "do_not_verify"})  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (401, "expired_auth_token")
    fresh = Raw(server)  # re-authorizing works
    assert fresh.call("b2_list_buckets", accountId=fresh.account_id)["buckets"]


def test_token_lifetime(make_local_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_local_server(token_lifetime=1)
    raw = Raw(srv)
    raw.call("b2_list_buckets", accountId=raw.account_id)
    time.sleep(1.2)
    with pytest.raises(ApiFailure) as e:
        raw.call("b2_list_buckets", accountId=raw.account_id)
    assert e.value.code == "expired_auth_token"


def create_key(raw: Raw, caps: list[str], **kw: object) -> dict:
    return raw.call("b2_create_key", accountId=raw.account_id, capabilities=caps,
                    keyName="k-" + str(len(caps)), **kw)  # fmt: skip


def test_keys_create_list_delete(server: LocalServer, raw: Raw) -> None:
    key = create_key(raw, ["listBuckets", "readFiles"], validDurationInSeconds=3600)
    assert key["applicationKey"] and key["expirationTimestamp"] > time.time() * 1000
    listed = raw.call("b2_list_keys", accountId=raw.account_id, maxKeyCount=10000)
    ids = [k["applicationKeyId"] for k in listed["keys"]]
    assert key["applicationKeyId"] in ids and server.key_id not in ids
    assert all("applicationKey" not in k for k in listed["keys"])
    # paging
    create_key(raw, ["listFiles"])
    page = raw.call("b2_list_keys", accountId=raw.account_id, maxKeyCount=1)
    assert len(page["keys"]) == 1 and page["nextApplicationKeyId"]
    # the new key works, with only its capabilities
    other = Raw(server, key_id=key["applicationKeyId"], key=key["applicationKey"])
    other.call("b2_list_buckets", accountId=raw.account_id)
    with pytest.raises(ApiFailure) as e:
        other.call(
            "b2_create_bucket",
            accountId=raw.account_id,
            bucketName="nope-nope",
            bucketType="allPrivate",
        )
    assert (e.value.status, e.value.code) == (401, "unauthorized")
    deleted = raw.call("b2_delete_key", applicationKeyId=key["applicationKeyId"])
    assert deleted["applicationKeyId"] == key["applicationKeyId"]
    with pytest.raises(ApiFailure) as e:
        other.call("b2_list_buckets", accountId=raw.account_id)
    assert e.value.code == "bad_auth_token"
    with pytest.raises(ApiFailure) as e:
        raw.call("b2_delete_key", applicationKeyId=server.key_id)
    assert e.value.code == "bad_request"


def test_key_validation(raw: Raw) -> None:
    for kw in ({"capabilities": ["flyToMoon"]}, {"capabilities": []},
               {"capabilities": ["listFiles"], "keyName": "bad name!"},
               {"capabilities": ["listFiles"], "namePrefix": "a/"},
               {"capabilities": ["listFiles"], "bucketIds": ["0" * 24]}):  # fmt: skip
        params = {"keyName": "ok", **kw}
        with pytest.raises(ApiFailure) as e:
            raw.call("b2_create_key", accountId=raw.account_id, **params)
        assert e.value.status == 400, kw


def test_v3_key_shape(server: LocalServer) -> None:
    raw = Raw(server, version=3)
    bucket = raw.bucket()
    key = raw.call("b2_create_key", accountId=raw.account_id, capabilities=["listFiles"],
                   keyName="v3key", bucketId=bucket)  # fmt: skip
    assert key["bucketId"] == bucket and "bucketIds" not in key
    raw4 = Raw(server)
    keys = raw4.call("b2_list_keys", accountId=raw.account_id, maxKeyCount=10000)["keys"]
    assert [k["bucketIds"] for k in keys if k["applicationKeyId"] == key["applicationKeyId"]] == [
        [bucket]
    ]


def test_restricted_key(server: LocalServer, raw: Raw) -> None:
    mine, other_bucket = raw.bucket(), raw.bucket()
    raw.upload(mine, "pub/a.txt", b"a")
    secret = raw.upload(mine, "priv/b.txt", b"b")
    key = create_key(raw, ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles", "shareFiles"],
                     bucketIds=[mine], namePrefix="pub/")  # fmt: skip
    k = Raw(server, key_id=key["applicationKeyId"], key=key["applicationKey"])
    allowed = k.auth["apiInfo"]["storageApi"]["allowed"]
    assert allowed["buckets"][0]["id"] == mine and allowed["namePrefix"] == "pub/"
    assert k.names(mine, prefix="pub/")["files"][0]["fileName"] == "pub/a.txt"
    k.upload(mine, "pub/c.txt", b"c")
    failures = [
        lambda: k.names(mine),
        lambda: k.names(mine, prefix="priv/"),
        lambda: k.names(other_bucket, prefix="pub/"),
        lambda: k.upload(mine, "priv/x", b"x"),
        lambda: k.upload(other_bucket, "pub/x", b"x"),
        lambda: k.call("b2_list_buckets", accountId=raw.account_id),
        lambda: k.call("b2_get_file_info", fileId=secret["fileId"]),
        lambda: k.call("b2_hide_file", bucketId=mine, fileName="priv/b.txt"),
        lambda: k.call("b2_delete_file_version", fileId=secret["fileId"], fileName="priv/b.txt"),
        lambda: k.call("b2_copy_file", sourceFileId=secret["fileId"], fileName="pub/copy"),
        lambda: k.call(
            "b2_get_download_authorization",
            bucketId=mine,
            fileNamePrefix="priv",
            validDurationInSeconds=60,
        ),  # fmt: skip
    ]
    for i, fail in enumerate(failures):
        with pytest.raises(ApiFailure) as e:
            fail()
        assert (e.value.status, e.value.code) == (401, "unauthorized"), i
    assert (
        k.call("b2_list_buckets", accountId=raw.account_id, bucketId=mine)["buckets"][0]["bucketId"]
        == mine
    )
    r = k.by_id(secret["fileId"])
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")


def test_expired_key(server: LocalServer, raw: Raw) -> None:
    key = create_key(raw, ["listBuckets"], validDurationInSeconds=1)
    k = Raw(server, key_id=key["applicationKeyId"], key=key["applicationKey"])
    time.sleep(1.1)
    with pytest.raises(ApiFailure) as e:
        k.call("b2_list_buckets", accountId=raw.account_id)
    assert e.value.code == "expired_auth_token"
    with pytest.raises(ApiFailure) as e:
        Raw(server, key_id=key["applicationKeyId"], key=key["applicationKey"])
    assert e.value.status == 401


def test_unknown_paths_and_methods(server: LocalServer, raw: Raw) -> None:
    r = raw.http.post(f"{server.realm}/b2api/v4/b2_no_such_call?x=1", json={})
    # B2 answers a name it does not know with 404 not_found, the path as message
    assert r.json() == {"status": 404, "code": "not_found", "message": "/b2api/v4/b2_no_such_call"}
    r = raw.http.post(f"{server.realm}/b2api/v9/b2_list_buckets", json={})
    assert r.status_code == 404
    r = raw.http.delete(
        f"{server.realm}/b2api/v4/b2_list_buckets", headers={"Authorization": raw.token}
    )
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    r = raw.http.post(f"{server.realm}/b2api/v4/b2_list_buckets", content=b"{nope",
                      headers={"Authorization": raw.token})  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (400, "bad_json")
    r = raw.http.get(f"{server.realm}/b2api/v4/b2_list_buckets", params={"accountId": raw.account_id},
                     headers={"Authorization": raw.token})  # fmt: skip
    assert r.status_code == 200 and "buckets" in r.json()
