"""Throughput of the local B2 server over loopback: upload and download of one file,
single stream and N parallel streams (ranged GETs / large-file parts). Prints a table.

    .venv/bin/python bench/emulator_throughput.py [--size-mib 1024] [--streams 4] [--repeat 3]

The client side is plain ``http.client`` in threads reading into a reused buffer, so
that the figures measure the server, not the client. The payload is a random file in
a temp dir, hashed before timing (the server verifies the sha1 as on B2).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from b2fs.emulator.process import LocalServer

MiB = 1 << 20


def conn(url: str) -> http.client.HTTPConnection:
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=300, blocksize=MiB)


def call(realm: str, token: str, name: str, **params: Any) -> dict[str, Any]:
    c = conn(realm)
    c.request("POST", f"/b2api/v4/{name}", json.dumps(params), {"Authorization": token})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{name}: {body}")
    return body


class Window:
    """A read-only file-like view of [offset, offset+length) of a file, for uploads."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self.f = open(path, "rb")  # noqa: SIM115
        self.f.seek(offset)
        self.left = length

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


def upload(url: str, token: str, headers: dict[str, str], path: Path, offset: int, length: int, sha1: str) -> dict[str, Any]:  # fmt: skip
    u = urlsplit(url)
    c = conn(url)
    c.request("POST", u.path, Window(path, offset, length),
              {"Authorization": token, "Content-Length": str(length), "X-Bz-Content-Sha1": sha1, **headers})  # fmt: skip
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(str(body))
    return body


def download(realm: str, token: str, file_id: str, start: int, end: int) -> int:
    c = conn(realm)
    c.request("GET", f"/b2api/v4/b2_download_file_by_id?fileId={file_id}",
              headers={"Authorization": token, "Range": f"bytes={start}-{end}"})  # fmt: skip
    r = c.getresponse()
    buf = bytearray(MiB)
    n = 0
    while True:
        got = r.readinto(buf)
        if not got:
            break
        n += got
    c.close()
    if n != end - start + 1:
        raise RuntimeError(f"short download: {n}")
    return n


def sha1_range(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha1()
    w = Window(path, offset, length)
    while chunk := w.read(8 * MiB):
        h.update(chunk)
    return h.hexdigest()


def timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is shown")
    args = ap.parse_args()
    size = args.size_mib * MiB
    n = args.streams
    with tempfile.TemporaryDirectory(prefix="b2fs-bench-") as tmp:
        payload = Path(tmp) / "payload"
        with open(payload, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MiB))
        whole_sha1 = sha1_range(payload, 0, size)
        part = size // n
        spans = [(i * part, part if i < n - 1 else size - i * part) for i in range(n)]
        part_sha1s = [sha1_range(payload, o, ln) for o, ln in spans]
        with LocalServer(Path(tmp) / "data", min_part_size=1) as srv:
            basic = base64.b64encode(f"{srv.key_id}:{srv.key}".encode()).decode()
            c = conn(srv.realm)
            c.request(
                "GET", "/b2api/v4/b2_authorize_account", headers={"Authorization": f"Basic {basic}"}
            )
            auth = json.loads(c.getresponse().read())
            token, account = auth["authorizationToken"], auth["accountId"]
            bucket = call(srv.realm, token, "b2_create_bucket", accountId=account,
                          bucketName="bench-bucket", bucketType="allPrivate")["bucketId"]  # fmt: skip
            rows: list[tuple[str, float]] = []
            file_id = ""

            def up1() -> None:
                nonlocal file_id
                u = call(srv.realm, token, "b2_get_upload_url", bucketId=bucket)
                file_id = upload(u["uploadUrl"], u["authorizationToken"],
                                 {"X-Bz-File-Name": "one.bin", "Content-Type": "b2/x-auto"},
                                 payload, 0, size, whole_sha1)["fileId"]  # fmt: skip

            def upn() -> None:
                f = call(srv.realm, token, "b2_start_large_file", bucketId=bucket,
                         fileName="parts.bin", contentType="b2/x-auto")  # fmt: skip

                def one(i: int) -> None:
                    u = call(srv.realm, token, "b2_get_upload_part_url", fileId=f["fileId"])
                    upload(u["uploadUrl"], u["authorizationToken"], {"X-Bz-Part-Number": str(i + 1)},
                           payload, spans[i][0], spans[i][1], part_sha1s[i])  # fmt: skip

                with ThreadPoolExecutor(n) as ex:
                    list(ex.map(one, range(n)))
                call(
                    srv.realm,
                    token,
                    "b2_finish_large_file",
                    fileId=f["fileId"],
                    partSha1Array=part_sha1s,
                )

            def down1() -> None:
                download(srv.realm, token, file_id, 0, size - 1)

            def downn() -> None:
                with ThreadPoolExecutor(n) as ex:
                    list(
                        ex.map(
                            lambda s: download(srv.realm, token, file_id, s[0], s[0] + s[1] - 1),
                            spans,
                        )
                    )

            for label, fn in (
                ("upload, 1 stream", up1),
                (f"upload, {n} parallel parts", upn),
                ("download, 1 stream", down1),
                (f"download, {n} parallel ranges", downn),
            ):
                best = min(timed(fn) for _ in range(args.repeat))
                rows.append((label, size / best / 1e6))
            threads = threading.active_count()
    print(
        f"\nb2fs serve throughput, {args.size_mib} MiB file over loopback ({os.cpu_count()} cores)"
    )
    print(f"{'operation':<32} {'MB/s':>8}")
    for label, rate in rows:
        print(f"{label:<32} {rate:8.0f}")
    del threads


if __name__ == "__main__":
    main()
