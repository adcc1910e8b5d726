"""Independent clients, unmodified: Backblaze's b2sdk (its v3 and older v2 interfaces,
which speak /b2api/v4 and /b2api/v3) and the official ``b2`` command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer

pytestmark = pytest.mark.timeout(120)
PART = 100_000


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = LocalServer(tmp_path_factory.mktemp("official"), min_part_size=PART,
                      extra_args=["--recommended-part-size", str(2 * PART)]).start()  # fmt: skip
    yield srv
    srv.stop()


def sdk_api(srv: LocalServer, interface: str):  # type: ignore[no-untyped-def]
    if interface == "v2":
        from b2sdk import v2

        api = v2.B2Api(v2.InMemoryAccountInfo())
        api.authorize_account(srv.realm, srv.key_id, srv.key)
        return api, v2
    from b2sdk import v3

    api = v3.B2Api(v3.InMemoryAccountInfo())
    api.authorize_account(srv.key_id, srv.key, srv.realm)
    return api, v3


@pytest.mark.parametrize("interface", ["v3", "v2"])
def test_b2sdk(small_server: LocalServer, interface: str) -> None:
    api, sdk = sdk_api(small_server, interface)
    bucket = api.create_bucket(f"sdk-{interface}-{uuid.uuid4().hex[:8]}", "allPrivate")
    small = b"small file \xe2\x9c\x93"
    big = os.urandom(5 * PART + 123)
    fv = bucket.upload_bytes(small, "dir/small ü.txt", file_info={"color": "blue"})
    large = bucket.upload(sdk.UploadSourceBytes(big), "dir/big.bin")
    assert (
        large.content_sha1 in (None, "none") or large.content_sha1 == hashlib.sha1(big).hexdigest()
    )
    assert small_server.counters()["calls"].get("b2_upload_part", 0) >= 2
    names = sorted(f.file_name for f, _ in bucket.ls("dir", recursive=True))
    assert names == ["dir/big.bin", "dir/small ü.txt"]
    top = [(f.file_name if f else None, folder) for f, folder in bucket.ls()]
    assert top == [(None, "dir/")] or [x[1] for x in top] == ["dir/"]

    out = io.BytesIO()
    bucket.download_file_by_name("dir/big.bin").save(out)
    assert out.getvalue() == big
    out = io.BytesIO()
    bucket.download_file_by_id(large.id_, range_=(PART - 10, PART + 10)).save(out)
    assert out.getvalue() == big[PART - 10 : PART + 11]
    info = bucket.get_file_info_by_name("dir/small ü.txt")
    assert (info.file_info, info.size) == ({"color": "blue"}, len(small))
    assert api.get_file_info(fv.id_).file_name == "dir/small ü.txt"

    copy = bucket.copy(fv.id_, "copied.txt")
    out = io.BytesIO()
    bucket.download_file_by_id(copy.id_).save(out)
    assert out.getvalue() == small
    big_copy = bucket.copy(
        large.id_, "big-copy.bin", length=len(big)
    )  # copy_part path for large sources
    out = io.BytesIO()
    bucket.download_file_by_id(big_copy.id_).save(out)
    assert out.getvalue() == big

    bucket.hide_file("copied.txt")
    assert "copied.txt" not in [f.file_name for f, _ in bucket.ls(recursive=True)]
    versions = [f for f, _ in bucket.ls(recursive=True, latest_only=False)]
    assert sum(f.file_name == "copied.txt" for f in versions) == 2
    for f in versions:
        if f.file_name == "copied.txt":
            bucket.delete_file_version(f.id_, f.file_name)
    assert "copied.txt" not in [
        f.file_name for f, _ in bucket.ls(recursive=True, latest_only=False)
    ]

    restriction = {"bucket_ids": [bucket.id_]} if interface == "v3" else {"bucket_id": bucket.id_}
    key = api.create_key(
        ["listBuckets", "listFiles", "readFiles"],
        "sdk-restricted",
        name_prefix="dir/",
        **restriction,
    )
    restricted = sdk.B2Api(sdk.InMemoryAccountInfo())
    if interface == "v2":
        restricted.authorize_account(small_server.realm, key.id_, key.application_key)
    else:
        restricted.authorize_account(key.id_, key.application_key, small_server.realm)
    rb = restricted.get_bucket_by_name(bucket.name)
    assert sorted(f.file_name for f, _ in rb.ls("dir/", recursive=True)) == names
    with pytest.raises(Exception, match="(?i)unauthorized|not allowed|restricted"):
        rb.upload_bytes(b"x", "dir/nope")
    api.delete_key(key)
    assert key.id_ not in [k.id_ for k in api.list_keys()]
    for f, _ in list(bucket.ls(recursive=True, latest_only=False)):
        bucket.delete_file_version(f.id_, f.file_name)
    api.delete_bucket(bucket)


def b2(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([str(Path(sys.executable).parent / "b2"), *args], env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_b2_cli(small_server: LocalServer, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "B2_ENVIRONMENT": small_server.realm,
           "B2_ACCOUNT_INFO": str(tmp_path / "account"), "B2_ESCAPE_CONTROL_CHARACTERS": "0",
           "B2_APPLICATION_KEY_ID": small_server.key_id, "B2_APPLICATION_KEY": small_server.key}  # fmt: skip
    b2(env, "account", "authorize")  # keys from the environment, never on a command line
    name = f"cli-{uuid.uuid4().hex[:10]}"
    b2(env, "bucket", "create", name, "allPrivate")
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"hello from the b2 CLI\n")
    big.write_bytes(os.urandom(5 * PART + 77))
    b2(env, "file", "upload", "--no-progress", name, str(small), "docs/small.txt")
    b2(env, "file", "upload", "--no-progress", "--threads", "2", name, str(big), "docs/big.bin")
    assert small_server.counters()["calls"].get("b2_finish_large_file", 0) >= 1
    listing = b2(env, "ls", "-r", f"b2://{name}").split()
    assert listing == ["docs/big.bin", "docs/small.txt"]
    assert b2(env, "ls", f"b2://{name}").split() == ["docs/"]
    b2(
        env,
        "file",
        "download",
        "--no-progress",
        f"b2://{name}/docs/big.bin",
        str(tmp_path / "got.bin"),
    )
    assert (tmp_path / "got.bin").read_bytes() == big.read_bytes()
    assert b2(env, "file", "cat", f"b2://{name}/docs/small.txt") == small.read_text()
    info = json.loads(b2(env, "file", "info", f"b2://{name}/docs/small.txt"))
    assert info["contentSha1"] == hashlib.sha1(small.read_bytes()).hexdigest()
    b2(env, "file", "server-side-copy", f"b2://{name}/docs/small.txt", f"b2://{name}/copy.txt")
    b2(env, "file", "hide", f"b2://{name}/copy.txt")
    assert "copy.txt" not in b2(env, "ls", "-r", f"b2://{name}")
    assert b2(env, "ls", "-r", "--versions", f"b2://{name}").split().count("copy.txt") == 2
    b2(env, "file", "unhide", f"b2://{name}/copy.txt")
    assert "copy.txt" in b2(env, "ls", "-r", f"b2://{name}")
    key = b2(
        env,
        "key",
        "create",
        "--bucket",
        name,
        "--name-prefix",
        "docs/",
        "cli-key",
        "listBuckets,listFiles,readFiles",
    ).split()
    env2 = {**env, "B2_ACCOUNT_INFO": str(tmp_path / "account2"), "B2_APPLICATION_KEY_ID": key[0],
            "B2_APPLICATION_KEY": key[1]}  # fmt: skip
    b2(env2, "account", "authorize")
    assert b2(env2, "ls", "-r", f"b2://{name}/docs/").split() == ["docs/big.bin", "docs/small.txt"]
    r = subprocess.run([str(Path(sys.executable).parent / "b2"), "ls", "-r", f"b2://{name}"],
                       env=env2, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0
    b2(env, "rm", "--versions", "-r", "--no-progress", f"b2://{name}")
    assert b2(env, "ls", "-r", "--versions", f"b2://{name}").strip() == ""
    b2(env, "key", "delete", key[0])
    b2(env, "bucket", "delete", name)
    assert name not in b2(env, "bucket", "list")
