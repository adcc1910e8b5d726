"""Object Lock (issue item 4): fileLockEnabled and defaultRetention on buckets, retention
and legal hold on uploads, copies and large files, b2_update_file_retention /
b2_update_file_legal_hold, and deletes refused as B2 refuses them. Raw HTTP, b2sdk, b2 CLI."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.official import Cli, sdk
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)
HOUR, DAY = 3_600_000, 86_400_000
MISSING = {"status": 400, "code": "bucket_missing_file_lock",
           "message": "The bucket is not file lock enabled"}  # fmt: skip
DENIED = {"status": 401, "code": "access_denied", "message": "Access Denied"}


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def now() -> int:
    return int(time.time() * 1000)


def lock_bucket(raw: Raw) -> dict:
    return raw.call("b2_create_bucket", accountId=raw.account_id, bucketType="allPrivate",
                    bucketName=f"lock-{uuid.uuid4().hex[:16]}", fileLockEnabled=True)  # fmt: skip


def retention_headers(mode: str, until: int) -> dict[str, str]:
    return {"X-Bz-File-Retention-Mode": mode,
            "X-Bz-File-Retention-Retain-Until-Timestamp": str(until)}  # fmt: skip


def test_bucket_lock_settings_raw(raw: Raw, bucket: str) -> None:
    e = fails(lambda: raw.upload(bucket, "a", b"1", headers=retention_headers("governance", now() + HOUR)),
              400, "bucket_missing_file_lock")  # fmt: skip
    assert e.body == MISSING
    e = fails(lambda: raw.upload(bucket, "a", b"1", headers={"X-Bz-File-Legal-Hold": "on"}),
              400, "bucket_missing_file_lock")  # fmt: skip
    default = {"mode": "governance", "period": {"duration": 1, "unit": "days"}}
    fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=bucket,
                           defaultRetention=default), 400, "bucket_missing_file_lock")  # fmt: skip
    b = lock_bucket(raw)
    assert b["fileLockConfiguration"] == {"isClientAuthorizedToRead": True, "value": {
        "defaultRetention": {"mode": None, "period": None}, "isFileLockEnabled": True}}  # fmt: skip
    u = raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                 defaultRetention=default)  # fmt: skip
    assert u["fileLockConfiguration"]["value"]["defaultRetention"] == default
    f = raw.upload(b["bucketId"], "by-default", b"1")
    assert f["fileRetention"]["value"]["mode"] == "governance"
    assert f["fileRetention"]["value"]["retainUntilTimestamp"] == f["uploadTimestamp"] + DAY
    fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                           fileLockEnabled=False), 400, "file_lock_conflict")  # fmt: skip
    fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=b["bucketId"],
                           defaultRetention={"mode": "compliance"}), 400, "bad_request")  # fmt: skip
    # Object Lock can be turned on for an existing bucket
    on = raw.call(
        "b2_update_bucket", accountId=raw.account_id, bucketId=bucket, fileLockEnabled=True
    )
    assert on["fileLockConfiguration"]["value"]["isFileLockEnabled"] is True


def test_retention_and_legal_hold_raw(server: LocalServer, raw: Raw) -> None:
    b = lock_bucket(raw)["bucketId"]
    until = now() + HOUR
    f = raw.upload(b, "held", b"1", headers={**retention_headers("governance", until),
                                            "X-Bz-File-Legal-Hold": "on"})  # fmt: skip
    assert f["fileRetention"] == {
        "isClientAuthorizedToRead": True,
        "value": {"mode": "governance", "retainUntilTimestamp": until},
    }
    assert f["legalHold"] == {"isClientAuthorizedToRead": True, "value": "on"}
    r = raw.by_id(f["fileId"])
    assert (r.headers["x-bz-file-retention-mode"], r.headers["x-bz-file-legal-hold"]) == (
        "governance", "on")  # fmt: skip
    assert r.headers["x-bz-file-retention-retain-until-timestamp"] == str(until)
    fails(lambda: raw.upload(b, "past", b"1", headers=retention_headers("governance", now() - 1)),
          400, "retain_until_timestamp_must_be_in_future")  # fmt: skip

    # delete: refused under legal hold, even with a bypass
    def delete(**kw: object) -> dict:
        return raw.call("b2_delete_file_version", fileId=f["fileId"], fileName="held", **kw)

    assert fails(lambda: delete(bypassGovernance=True), 401, "access_denied").body == DENIED
    hold = raw.call(
        "b2_update_file_legal_hold", fileId=f["fileId"], fileName="held", legalHold="off"
    )
    assert hold == {"fileId": f["fileId"], "fileName": "held", "legalHold": "off"}
    # governance: shortening needs the bypass, extending does not
    fails(lambda: delete(), 401, "access_denied")
    ext = raw.call("b2_update_file_retention", fileId=f["fileId"], fileName="held",
                   fileRetention={"mode": "governance", "retainUntilTimestamp": until + HOUR})  # fmt: skip
    assert ext["fileRetention"] == {"mode": "governance", "retainUntilTimestamp": until + HOUR}
    short = {"mode": "governance", "retainUntilTimestamp": until}
    fails(lambda: raw.call("b2_update_file_retention", fileId=f["fileId"], fileName="held",
                           fileRetention=short), 403, "access_denied")  # fmt: skip
    raw.call("b2_update_file_retention", fileId=f["fileId"], fileName="held", fileRetention=short,
             bypassGovernance=True)  # fmt: skip
    # a key without bypassGovernance cannot bypass; one without writeFileRetentions cannot write
    k = raw.call("b2_create_key", accountId=raw.account_id, keyName="no-bypass",
                 capabilities=["listFiles", "readFiles", "writeFiles", "deleteFiles"])  # fmt: skip
    weak = Raw(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    e = fails(lambda: weak.call("b2_delete_file_version", fileId=f["fileId"], fileName="held",
                                bypassGovernance=True), 401, "unauthorized")  # fmt: skip
    assert e.body["message"] == ""
    fails(lambda: weak.call("b2_update_file_retention", fileId=f["fileId"], fileName="held",
                            fileRetention=short), 403, "access_denied")  # fmt: skip
    fails(lambda: weak.call("b2_update_file_legal_hold", fileId=f["fileId"], fileName="held",
                            legalHold="on"), 403, "access_denied")  # fmt: skip
    fails(
        lambda: weak.upload(b, "w", b"1", headers={"X-Bz-File-Legal-Hold": "on"}),
        401,
        "unauthorized",
    )
    # and one without the read capabilities does not see them
    seen = weak.call("b2_get_file_info", fileId=f["fileId"])
    assert seen["fileRetention"] == seen["legalHold"] == {"isClientAuthorizedToRead": False,
                                                          "value": None}  # fmt: skip
    hidden = weak.by_id(f["fileId"]).headers["x-bz-client-unauthorized-to-read"]
    assert hidden == ("X-Bz-File-Retention-Mode,X-Bz-File-Retention-Retain-Until-Timestamp,"
                      "X-Bz-File-Legal-Hold")  # fmt: skip
    assert raw.call("b2_delete_file_version", fileId=f["fileId"], fileName="held",
                    bypassGovernance=True)["fileId"] == f["fileId"]  # fmt: skip
    # compliance never weakens, bypass or not
    c = raw.upload(b, "comply", b"1", headers=retention_headers("compliance", now() + HOUR))
    fails(lambda: raw.call("b2_delete_file_version", fileId=c["fileId"], fileName="comply",
                           bypassGovernance=True), 401, "access_denied")  # fmt: skip
    fails(lambda: raw.call("b2_update_file_retention", fileId=c["fileId"], fileName="comply",
                           fileRetention={"mode": None}, bypassGovernance=True), 403, "access_denied")  # fmt: skip


def test_lock_on_copies_and_large_files_raw(raw: Raw, bucket: str) -> None:
    b = lock_bucket(raw)["bucketId"]
    src = raw.upload(bucket, "src", b"abc")
    lock = {"fileRetention": {"mode": "governance", "retainUntilTimestamp": now() + HOUR},
            "legalHold": "on"}  # fmt: skip
    e = fails(lambda: raw.call("b2_copy_file", sourceFileId=src["fileId"], fileName="c", **lock),
              400, "bucket_missing_file_lock")  # fmt: skip
    assert e.body == MISSING
    c = raw.call("b2_copy_file", sourceFileId=src["fileId"], fileName="c", destinationBucketId=b,
                 **lock)  # fmt: skip
    assert (c["fileRetention"]["value"], c["legalHold"]["value"]) == (lock["fileRetention"], "on")
    start = raw.call(
        "b2_start_large_file", bucketId=b, fileName="big", contentType="b2/x-auto", **lock
    )
    assert (start["fileRetention"]["value"], start["legalHold"]["value"]) == (
        lock["fileRetention"],
        "on",
    )
    fails(lambda: raw.call("b2_start_large_file", bucketId=bucket, fileName="big",
                           contentType="b2/x-auto", **lock), 400, "bucket_missing_file_lock")  # fmt: skip


def test_file_lock_b2sdk(server: LocalServer) -> None:
    from b2sdk import v3
    from b2sdk.v3 import exception as sdk_errors

    api = sdk(server)
    plain = api.create_bucket(f"nolock-{uuid.uuid4().hex[:12]}", "allPrivate")
    bucket = api.create_bucket(
        f"lock-{uuid.uuid4().hex[:12]}", "allPrivate", is_file_lock_enabled=True
    )
    assert bucket.is_file_lock_enabled is True
    default = v3.BucketRetentionSetting(v3.RetentionMode.GOVERNANCE, v3.RetentionPeriod(days=1))
    bucket = bucket.update(default_retention=default)
    assert bucket.default_retention == default
    until = now() + HOUR
    retention = v3.FileRetentionSetting(v3.RetentionMode.GOVERNANCE, until)
    fv = bucket.upload_bytes(b"x", "a", file_retention=retention, legal_hold=v3.LegalHold.ON)
    assert (fv.file_retention, fv.legal_hold) == (retention, v3.LegalHold.ON)
    info = api.get_file_info(fv.id_)
    assert (info.file_retention, info.legal_hold) == (retention, v3.LegalHold.ON)
    with (
        pytest.raises(sdk_errors.BadRequest, match="bucket_missing_file_lock"),
        pytest.warns(
            UserWarning,
            match="unknown `code`",  # b2sdk has no class for this code
        ),
    ):
        plain.upload_bytes(b"x", "a", legal_hold=v3.LegalHold.ON)
    api.update_file_legal_hold(fv.id_, "a", v3.LegalHold.OFF)
    shorter = v3.FileRetentionSetting(v3.RetentionMode.GOVERNANCE, until - 1000)
    with pytest.raises(sdk_errors.RetentionWriteError):
        api.update_file_retention(fv.id_, "a", shorter)
    assert api.update_file_retention(fv.id_, "a", shorter, bypass_governance=True) == shorter
    with pytest.raises(sdk_errors.Unauthorized, match="Access Denied"):
        api.delete_file_version(fv.id_, "a")
    api.delete_file_version(fv.id_, "a", bypass_governance=True)
    with pytest.raises(sdk_errors.DisablingFileLockNotSupported):
        bucket.update(is_file_lock_enabled=False)


def test_file_lock_cli(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path / "home")
    plain, locked = f"cli-nolock-{uuid.uuid4().hex[:8]}", f"cli-lock-{uuid.uuid4().hex[:8]}"
    cli("bucket", "create", plain, "allPrivate")
    cli("bucket", "create", "--file-lock-enabled", locked, "allPrivate")
    src = tmp_path / "f.txt"
    src.write_text("locked content\n")
    until = str(now() + 2 * DAY)  # beyond the default retention of the uploads below
    err = cli.fails("file", "upload", "--quiet", plain, str(src), "a", "--file-retention-mode",
                    "governance", "--retain-until", until, "--legal-hold", "on")  # fmt: skip
    assert "ERROR: The bucket is not file lock enabled (bucket_missing_file_lock)" in err
    b = cli.json("bucket", "update", locked, "allPrivate", "--default-retention-mode", "governance",
                 "--default-retention-period", "1 days")  # fmt: skip
    assert b["defaultRetention"] == {
        "mode": "governance",
        "period": {"duration": 1, "unit": "days"},
    }
    cli("file", "upload", "--quiet", plain, str(src), "a")
    f = cli.json("file", "upload", "--quiet", locked, str(src), "a")
    err = cli.fails("file", "update", "--legal-hold", "on", f"b2://{plain}/a")
    assert "ERROR: The bucket is not file lock enabled (bucket_missing_file_lock)" in err
    cli("file", "update", "--legal-hold", "on", f"b2://{locked}/a")
    cli("file", "update", "--file-retention-mode", "governance", "--retain-until", until,
        f"b2://{locked}/a")  # fmt: skip
    info = cli.json("file", "info", f"b2id://{f['fileId']}")
    assert (info["legalHold"], info["fileRetention"]) == (
        "on", {"mode": "governance", "retainUntilTimestamp": int(until)})  # fmt: skip
    err = cli.fails("file", "update", "--file-retention-mode", "governance", "--retain-until",
                    str(now() + DAY + HOUR), f"b2://{locked}/a")  # fmt: skip
    assert ("Auth token not authorized to write retention or file already in 'compliance' mode "
            "or bypassGovernance=true parameter missing") in err  # fmt: skip
    cli("file", "update", "--legal-hold", "off", f"b2://{locked}/a")
    err = cli.fails("rm", f"b2id://{f['fileId']}")
    assert "Access Denied for application key" in err
    cli("rm", "--bypass-governance", f"b2id://{f['fileId']}")
    assert cli("ls", "--versions", f"b2://{locked}").strip() == ""
