"""B2's exact answers (issue items 2, 3, 6, 7, 10, 11): authorize with a bad key or the
account ID, call names, custom upload timestamps, 401 messages, the shape of file IDs,
and the capabilities the master key lists. Raw HTTP, b2sdk and the b2 CLI."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from b2fs.emulator.process import LocalServer
from b2fs.emulator.store import CAPABILITIES, S3_ONLY_CAPABILITIES
from tests.emulator.official import Cli, sdk
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def special(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server whose master key ID is not the account ID and whose account may set
    custom upload timestamps."""
    srv = LocalServer(tmp_path_factory.mktemp("special"), extra_args=[
        "--key-id", "master-key-id-1", "--key", "K00secret", "--custom-upload-timestamps"]).start()  # fmt: skip
    yield srv
    srv.stop()


UNAUTHORIZED = {"status": 401, "code": "unauthorized", "message": ""}
STAMP = 1_234_567_890_123


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def test_authorize_bad_key_and_account_id(special: LocalServer, tmp_path: Path) -> None:
    from b2sdk.v3 import exception as sdk_errors

    srv = special
    raw = Raw(srv)
    account = raw.account_id
    assert account != srv.key_id
    url = f"{srv.realm}/b2api/v4/b2_authorize_account"
    r = httpx.get(url, auth=(srv.key_id, "K00wrong"))
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    by_account = httpx.get(
        url, auth=(account, srv.key)
    ).json()  # the account ID stands for the master key's
    assert by_account["accountId"] == account and by_account["authorizationToken"]
    with pytest.raises(sdk_errors.Unauthorized) as e:
        sdk(srv, key="K00wrong")
    assert e.value.code == "unauthorized"
    sdk(srv, key_id=account)
    cli_home = tmp_path / "cli"
    Cli(srv, cli_home, key_id=account)  # authorizes with the account ID
    bad = Cli(srv, tmp_path / "bad", key="K00wrong", authorize=False)
    err = bad.fails("account", "authorize")
    assert "ERROR: unable to authorize account:  (unauthorized)" in err


def test_every_call_b2sdk_makes_is_known(raw: Raw) -> None:
    from b2sdk._internal.raw_api import B2RawHTTPApi

    names = set(re.findall(r"'(b2_[a-z_]+)'", inspect.getsource(B2RawHTTPApi)))
    assert len(names) >= 27
    for name in sorted(names - {"b2_authorize_account"}):
        r = raw.http.post(
            f"{raw.realm}/b2api/v4/{name}", json={}, headers={"Authorization": raw.token}
        )
        assert r.status_code != 404, (name, r.json())
    r = raw.http.post(f"{raw.realm}/b2api/v4/b2_unknown_call", json={})
    assert r.json() == {"status": 404, "code": "not_found", "message": "/b2api/v4/b2_unknown_call"}


def test_custom_upload_timestamp_refused(
    server: LocalServer, raw: Raw, bucket: str, tmp_path: Path
) -> None:
    from b2sdk.v3 import exception as sdk_errors

    e = fails(lambda: raw.upload(bucket, "t", b"1", headers={"X-Bz-Custom-Upload-Timestamp": str(STAMP)}),
              400, "custom_timestamp_not_allowed")  # fmt: skip
    assert e.body["message"]
    fails(lambda: raw.call("b2_start_large_file", bucketId=bucket, fileName="t", contentType="b2/x-auto",
                           customUploadTimestamp=STAMP), 400, "custom_timestamp_not_allowed")  # fmt: skip
    api = sdk(server)
    b = api.list_buckets(bucket_id=bucket)[0]
    with (
        pytest.raises(sdk_errors.BadRequest, match="custom_timestamp_not_allowed"),
        pytest.warns(UserWarning),
    ):
        b.upload_bytes(b"1", "t", custom_upload_timestamp=STAMP)
    cli = Cli(server, tmp_path / "home")
    (tmp_path / "f").write_text("x")
    err = cli.fails("file", "upload", "--quiet", "--custom-upload-timestamp", str(STAMP), b.name,
                    str(tmp_path / "f"), "t")  # fmt: skip
    assert "custom_timestamp_not_allowed" in err


