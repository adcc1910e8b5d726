"""Server-side encryption (issue items 1 and 5): SSE-B2 applied and reported for uploads,
copies, large files and bucket defaults; SSE-C keys required, checked and echoed.
Each through raw HTTP (exact status, code and fields), b2sdk and the ``b2`` CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.official import Cli, sdk
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)

B2_AES = {"algorithm": "AES256", "mode": "SSE-B2"}
NONE = {"algorithm": None, "mode": None}
NEEDS_KEY = (
    "The object was stored using a form of Server Side Encryption. The correct parameters "
    "must be provided to retrieve the object."
)


def ssec(key: bytes) -> tuple[dict[str, str], dict[str, str], str]:
    """(upload/download headers, JSON setting, key MD5) of an SSE-C key."""
    b64 = base64.b64encode(key).decode()
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    headers = {"X-Bz-Server-Side-Encryption-Customer-Algorithm": "AES256",
               "X-Bz-Server-Side-Encryption-Customer-Key": b64,
               "X-Bz-Server-Side-Encryption-Customer-Key-Md5": md5}  # fmt: skip
    return headers, {"mode": "SSE-C", "algorithm": "AES256", "customerKey": b64,
                     "customerKeyMd5": md5}, md5  # fmt: skip


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def test_sse_b2_raw(raw: Raw, bucket: str) -> None:
    f = raw.upload(bucket, "enc.txt", b"secret", headers={"X-Bz-Server-Side-Encryption": "AES256"})
    plain = raw.upload(bucket, "plain.txt", b"open")
    assert (f["serverSideEncryption"], plain["serverSideEncryption"]) == (B2_AES, NONE)
    r = raw.by_id(f["fileId"])
    assert (r.content, r.headers["x-bz-server-side-encryption"]) == (b"secret", "AES256")
    assert "x-bz-server-side-encryption" not in raw.by_id(plain["fileId"]).headers
    got = raw.call("b2_get_file_info", fileId=f["fileId"])["serverSideEncryption"]
    assert got == B2_AES
    listed = {x["fileName"]: x["serverSideEncryption"] for x in raw.names(bucket)["files"]}
    assert listed == {"enc.txt": B2_AES, "plain.txt": NONE}
    # a copy is encrypted as its destination says, else as the destination bucket's default
    c = raw.call("b2_copy_file", sourceFileId=plain["fileId"], fileName="c1",
                 destinationServerSideEncryption={"mode": "SSE-B2", "algorithm": "AES256"})  # fmt: skip
    assert (c["action"], c["serverSideEncryption"]) == ("copy", B2_AES)
    c = raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="c2")
    assert c["serverSideEncryption"] == NONE
    # large files: the start names it, parts and the finished file carry it
    start = raw.call("b2_start_large_file", bucketId=bucket, fileName="big", contentType="b2/x-auto",
                     serverSideEncryption={"mode": "SSE-B2", "algorithm": "AES256"})  # fmt: skip
    assert start["serverSideEncryption"] == B2_AES
    fails(lambda: raw.upload(bucket, "x", b"1", headers={"X-Bz-Server-Side-Encryption": "AES128"}),
          400, "bad_request")  # fmt: skip


def test_sse_b2_bucket_default(server: LocalServer, raw: Raw) -> None:
    b = raw.call("b2_create_bucket", accountId=raw.account_id, bucketName=f"d-{uuid.uuid4().hex[:16]}",
                 bucketType="allPrivate",
                 defaultServerSideEncryption={"mode": "SSE-B2", "algorithm": "AES256"})  # fmt: skip
    assert b["defaultServerSideEncryption"] == {"isClientAuthorizedToRead": True, "value": B2_AES}
    assert raw.upload(b["bucketId"], "f", b"1")["serverSideEncryption"] == B2_AES
    u = raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                 defaultServerSideEncryption={"mode": None})  # fmt: skip
    assert u["defaultServerSideEncryption"]["value"] == {"mode": None}
    assert raw.upload(b["bucketId"], "g", b"1")["serverSideEncryption"] == NONE
    _, sse_c, _ = ssec(os.urandom(32))
    fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                           defaultServerSideEncryption=sse_c), 400, "bad_request")  # fmt: skip
    # a key without the bucket-encryption capabilities neither sees nor sets the default
    k = raw.call("b2_create_key", accountId=raw.account_id, keyName="no-enc",
                 capabilities=["listBuckets", "writeBuckets"])  # fmt: skip
    other = Raw(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    seen = other.call("b2_list_buckets", accountId=raw.account_id, bucketId=b["bucketId"])
    assert seen["buckets"][0]["defaultServerSideEncryption"] == {
        "isClientAuthorizedToRead": False, "value": None}  # fmt: skip
    e = fails(lambda: other.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
              defaultServerSideEncryption={"mode": "SSE-B2", "algorithm": "AES256"}), 401, "unauthorized")  # fmt: skip
    assert e.body["message"] == ""


def test_sse_c_raw(raw: Raw, bucket: str) -> None:
    key, other_key = os.urandom(32), os.urandom(32)
    h, js, md5 = ssec(key)
    h2, js2, md5_2 = ssec(other_key)
    c_shape = {"algorithm": "AES256", "customerKeyMd5": md5, "mode": "SSE-C"}
    f = raw.upload(bucket, "c.bin", b"customer data", headers=h)
    assert f["serverSideEncryption"] == c_shape
    bad = {**h, "X-Bz-Server-Side-Encryption-Customer-Key-Md5": md5_2}
    fails(lambda: raw.upload(bucket, "x", b"1", headers=bad), 400, "bad_request")
    short = {**h, "X-Bz-Server-Side-Encryption-Customer-Key": base64.b64encode(b"k" * 16).decode()}
    fails(lambda: raw.upload(bucket, "x", b"1", headers=short), 400, "bad_request")
    # reading the content needs the key: absent 400, wrong 403, right 200
    for get in (lambda **kw: raw.by_id(f["fileId"], **kw),
                lambda **kw: raw.get(f"/file/{name_of(raw, bucket)}/c.bin", **kw)):  # fmt: skip
        r = get()
        assert (r.status_code, r.json()) == (400, {"status": 400, "code": "bad_request",
                                                   "message": NEEDS_KEY})  # fmt: skip
        r = get(**h2)
        assert (r.status_code, r.json()["code"]) == (403, "access_denied")
        r = get(**h)
        assert (r.status_code, r.content) == (200, b"customer data")
        assert r.headers["x-bz-server-side-encryption-customer-algorithm"] == "AES256"
        assert r.headers["x-bz-server-side-encryption-customer-key-md5"] == md5
    head = raw.http.head(f"{raw.realm}/file/{name_of(raw, bucket)}/c.bin",
                         headers={"Authorization": raw.token})  # fmt: skip
    assert (head.status_code, head.headers["x-bz-server-side-encryption-customer-key-md5"]) == (
        200, md5)  # fmt: skip
    assert raw.call("b2_get_file_info", fileId=f["fileId"])["serverSideEncryption"] == c_shape
    assert raw.names(bucket)["files"][0]["serverSideEncryption"] == c_shape
    # copies need the source key; the copy has its own
    fails(
        lambda: raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="y"), 400, "bad_request"
    )
    fails(lambda: raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="y",
                           sourceServerSideEncryption=js2), 403, "access_denied")  # fmt: skip
    c = raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="y",
                 sourceServerSideEncryption=js, destinationServerSideEncryption=js2)  # fmt: skip
    assert c["serverSideEncryption"] == {**c_shape, "customerKeyMd5": md5_2}
    assert raw.by_id(c["fileId"], **h2).content == b"customer data"


def test_sse_c_large_file_raw(raw: Raw, bucket: str) -> None:
    key = os.urandom(32)
    h, js, md5 = ssec(key)
    c_shape = {"algorithm": "AES256", "customerKeyMd5": md5, "mode": "SSE-C"}
    src = raw.upload(bucket, "src", b"s" * 1000, headers=h)
    start = raw.call("b2_start_large_file", bucketId=bucket, fileName="large", contentType="b2/x-auto",
                     serverSideEncryption=js)  # fmt: skip
    assert start["serverSideEncryption"] == c_shape and start["fileId"].split("_")[2][:2] == "f2"
    url = raw.call("b2_get_upload_part_url", fileId=start["fileId"])
    part = b"p" * 5_000_000

    def put(headers: dict[str, str]) -> dict:
        return raw.check(raw.http.post(url["uploadUrl"], content=part, headers={
            "Authorization": url["authorizationToken"], "X-Bz-Part-Number": "1",
            "X-Bz-Content-Sha1": hashlib.sha1(part).hexdigest(), **headers}))  # fmt: skip

    fails(lambda: put({}), 400, "bad_request")
    assert put(h)["serverSideEncryption"] == c_shape
    fails(lambda: raw.call("b2_copy_part", sourceFileId=src["fileId"], largeFileId=start["fileId"],
                           partNumber=2, destinationServerSideEncryption=js), 400, "bad_request")  # fmt: skip
    p2 = raw.call("b2_copy_part", sourceFileId=src["fileId"], largeFileId=start["fileId"], partNumber=2,
                  sourceServerSideEncryption=js, destinationServerSideEncryption=js)  # fmt: skip
    assert p2["serverSideEncryption"] == c_shape
    parts = raw.call("b2_list_parts", fileId=start["fileId"])["parts"]
    assert [p["serverSideEncryption"] for p in parts] == [c_shape, c_shape]
    done = raw.call("b2_finish_large_file", fileId=start["fileId"],
                    partSha1Array=[p["contentSha1"] for p in parts])  # fmt: skip
    assert done["serverSideEncryption"] == c_shape
    assert raw.by_id(done["fileId"]).status_code == 400
    assert raw.by_id(done["fileId"], Range="bytes=4999999-5000000", **h).content == b"ps"


def name_of(raw: Raw, bucket_id: str) -> str:
    return raw.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket_id)["buckets"][0][
        "bucketName"
    ]


def test_sse_b2sdk(server: LocalServer) -> None:
    from b2sdk import v3
    from b2sdk.v3 import exception as sdk_errors

    api = sdk(server)
    bucket = api.create_bucket(f"sse-{uuid.uuid4().hex[:12]}", "allPrivate",
                               default_server_side_encryption=v3.SSE_B2_AES)  # fmt: skip
    assert (
        api.list_buckets(bucket_name=bucket.name)[0].default_server_side_encryption == v3.SSE_B2_AES
    )
    fv = bucket.upload_bytes(b"by default", "d.txt")
    assert fv.server_side_encryption == v3.SSE_B2_AES
    key = v3.EncryptionKey(secret=os.urandom(32), key_id="my-key")
    sse_c = v3.EncryptionSetting(v3.EncryptionMode.SSE_C, v3.EncryptionAlgorithm.AES256, key)
    fv = bucket.upload_bytes(b"customer", "c.txt", encryption=sse_c)
    assert fv.server_side_encryption.mode == v3.EncryptionMode.SSE_C
    assert fv.file_info["sse_c_key_id"] == "my-key"
    with pytest.raises(sdk_errors.BadRequest, match="Server Side Encryption"):
        bucket.download_file_by_id(fv.id_).save(io.BytesIO())
    wrong = v3.EncryptionSetting(v3.EncryptionMode.SSE_C, v3.EncryptionAlgorithm.AES256,
                                 v3.EncryptionKey(secret=os.urandom(32), key_id=None))  # fmt: skip
    with pytest.raises(sdk_errors.SSECKeyError):
        bucket.download_file_by_id(fv.id_, encryption=wrong).save(io.BytesIO())
    out = io.BytesIO()
    bucket.download_file_by_name("c.txt", encryption=sse_c).save(out)
    assert out.getvalue() == b"customer"
    copy = bucket.copy(fv.id_, "c-copy.txt", source_encryption=sse_c, destination_encryption=sse_c,
                       source_file_info=fv.file_info, source_content_type=fv.content_type)  # fmt: skip
    assert copy.server_side_encryption.mode == v3.EncryptionMode.SSE_C
    modes = {f.file_name: f.server_side_encryption.mode for f, _ in bucket.ls(recursive=True)}
    assert modes == {"c-copy.txt": v3.EncryptionMode.SSE_C, "c.txt": v3.EncryptionMode.SSE_C,
                     "d.txt": v3.EncryptionMode.SSE_B2}  # fmt: skip


def test_sse_cli(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path / "home")
    name = f"cli-sse-{uuid.uuid4().hex[:10]}"
    cli("bucket", "create", "--default-server-side-encryption=SSE-B2", name, "allPrivate")
    assert cli.json("bucket", "get", name)["defaultServerSideEncryption"] == B2_AES
    src = tmp_path / "src.txt"
    src.write_bytes(b"from the b2 CLI\n")
    f = cli.json("file", "upload", "--quiet", name, str(src), "plain-default.txt")
    assert f["serverSideEncryption"] == B2_AES
    env = {"B2_DESTINATION_SSE_C_KEY_B64": base64.b64encode(os.urandom(32)).decode(),
           "B2_DESTINATION_SSE_C_KEY_ID": "cli-key"}  # fmt: skip
    f = cli.json("file", "upload", "--quiet", "--destination-server-side-encryption", "SSE-C",
                 name, str(src), "customer.txt", env=env)  # fmt: skip
    assert f["serverSideEncryption"]["mode"] == "SSE-C"
    uri = f"b2://{name}/customer.txt"
    err = cli.fails("file", "download", "--quiet", uri, str(tmp_path / "x"))
    assert "The object was stored using a form of Server Side Encryption" in err
    assert "(bad_request)" in err
    wrong = {"B2_SOURCE_SSE_C_KEY_B64": base64.b64encode(os.urandom(32)).decode()}
    err = cli.fails("file", "download", "--quiet", "--source-server-side-encryption", "SSE-C", uri,
                    str(tmp_path / "x"), env=wrong)  # fmt: skip
    assert "Wrong or no SSE-C key provided when reading a file." in err
    right = {"B2_SOURCE_SSE_C_KEY_B64": env["B2_DESTINATION_SSE_C_KEY_B64"]}
    cli("file", "download", "--quiet", "--source-server-side-encryption", "SSE-C", uri,
        str(tmp_path / "got"), env=right)  # fmt: skip
    assert (tmp_path / "got").read_bytes() == src.read_bytes()
    cli("file", "server-side-copy", "--source-server-side-encryption=SSE-C", "--fetch-metadata",
        f"b2id://{f['fileId']}", f"b2://{name}/decrypted-copy.txt", env=right)  # fmt: skip
    listed = {x["fileName"]: x["serverSideEncryption"]["mode"]
              for x in cli.json("ls", "--json", "-r", f"b2://{name}")}  # fmt: skip
    assert listed == {"customer.txt": "SSE-C", "decrypted-copy.txt": "SSE-B2",
                      "plain-default.txt": "SSE-B2"}  # fmt: skip
