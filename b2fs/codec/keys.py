"""Key derivation: every key the codec uses comes from HKDF-SHA256.

The vault derives one subkey per purpose from the master key (``subkey``);
``content`` and ``staging`` derive one key per object or staging file from their
subkey and a random salt (``file_key``). The ``info`` labels below are part of
the format (docs/encryption.md): changing one changes every key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# purpose -> (HKDF info, key length)
CONTENT = (b"b2fs v1 content", 32)  # AES-256-GCM per-object keys derive from it
NAMES = (b"b2fs v1 names", 64)  # AES-SIV with AES-256 (two 256-bit halves)
STAGING = (b"b2fs v1 staging", 32)  # AES-256-GCM per-staging-file keys derive from it
VAULT_MAC = (b"b2fs v1 vault mac", 32)  # HMAC-SHA256 over the vault's settings

OBJECT_INFO = b"b2fs v1 object"
STAGING_FILE_INFO = b"b2fs v1 staging file"


def hkdf(key: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def subkey(master_key: bytes, purpose: tuple[bytes, int]) -> bytes:
    """The master key's subkey for one purpose (CONTENT, NAMES, STAGING, VAULT_MAC)."""
    info, length = purpose
    return hkdf(master_key, info, length)


def file_key(purpose_key: bytes, salt: bytes, info: bytes) -> bytes:
    """A 256-bit key for one object (OBJECT_INFO) or staging file (STAGING_FILE_INFO)."""
    return hkdf(purpose_key, info, 32, salt=salt)
