"""Staging files on disk: random writes and truncates against a bytearray
model, holes, reopening, tamper detection, and no plaintext on disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from codec_helpers import SMALL_CHUNK
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2fs.codec import (
    CorruptStaging,
    EncryptedStagingCodec,
    PlainStagingCodec,
    TamperedChunk,
)
from b2fs.codec.staging import HEADER_SIZE, NONCE_SIZE, SIZE_AT, TAG_SIZE

pytestmark = pytest.mark.timeout(120)

C = SMALL_CHUNK
SLOT = NONCE_SIZE + C + TAG_SIZE
CODECS = {
    "plain": PlainStagingCodec(),
    "encrypted": EncryptedStagingCodec(os.urandom(32), C),
}


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "staged", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 12 * C), st.binary(min_size=0, max_size=4 * C)),
        st.tuples(st.just("truncate"), st.integers(0, 12 * C), st.none()),
        st.tuples(st.just("read"), st.integers(0, 13 * C), st.integers(0, 5 * C)),
    ),
    max_size=25,
)


@pytest.mark.parametrize("kind", CODECS)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_random_writes_and_truncates_match_a_model(fd: int, kind: str, steps) -> None:
    codec = CODECS[kind]
    staged = codec.create(fd)
    model = bytearray()
    for op, at, arg in steps:
        if op == "write":
            assert staged.pwrite(at, arg) == len(arg)
            if arg:
                model.extend(bytes(max(0, at + len(arg) - len(model))))
                model[at : at + len(arg)] = arg
        elif op == "truncate":
            staged.truncate(at)
            model = model[:at] + bytearray(max(0, at - len(model)))
        else:
            assert staged.pread(at, arg) == model[at : at + arg]
        assert staged.size() == len(model)
    assert staged.pread(0, len(model) + 10) == model
    assert codec.open(fd).pread(0, len(model) + 10) == model  # as after a restart


def test_holes_read_as_zeros_and_are_zeros_on_disk(fd: int) -> None:
    staged = CODECS["encrypted"].create(fd)
    staged.truncate(10 * C)
    assert staged.pread(0, 10 * C) == bytes(10 * C)
    staged.pwrite(5 * C + 3, b"data")
    assert staged.pread(0, 10 * C) == bytes(5 * C + 3) + b"data" + bytes(5 * C - 7)
    raw = os.pread(fd, 10 * SLOT, HEADER_SIZE)
    assert raw[: 5 * SLOT] == bytes(5 * SLOT) and any(raw[5 * SLOT : 6 * SLOT])  # holes, one slot


def test_a_shrink_then_grow_reads_zeros_past_the_old_end(fd: int) -> None:
    for codec in CODECS.values():
        staged = codec.create(fd)
        staged.pwrite(0, b"\xff" * 3 * C)
        staged.truncate(C + 3)
        staged.truncate(3 * C)
        assert staged.pread(0, 3 * C) == b"\xff" * (C + 3) + bytes(2 * C - 3)
        staged.truncate(C + 5)
        staged.pwrite(2 * C, b"z")  # a write past the end: the gap reads as zeros
        assert staged.pread(0, 3 * C) == b"\xff" * (C + 3) + bytes(C - 3) + b"z"


def test_slots_left_past_the_end_by_a_crash_never_show(fd: int) -> None:
    codec = CODECS["encrypted"]
    codec.create(fd).pwrite(0, b"\xff" * 4 * C)
    os.pwrite(fd, (C + 5).to_bytes(8, "big"), SIZE_AT)  # the size update never happened
    staged = codec.open(fd)
    assert staged.size() == C + 5
    staged.truncate(4 * C)
    assert staged.pread(0, 4 * C) == b"\xff" * (C + 5) + bytes(3 * C - 5)


def test_the_staging_file_holds_no_plaintext(tmp_path: Path, fd: int) -> None:
    lines = [b"b2fs secret plaintext line %06d\n" % i for i in range(2000)]
    text = b"".join(lines)
    staged = CODECS["encrypted"].create(fd)
    at = 0
    for n in [1, 7, C, 3 * C + 1, 1000, 5, 4096, 333] * 20:  # unaligned writes, rewrites
        staged.pwrite(at % len(text), text[at % len(text) : at % len(text) + n])
        at += n
    staged.pwrite(0, text)
    staged.truncate(len(text) - 100)
    staged.truncate(len(text))
    staged.pwrite(len(text) - 100, text[-100:])
    assert staged.pread(0, len(text)) == text
    raw = (tmp_path / "staged").read_bytes()
    assert len(raw) == HEADER_SIZE + -(-len(text) // C) * SLOT
    for line in lines:
        assert line[:16] not in raw and line[-16:] not in raw
    assert not any(text[i : i + 8] in raw for i in range(0, 4096, 3))


def test_every_write_of_a_slot_takes_a_fresh_nonce(fd: int) -> None:
    staged = CODECS["encrypted"].create(fd)
    slots = set()
    for _ in range(5):
        staged.pwrite(0, b"same bytes every time")
        slots.add(os.pread(fd, SLOT, HEADER_SIZE))
    assert len(slots) == 5


def test_tampered_slots_are_detected(fd: int) -> None:
    codec = CODECS["encrypted"]
    codec.create(fd).pwrite(0, os.urandom(3 * C))
    clean = os.pread(fd, HEADER_SIZE + 3 * SLOT, 0)
    slot0, slot1 = (
        clean[HEADER_SIZE : HEADER_SIZE + SLOT],
        clean[HEADER_SIZE + SLOT : HEADER_SIZE + 2 * SLOT],
    )
    for pos in range(HEADER_SIZE, HEADER_SIZE + SLOT):
        os.pwrite(fd, bytes([clean[pos] ^ 1]), pos)
        with pytest.raises(TamperedChunk):
            codec.open(fd).pread(0, C)
        os.pwrite(fd, clean[pos : pos + 1], pos)
    os.pwrite(fd, slot1 + slot0, HEADER_SIZE)  # two slots swapped
    with pytest.raises(TamperedChunk):
        codec.open(fd).pread(0, C)
    os.pwrite(fd, bytes(NONCE_SIZE) + slot0[NONCE_SIZE:], HEADER_SIZE)  # a zeroed nonce is no hole
    with pytest.raises(TamperedChunk):
        codec.open(fd).pread(0, C)
    other = EncryptedStagingCodec(os.urandom(32), C)  # another vault's staging key
    os.pwrite(fd, clean, 0)
    with pytest.raises(TamperedChunk):
        other.open(fd).pread(0, C)


def test_a_file_that_is_not_a_staging_file_is_refused(fd: int) -> None:
    os.write(fd, b"plain text that is not a staging file, long enough for a header")
    with pytest.raises(CorruptStaging):
        CODECS["encrypted"].open(fd)
    os.ftruncate(fd, 0)
    with pytest.raises(CorruptStaging):
        CODECS["encrypted"].open(fd)


def test_create_drops_what_the_file_held(fd: int) -> None:
    for codec in CODECS.values():
        os.pwrite(fd, b"old contents" * 100, 0)
        staged = codec.create(fd)
        assert staged.size() == 0 and staged.pread(0, 100) == b""
