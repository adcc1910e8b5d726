"""Shared pytest fixtures: the local B2 server.

``local_server`` is one ``LocalServer`` for the whole session (temp data dir);
``server`` is the same server with counters reset and faults cleared before the test;
``make_local_server(**kwargs)`` starts private servers (restart tests, short token
lifetimes, small part sizes), all stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from b2fs.emulator.process import LocalServer


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    srv = LocalServer(tmp_path_factory.mktemp("b2data")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(local_server: LocalServer) -> LocalServer:
    local_server.clear_faults()
    local_server.reset_counters()
    return local_server


@pytest.fixture
def make_local_server(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    started: list[LocalServer] = []

    def make(data_dir: Path | None = None, **kwargs: Any) -> LocalServer:
        srv = LocalServer(data_dir or tmp_path / f"b2data{len(started)}", **kwargs)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()
