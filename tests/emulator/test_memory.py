"""Streaming both ways: the server's peak RSS stays flat through a 2 GiB upload
(sha1 at the end of the body) and a 2 GiB download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.rawapi import Raw

SIZE = 2 << 30
CHUNK = bytes(range(256)) * 4096  # 1 MiB
LIMIT = 64 << 20


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_2gib_upload_and_download_keep_memory_flat(make_local_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_local_server()
    raw = Raw(srv)
    bucket = raw.bucket()
    raw.upload(bucket, "warm-up", b"x" * 100_000)
    base = peak_rss(srv.pid)
    h = hashlib.sha1()

    def body() -> Iterator[bytes]:
        for _ in range(SIZE // len(CHUNK)):
            h.update(CHUNK)
            yield CHUNK
        yield h.hexdigest().encode()

    u = raw.call("b2_get_upload_url", bucketId=bucket)
    r = raw.http.post(u["uploadUrl"], content=body(), timeout=120, headers={
        "Authorization": u["authorizationToken"], "X-Bz-File-Name": "huge.bin",
        "Content-Type": "application/octet-stream", "X-Bz-Content-Sha1": "hex_digits_at_end",
        "Content-Length": str(SIZE + 40)})  # fmt: skip
    f = raw.check(r)
    assert (f["contentLength"], f["contentSha1"]) == (SIZE, h.hexdigest())
    after_upload = peak_rss(srv.pid)
    got = hashlib.sha1()
    n = 0
    with raw.http.stream("GET", f"{srv.realm}/b2api/v4/b2_download_file_by_id?fileId={f['fileId']}",
                         headers={"Authorization": raw.token}, timeout=120) as resp:  # fmt: skip
        assert resp.status_code == 200
        for chunk in resp.iter_raw(1 << 20):
            got.update(chunk)
            n += len(chunk)
    assert (n, got.hexdigest()) == (SIZE, h.hexdigest())
    after_download = peak_rss(srv.pid)
    raw.call("b2_delete_file_version", fileId=f["fileId"], fileName="huge.bin")
    assert after_upload - base < LIMIT, (base, after_upload)
    assert after_download - base < LIMIT, (base, after_download)
    assert isinstance(r, httpx.Response)
