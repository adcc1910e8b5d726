"""Replication between buckets of one server (issue item 8): replicationConfiguration kept
and returned, new files replicated in the background (replicationStatus pending ->
completed on the source, "replica" on the copy), through raw HTTP, b2sdk and the b2 CLI."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.official import Cli, sdk
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)


def eventually(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``fn()`` once it is truthy (replication runs in the background)."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def new_bucket(raw: Raw, **kw: Any) -> dict:
    return raw.call("b2_create_bucket", accountId=raw.account_id, bucketType="allPrivate",
                    bucketName=f"r-{uuid.uuid4().hex[:16]}", **kw)  # fmt: skip


def key(raw: Raw, caps: list[str]) -> str:
    return raw.call("b2_create_key", accountId=raw.account_id, keyName="repl",
                    capabilities=caps)["applicationKeyId"]  # fmt: skip


def rule(dest: str, name: str, prefix: str, **kw: Any) -> dict:
    return {"destinationBucketId": dest, "fileNamePrefix": prefix, "includeExistingFiles": False,
            "isEnabled": True, "priority": 1, "replicationRuleName": name, **kw}  # fmt: skip


def status(raw: Raw, file_id: str) -> str | None:
    return raw.call("b2_get_file_info", fileId=file_id)["replicationStatus"]


def test_replication_raw(server: LocalServer, raw: Raw) -> None:
    src_key, dst_key = (
        key(raw, ["listBuckets", "readFiles"]),
        key(raw, ["listBuckets", "writeFiles"]),
    )
    dest = new_bucket(raw)["bucketId"]
    as_dest = {"asReplicationDestination": {"sourceToDestinationKeyMapping": {src_key: dst_key}}}
    d = raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=dest,
                 replicationConfiguration=as_dest)  # fmt: skip
    assert d["replicationConfiguration"] == {
        "isClientAuthorizedToRead": True,
        "value": {"asReplicationSource": None, **as_dest},
    }
    unmapped = new_bucket(raw)["bucketId"]
    source = {"asReplicationSource": {"sourceApplicationKeyId": src_key, "replicationRules": [
        rule(dest, "rule-one", "one/"), rule(unmapped, "rule-lost", "lost/")]}}  # fmt: skip
    s = new_bucket(raw, replicationConfiguration=source)
    assert s["replicationConfiguration"]["value"] == {**source, "asReplicationDestination": None}
    src = s["bucketId"]
    data = b"replicate me"
    old = raw.upload(src, "three/old", b"before")
    f = raw.upload(src, "one/a", data, info={"color": "red"})
    assert f["replicationStatus"] == "pending"
    assert raw.upload(src, "two/b", b"x")["replicationStatus"] is None
    lost = raw.upload(src, "lost/c", b"x")
    eventually(lambda: status(raw, f["fileId"]) == "completed")
    assert eventually(lambda: status(raw, lost["fileId"])) == "failed"  # no key mapping there
    (replica,) = raw.names(dest)["files"]
    assert (replica["fileName"], replica["replicationStatus"], replica["contentSha1"]) == (
        "one/a", "replica", hashlib.sha1(data).hexdigest())  # fmt: skip
    assert (replica["uploadTimestamp"], replica["fileInfo"]) == (
        f["uploadTimestamp"],
        {"color": "red"},
    )
    r = raw.by_id(replica["fileId"])
    assert (r.content, r.headers["x-bz-replication-status"]) == (data, "replica")
    # a copy and a large file into the source are replicated too
    copy = raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="one/copy")
    assert copy["replicationStatus"] == "pending"
    eventually(lambda: status(raw, copy["fileId"]) == "completed")
    # a rule that includes existing files replicates what is already there
    rules = source["asReplicationSource"]["replicationRules"] + [
        rule(dest, "rule-three", "three/", includeExistingFiles=True, priority=5)]  # fmt: skip
    raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=src, replicationConfiguration={
        "asReplicationSource": {"sourceApplicationKeyId": src_key, "replicationRules": rules}})  # fmt: skip
    eventually(lambda: status(raw, old["fileId"]) == "completed")
    assert sorted(x["fileName"] for x in raw.names(dest)["files"]) == [
        "one/a",
        "one/copy",
        "three/old",
    ]
    # Object Lock cannot be turned on for a replication source
    e = fails(lambda: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=src,
                               fileLockEnabled=True), 400, "source_replication_conflict")  # fmt: skip
    assert "source replication" in e.body["message"]


def test_replication_configuration_checks(server: LocalServer, raw: Raw, bucket: str) -> None:
    src_key = key(raw, ["readFiles"])
    bad = [
        rule("0" * 24, "no-such-dest", ""),
        rule(bucket, "x", ""),
        rule(bucket, "prio", "", priority=0),
    ]
    for r in bad:
        cfg = {"asReplicationSource": {"sourceApplicationKeyId": src_key, "replicationRules": [r]}}
        fails(lambda cfg=cfg: raw.call("b2_update_bucket", accountId=raw.account_id, bucketId=bucket,
                                       replicationConfiguration=cfg), 400, "bad_request")  # fmt: skip
    k = raw.call("b2_create_key", accountId=raw.account_id, keyName="no-repl",
                 capabilities=["listBuckets", "writeBuckets"])  # fmt: skip
    other = Raw(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    fails(lambda: other.call("b2_update_bucket", accountId=raw.account_id, bucketId=bucket,
                             replicationConfiguration={}), 401, "unauthorized")  # fmt: skip
    seen = other.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket)["buckets"][0]
    assert seen["replicationConfiguration"] == {"isClientAuthorizedToRead": False, "value": None}


def test_replication_b2sdk(server: LocalServer) -> None:
    from b2sdk import v3

    api = sdk(server)
    src_key = api.create_key(["listBuckets", "readFiles"], "sdk-src")
    dst_key = api.create_key(["listBuckets", "writeFiles"], "sdk-dst")
    dest = api.create_bucket(f"sdk-dst-{uuid.uuid4().hex[:8]}", "allPrivate",
                             replication=v3.ReplicationConfiguration(
                                 source_to_destination_key_mapping={src_key.id_: dst_key.id_}))  # fmt: skip
    config = v3.ReplicationConfiguration(
        rules=[v3.ReplicationRule(destination_bucket_id=dest.id_, name="sdk-rule")],
        source_key_id=src_key.id_,
    )
    source = api.create_bucket(f"sdk-src-{uuid.uuid4().hex[:8]}", "allPrivate", replication=config)
    assert api.list_buckets(bucket_name=source.name)[0].replication == config
    fv = source.upload_bytes(b"sdk data", "f.txt")
    assert fv.replication_status == v3.ReplicationStatus.PENDING
    eventually(
        lambda: api.get_file_info(fv.id_).replication_status == v3.ReplicationStatus.COMPLETED
    )
    ((replica, _),) = dest.ls()
    assert (replica.file_name, replica.replication_status) == (
        "f.txt",
        v3.ReplicationStatus.REPLICA,
    )


def test_replication_cli(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path / "home")
    src, dst = f"cli-src-{uuid.uuid4().hex[:8]}", f"cli-dst-{uuid.uuid4().hex[:8]}"
    cli("bucket", "create", src, "allPrivate")
    cli("bucket", "create", dst, "allPrivate")
    cli("replication", "setup", "--name", "cli-rule", src, dst)  # makes the keys and both configs
    s = cli.json("bucket", "get", src)
    (r,) = s["replication"]["asReplicationSource"]["replicationRules"]
    assert (r["replicationRuleName"], r["isEnabled"]) == ("cli-rule", True)
    assert cli.json("bucket", "get", dst)["replication"]["asReplicationDestination"]
    f = tmp_path / "f.txt"
    f.write_text("via the CLI\n")
    up = cli.json("file", "upload", "--quiet", src, str(f), "f.txt")
    assert up["replicationStatus"] == "PENDING"  # b2sdk's enum spelling of "pending"

    def replicated() -> bool:
        return (
            cli.json("file", "info", f"b2id://{up['fileId']}")["replicationStatus"] == "COMPLETED"
        )

    eventually(replicated)
    (replica,) = cli.json("ls", "--json", f"b2://{dst}")
    assert (replica["fileName"], replica["replicationStatus"]) == ("f.txt", "REPLICA")
    assert cli("file", "cat", f"b2://{dst}/f.txt") == "via the CLI\n"
