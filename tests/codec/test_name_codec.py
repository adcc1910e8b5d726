"""Names: round trip, determinism, binding to the parent, NFC, long-name stubs,
names that are not ours, and the plain codec's B2 rules."""

from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b2fs.codec import (
    LONG_INFO_KEY,
    MARKER,
    VAULT_NAME,
    EncryptedNameCodec,
    InvalidName,
    NameTooLong,
    NeedsLongInfo,
    PlainNameCodec,
    UndecodableName,
    is_reserved,
)
from b2fs.codec import b64 as b64mod

pytestmark = pytest.mark.timeout(60)

CODEC = EncryptedNameCodec(os.urandom(64))
BASE64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
INLINE_MAX = 171  # bytes of name that still fit a 250-byte segment: 4 * (16 + 171) / 3 = 250

names = st.text(min_size=1, max_size=80).filter(
    lambda n: n not in (".", "..") and "/" not in n and "\0" not in n and _utf8(n)
)


def _utf8(name: str) -> bool:
    try:
        return len(unicodedata.normalize("NFC", name).encode()) <= 255
    except UnicodeEncodeError:
        return False


@settings(max_examples=300, deadline=None)
@given(name=names, parent=st.sampled_from(["", "a", "QUJDREVGR0g", "x/y/z"]))
def test_names_round_trip_deterministically(name: str, parent: str) -> None:
    nfc = unicodedata.normalize("NFC", name)
    encoded = CODEC.encode(parent, name)
    assert encoded == CODEC.encode(parent, name)
    assert len(encoded.segment.encode()) <= 250 and not is_reserved(parent, encoded.segment)
    if len(nfc.encode()) <= INLINE_MAX:
        assert set(encoded.segment) <= BASE64URL and encoded.long_info is None
        assert not CODEC.is_long_stub(encoded.segment)
    else:
        assert CODEC.is_long_stub(encoded.segment) and encoded.long_info is not None
    assert CODEC.decode(parent, encoded.segment, encoded.long_info) == nfc


def test_names_are_bound_to_their_parent() -> None:
    segment = CODEC.encode("AAAA", "notes.txt").segment
    assert segment != CODEC.encode("AAAB", "notes.txt").segment
    assert segment != CODEC.encode("", "notes.txt").segment
    for other in ["AAAB", "", "AAAA/", "aaaa"]:
        with pytest.raises(UndecodableName):
            CODEC.decode(other, segment)


def test_names_are_nfc_normalised() -> None:
    nfd = unicodedata.normalize("NFD", "café résumé")
    nfc = unicodedata.normalize("NFC", nfd)
    assert nfd != nfc
    assert CODEC.encode("", nfd) == CODEC.encode("", nfc)
    assert CODEC.decode("", CODEC.encode("", nfd).segment) == nfc
    # 130 decomposed "é" are 390 bytes, but 260 once composed: over NAME_MAX
    with pytest.raises(NameTooLong):
        CODEC.encode("", unicodedata.normalize("NFD", "é" * 130))
    long = CODEC.encode("", unicodedata.normalize("NFD", "é" * 127))
    assert CODEC.decode("", long.segment, long.long_info) == "é" * 127


@pytest.mark.parametrize("size", [INLINE_MAX + 1, 200, 254, 255])
def test_long_names_become_stubs_and_come_back(size: int) -> None:
    name = "x" * size
    encoded = CODEC.encode("P", name)
    assert CODEC.is_long_stub(encoded.segment) and len(encoded.segment) == 44
    assert encoded == CODEC.encode("P", name)
    assert set(encoded.long_info) == {LONG_INFO_KEY}
    assert CODEC.decode("P", encoded.segment, encoded.long_info) == name
    with pytest.raises(NeedsLongInfo):
        CODEC.decode("P", encoded.segment)
    with pytest.raises(NeedsLongInfo):
        CODEC.decode("P", encoded.segment, {"src_last_modified_millis": "1"})
    other = CODEC.encode("P", "y" * size)
    assert other.segment != encoded.segment
    with pytest.raises(UndecodableName):  # the long info of another name
        CODEC.decode("P", encoded.segment, other.long_info)
    with pytest.raises(UndecodableName):  # moved under another parent
        CODEC.decode("Q", encoded.segment, encoded.long_info)


