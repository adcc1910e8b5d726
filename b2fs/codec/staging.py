"""Local staging files: where the write-back keeps a file being written.

A ``StagingFile`` is a random-access file of plaintext as the mount sees it
(``pread``/``pwrite``/``truncate``/``size``), kept on an open file descriptor
with plain, synchronous OS calls. ``PlainStagingCodec`` keeps the plaintext at
the same offsets. ``EncryptedStagingCodec`` never writes plaintext: a 48-byte
header (magic, random salt, logical size) then one fixed slot per plaintext
chunk, random 96-bit nonce || AES-256-GCM(chunk, zero-padded to the chunk size)
|| tag, sealed under HKDF(staging key, salt) with the slot index as associated
data and a fresh nonce on every write; an all-zero slot is a hole (reads as
zeros). The caller owns the descriptor (opens, fsyncs, closes it); one
StagingFile per descriptor at a time. Neighbours: the vault builds the
encrypted codec; the mount's writeback uses it, and its uploader reads the
plaintext back through ``pread`` into a content encryptor.
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from b2fs.codec import keys
from b2fs.codec.errors import CorruptStaging, TamperedChunk

MAGIC = b"b2fsSTG1"
SALT_SIZE = 32
SIZE_AT = len(MAGIC) + SALT_SIZE
HEADER_SIZE = SIZE_AT + 8  # 48 bytes
NONCE_SIZE = 12
TAG_SIZE = 16


class StagingFile(Protocol):
    fd: int

    def size(self) -> int: ...

    def pread(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only at the end of file)."""
        ...

    def pwrite(self, offset: int, data: bytes) -> int:
        """Writes ``data`` at ``offset`` (a gap past the end reads as zeros)."""
        ...

    def truncate(self, size: int) -> None: ...


class StagingCodec(Protocol):
    encrypted: bool

    def create(self, fd: int) -> StagingFile:
        """A new, empty staging file in ``fd`` (whatever it held is dropped)."""
        ...

    def open(self, fd: int) -> StagingFile:
        """The staging file ``fd`` already holds (after a restart). CorruptStaging."""
        ...


# -- plain ---------------------------------------------------------------------


class PlainStagingFile:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        return _pread_full(self.fd, offset, length)

    def pwrite(self, offset: int, data: bytes) -> int:
        _pwrite_full(self.fd, data, offset)
        return len(data)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)


class PlainStagingCodec:
    encrypted = False

    def create(self, fd: int) -> StagingFile:
        os.ftruncate(fd, 0)
        return PlainStagingFile(fd)

    def open(self, fd: int) -> StagingFile:
        return PlainStagingFile(fd)


# -- encrypted -----------------------------------------------------------------


class EncryptedStagingCodec:
    encrypted = True

    def __init__(self, staging_key: bytes, chunk_size: int) -> None:
        self._key = staging_key
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"EncryptedStagingCodec(chunk_size={self.chunk_size})"

    def create(self, fd: int) -> StagingFile:
        salt = os.urandom(SALT_SIZE)
        os.ftruncate(fd, 0)
        _pwrite_full(fd, MAGIC + salt + bytes(8), 0)
        return EncryptedStagingFile(fd, self._key, salt, 0, self.chunk_size)

    def open(self, fd: int) -> StagingFile:
        header = _pread_full(fd, 0, HEADER_SIZE)
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            raise CorruptStaging("not an encrypted staging file")
        size = int.from_bytes(header[SIZE_AT:], "big")
        staged = EncryptedStagingFile(
            fd, self._key, header[len(MAGIC) : SIZE_AT], size, self.chunk_size
        )
        staged.drop_slots_past_end()  # a crash may have left slots past the recorded size
        return staged


