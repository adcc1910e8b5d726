"""Helpers of the codec unit tests: codecs on small chunks (so that checks can
be exhaustive), cheap KDF parameters (so that tests stay fast), and whole-object
seal/unseal as the mount's uploader and reader do them."""

from __future__ import annotations

import os

from b2fs.codec import Argon2idParams, EncryptedContentCodec

SMALL_CHUNK = 16
CHEAP_KDF = Argon2idParams(memory_kib=8, iterations=1, lanes=1)


def content_codec(chunk_size: int = SMALL_CHUNK) -> EncryptedContentCodec:
    return EncryptedContentCodec(os.urandom(32), os.urandom(8), chunk_size)


def seal(codec, data: bytes) -> tuple[bytes, dict[str, str]]:
    """The whole stored object of ``data`` and its file info, as uploaded."""
    enc = codec.encryptor()
    size = enc.stored_size(len(data))
    return enc.read_stored(lambda o, n: data[o : o + n], len(data), 0, size), enc.file_info


def unseal(codec, stored: bytes, file_info: dict[str, str] | None = None) -> bytes:
    """The plaintext of a whole stored object, read as the mount does: the
    listing's size gives the plaintext size, the header comes from the file
    info when given, else from the object."""
    plain_size = codec.plain_size(len(stored))
    header = codec.header_from_file_info(file_info or {})
    if header is None:
        header = stored[: codec.header_size()]
    start, end = codec.stored_range(0, plain_size, plain_size)
    return codec.decryptor(header).decode(0, stored[start:end], plain_size)
