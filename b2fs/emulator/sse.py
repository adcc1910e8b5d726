"""Server-side encryption as B2 serves it: SSE-B2 (Backblaze's keys) and SSE-C (the
customer's key, sent with every request that writes or reads the content).

``Sse`` is what a version keeps: the mode, and for SSE-C the key's MD5 (echoed as
``customerKeyMd5``) and a SHA-256 of the key (to recognise it later; the key itself is
never stored). The bytes on disk are the plaintext: what matters to clients is that the
server behaves as B2 does, which is what this module checks. Requests name a setting in
upload headers (``X-Bz-Server-Side-Encryption``, ``X-Bz-Server-Side-Encryption-Customer-*``)
or in JSON (``serverSideEncryption``, ``destinationServerSideEncryption``,
``sourceServerSideEncryption``); a bucket's ``defaultServerSideEncryption`` applies to
writes that name none. Used by ``app`` (uploads, downloads) and ``api`` (large files,
copies, buckets); renders through ``shapes``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from b2fs.emulator.errors import AccessDenied, BadRequest

AES256 = "AES256"
SSE_B2, SSE_C = "SSE-B2", "SSE-C"
H_SSE = "x-bz-server-side-encryption"
H_ALGORITHM = "x-bz-server-side-encryption-customer-algorithm"
H_KEY = "x-bz-server-side-encryption-customer-key"
H_KEY_MD5 = "x-bz-server-side-encryption-customer-key-md5"
NEEDS_KEY = (
    "The object was stored using a form of Server Side Encryption. The correct parameters "
    "must be provided to retrieve the object."
)
WRONG_KEY = "The provided customer-managed encryption key is wrong."


@dataclass(frozen=True)
class Sse:
    """The encryption of a version (or of a request): mode None, SSE-B2 or SSE-C."""

    mode: str | None = None
    key_md5: str | None = None  # base64 MD5 of the customer key (SSE-C)
    key_sha256: str | None = None  # hex SHA-256 of the customer key (SSE-C)

    def json(self) -> dict[str, Any]:
        """``serverSideEncryption`` of a file, a part or an upload answer."""
        if self.mode is None:
            return {"algorithm": None, "mode": None}
        out: dict[str, Any] = {"algorithm": AES256, "mode": self.mode}
        if self.mode == SSE_C:
            out["customerKeyMd5"] = self.key_md5
        return out

    def headers(self) -> dict[str, str]:
        """The download response headers that say how the file is encrypted."""
        if self.mode == SSE_B2:
            return {H_SSE: AES256}
        if self.mode == SSE_C:
            return {H_ALGORITHM: AES256, H_KEY_MD5: self.key_md5 or ""}
        return {}

    def to_db(self) -> str | None:
        return None if self.mode is None else json.dumps(self.__dict__)

    @classmethod
    def from_db(cls, text: str | None) -> Sse:
        return NONE if not text else cls(**json.loads(text))

    def same_key(self, other: Sse) -> bool:
        return bool(self.key_sha256 and other.key_sha256) and hmac.compare_digest(
            self.key_sha256, other.key_sha256
        )


NONE = Sse()


def _customer(algorithm: Any, key: Any, key_md5: Any, where: str) -> Sse:
    if algorithm != AES256:
        raise BadRequest(f"{where}: the customer algorithm must be {AES256}")
    if not isinstance(key, str) or not isinstance(key_md5, str):
        raise BadRequest(f"{where}: SSE-C needs the customer key and its MD5")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: the customer key is not valid base64") from None
    if len(raw) != 32:
        raise BadRequest(f"{where}: the customer key must be 256 bits (32 bytes)")
    md5 = base64.b64encode(hashlib.md5(raw).digest()).decode()
    if not hmac.compare_digest(md5, key_md5):
        raise BadRequest(f"{where}: the customer key MD5 does not match the customer key")
    return Sse(SSE_C, md5, hashlib.sha256(raw).hexdigest())


def from_headers(h: Mapping[str, str]) -> Sse | None:
    """The setting an upload (or download) request names in its headers; None: none named."""
    b2, algorithm = h.get(H_SSE), h.get(H_ALGORITHM)
    if b2 is not None and (algorithm is not None or H_KEY in h):
        raise BadRequest("SSE-B2 and SSE-C headers cannot be used together")
    if b2 is not None:
        if b2 != AES256:
            raise BadRequest(f"X-Bz-Server-Side-Encryption must be {AES256}")
        return Sse(SSE_B2)
    if algorithm is None and H_KEY not in h and H_KEY_MD5 not in h:
        return None
    return _customer(algorithm, h.get(H_KEY), h.get(H_KEY_MD5), "SSE-C headers")


def from_json(value: Any, field: str, allow_c: bool = True) -> Sse | None:
    """A request's ``serverSideEncryption``-like field; None when absent or mode null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object")
    mode = value.get("mode")
    if mode in (None, "none"):
        return None
    if mode == SSE_B2:
        if value.get("algorithm") != AES256:
            raise BadRequest(f"{field}: the algorithm must be {AES256}")
        return Sse(SSE_B2)
    if mode == SSE_C and allow_c:
        return _customer(value.get("algorithm"), value.get("customerKey"),
                         value.get("customerKeyMd5"), field)  # fmt: skip
    raise BadRequest(f"{field}: unsupported mode {str(mode)[:20]!r}")


def bucket_default(value: Any) -> dict[str, Any]:
    """Check a bucket's ``defaultServerSideEncryption`` (none or SSE-B2; SSE-C cannot be a
    default, the key is the customer's); returns what the bucket keeps."""
    sse = from_json(value, "defaultServerSideEncryption", allow_c=False)
    return {"mode": None} if sse is None else {"algorithm": AES256, "mode": SSE_B2}


def for_write(given: Sse | None, bucket: Any) -> Sse:
    """What a new version gets: the setting named in the request, else the bucket's default."""
    if given is not None:
        return given
    default = json.loads(bucket["sse"]) if bucket["sse"] else {}
    return Sse(SSE_B2) if default.get("mode") == SSE_B2 else NONE


def check_read(stored: Sse, given: Sse | None) -> None:
    """Reading the content of an SSE-C version (a GET, a copy) needs its key: absent is
    400 ``bad_request``, wrong is 403 ``access_denied`` (as B2 answers). A key sent for
    another kind of version is not needed and not checked (B2 documents the headers as
    required for SSE-C files; it does not say they are refused for others)."""
    if stored.mode != SSE_C:
        return
    if given is None or given.mode != SSE_C:
        raise BadRequest(NEEDS_KEY)
    if not stored.same_key(given):
        raise AccessDenied(WRONG_KEY)
