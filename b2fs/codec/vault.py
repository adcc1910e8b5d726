"""The vault: the master key, wrapped under a passphrase, and the settings.

The vault object (``.b2fs-vault`` at the root of the mounted prefix) is a small
JSON document: format version, key id, settings (cipher, chunk size, name
scheme), KDF parameters and salt, the master key sealed with AES-256-GCM under
Argon2id (scrypt where this machine's cryptography has no Argon2id) of the
passphrase, and an HMAC over version, key id and settings under a key derived
from the master key, so nothing can be changed or downgraded without the
passphrase. ``create_vault`` makes one, ``open_vault`` unlocks one into a
``Vault`` (which hands out the encrypted codecs), ``rewrap_vault`` changes the
passphrase (the master key, hence every object, stays as it is). Neighbours:
``keys`` derives the subkeys; ``content``, ``names``, ``staging`` are the codecs
it builds; the CLI and the mount read and write the object.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from b2fs.codec import b64, keys
from b2fs.codec.content import KEY_ID_SIZE, EncryptedContentCodec
from b2fs.codec.errors import CorruptVault, UnsupportedVault, WrongPassphrase
from b2fs.codec.names import EncryptedNameCodec
from b2fs.codec.staging import EncryptedStagingCodec

try:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # cryptography < 44
    Argon2id = None  # type: ignore[assignment,misc]

FORMAT_VERSION = 1
CONTENT_CIPHER = "AES-256-GCM"
NAME_SCHEME = "AES-SIV/segment"
DEFAULT_CHUNK_SIZE = 65536
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 16, 1 << 24
KDF_SALT_SIZE = 16
WRAP_AD = b"b2fs vault v1 master key"
WRAPPED_SIZE = 12 + 32 + 16  # nonce, master key, tag
MAX_KDF_MEMORY_KIB = 4 << 20  # 4 GiB: a vault asking for more is refused, not obeyed


@dataclass(frozen=True)
class Argon2idParams:
    """RFC 9106's second recommended option by default (64 MiB, 3 passes, 4 lanes)."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4
    name: ClassVar[str] = "argon2id"

    def sane(self) -> bool:
        return (
            8 * self.lanes <= self.memory_kib <= MAX_KDF_MEMORY_KIB
            and 1 <= self.iterations <= 100
            and 1 <= self.lanes <= 64
        )


@dataclass(frozen=True)
class ScryptParams:
    """The fallback: N = 2^17, r = 8, p = 1 (128 MiB) by default."""

    n: int = 1 << 17
    r: int = 8
    p: int = 1
    name: ClassVar[str] = "scrypt"

    def sane(self) -> bool:
        return (
            _is_power_of_two(self.n)
            and self.n >= 2
            and 1 <= self.r <= 64
            and 1 <= self.p <= 64
            and self.n * self.r <= MAX_KDF_MEMORY_KIB * 8
        )


KdfParams = Argon2idParams | ScryptParams
_KDFS: dict[str, type[Argon2idParams] | type[ScryptParams]] = {
    "argon2id": Argon2idParams,
    "scrypt": ScryptParams,
}


@functools.cache
def argon2id_available() -> bool:
    """Whether this machine's cryptography (and its OpenSSL) has Argon2id."""
    if Argon2id is None:
        return False
    try:
        Argon2id(salt=bytes(16), length=32, iterations=1, lanes=1, memory_cost=8).derive(b"")
    except UnsupportedAlgorithm:
        return False
    return True


def default_kdf() -> KdfParams:
    return Argon2idParams() if argon2id_available() else ScryptParams()


class Vault:
    """An unlocked vault: hands out the encrypted codecs. Never shows its keys."""

    def __init__(self, master_key: bytes, key_id: bytes, chunk_size: int, kdf: KdfParams) -> None:
        self._master_key = master_key
        self._key_id = key_id
        self.key_id = key_id.hex()
        self.chunk_size = chunk_size
        self.kdf = kdf

    def __repr__(self) -> str:
        return f"Vault(key_id={self.key_id}, chunk_size={self.chunk_size}, kdf={self.kdf})"

    def content_codec(self) -> EncryptedContentCodec:
        return EncryptedContentCodec(
            keys.subkey(self._master_key, keys.CONTENT), self._key_id, self.chunk_size
        )

    def name_codec(self) -> EncryptedNameCodec:
        return EncryptedNameCodec(keys.subkey(self._master_key, keys.NAMES))

    def staging_codec(self) -> EncryptedStagingCodec:
        return EncryptedStagingCodec(keys.subkey(self._master_key, keys.STAGING), self.chunk_size)


