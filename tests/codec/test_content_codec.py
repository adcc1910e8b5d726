"""Contents: round trips, range reads, and every tamper, truncation, extension
and splice of format v1 detected (on 16-byte chunks, so checks are exhaustive)."""

from __future__ import annotations

import os

import pytest
from codec_helpers import SMALL_CHUNK, content_codec, seal, unseal
from hypothesis import given, settings
from hypothesis import strategies as st

from b2fs.codec import (
    HEADER_INFO_KEY,
    CodecError,
    CorruptObject,
    PlainContentCodec,
    SourceChanged,
    TamperedChunk,
    Truncated,
    UnknownKey,
)
from b2fs.codec.content import HEADER_SIZE, TAG_SIZE

pytestmark = pytest.mark.timeout(120)

C = SMALL_CHUNK


@pytest.mark.parametrize("chunk_size", [SMALL_CHUNK, 65536])
def test_round_trip_at_the_edge_sizes(chunk_size: int) -> None:
    codec = content_codec(chunk_size)
    for size in [
        0,
        1,
        chunk_size - 1,
        chunk_size,
        chunk_size + 1,
        7 * chunk_size,
        7 * chunk_size + 3,
    ]:
        data = os.urandom(size)
        stored, info = seal(codec, data)
        chunks = max(1, -(-size // chunk_size))
        assert len(stored) == HEADER_SIZE + size + TAG_SIZE * chunks == codec.stored_size(size)
        assert codec.plain_size(len(stored)) == size
        assert unseal(codec, stored, info) == data  # header from the file info
        assert unseal(codec, stored) == data  # header from the object
        assert codec.header_from_file_info(info) == stored[:HEADER_SIZE]


def test_plain_size_is_exact_and_refuses_impossible_sizes(small) -> None:
    sizes = {small.stored_size(p): p for p in range(0, 10 * C)}
    for stored_size in range(0, small.stored_size(10 * C - 1)):
        if stored_size in sizes:
            assert small.plain_size(stored_size) == sizes[stored_size]
        else:
            with pytest.raises(CorruptObject):
                small.plain_size(stored_size)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=12 * C), a=st.integers(0, 13 * C), length=st.integers(0, 13 * C))
def test_any_range_read_equals_the_plaintext_slice(data: bytes, a: int, length: int) -> None:
    codec = _SHARED
    stored, info = seal(codec, data)
    size = codec.plain_size(len(stored))
    start, end = codec.stored_range(a - a % C, a + length, size)
    assert 0 <= start <= end <= len(stored)
    decryptor = codec.decryptor(codec.header_from_file_info(info))
    plain = decryptor.decode(a, stored[start:end], size)
    assert plain[:length] == data[a : a + length]
    # whole chunks: what comes back reaches the end of the last chunk fetched
    assert len(plain) >= min(length, max(0, size - a))


_SHARED = content_codec(SMALL_CHUNK)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=10 * C), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_parts_in_any_order_and_retried_give_the_same_bytes(data: bytes, cuts: list[int]) -> None:
    enc = _SHARED.encryptor()
    size = enc.stored_size(len(data))
    whole = enc.read_stored(lambda o, n: data[o : o + n], len(data), 0, size)
    bounds = sorted({0, size, *(c for c in cuts if c < size)})
    parts = list(zip(bounds, bounds[1:], strict=False))
    for start, end in reversed(parts):  # the uploader may ask in any order
        assert (
            enc.read_stored(lambda o, n: data[o : o + n], len(data), start, end) == whole[start:end]
        )
    assert unseal(_SHARED, whole) == data


def test_every_single_byte_tamper_is_detected(small) -> None:
    data = os.urandom(3 * C + 5)
    stored, info = seal(small, data)
    for pos in range(len(stored)):
        for flip in range(1, 256):  # every other value of every byte
            bad = bytearray(stored)
            bad[pos] ^= flip
            with pytest.raises(CodecError):
                unseal(small, bytes(bad))  # header read from the (tampered) object
            if pos >= HEADER_SIZE:  # the body alone, with the header from file info
                with pytest.raises(TamperedChunk) as err:
                    unseal(small, bytes(bad), info)
                assert err.value.chunk_index == (pos - HEADER_SIZE) // (C + TAG_SIZE)


