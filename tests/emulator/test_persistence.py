"""Restart persistence, the ``b2fs serve`` command line, and concurrent clients."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
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
