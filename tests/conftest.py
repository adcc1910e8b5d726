"""Shared pytest fixtures: the local B2 server, and small tmpfs mounts (full disks).

``local_server`` is one ``LocalServer`` for the whole session (temp data dir);
``server`` is the same server with counters reset and faults cleared before the test;
``make_local_server(**kwargs)`` starts private servers (restart tests, short token
lifetimes, small part sizes), all stopped at teardown.
"""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_tmpfs("6m")``: a fresh tmpfs of that size (root only, else the test is
    skipped), lazily unmounted at teardown, after the fixtures listed after this one
    (a mount whose cache lives on it) are gone."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    made: list[Path] = []

    def make(size: str) -> Path:
        path = tmp_path / f"tmpfs-{len(made)}"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True, timeout=30)  # fmt: skip
        made.append(path)
        return path

    yield make
    for path in made:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