def create_vault(
    passphrase: str, *, kdf: KdfParams | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[bytes, Vault]:
    """A new vault with a random master key: (the vault object's bytes, the vault)."""
    if not _valid_chunk_size(chunk_size):
        raise ValueError(
            f"chunk size must be a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )
    vault = Vault(os.urandom(32), os.urandom(KEY_ID_SIZE), chunk_size, kdf or default_kdf())
    return _dump(vault, passphrase), vault


def open_vault(blob: bytes, passphrase: str) -> Vault:
    """Unlocks a vault object. Raises WrongPassphrase, CorruptVault, UnsupportedVault."""
    try:
        doc = json.loads(blob)
    except ValueError:
        raise CorruptVault("the vault object is not JSON") from None
    version = _field(doc, "b2fs_vault", int)
    if version != FORMAT_VERSION:
        raise UnsupportedVault(f"vault format {version} (this b2fs reads {FORMAT_VERSION})")
    kdf, salt = _kdf_from_json(_field(doc, "kdf", dict))
    wrapped = _b64_field(doc, "wrapped_key", WRAPPED_SIZE)
    key_id = _key_id_field(doc)
    settings = _field(doc, "settings", dict)
    mac = _b64_field(doc, "mac")
    try:
        master_key = AESGCM(_kek(passphrase, kdf, salt)).decrypt(
            wrapped[:12], wrapped[12:], WRAP_AD
        )
    except InvalidTag:
        raise WrongPassphrase("wrong passphrase (or the vault's wrapped key was altered)") from None
    if not hmac.compare_digest(mac, _mac(master_key, key_id, settings)):
        raise CorruptVault("the vault's settings fail their MAC (altered)")
    if settings.get("content") != CONTENT_CIPHER or settings.get("names") != NAME_SCHEME:
        raise UnsupportedVault(
            f"vault settings {settings} (this b2fs uses {CONTENT_CIPHER}, {NAME_SCHEME})"
        )
    chunk_size = _field(settings, "chunk_size", int)
    if not _valid_chunk_size(chunk_size):
        raise UnsupportedVault(f"chunk size {chunk_size}")
    return Vault(master_key, key_id, chunk_size, kdf)


def rewrap_vault(blob: bytes, old: str, new: str, *, kdf: KdfParams | None = None) -> bytes:
    """The vault object re-wrapped under a new passphrase (and a new KDF salt;
    the same KDF parameters unless ``kdf`` is given). No data changes."""
    vault = open_vault(blob, old)
    if kdf is not None:
        vault.kdf = kdf
    return _dump(vault, new)


def _dump(vault: Vault, passphrase: str) -> bytes:
    if not passphrase:
        raise ValueError("empty passphrase")
    salt = os.urandom(KDF_SALT_SIZE)
    nonce = os.urandom(12)
    settings = {"content": CONTENT_CIPHER, "chunk_size": vault.chunk_size, "names": NAME_SCHEME}
    doc = {
        "b2fs_vault": FORMAT_VERSION,
        "key_id": vault.key_id,
        "settings": settings,
        "kdf": {"name": vault.kdf.name, "salt": b64.encode(salt), **asdict(vault.kdf)},
        "wrapped_key": b64.encode(
            nonce
            + AESGCM(_kek(passphrase, vault.kdf, salt)).encrypt(nonce, vault._master_key, WRAP_AD)
        ),
        "mac": b64.encode(_mac(vault._master_key, vault._key_id, settings)),
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _kek(passphrase: str, kdf: KdfParams, salt: bytes) -> bytes:
    """The key-encryption key: the KDF of the NFC-normalised passphrase."""
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    if isinstance(kdf, ScryptParams):
        return Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(secret)
    if not argon2id_available():
        raise UnsupportedVault("this machine's cryptography has no Argon2id")
    return Argon2id(
        salt=salt, length=32, iterations=kdf.iterations, lanes=kdf.lanes, memory_cost=kdf.memory_kib
    ).derive(secret)


def _mac(master_key: bytes, key_id: bytes, settings: dict[str, Any]) -> bytes:
    signed = {"b2fs_vault": FORMAT_VERSION, "key_id": key_id.hex(), "settings": settings}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(keys.subkey(master_key, keys.VAULT_MAC), text, hashlib.sha256).digest()


def _kdf_from_json(doc: dict[str, Any]) -> tuple[KdfParams, bytes]:
    cls = _KDFS.get(_field(doc, "name", str))
    if cls is None:
        raise UnsupportedVault(f"unknown KDF {doc['name']!r}")
    kdf = cls(**{f.name: _field(doc, f.name, int) for f in fields(cls)})
    if not kdf.sane():
        raise UnsupportedVault(f"KDF parameters out of bounds: {kdf}")
    return kdf, _b64_field(doc, "salt")


def _field(doc: Any, key: str, kind: type) -> Any:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorruptVault(f"vault field {key!r} missing or not {kind.__name__}")
    return value


def _b64_field(doc: dict[str, Any], key: str, size: int | None = None) -> bytes:
    try:
        value = b64.decode(_field(doc, key, str))
    except ValueError:
        raise CorruptVault(f"vault field {key!r} is not base64url") from None
    if size is not None and len(value) != size:
        raise CorruptVault(f"vault field {key!r} has {len(value)} bytes, not {size}")
    return value


def _key_id_field(doc: dict[str, Any]) -> bytes:
    try:
        key_id = bytes.fromhex(_field(doc, "key_id", str))
    except ValueError:
        raise CorruptVault("vault field 'key_id' is not hex") from None
    if len(key_id) != KEY_ID_SIZE:
        raise CorruptVault(f"vault field 'key_id' has {len(key_id)} bytes, not {KEY_ID_SIZE}")
    return key_id


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _valid_chunk_size(n: int) -> bool:
    return _is_power_of_two(n) and MIN_CHUNK_SIZE <= n <= MAX_CHUNK_SIZE