@pytest.mark.parametrize("size", [0, 1, C, 3 * C, 3 * C + 5])
def test_every_truncation_and_extension_is_detected(small, size: int) -> None:
    data = os.urandom(size)
    stored, info = seal(small, data)
    other, _ = seal(small, os.urandom(size + 2 * C))
    longer = [stored + bytes(k) for k in range(1, C + TAG_SIZE + 2)]
    longer += [stored + os.urandom(k) for k in range(1, C + TAG_SIZE + 2)]
    longer += [
        stored + stored[-(C + TAG_SIZE) :],
        stored + other[HEADER_SIZE : HEADER_SIZE + C + TAG_SIZE],
    ]
    for changed in [stored[:cut] for cut in range(len(stored))] + longer:
        for file_info in (info, None):  # the listing's size is the changed object's
            with pytest.raises(CodecError):
                unseal(small, changed, file_info)
    # The listing still says the full size but a download comes back short:
    # cut inside a chunk, it fails; cut between chunks, what comes back is the
    # verified plaintext of the chunks that came (the reader sees it is short).
    decryptor = small.decryptor(stored[:HEADER_SIZE])
    for cut in range(HEADER_SIZE, len(stored)):
        if (cut - HEADER_SIZE) % (C + TAG_SIZE):
            with pytest.raises(Truncated):
                decryptor.decode(0, stored[HEADER_SIZE:cut], size)
        else:
            plain = decryptor.decode(0, stored[HEADER_SIZE:cut], size)
            assert plain == data[: (cut - HEADER_SIZE) // (C + TAG_SIZE) * C] and len(plain) < max(
                size, 1
            )


def test_chunks_swapped_within_and_between_files_are_detected(small) -> None:
    a, info_a = seal(small, os.urandom(4 * C))
    b, info_b = seal(small, os.urandom(4 * C))
    step = C + TAG_SIZE

    def chunk(obj: bytes, i: int) -> bytes:
        return obj[HEADER_SIZE + i * step : HEADER_SIZE + (i + 1) * step]

    def with_chunks(obj: bytes, chunks: list[bytes]) -> bytes:
        return obj[:HEADER_SIZE] + b"".join(chunks)

    swapped = with_chunks(a, [chunk(a, 1), chunk(a, 0), chunk(a, 2), chunk(a, 3)])
    with pytest.raises(TamperedChunk) as err:
        unseal(small, swapped, info_a)
    assert err.value.chunk_index == 0
    spliced = with_chunks(a, [chunk(a, 0), chunk(b, 1), chunk(a, 2), chunk(a, 3)])
    with pytest.raises(TamperedChunk) as err:
        unseal(small, spliced, info_a)
    assert err.value.chunk_index == 1
    # the last chunk moved up (a truncation that keeps a valid-looking size)
    with pytest.raises(TamperedChunk):
        unseal(small, with_chunks(a, [chunk(a, 0), chunk(a, 3)]))


def test_swapped_headers_are_detected(small) -> None:
    a, info_a = seal(small, os.urandom(2 * C))
    b, info_b = seal(small, os.urandom(2 * C))
    with pytest.raises(TamperedChunk):
        unseal(small, b[:HEADER_SIZE] + a[HEADER_SIZE:])
    with pytest.raises(TamperedChunk):  # a file info header that is not the object's
        unseal(small, a, info_b)
    assert unseal(small, a, info_a) == unseal(small, a)