class EncryptedStagingFile:
    def __init__(
        self, fd: int, staging_key: bytes, salt: bytes, size: int, chunk_size: int
    ) -> None:
        self.fd = fd
        self._aead = AESGCM(keys.file_key(staging_key, salt, keys.STAGING_FILE_INFO))
        self._size = size
        self._chunk = chunk_size
        self._slot = NONCE_SIZE + chunk_size + TAG_SIZE

    def __repr__(self) -> str:
        return f"EncryptedStagingFile(fd={self.fd}, size={self._size})"

    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if offset >= end:
            return b""
        first, last = offset // self._chunk, (end - 1) // self._chunk
        plain = self._read_chunks(first, last)
        base = first * self._chunk
        if offset == base and end - base == len(plain):
            return plain  # type: ignore[return-value]  # a bytearray: no copy
        return plain[offset - base : end - base]  # type: ignore[return-value]

    def pwrite(self, offset: int, data: bytes) -> int:
        if not data:
            return 0
        if offset > self._size:
            self.truncate(offset)
        c = self._chunk
        end = offset + len(data)
        first, last = offset // c, (end - 1) // c
        view = memoryview(data)
        slots = bytearray((last + 1 - first) * self._slot)  # sealed in place: no joins
        for index in range(first, last + 1):
            lo, hi = max(offset, index * c), min(end, (index + 1) * c)
            if hi - lo == c:
                chunk: bytes | bytearray | memoryview = view[lo - offset : hi - offset]
            else:  # read-modify-write of a partly written chunk
                chunk = self._read_chunks(index, index)
                chunk[lo - index * c : hi - index * c] = view[lo - offset : hi - offset]
            self._seal_into(index, chunk, slots, (index - first) * self._slot)
        _pwrite_full(self.fd, slots, HEADER_SIZE + first * self._slot)
        if end > self._size:
            self._set_size(end)
        return len(data)

    def truncate(self, size: int) -> None:
        if size > self._size and self._size % self._chunk:
            # The bytes past the old end must read as zeros: re-seal the old last
            # chunk with its tail cleared (whatever it held there before).
            index, keep = divmod(self._size, self._chunk)
            chunk = self._read_chunks(index, index)
            chunk[keep:] = bytes(self._chunk - keep)
            slot = bytearray(self._slot)
            self._seal_into(index, chunk, slot, 0)
            _pwrite_full(self.fd, slot, HEADER_SIZE + index * self._slot)
        self._set_size(size)
        self.drop_slots_past_end()

    def drop_slots_past_end(self) -> None:
        """Cuts the file after the last slot the logical size needs: the slots
        a later extension brings back are holes."""
        os.ftruncate(self.fd, HEADER_SIZE + -(-self._size // self._chunk) * self._slot)

    def _set_size(self, size: int) -> None:
        _pwrite_full(self.fd, size.to_bytes(8, "big"), SIZE_AT)
        self._size = size

    def _seal_into(self, index: int, chunk: bytes | bytearray | memoryview, out: bytearray,
                   at: int) -> None:  # fmt: skip
        """Writes the slot (nonce, ciphertext || tag) of a full chunk at ``out[at:]``.
        AES writes into the caller's buffer: joining fresh results cost more than the
        AES itself."""
        nonce = os.urandom(NONCE_SIZE)
        while not any(nonce):  # an all-zero slot means a hole
            nonce = os.urandom(NONCE_SIZE)
        view = memoryview(out)[at : at + self._slot]
        view[:NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, chunk, index.to_bytes(8, "big"), view[NONCE_SIZE:])

    def _read_chunks(self, first: int, last: int) -> bytearray:
        """The plaintext of chunks first..last, decrypted into one buffer (a hole, or
        a slot past the end of the file, is zeros). Raises TamperedChunk."""
        raw = _pread_full(
            self.fd, HEADER_SIZE + first * self._slot, (last + 1 - first) * self._slot
        )
        view = memoryview(raw)
        plain = bytearray((last + 1 - first) * self._chunk)
        out = memoryview(plain)
        c = self._chunk
        for index in range(first, last + 1):
            slot = view[(index - first) * self._slot : (index - first + 1) * self._slot]
            if len(slot) < self._slot or not any(slot[:NONCE_SIZE]):
                if any(slot):
                    raise TamperedChunk(index)
                continue  # zeros already
            try:
                self._aead.decrypt_into(
                    slot[:NONCE_SIZE], slot[NONCE_SIZE:], index.to_bytes(8, "big"),
                    out[(index - first) * c : (index - first + 1) * c],
                )  # fmt: skip
            except InvalidTag:
                raise TamperedChunk(index) from None
        return plain


def _pread_full(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset``, or fewer only at the end of the file."""
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return b"".join(parts)


def _pwrite_full(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
