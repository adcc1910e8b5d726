"""Server-side encryption of a mount's writes: ``-o sse=b2`` (SSE-B2) or
``-o sse_c_key_file=PATH`` (SSE-C with the customer's key, which then also goes with
every read). The key file is the key's 32 bytes or their base64 (44 characters), in
a file only its owner can read, like the passphrase file of ``-o encrypt``. The
client built by ``mount.run.connect`` carries the setting as its default, so every
upload, copy and download of the mount passes it; the key is never logged nor shown
by ``b2fs status``.
"""

from __future__ import annotations

import base64
import binascii

from b2fs.b2 import ServerSideEncryption
from b2fs.mount.options import MountOptions
from b2fs.private_file import read_private


class SseKeyError(Exception):
    """The SSE-C key file is unusable; the message says why (never what it holds)."""


def read_key_file(path: str) -> bytes:
    data = read_private(path, "SSE-C key file", SseKeyError, 1024)
    if len(data) == 32:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise SseKeyError(
            f"SSE-C key file {path} must hold a 256-bit key: 32 bytes, or their base64"
        )
    return key


def encryption(opts: MountOptions) -> ServerSideEncryption | None:
    """The mount's setting (None: writes are encrypted as the bucket's default says)."""
    if opts.sse_c_key_file:
        return ServerSideEncryption.customer(read_key_file(opts.sse_c_key_file))
    if opts.sse == "b2":
        return ServerSideEncryption.b2()
    return None
