"""The core calls the mount makes, on both anyio backends (trio and asyncio)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from b2fs.b2 import BucketNotFound, LargeFileUploadState
from b2fs.emulator.process import LocalServer

from .helpers import make_client_for, unique_bucket_name


async def _core_calls(srv: LocalServer, tmp: Path) -> None:
    data = os.urandom(9000)
    (tmp / "src").write_bytes(data)
    states: list[LargeFileUploadState] = []
    async with make_client_for(srv) as c:
        await c.authorize()
        name = unique_bucket_name("be")
        with pytest.raises(BucketNotFound):
            await c.get_bucket(name)
        await c.create_bucket(name)
        b = await c.get_bucket(name)
        small = await c.upload_bytes(b.bucket_id, "d/small", b"tiny", mtime_millis=1)
        big = await c.upload_file(b.bucket_id, "d/big", tmp / "src", part_size=2000, concurrency=3,
                                  on_state=states.append)  # fmt: skip
        assert len(states[-1].parts) == 5
        files, nxt = await c.list_file_names_page(
            b.bucket_id, prefix="d/", delimiter="/", max_file_count=1
        )
        assert [f.file_name for f in files] == ["d/big"] and nxt == "d/small"
        assert [f.file_name async for f in c.list_file_names(b.bucket_id, prefix="d/")] == [
            "d/big",
            "d/small",
        ]
        versions, _, _ = await c.list_file_versions_page(b.bucket_id)
        assert [f.file_id for f in versions] == [big.file_id, small.file_id]
        info = await c.get_file_info(small.file_id)
        assert (info.size, info.mtime_millis, info.action) == (4, 1, "upload")
        assert await c.download_range(big.file_id, 1999, 2000) == data[1999:2001]
        async with c.download_stream(file_id=big.file_id, range=(10, 8999)) as s:
            assert await s.read_all() == data[10:]
        await c.download_file(tmp / "dst", file_id=big.file_id)
        assert (tmp / "dst").read_bytes() == data
        await c.hide_file(b.bucket_id, "d/small")
        await c.delete_all_versions(b.bucket_id, "d/small")
        assert [f.file_name async for f in c.list_file_versions(b.bucket_id)] == ["d/big"]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_core_calls(backend: str, psrv: LocalServer, tmp_path: Path) -> None:
    anyio.run(_core_calls, psrv, tmp_path, backend=backend)