def test_the_segment_budget_boundary() -> None:
    inline = CODEC.encode("", "x" * INLINE_MAX)
    assert len(inline.segment) == 250 and inline.long_info is None
    assert CODEC.is_long_stub(CODEC.encode("", "x" * (INLINE_MAX + 1)).segment)
    multibyte = "é" * 127 + "x"  # 255 bytes
    encoded = CODEC.encode("", multibyte)
    assert CODEC.decode("", encoded.segment, encoded.long_info) == multibyte
    for too_long in ["x" * 256, "é" * 128]:
        with pytest.raises(NameTooLong):
            CODEC.encode("", too_long)


@pytest.mark.parametrize("codec", [CODEC, PlainNameCodec()], ids=["encrypted", "plain"])
@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/", "a\0b", "bad\udcff"])
def test_invalid_names_are_refused(codec, name: str) -> None:
    with pytest.raises(InvalidName):
        codec.encode("", name)


def test_segments_that_are_not_ours_are_undecodable() -> None:
    valid = CODEC.encode("", "a name").segment
    foreign = [
        "hello.txt",
        "README",
        "Documents",
        MARKER,
        VAULT_NAME,
        "~" + "A" * 43,  # a stub-shaped segment
        b64mod.encode(os.urandom(30)),
        EncryptedNameCodec(os.urandom(64)).encode("", "a name").segment,  # another vault
        valid + "=",
        valid + "A",
        valid[:-1] + ("B" if valid[-1] == "A" else "A"),  # one character changed
        "",
    ]
    for segment in foreign:
        if CODEC.is_long_stub(segment):
            with pytest.raises(UndecodableName):
                CODEC.decode("", segment, {LONG_INFO_KEY: valid})
        else:
            with pytest.raises(UndecodableName):
                CODEC.decode("", segment)


def test_non_canonical_base64_is_refused() -> None:
    # a 17-byte ciphertext encodes to 23 characters whose last one carries 2
    # unused bits; setting them gives another string for the same bytes
    segment = CODEC.encode("", "a").segment
    assert len(segment) == 23
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    twin = segment[:-1] + alphabet[last | 1]
    assert twin != segment
    with pytest.raises(UndecodableName):
        CODEC.decode("", twin)


def test_plain_names_follow_b2s_rules() -> None:
    codec = PlainNameCodec()
    for name in ["notes.txt", "é", "x" * 250, "~" + "A" * 43, VAULT_NAME]:
        parent = "sub" if name == VAULT_NAME else ""
        assert codec.encode(parent, name).segment == name
        assert codec.decode(parent, name) == name
    with pytest.raises(NameTooLong):
        codec.encode("", "x" * 256)
    for name in ["tab\there", "nl\n", "del\x7f"]:
        with pytest.raises(InvalidName):
            codec.encode("", name)
    for parent, name in [("", MARKER), ("sub", MARKER), ("", VAULT_NAME)]:
        with pytest.raises(InvalidName):
            codec.encode(parent, name)
    # A name that only looks like a stub (another tool's) is itself, without matching info.
    assert codec.decode("", "~" + "A" * 43, {"b2fs-n": "x" * 251}) == "~" + "A" * 43


def test_plain_long_names_are_stubs_with_the_name_in_file_info() -> None:
    """251-255 bytes: a stub (B2's older 250-byte segment limit), the name in long info."""
    codec = PlainNameCodec()
    for n in (251, 255):
        name = "é" * (n // 2) + "x" * (n % 2)
        segment, info = codec.encode("any/parent", name)
        assert codec.is_long_stub(segment) and len(segment.encode()) <= 250
        assert info == {"b2fs-n": name}
        assert codec.encode("other", name).segment == segment  # plain stubs ignore the parent
        assert codec.decode("any/parent", segment, info) == name
        assert codec.decode("", segment) == segment  # no info: shown as stored
    assert codec.encode("", "x" * 251).segment != codec.encode("", "y" * 251).segment


def test_reserved_names() -> None:
    assert is_reserved("", MARKER) and is_reserved("a/b", MARKER)
    assert is_reserved("", VAULT_NAME) and not is_reserved("a", VAULT_NAME)
    assert not is_reserved("", "notes.txt")
