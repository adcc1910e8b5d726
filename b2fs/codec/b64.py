"""Unpadded base64url, strict: the one text encoding of the codec's bytes.

Used for name segments (B2 names are case-sensitive, so base64url fits), for
the header and long names kept in file info, and for the vault's JSON fields.
``decode`` accepts only the canonical encoding, so two stored strings never
decode to the same bytes.
"""

from __future__ import annotations

import base64
import binascii


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encoded_len(n: int) -> int:
    """Length of ``encode`` of ``n`` bytes."""
    return (4 * n + 2) // 3


def decode(text: str) -> bytes:
    """The bytes of a canonical unpadded base64url string; ValueError otherwise."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if encode(data) != text:  # stray characters, padding, non-zero trailing bits
        raise ValueError("not canonical base64url")
    return data