def test_same_plaintext_twice_gives_unrelated_ciphertext(small) -> None:
    data = bytes(5 * C)
    first, _ = seal(small, data)
    second, _ = seal(small, data)
    assert first[:5] == second[:5]  # magic, version
    assert first[HEADER_SIZE - 32 : HEADER_SIZE] != second[HEADER_SIZE - 32 : HEADER_SIZE]  # salt
    step = C + TAG_SIZE
    for i in range(5):
        at = HEADER_SIZE + i * step
        assert first[at : at + step] != second[at : at + step]
    assert data[:C] not in first


def test_another_vaults_objects_are_refused() -> None:
    mine, theirs = content_codec(), content_codec()
    stored, info = seal(theirs, b"their data")
    with pytest.raises(UnknownKey):
        unseal(mine, stored, info)
    same_id = type(mine)(os.urandom(32), stored[5:13], C)  # same key id, other key
    with pytest.raises(TamperedChunk):
        unseal(same_id, stored, info)


def test_headers_that_are_not_ours_are_refused(small) -> None:
    stored, _ = seal(small, b"x")
    for header in [
        b"",
        stored[: HEADER_SIZE - 1],
        b"XXXX" + stored[4:HEADER_SIZE],
        b"hello world" * 5,
    ]:
        with pytest.raises(CorruptObject):
            small.decryptor(header[:HEADER_SIZE])
    with pytest.raises(CorruptObject):  # format version 2
        small.decryptor(stored[:4] + b"\x02" + stored[5:HEADER_SIZE])
    assert small.header_from_file_info({"src_last_modified_millis": "1"}) is None
    for bad in ["not base64!", "QUJD", stored[:HEADER_SIZE].hex()]:
        with pytest.raises(CorruptObject):
            small.header_from_file_info({HEADER_INFO_KEY: bad})


def test_an_encryptor_refuses_plaintext_that_changed_under_it(small) -> None:
    data = bytearray(os.urandom(3 * C))
    enc = small.encryptor()
    size = enc.stored_size(len(data))

    def read(o: int, n: int) -> bytes:
        return bytes(data[o : o + n])

    first = enc.read_stored(read, len(data), 0, size)
    assert enc.read_stored(read, len(data), 0, size) == first  # a retry is fine
    data[C + 1] ^= 1
    with pytest.raises(SourceChanged):  # would reuse chunk 1's nonce: refused
        enc.read_stored(read, len(data), HEADER_SIZE + C + TAG_SIZE, size)
    assert (
        enc.read_stored(read, len(data), 0, HEADER_SIZE + C + TAG_SIZE)
        == first[: HEADER_SIZE + C + TAG_SIZE]
    )
    with pytest.raises(SourceChanged):
        enc.read_stored(lambda o, n: read(o, n)[:-1], len(data), 0, size)  # short read
    with pytest.raises(SourceChanged):
        enc.read_stored(read, len(data) - 1, 0, 10)  # another size: another object


def test_plain_codec_stores_plaintext_as_is() -> None:
    codec = PlainContentCodec()
    data = os.urandom(100)
    enc = codec.encryptor()
    assert (enc.header, enc.file_info, codec.header_size()) == (b"", {}, 0)
    assert enc.read_stored(lambda o, n: data[o : o + n], 100, 10, 30) == data[10:30]
    assert codec.stored_size(100) == codec.plain_size(100) == 100
    assert codec.stored_range(10, 30, 100) == (10, 30)
    assert codec.stored_range(90, 130, 100) == (90, 100)
    assert codec.stored_range(130, 140, 100) == (100, 100)
    assert (
        codec.decryptor(codec.header_from_file_info({})).decode(10, data[10:30], 100) == data[10:30]
    )
    with pytest.raises(CorruptObject):
        codec.plain_size(-1)


def test_reprs_show_no_key_material() -> None:
    key = os.urandom(32)
    codec = type(_SHARED)(key, b"\x01" * 8, C)
    enc = codec.encryptor()
    for text in (repr(codec), repr(enc), repr(codec.decryptor(enc.header))):
        assert key.hex() not in text and repr(key) not in text
