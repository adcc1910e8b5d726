"""Fixtures for the emulator's tests: ``raw`` is a thin authorized caller on the
session server (see ``rawapi``), ``bucket`` a fresh private bucket on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import Raw


@pytest.fixture
def raw(server: LocalServer) -> Iterator[Raw]:
    r = Raw(server)
    yield r
    r.close()


@pytest.fixture
def bucket(raw: Raw) -> str:
    return raw.bucket()
