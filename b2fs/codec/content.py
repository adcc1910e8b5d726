"""File contents: plaintext offsets <-> stored byte ranges, and the AEAD itself.

A ``ContentCodec`` tells the reader which stored bytes hold a plaintext range
and turns them back into plaintext (``decryptor``), and gives the uploader the
stored bytes of any part of a new object (``encryptor``). ``PlainContentCodec``
stores plaintext as is; ``EncryptedContentCodec`` implements format v1 of
docs/encryption.md: a 45-byte header (magic, version, key id, salt), then
chunks of ``chunk_size`` plaintext bytes, each sealed with AES-256-GCM under a
per-object key derived from the salt (``keys.file_key``), nonce = chunk index
(11 bytes, big-endian) || last-chunk flag, associated data = header || nonce.
Neighbours: the vault builds the encrypted codec; the mount's reader, cache and
writeback call it; it does no I/O of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from b2fs.codec import b64, keys
from b2fs.codec.errors import (
    CorruptObject,
    SourceChanged,
    TamperedChunk,
    Truncated,
    UnknownKey,
)

MAGIC = b"B2FE"
VERSION = 1
KEY_ID_SIZE = 8
SALT_SIZE = 32
HEADER_SIZE = len(MAGIC) + 1 + KEY_ID_SIZE + SALT_SIZE  # 45 bytes: 60 base64url characters
TAG_SIZE = 16
HEADER_INFO_KEY = "b2fs-h"  # file info key holding base64url(header)

ReadPlain = Callable[[int, int], bytes]


class ObjectDecryptor(Protocol):
    def decode(self, plain_start: int, stored: bytes, plain_size: int) -> bytes:
        """Plaintext from ``plain_start`` to the end of the chunks in ``stored``.

        ``stored`` starts at the chunk holding ``plain_start`` and holds whole
        chunks; every one is verified. Raises TamperedChunk / Truncated.
        """
        ...


class ObjectEncryptor(Protocol):
    header: bytes
    file_info: dict[str, str]  # to add to the object's file info on upload

    def stored_size(self, plain_size: int) -> int: ...

    def read_stored(self, read_plain: ReadPlain, plain_size: int, start: int, end: int) -> bytes:
        """Stored bytes [start, end) of the object whose plaintext (of
        ``plain_size`` bytes) ``read_plain(offset, length)`` returns. Any range,
        in any order, any number of times: the same range gives the same bytes
        as long as the plaintext does not change (else SourceChanged)."""
        ...


class ContentCodec(Protocol):
    encrypted: bool
    chunk_size: int  # plaintext bytes per chunk; read blocks are multiples of it

    def stored_size(self, plain_size: int) -> int: ...

    def plain_size(self, stored_size: int) -> int:
        """Raises CorruptObject for a size no object of this codec can have."""
        ...

    def stored_range(self, plain_start: int, plain_end: int, plain_size: int) -> tuple[int, int]:
        """[s, e) of the stored bytes holding plaintext [plain_start, plain_end),
        in whole chunks (from the chunk holding ``plain_start``)."""
        ...

    def header_size(self) -> int: ...

    def header_from_file_info(self, file_info: dict[str, str]) -> bytes | None:
        """The header kept in the object's file info, or None: then read the
        first ``header_size()`` stored bytes."""
        ...

    def decryptor(self, header: bytes) -> ObjectDecryptor: ...

    def encryptor(self) -> ObjectEncryptor:
        """A new object (a fresh salt on every call)."""
        ...


# -- plain ---------------------------------------------------------------------


class PlainObject:
    """Decryptor and encryptor of a plain object: the stored bytes are the plaintext."""

    header = b""

    def __init__(self) -> None:
        self.file_info: dict[str, str] = {}

    def decode(self, plain_start: int, stored: bytes, plain_size: int) -> bytes:
        return bytes(stored)

    def stored_size(self, plain_size: int) -> int:
        return plain_size

    def read_stored(self, read_plain: ReadPlain, plain_size: int, start: int, end: int) -> bytes:
        data = read_plain(start, end - start)
        if len(data) != end - start:
            raise SourceChanged(f"read {len(data)} bytes at {start}, expected {end - start}")
        return data


class PlainContentCodec:
    encrypted = False
    chunk_size = 1

    def stored_size(self, plain_size: int) -> int:
        return plain_size

    def plain_size(self, stored_size: int) -> int:
        if stored_size < 0:
            raise CorruptObject(f"negative size {stored_size}")
        return stored_size

    def stored_range(self, plain_start: int, plain_end: int, plain_size: int) -> tuple[int, int]:
        start = min(plain_start, plain_size)
        return start, max(start, min(plain_end, plain_size))

    def header_size(self) -> int:
        return 0

    def header_from_file_info(self, file_info: dict[str, str]) -> bytes | None:
        return b""

    def decryptor(self, header: bytes) -> ObjectDecryptor:
        if header:
            raise CorruptObject("a plain object has no header")
        return PlainObject()

    def encryptor(self) -> ObjectEncryptor:
        return PlainObject()


# -- encrypted -----------------------------------------------------------------


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class _Layout:
    """Chunk arithmetic of format v1 for one chunk size."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.stored_chunk = chunk_size + TAG_SIZE

    def chunks(self, plain_size: int) -> int:
        """Number of chunks: an empty object still has one (empty, final) chunk."""
        return max(1, -(-plain_size // self.chunk_size))

    def stored_size(self, plain_size: int) -> int:
        if plain_size < 0:
            raise ValueError(f"negative size {plain_size}")
        return HEADER_SIZE + plain_size + TAG_SIZE * self.chunks(plain_size)

    def plain_size(self, stored_size: int) -> int:
        full, rest = divmod(stored_size - HEADER_SIZE, self.stored_chunk)
        if stored_size - HEADER_SIZE >= TAG_SIZE:
            if rest == 0:
                return full * self.chunk_size
            if rest > TAG_SIZE or (rest == TAG_SIZE and full == 0):
                return full * self.chunk_size + rest - TAG_SIZE
        raise CorruptObject(f"no encrypted object has {stored_size} stored bytes")

    def chunk_start(self, index: int) -> int:
        return HEADER_SIZE + index * self.stored_chunk


class EncryptedContentCodec:
    encrypted = True

    def __init__(self, content_key: bytes, key_id: bytes, chunk_size: int) -> None:
        if len(key_id) != KEY_ID_SIZE:
            raise ValueError(f"key id must be {KEY_ID_SIZE} bytes")
        self._key = content_key
        self._key_id = key_id
        self._layout = _Layout(chunk_size)
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"EncryptedContentCodec(key_id={self._key_id.hex()}, chunk_size={self.chunk_size})"

    def stored_size(self, plain_size: int) -> int:
        return self._layout.stored_size(plain_size)

    def plain_size(self, stored_size: int) -> int:
        return self._layout.plain_size(stored_size)

    def stored_range(self, plain_start: int, plain_end: int, plain_size: int) -> tuple[int, int]:
        layout = self._layout
        n = layout.chunks(plain_size)
        first = plain_start // self.chunk_size
        if first >= n:
            end = layout.stored_size(plain_size)
            return end, end
        last = min(n - 1, max(first, (min(plain_end, plain_size) - 1) // self.chunk_size))
        end = min(layout.chunk_start(last + 1), layout.stored_size(plain_size))
        return layout.chunk_start(first), end

    def header_size(self) -> int:
        return HEADER_SIZE

    def header_from_file_info(self, file_info: dict[str, str]) -> bytes | None:
        text = file_info.get(HEADER_INFO_KEY)
        if text is None:
            return None
        try:
            header = b64.decode(text)
        except ValueError:
            raise CorruptObject(f"file info {HEADER_INFO_KEY} is not base64url") from None
        if len(header) != HEADER_SIZE:
            raise CorruptObject(f"file info {HEADER_INFO_KEY} holds {len(header)} bytes")
        return header

    def decryptor(self, header: bytes) -> ObjectDecryptor:
        header = bytes(header)
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            raise CorruptObject("not a b2fs encrypted object (bad header)")
        if header[len(MAGIC)] != VERSION:
            raise CorruptObject(f"unsupported object format version {header[len(MAGIC)]}")
        key_id = header[len(MAGIC) + 1 : len(MAGIC) + 1 + KEY_ID_SIZE]
        if key_id != self._key_id:
            raise UnknownKey(
                f"object sealed with key {key_id.hex()}, vault key is {self._key_id.hex()}"
            )
        return _EncryptedObject(self._key, header, self._layout)

    def encryptor(self) -> ObjectEncryptor:
        header = MAGIC + bytes([VERSION]) + self._key_id + os.urandom(SALT_SIZE)
        return _EncryptedObject(self._key, header, self._layout)


class _EncryptedObject:
    """One encrypted object (one header, hence one per-object key): decrypts
    chunks read back, or seals the chunks of a new object."""

    def __init__(self, content_key: bytes, header: bytes, layout: _Layout) -> None:
        self.header = header
        self.file_info = {HEADER_INFO_KEY: b64.encode(header)}
        self._aead = AESGCM(keys.file_key(content_key, header[-SALT_SIZE:], keys.OBJECT_INFO))
        self._layout = layout
        self._sealed = bytearray()  # 4-byte tag prefix per sealed chunk (0: not yet)
        self._sealed_size: int | None = None  # the plaintext size being sealed

    def __repr__(self) -> str:
        return f"EncryptedObject(salt={self.header[-SALT_SIZE:].hex()})"

    def stored_size(self, plain_size: int) -> int:
        return self._layout.stored_size(plain_size)

    def decode(self, plain_start: int, stored: bytes, plain_size: int) -> bytes:
        layout = self._layout
        n = layout.chunks(plain_size)
        first = plain_start // layout.chunk_size
        view = memoryview(stored)
        # Each chunk is decrypted straight into one buffer: a join of fresh 64 KiB
        # results costs 8 x the AES itself here (page faults of the new megabyte).
        data = bytearray(max(len(view) - TAG_SIZE * -(-len(view) // layout.stored_chunk), 0))
        out = memoryview(data)
        pos, at, index = 0, 0, first
        while pos < len(view):
            if index >= n:
                raise CorruptObject(f"stored bytes run past the last chunk ({n - 1})")
            last = index == n - 1
            size = (
                plain_size - index * layout.chunk_size if last else layout.chunk_size
            ) + TAG_SIZE
            if pos + size > len(view) or at + size - TAG_SIZE > len(data):
                raise Truncated(index)
            try:
                nonce = _nonce(index, last)
                self._aead.decrypt_into(
                    nonce,
                    view[pos : pos + size],
                    self.header + nonce,
                    out[at : at + size - TAG_SIZE],
                )
            except InvalidTag:
                raise TamperedChunk(index) from None
            pos += size
            at += size - TAG_SIZE
            index += 1
        skip = plain_start - first * layout.chunk_size
        return out[skip:at] if skip or at < len(data) else data

    def read_stored(self, read_plain: ReadPlain, plain_size: int, start: int, end: int) -> bytes:
        layout = self._layout
        if not 0 <= start <= end <= layout.stored_size(plain_size):
            raise ValueError(f"range [{start}, {end}) outside the object")
        if self._sealed_size is None:
            self._sealed = bytearray(4 * layout.chunks(plain_size))
            self._sealed_size = plain_size
        elif plain_size != self._sealed_size:
            raise SourceChanged(f"plaintext size changed from {self._sealed_size} to {plain_size}")
        pieces = [self.header[start:end]] if start < HEADER_SIZE else []
        if end > HEADER_SIZE:
            c = layout.chunk_size
            n = layout.chunks(plain_size)
            first = max(start - HEADER_SIZE, 0) // layout.stored_chunk
            last = (end - HEADER_SIZE - 1) // layout.stored_chunk
            plain_from, plain_to = first * c, min((last + 1) * c, plain_size)
            plain = memoryview(read_plain(plain_from, plain_to - plain_from))
            if len(plain) != plain_to - plain_from:
                raise SourceChanged(
                    f"read {len(plain)} bytes at {plain_from}, expected {plain_to - plain_from}"
                )
            # Sealed in place into one buffer (joining fresh results costs more than AES).
            base = layout.chunk_start(first)
            sealed = bytearray(layout.chunk_start(last) + (plain_to - last * c) + TAG_SIZE - base)
            out = memoryview(sealed)
            for i in range(first, last + 1):
                at = layout.chunk_start(i) - base
                size = min(c, plain_to - i * c)
                self._seal_into(
                    i, i == n - 1, plain[(i - first) * c : (i - first) * c + size],
                    out[at : at + size + TAG_SIZE],
                )  # fmt: skip
            cut_from, cut_to = max(start - base, 0), end - base
            if not pieces and cut_from == 0 and cut_to == len(sealed):
                return sealed  # type: ignore[return-value]  # no copy
            pieces.append(out[cut_from:cut_to])
        return b"".join(pieces)

    def _seal_into(self, index: int, last: bool, plain: memoryview, out: memoryview) -> None:
        nonce = _nonce(index, last)
        self._aead.encrypt_into(nonce, plain, self.header + nonce, out)
        # Never let two different plaintexts out under one (key, nonce): remember
        # a prefix of each chunk's tag and refuse a chunk whose tag differs.
        seen = self._sealed[4 * index : 4 * index + 4]
        tag = bytes(out[-TAG_SIZE : -TAG_SIZE + 4])
        if seen == b"\0\0\0\0":
            self._sealed[4 * index : 4 * index + 4] = tag
        elif seen != tag:
            raise SourceChanged(f"plaintext of chunk {index} changed since it was sealed")
