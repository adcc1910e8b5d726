"""Throughput of the ``b2fs.b2`` client against the local B2 server, next to the
server's own rate (``bench/emulator_throughput.py``'s direct ``http.client`` streams),
with the client process's peak RSS. Prints a table.

    .venv/bin/python bench/client_throughput.py [--size-mib 1024] [--streams 4]
        [--repeat 2] [--backend trio|asyncio]

Client rows: ``upload_file`` as a large file (N parts of size/N, N at once; then the
default 100 MB parts), one whole-file ``download_stream`` (SHA-1 checked, bytes
dropped), ``download_file`` (the same, written to disk), N parallel
``download_stream`` ranges, and the mount's pattern: ``download_range`` of 8 MiB
blocks, N at a time. Each is compared with the server's direct rate for the same
number of streams. Peak RSS is the client process's high-water mark
(``ru_maxrss``) after each row; it starts after the payload is written.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))
import emulator_throughput as direct  # noqa: E402 (the sibling script: the server's own rate)

from b2fs.b2 import B2Client  # noqa: E402
from b2fs.emulator.process import LocalServer  # noqa: E402

MiB = 1 << 20
BLOCK = 8 * MiB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def direct_rates(
    srv: LocalServer, payload: Path, size: int, n: int, repeat: int
) -> dict[str, float]:
    """The server's rate, measured as in bench/emulator_throughput.py (threads, http.client)."""
    import base64
    import json

    basic = base64.b64encode(f"{srv.key_id}:{srv.key}".encode()).decode()
    c = direct.conn(srv.realm)
    c.request("GET", "/b2api/v4/b2_authorize_account", headers={"Authorization": f"Basic {basic}"})
    auth = json.loads(c.getresponse().read())
    token, account = auth["authorizationToken"], auth["accountId"]
    bucket = direct.call(srv.realm, token, "b2_create_bucket", accountId=account,
                         bucketName="direct-bucket", bucketType="allPrivate")["bucketId"]  # fmt: skip
    part = size // n
    spans = [(i * part, part if i < n - 1 else size - i * part) for i in range(n)]
    sha1s = [direct.sha1_range(payload, o, ln) for o, ln in spans]
    file_id = ""

    def up() -> None:
        nonlocal file_id
        from concurrent.futures import ThreadPoolExecutor

        f = direct.call(srv.realm, token, "b2_start_large_file", bucketId=bucket,
                        fileName="parts.bin", contentType="b2/x-auto")  # fmt: skip

        def one(i: int) -> None:
            u = direct.call(srv.realm, token, "b2_get_upload_part_url", fileId=f["fileId"])
            direct.upload(u["uploadUrl"], u["authorizationToken"], {"X-Bz-Part-Number": str(i + 1)},
                          payload, spans[i][0], spans[i][1], sha1s[i])  # fmt: skip

        with ThreadPoolExecutor(n) as ex:
            list(ex.map(one, range(n)))
        direct.call(
            srv.realm, token, "b2_finish_large_file", fileId=f["fileId"], partSha1Array=sha1s
        )
        file_id = f["fileId"]

    def down(streams: int) -> Callable[[], None]:
        def run() -> None:
            from concurrent.futures import ThreadPoolExecutor

            step = size // streams
            spans = [(i * step, size - 1 if i == streams - 1 else (i + 1) * step - 1)
                     for i in range(streams)]  # fmt: skip
            with ThreadPoolExecutor(streams) as ex:
                list(ex.map(lambda s: direct.download(srv.realm, token, file_id, *s), spans))

        return run

    return {
        "upload": size / min(direct.timed(up) for _ in range(repeat)) / 1e6,
        "download, 1 stream": size / min(direct.timed(down(1)) for _ in range(repeat)) / 1e6,
        "download": size / min(direct.timed(down(n)) for _ in range(repeat)) / 1e6,
    }


async def client_rows(srv: LocalServer, payload: Path, tmp: Path, size: int, n: int,
                      repeat: int) -> list[tuple[str, str, float, float]]:  # fmt: skip
    rows: list[tuple[str, str, float, float]] = []
    async with B2Client(srv.key_id, srv.key, srv.realm) as c:
        bucket = await c.create_bucket("client-bucket")
        file_id = ""

        async def best(label: str, kind: str, job: Callable[[], Awaitable[Any]]) -> None:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                await job()
                times.append(time.perf_counter() - t)
            rows.append((label, kind, size / min(times) / 1e6, peak_rss_mib()))

        async def up_n() -> None:
            nonlocal file_id
            f = await c.upload_file(bucket.bucket_id, "big.bin", payload,
                                    part_size=-(-size // n), concurrency=n)  # fmt: skip
            file_id = f.file_id or ""

        async def up_default() -> None:
            await c.upload_file(bucket.bucket_id, "big100.bin", payload, concurrency=n)

        async def down_file() -> None:
            await c.download_file(tmp / "downloaded", file_id=file_id)

        async def down_stream() -> None:
            async with c.download_stream(file_id=file_id) as s:
                async for _ in s:
                    pass
            assert s.sha1_verified

        async def down_ranges() -> None:
            part = size // n

            async def one(i: int) -> None:
                end = size - 1 if i == n - 1 else (i + 1) * part - 1
                async with c.download_stream(file_id=file_id, range=(i * part, end)) as s:
                    async for _ in s:
                        pass

            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)

        async def down_blocks() -> None:
            limiter = anyio.Semaphore(n)

            async def one(start: int) -> None:
                async with limiter:
                    await c.download_range(file_id, start, min(start + BLOCK, size) - 1)

            async with anyio.create_task_group() as tg:
                for start in range(0, size, BLOCK):
                    tg.start_soon(one, start)

        await best(f"upload_file, {n} parts of {size // n // MiB} MiB, {n} at once", "upload", up_n)
        await best(f"upload_file, 100 MB parts, {n} at once", "upload", up_default)
        await best("download_stream (1 stream, sha1 checked)", "download, 1 stream", down_stream)
        await best("download_file (1 stream, sha1 checked, to disk)", "download, 1 stream",
                   down_file)  # fmt: skip
        await best(f"download_stream, {n} parallel ranges", "download", down_ranges)
        await best(f"download_range, 8 MiB blocks, {n} at once", "download", down_blocks)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="runs per row; the best is shown")
    ap.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = ap.parse_args()
    size, n = args.size_mib * MiB, args.streams
    with tempfile.TemporaryDirectory(prefix="b2fs-client-bench-") as tmp_name:
        tmp = Path(tmp_name)
        payload = tmp / "payload"
        with payload.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MiB))
        rss0 = peak_rss_mib()
        with LocalServer(tmp / "data", min_part_size=5_000_000) as srv:
            rows = anyio.run(
                client_rows, srv, payload, tmp, size, n, args.repeat, backend=args.backend
            )
            limit = direct_rates(srv, payload, size, n, args.repeat)
    print(f"\nb2fs.b2 client throughput ({args.backend}), {args.size_mib} MiB file over loopback, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"server's own rate (direct http.client streams): upload {limit['upload']:.0f} MB/s "
          f"({n} parts), download {limit['download, 1 stream']:.0f} MB/s (1 stream), "
          f"{limit['download']:.0f} MB/s ({n} ranges); client RSS before: {rss0:.0f} MiB")  # fmt: skip
    print(f"{'operation':<52} {'MB/s':>7} {'of server':>9} {'peak RSS MiB':>13}")
    for label, kind, rate, rss in rows:
        print(f"{label:<52} {rate:7.0f} {rate / limit[kind]:9.0%} {rss:13.0f}")


if __name__ == "__main__":
    main()
