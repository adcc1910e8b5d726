"""Fixtures of the client tests: clients with quick retries, fresh buckets, a server
with small parts, and a lossy TCP relay (see ``relay.py``).

All run against the local B2 server (``tests/conftest.py``) over real HTTP.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from b2fs.b2 import B2Client, Bucket
from b2fs.emulator.process import LocalServer

from .helpers import MIN_PART, make_client_for, unique_bucket_name


@pytest.fixture(scope="session")
def parts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server whose minimum part size is 1000 bytes (large files of many small parts)."""
    srv = LocalServer(
        tmp_path_factory.mktemp("b2parts"),
        min_part_size=MIN_PART,
        extra_args=["--recommended-part-size", "4000"],
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def psrv(parts_server: LocalServer) -> LocalServer:
    parts_server.clear_faults()
    parts_server.reset_counters()
    return parts_server


@pytest.fixture
def make_client(psrv: LocalServer) -> Callable[..., B2Client]:
    return lambda **kw: make_client_for(psrv, **kw)


@pytest.fixture
async def client(make_client: Callable[..., B2Client]) -> AsyncIterator[B2Client]:
    async with make_client() as c:
        yield c


@pytest.fixture
async def bucket(client: B2Client) -> Bucket:
    return await client.create_bucket(unique_bucket_name())


@pytest.fixture
def data_file(tmp_path: Path) -> Callable[[int], tuple[Path, bytes]]:
    def make(size: int, name: str = "src.bin") -> tuple[Path, bytes]:
        data = os.urandom(size)
        path = tmp_path / name
        path.write_bytes(data)
        return path, data

    return make
