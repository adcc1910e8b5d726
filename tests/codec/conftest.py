"""Fixtures of the codec unit tests."""

from __future__ import annotations

import pytest
from codec_helpers import SMALL_CHUNK, content_codec

from b2fs.codec import EncryptedContentCodec


@pytest.fixture
def small() -> EncryptedContentCodec:
    return content_codec(SMALL_CHUNK)
