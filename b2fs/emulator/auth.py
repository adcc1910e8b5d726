"""Who is calling: application keys, the tokens they are issued, and what they may do.

``Auth`` checks Basic credentials for ``b2_authorize_account`` and resolves account,
upload and download tokens to a ``Principal`` (capabilities, bucket and name-prefix
restrictions) or a ``DownloadGrant``. Backed by ``store``; used by ``api``/``transfer``.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass

from b2fs.emulator.errors import BadAuthToken, ExpiredAuthToken, Unauthorized
from b2fs.emulator.store import Row, Store, now_ms, token_hash

UNAUTHORIZED = ""  # B2's message on 401 unauthorized (bad credentials, missing capability)


@dataclass(frozen=True)
class Principal:
    """An authorized application key: what every account-token call is checked against."""

    key_id: str
    capabilities: frozenset[str]
    bucket_ids: tuple[str, ...] | None
    name_prefix: str | None
    master: bool

    @classmethod
    def from_row(cls, row: Row) -> Principal:
        ids = row["bucket_ids"]
        return cls(
            key_id=row["key_id"],
            capabilities=frozenset(json.loads(row["capabilities"])),
            bucket_ids=None if ids is None else tuple(json.loads(ids)),
            name_prefix=row["name_prefix"] or None,
            master=bool(row["master"]),
        )

    def require(
        self,
        capability: str,
        bucket_id: str | None = None,
        name: str | None = None,
        prefix: str | None = None,
    ) -> None:
        """401 ``unauthorized`` unless the key has the capability and may touch the
        bucket and the file name (or the whole listing prefix). B2's message is empty
        (clients such as b2sdk add the key's capabilities and restrictions to it)."""
        if capability not in self.capabilities:
            raise Unauthorized(UNAUTHORIZED)
        if (
            bucket_id is not None
            and self.bucket_ids is not None
            and bucket_id not in self.bucket_ids
        ):
            raise Unauthorized(UNAUTHORIZED)
        if self.name_prefix:
            if name is not None and not name.startswith(self.name_prefix):
                raise Unauthorized(UNAUTHORIZED)
            if prefix is not None and not prefix.startswith(self.name_prefix):
                raise Unauthorized(UNAUTHORIZED)

    def may_touch_bucket(self, bucket_id: str) -> bool:
        return self.bucket_ids is None or bucket_id in self.bucket_ids


@dataclass(frozen=True)
class DownloadGrant:
    """A download authorization: files of one bucket whose names start with a prefix."""

    bucket_id: str
    prefix: str


class Auth:
    def __init__(self, store: Store, token_lifetime: float) -> None:
        self.store = store
        self.token_lifetime = token_lifetime

    def _key(self, key_id: str) -> Principal:
        row = self.store.key(key_id)
        if row is None:
            raise BadAuthToken("the application key behind this token no longer exists")
        if row["expires_ms"] is not None and row["expires_ms"] <= now_ms():
            raise ExpiredAuthToken("the application key has expired")
        return Principal.from_row(row)

    def login(self, authorization: str | None) -> tuple[Principal, str]:
        """Check ``Basic keyId:key``; return the principal and a new account token. The
        account ID stands for the master key's ID, as on B2. Wrong credentials are
        401 ``unauthorized`` with B2's empty message."""
        if not authorization or not authorization.startswith("Basic "):
            raise BadAuthToken("missing or malformed Basic authorization")
        try:
            key_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise BadAuthToken("malformed Basic authorization") from None
        row = self.store.key(key_id)
        if row is None and key_id == self.store.account_id:
            row = self.store.master_key()
        if row is None or not hmac.compare_digest(row["secret_hash"], token_hash(secret)):
            raise Unauthorized(UNAUTHORIZED)
        if row["expires_ms"] is not None and row["expires_ms"] <= now_ms():
            raise Unauthorized(UNAUTHORIZED)
        token = self.store.issue_token("account", row["key_id"], self.token_lifetime)
        return Principal.from_row(row), token

    def _token(self, token: str | None, kinds: tuple[str, ...]) -> Row:
        if not token:
            raise BadAuthToken("missing Authorization header")
        row = self.store.token(token)
        if row is None or row["kind"] not in kinds:
            raise BadAuthToken("invalid authorization token")
        if row["expires_ms"] <= now_ms():
            raise ExpiredAuthToken("authorization token has expired")
        return row

    def account(self, token: str | None) -> Principal:
        return self._key(self._token(token, ("account",))["key_id"])

    def upload(self, token: str | None, target: str) -> Principal:
        """An upload token for this bucket id (upload URL) or large-file id (part URL)."""
        row = self._token(token, ("upload",))
        if target not in (row["bucket_id"], row["file_id"]):
            raise BadAuthToken("authorization token is for another upload URL")
        return self._key(row["key_id"])

    def download(self, token: str | None) -> Principal | DownloadGrant:
        row = self._token(token, ("account", "download"))
        principal = self._key(row["key_id"])
        if row["kind"] == "account":
            return principal
        return DownloadGrant(row["bucket_id"], row["name_prefix"] or "")
