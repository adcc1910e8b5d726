"""Server-side encryption settings of the client: SSE-B2 (Backblaze's keys) or SSE-C (a
256-bit key of the customer's, sent with every request that writes or reads content).

``ServerSideEncryption.b2()`` / ``ServerSideEncryption.customer(key)`` render as B2
wants them: upload headers, the JSON of ``serverSideEncryption`` /
``destinationServerSideEncryption`` / ``sourceServerSideEncryption``, and the headers
a download of an SSE-C file needs. The key is never in a repr. Used by ``uploads``,
``calls`` (large files, copies) and ``downloads``; a ``B2Client`` may carry one as the
default of all of them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

SSE_B2, SSE_C, AES256 = "SSE-B2", "SSE-C", "AES256"


@dataclass(frozen=True)
class ServerSideEncryption:
    mode: str  # SSE_B2 or SSE_C
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def b2(cls) -> ServerSideEncryption:
        return cls(SSE_B2)

    @classmethod
    def customer(cls, key: bytes) -> ServerSideEncryption:
        """SSE-C with ``key`` (32 bytes: AES-256)."""
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("an SSE-C key is 32 bytes (AES-256)")
        return cls(SSE_C, key)

    @property
    def is_customer(self) -> bool:
        return self.mode == SSE_C

    @property
    def key_md5(self) -> str | None:
        """Base64 MD5 of the key, as B2 echoes it (``customerKeyMd5``); None for SSE-B2."""
        return base64.b64encode(hashlib.md5(self.key).digest()).decode() if self.key else None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "algorithm": AES256}
        if self.key is not None:
            out |= {"customerKey": base64.b64encode(self.key).decode(),
                    "customerKeyMd5": self.key_md5}  # fmt: skip
        return out

    def upload_headers(self) -> dict[str, str]:
        """Headers of ``b2_upload_file`` (and of the parts of an SSE-C large file)."""
        if self.key is None:
            return {"X-Bz-Server-Side-Encryption": AES256}
        return self.read_headers()

    def read_headers(self) -> dict[str, str]:
        """Headers a download (or part upload) of an SSE-C file needs; none for SSE-B2."""
        if self.key is None:
            return {}
        return {
            "X-Bz-Server-Side-Encryption-Customer-Algorithm": AES256,
            "X-Bz-Server-Side-Encryption-Customer-Key": base64.b64encode(self.key).decode(),
            "X-Bz-Server-Side-Encryption-Customer-Key-Md5": self.key_md5 or "",
        }
