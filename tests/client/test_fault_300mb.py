"""The issue's proof under faults: 300 MB up and down with 20 % of upload and download
calls failing (503, 500, dropped connections) and a token expiry in the middle."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from b2fs.b2 import LargeFileUploadState, RetryPolicy
from b2fs.emulator.process import LocalServer

from .helpers import make_client_for

SIZE = 300 * 1000 * 1000
PART = 3 * 1000 * 1000  # 100 parts


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_300mb_round_trip_under_faults(
    make_local_server: Callable[..., LocalServer],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    srv = make_local_server(min_part_size=1_000_000)
    try:
        await _round_trip(srv, tmp_path, record_property)
    finally:  # 1.2 GB of files: do not leave them to pytest's kept temp dirs
        srv.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


async def _round_trip(
    srv: LocalServer, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = hashlib.sha1()
    with src.open("wb") as f:
        for _ in range(SIZE // 10_000_000):
            block = os.urandom(10_000_000)
            want.update(block)
            f.write(block)
    kinds = ["503", "500", "drop"]
    srv.set_faults([
        {"call": call, "kinds": kinds, "probability": 0.2}
        for call in ("b2_upload_part", "b2_download_file_by_id")
    ])  # fmt: skip
    expired = False

    async def on_state(state: LargeFileUploadState) -> None:
        nonlocal expired
        if len(state.parts) >= 50 and not expired:  # halfway: every token dies
            expired = True
            await anyio.to_thread.run_sync(srv.expire_tokens)

    retry = RetryPolicy(initial_delay=0.02, max_delay=0.5, max_transfer_attempts=30)
    async with make_client_for(srv, retry=retry) as c:
        b = await c.create_bucket("faulty-300mb")
        f = await c.upload_file(b.bucket_id, "big.bin", src, part_size=PART, concurrency=4,
                                on_state=on_state)  # fmt: skip
        assert f.size == SIZE and expired
        up_retries = c.stats.retries
        await c.download_file(dst, file_id=f.file_id)  # one stream, resumed when cut
        assert _sha1_of(dst) == want.hexdigest()
        # the mount's way: ranged reads of blocks, four at a time
        blocks = tmp_path / "blocks"
        fd = os.open(blocks, os.O_WRONLY | os.O_CREAT, 0o600)
        limiter = anyio.Semaphore(4)

        async def block(start: int) -> None:
            async with limiter:
                data = await c.download_range(f.file_id, start, start + PART - 1)
                os.pwrite(fd, data, start)

        try:
            async with anyio.create_task_group() as tg:
                for start in range(0, SIZE, PART):
                    tg.start_soon(block, start)
        finally:
            os.close(fd)
        assert _sha1_of(blocks) == want.hexdigest()
        stats = c.stats
    counters = srv.counters()
    faults = counters["faults_injected"]
    report = {
        "upload_retries": up_retries,
        "download_retries": stats.retries - up_retries,
        "reauthorizations": stats.reauthorizations,
        "upload_urls_discarded": stats.upload_urls_discarded,
        "faults_injected": faults,
    }
    print("fault test:", report)
    for k, v in report.items():
        record_property(k, v)
    assert up_retries >= 5 and stats.retries > up_retries and stats.reauthorizations >= 1
    for call in ("b2_upload_part", "b2_download_file_by_id"):
        assert 0.1 < faults[call] / counters["calls"][call] < 0.35


def _sha1_of(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
