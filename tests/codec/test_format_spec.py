"""Format v1 as docs/encryption.md states it, written again here from the
document alone with bare ``cryptography`` primitives: what the codec writes,
this reads, and the other way round. A change to the format fails here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

import pytest
from codec_helpers import CHEAP_KDF, seal, unseal
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from b2fs.codec import EncryptedContentCodec, EncryptedNameCodec, create_vault

pytestmark = pytest.mark.timeout(60)


def hkdf(key: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def spec_seal(content_key: bytes, key_id: bytes, chunk: int, plain: bytes, salt: bytes) -> bytes:
    header = b"B2FE" + b"\x01" + key_id + salt
    aead = AESGCM(hkdf(content_key, b"b2fs v1 object", salt=salt))
    pieces = [plain[i : i + chunk] for i in range(0, len(plain), chunk)] or [b""]
    out = [header]
    for i, piece in enumerate(pieces):
        nonce = i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00")
        out.append(aead.encrypt(nonce, piece, header + nonce))
    return b"".join(out)


def spec_open(content_key: bytes, chunk: int, stored: bytes) -> bytes:
    header, body = stored[:45], stored[45:]
    aead = AESGCM(hkdf(content_key, b"b2fs v1 object", salt=header[13:45]))
    step = chunk + 16
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    nonces = [i.to_bytes(11, "big") + bytes([i == len(pieces) - 1]) for i in range(len(pieces))]
    return b"".join(
        aead.decrypt(n, piece, header + n) for n, piece in zip(nonces, pieces, strict=True)
    )


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 300])
def test_contents_match_the_document(size: int) -> None:
    content_key, key_id, chunk = os.urandom(32), os.urandom(8), 64
    codec = EncryptedContentCodec(content_key, key_id, chunk)
    plain = os.urandom(size)
    stored, info = seal(codec, plain)
    assert stored[:13] == b"B2FE\x01" + key_id
    assert info == {"b2fs-h": b64url(stored[:45])}
    assert spec_open(content_key, chunk, stored) == plain
    theirs = spec_seal(content_key, key_id, chunk, plain, os.urandom(32))
    assert unseal(codec, theirs) == plain


def test_names_match_the_document() -> None:
    names_key = os.urandom(64)
    codec = EncryptedNameCodec(names_key)
    siv = AESSIV(names_key)
    assert codec.encode("", "a").segment == b64url(siv.encrypt(b"a", [b""]))
    parent = codec.encode("", "dir").segment
    assert codec.encode(parent, "é").segment == b64url(siv.encrypt("é".encode(), [parent.encode()]))
    long_name = "n" * 200
    sealed = siv.encrypt(long_name.encode(), [parent.encode()])
    stub = "~" + b64url(hashlib.sha256(sealed).digest())
    assert codec.encode(parent, long_name) == (stub, {"b2fs-n": b64url(sealed)})


def test_the_vault_matches_the_document() -> None:
    blob, vault = create_vault("pass", kdf=CHEAP_KDF, chunk_size=64)
    doc = json.loads(blob)
    master = vault._master_key  # the document's derivations, checked from the key
    content_key = hkdf(master, b"b2fs v1 content")
    stored, _ = seal(vault.content_codec(), b"hello")
    assert spec_open(content_key, 64, stored) == b"hello"
    names_key = hkdf(master, b"b2fs v1 names", 64)
    assert vault.name_codec().encode("", "a").segment == b64url(
        AESSIV(names_key).encrypt(b"a", [b""])
    )
    signed = {"b2fs_vault": 1, "key_id": doc["key_id"], "settings": doc["settings"]}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(hkdf(master, b"b2fs v1 vault mac"), text, hashlib.sha256).digest()
    assert doc["mac"] == b64url(mac)
    assert doc["settings"] == {
        "content": "AES-256-GCM",
        "chunk_size": 64,
        "names": "AES-SIV/segment",
    }
    kdf = doc["kdf"]
    salt = base64.urlsafe_b64decode(kdf["salt"] + "==")
    kek = Argon2id(
        salt=salt,
        length=32,
        iterations=kdf["iterations"],
        lanes=kdf["lanes"],
        memory_cost=kdf["memory_kib"],
    ).derive(b"pass")
    wrapped = base64.urlsafe_b64decode(doc["wrapped_key"] + "=" * (-len(doc["wrapped_key"]) % 4))
    assert AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"b2fs vault v1 master key") == master