def test_custom_upload_timestamp_honoured(special: LocalServer, tmp_path: Path) -> None:
    srv = special
    raw = Raw(srv)
    bucket = raw.bucket()
    f = raw.upload(bucket, "t", b"1", headers={"X-Bz-Custom-Upload-Timestamp": str(STAMP)})
    assert f["uploadTimestamp"] == STAMP
    assert raw.names(bucket)["files"][0]["uploadTimestamp"] == STAMP
    assert raw.by_id(f["fileId"]).headers["x-bz-upload-timestamp"] == str(STAMP)
    fails(lambda: raw.upload(bucket, "u", b"1", headers={"X-Bz-Custom-Upload-Timestamp": "9" * 15}),
          400, "bad_request")  # fmt: skip
    for field in (
        "customUploadTimestamp",
        "custom_upload_timestamp",
    ):  # B2's docs, b2sdk's spelling
        s = raw.call("b2_start_large_file", bucketId=bucket, fileName="big", contentType="b2/x-auto",
                     **{field: STAMP})  # fmt: skip
        assert s["uploadTimestamp"] == STAMP
    api = sdk(srv)
    b = api.list_buckets(bucket_id=bucket)[0]
    assert (
        b.upload_bytes(b"2", "s", custom_upload_timestamp=STAMP + 1).upload_timestamp == STAMP + 1
    )
    cli = Cli(srv, tmp_path / "home")
    (tmp_path / "f").write_text("x")
    up = cli.json("file", "upload", "--quiet", "--custom-upload-timestamp", str(STAMP + 2), b.name,
                  str(tmp_path / "f"), "c")  # fmt: skip
    assert up["uploadTimestamp"] == STAMP + 2


def test_401_for_a_missing_capability(
    server: LocalServer, raw: Raw, bucket: str, tmp_path: Path
) -> None:
    from b2sdk.v3 import exception as sdk_errors

    name = raw.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket)["buckets"][0][
        "bucketName"
    ]
    k = raw.call("b2_create_key", accountId=raw.account_id, keyName="no-list", bucketIds=[bucket],
                 capabilities=["listBuckets", "readFiles"])  # fmt: skip
    weak = Raw(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    e = fails(lambda: weak.names(bucket), 401, "unauthorized")
    assert e.body == UNAUTHORIZED
    e = fails(lambda: weak.names(raw.bucket()), 401, "unauthorized")  # another bucket: the same
    assert e.body == UNAUTHORIZED
    api = sdk(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    with pytest.raises(sdk_errors.Unauthorized) as err:
        list(api.list_buckets(bucket_id=bucket)[0].ls())
    assert str(err.value) == (  # b2sdk adds the key's restrictions to B2's empty message
        f"unauthorized for application key with capabilities 'listBuckets,readFiles', "
        f"restricted to buckets ['{name}'] (unauthorized)"
    )
    cli = Cli(server, tmp_path / "home", key_id=k["applicationKeyId"], key=k["applicationKey"])
    out = cli.fails("ls", f"b2://{name}")
    assert "unauthorized for application key with capabilities 'listBuckets,readFiles'" in out


ID = re.compile(
    r"^4_z(?P<bucket>[0-9a-f]{24})_f(?P<kind>[12])[0-9a-f]{15}_d\d{8}_m\d{6}_c\d{3}_v\d{7}_t\d{4}_u0\d{13}$"
)


def test_file_ids_have_b2s_shape(
    server: LocalServer, raw: Raw, bucket: str, tmp_path: Path
) -> None:
    small = raw.upload(bucket, "small", b"1")
    copy = raw.call("b2_copy_file", sourceFileId=small["fileId"], fileName="copy")
    start = raw.call(
        "b2_start_large_file", bucketId=bucket, fileName="large", contentType="b2/x-auto"
    )
    kinds = {}
    for f in (small, copy, start):
        m = ID.match(f["fileId"])
        assert m and m["bucket"] == bucket, f["fileId"]
        kinds[f["fileName"]] = m["kind"]
    assert kinds == {"small": "1", "copy": "1", "large": "2"}  # the type digit after _f
    api = sdk(server)
    b = api.list_buckets(bucket_id=bucket)[0]
    assert ID.match(b.upload_bytes(b"2", "sdk").id_)
    cli = Cli(server, tmp_path / "home")
    first_columns = [line.split()[0] for line in cli("ls", "-l", f"b2://{b.name}").splitlines()]
    assert len(first_columns) == 3 and all(ID.match(x) for x in first_columns)


def test_capabilities_are_what_the_server_implements(
    server: LocalServer, raw: Raw, tmp_path: Path
) -> None:
    from b2sdk._internal.raw_api import ALL_CAPABILITIES

    allowed = raw.auth["apiInfo"]["storageApi"]["allowed"]["capabilities"]
    assert sorted(allowed) == sorted(CAPABILITIES)
    assert set(ALL_CAPABILITIES) - set(allowed) == set(S3_ONLY_CAPABILITIES)  # no S3 API here
    assert sdk(server).account_info.get_allowed()["capabilities"] == sorted(CAPABILITIES)
    cli = Cli(server, tmp_path / "home")
    account = cli.json("account", "get")
    assert sorted(account["allowed"]["capabilities"]) == sorted(CAPABILITIES)
    # a key may still be given B2's S3-only capabilities (they gate nothing here)
    key_id = cli("key", "create", "--all-capabilities", f"all-{uuid.uuid4().hex[:6]}").split()[0]
    (key,) = [k for k in raw.call("b2_list_keys", accountId=raw.account_id, maxKeyCount=10000)["keys"]
              if k["applicationKeyId"] == key_id]  # fmt: skip
    assert set(key["capabilities"]) >= set(S3_ONLY_CAPABILITIES)
