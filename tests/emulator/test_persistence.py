"""Restart persistence, the ``b2fs serve`` command line, and concurrent clients."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import Raw

pytestmark = pytest.mark.timeout(60)


def test_everything_survives_a_restart(make_local_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "persist"
    srv = make_local_server(data, min_part_size=1000)
    raw = Raw(srv)
    bucket = raw.bucket()
    f = raw.upload(bucket, "keep/me.txt", b"persisted")
    raw.call("b2_hide_file", bucketId=bucket, fileName="keep/me.txt")
    g = raw.upload(bucket, "other", b"2")
    large = raw.call("b2_start_large_file", bucketId=bucket, fileName="big", contentType="a/b")
    key = raw.call(
        "b2_create_key", accountId=raw.account_id, capabilities=["listFiles"], keyName="kept"
    )
    versions = raw.versions(bucket)["files"]
    key_id, master = srv.key_id, srv.key
    srv.stop()
    again = make_local_server(data, min_part_size=1000)
    assert (again.key_id, again.key) == (key_id, master)
    raw2 = Raw(again)
    assert raw2.account_id == raw.account_id
    assert raw2.versions(bucket)["files"] == versions
    assert raw2.by_id(f["fileId"]).content == b"persisted"
    assert [x["fileId"] for x in raw2.names(bucket)["files"]] == [g["fileId"]]
    assert (
        raw2.call("b2_list_unfinished_large_files", bucketId=bucket)["files"][0]["fileId"]
        == large["fileId"]
    )
    Raw(again, key_id=key["applicationKeyId"], key=key["applicationKey"])
    # account tokens issued before the restart still work (on the new port)
    raw.realm = again.realm
    assert raw.names(bucket)["files"]


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "b2fs", "serve", *args], stdout=subprocess.PIPE, text=True
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_cli_prints_key_once(tmp_path: Path) -> None:
    data = tmp_path / "cli"
    proc = start_cli("--data", str(data), "--port", "0")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        stop(proc)
    text = "".join(lines)
    saved = json.loads((data / "master-key.json").read_text())
    assert stat.S_IMODE((data / "master-key.json").stat().st_mode) == 0o600
    assert "http://127.0.0.1:" in lines[0] and saved["key"] in text and saved["key_id"] in text
    proc = start_cli("--data", str(data), "--port", "0", "--json")
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
    finally:
        stop(proc)
    assert set(line) == {"realm", "key_id", "pid"} and line["pid"] == proc.pid
    assert line["key_id"] == saved["key_id"]
    proc = start_cli("--data", str(data), "--port", "0")
    try:
        assert proc.stdout is not None
        text = proc.stdout.readline() + proc.stdout.readline() + proc.stdout.readline()
    finally:
        stop(proc)
    assert saved["key"] not in text


def test_cli_given_key(tmp_path: Path) -> None:
    srv = LocalServer(
        tmp_path / "given", extra_args=["--key-id", "myKeyId01", "--key", "myVerySecretKey"]
    )
    with srv:
        assert (srv.key_id, srv.key) == ("myKeyId01", "myVerySecretKey")
        raw = Raw(srv)
        assert raw.call("b2_list_buckets", accountId=raw.account_id)["buckets"] == []
    bad = subprocess.run([sys.executable, "-m", "b2fs", "serve", "--data", str(tmp_path / "x"),
                          "--key-id", "only"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert bad.returncode != 0 and "go together" in bad.stderr


def test_concurrent_clients(raw: Raw, bucket: str) -> None:
    def work(i: int) -> bytes:
        data = os.urandom(20_000 + i)
        f = raw.upload(bucket, f"c/{i:03d}", data)
        assert raw.by_id(f["fileId"]).content == data
        raw.names(bucket, prefix="c/")
        return data

    with ThreadPoolExecutor(8) as ex:
        datas = list(ex.map(work, range(40)))
    files = raw.names(bucket, prefix="c/", maxFileCount=1000)["files"]
    assert [f["contentLength"] for f in files] == [len(d) for d in datas]


OLD_TABLES = """
CREATE TABLE buckets(
    bucket_id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
    info TEXT NOT NULL, cors TEXT NOT NULL, lifecycle TEXT NOT NULL,
    revision INTEGER NOT NULL, sse TEXT NOT NULL, file_lock INTEGER NOT NULL);
CREATE TABLE files(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, file_id TEXT UNIQUE NOT NULL,
    bucket_id TEXT NOT NULL, name TEXT NOT NULL, action TEXT NOT NULL,
    size INTEGER NOT NULL, sha1 TEXT, md5 TEXT, content_type TEXT,
    info TEXT NOT NULL, upload_ms INTEGER NOT NULL, blobs TEXT NOT NULL);
INSERT INTO buckets VALUES('0123456789abcdef01234567', 'old-bucket', 'allPrivate', '{}', '[]',
                           '[]', 1, '{"mode": null}', 0);
"""


def test_a_data_directory_of_an_older_version_is_upgraded(
    make_local_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    data = tmp_path / "old"
    data.mkdir()
    with sqlite3.connect(data / "meta.sqlite") as db:
        db.executescript(OLD_TABLES)
    raw = Raw(make_local_server(data))
    (b,) = raw.call("b2_list_buckets", accountId=raw.account_id)["buckets"]
    assert b["fileLockConfiguration"]["value"]["isFileLockEnabled"] is False
    f = raw.upload(b["bucketId"], "new", b"1", headers={"X-Bz-Server-Side-Encryption": "AES256"})
    assert (f["serverSideEncryption"]["mode"], f["replicationStatus"]) == ("SSE-B2", None)
    rules = raw.call("b2_get_bucket_notification_rules", bucketId=b["bucketId"])
    assert rules["eventNotificationRules"] == []


def test_pending_replication_survives_a_restart(make_local_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "repl"
    srv = make_local_server(data, extra_args=["--replication-delay", "60"])
    raw = Raw(srv)
    src_key = raw.call("b2_create_key", accountId=raw.account_id, keyName="s",
                       capabilities=["readFiles"])["applicationKeyId"]  # fmt: skip
    dst_key = raw.call("b2_create_key", accountId=raw.account_id, keyName="d",
                       capabilities=["writeFiles"])["applicationKeyId"]  # fmt: skip
    dest = raw.call("b2_create_bucket", accountId=raw.account_id, bucketName="repl-dest",
                    bucketType="allPrivate", replicationConfiguration={"asReplicationDestination": {
                        "sourceToDestinationKeyMapping": {src_key: dst_key}}})["bucketId"]  # fmt: skip
    rule = {"destinationBucketId": dest, "fileNamePrefix": "", "includeExistingFiles": False,
            "isEnabled": True, "priority": 1, "replicationRuleName": "restart-rule"}  # fmt: skip
    src = raw.call("b2_create_bucket", accountId=raw.account_id, bucketName="repl-src",
                   bucketType="allPrivate", replicationConfiguration={"asReplicationSource": {
                       "sourceApplicationKeyId": src_key, "replicationRules": [rule]}})["bucketId"]  # fmt: skip
    f = raw.upload(src, "later", b"after the restart")
    assert f["replicationStatus"] == "pending"
    srv.stop()
    raw = Raw(make_local_server(data))
    deadline = time.monotonic() + 10
    while raw.call("b2_get_file_info", fileId=f["fileId"])["replicationStatus"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (replica,) = raw.names(dest)["files"]
    assert raw.by_id(replica["fileId"]).content == b"after the restart"
