"""Typed results of the B2 client: frozen dataclasses parsed from B2's JSON answers.

Each class has ``from_json`` (the B2 wire shape in) and keeps the original dict as
``raw`` (hidden from repr) for fields not modelled yet. Secrets (tokens, keys)
are fields with ``repr=False``. ``LargeFileUploadState`` is the one mutable
record: the resumable state of a large-file upload, serialisable to JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

LARGE_FILE_SHA1 = "large_file_sha1"
SRC_LAST_MODIFIED = "src_last_modified_millis"


@dataclass(frozen=True)
class FileRetention:
    """Object Lock retention of a file version: ``mode`` "governance" or "compliance"
    (None: none) until ``retain_until`` (ms since 1970)."""

    mode: str | None
    retain_until: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> FileRetention | None:
        if not d:
            return None
        return cls(d.get("mode"), d.get("retainUntilTimestamp"))

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "retainUntilTimestamp": self.retain_until}


def _readable(d: dict[str, Any], key: str) -> Any:
    """The value of B2's ``{"isClientAuthorizedToRead", "value"}`` wrappers (None when the
    key may not read it or it is absent)."""
    wrapped = d.get(key)
    if not isinstance(wrapped, dict) or not wrapped.get("isClientAuthorizedToRead", True):
        return None
    return wrapped.get("value")


def _sse_of(d: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(mode, customer key MD5) of a ``serverSideEncryption`` answer."""
    d = d or {}
    mode = d.get("mode")
    return (None if mode in (None, "none") else mode), d.get("customerKeyMd5")


@dataclass(frozen=True)
class AllowedBucket:
    bucket_id: str
    bucket_name: str | None


@dataclass(frozen=True)
class Account:
    """The answer of ``b2_authorize_account``: where to call and what this key may do."""

    account_id: str
    api_url: str
    download_url: str
    s3_api_url: str | None
    capabilities: tuple[str, ...]
    allowed_buckets: tuple[AllowedBucket, ...] | None  # None: every bucket of the account
    name_prefix: str | None
    recommended_part_size: int
    absolute_minimum_part_size: int
    authorization_token: str = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Account:
        api = (d.get("apiInfo") or {}).get("storageApi") or d  # v3/v4 nest, v1/v2 are flat
        allowed = api.get("allowed") or d.get("allowed") or {}
        buckets: tuple[AllowedBucket, ...] | None
        if "buckets" in allowed:  # v4
            raw = allowed["buckets"]
            buckets = (
                None if raw is None else tuple(AllowedBucket(b["id"], b.get("name")) for b in raw)
            )
        else:  # v1-v3: one bucket or none
            bid = allowed.get("bucketId", api.get("bucketId"))
            name = allowed.get("bucketName", api.get("bucketName"))
            buckets = None if bid is None else (AllowedBucket(bid, name),)
        caps = allowed.get("capabilities", api.get("capabilities")) or []
        prefix = allowed.get("namePrefix", api.get("namePrefix"))
        return cls(
            account_id=d["accountId"],
            api_url=api["apiUrl"],
            download_url=api["downloadUrl"],
            s3_api_url=api.get("s3ApiUrl"),
            capabilities=tuple(caps),
            allowed_buckets=buckets,
            name_prefix=prefix,
            recommended_part_size=int(api["recommendedPartSize"]),
            absolute_minimum_part_size=int(
                api.get("absoluteMinimumPartSize") or api.get("minimumPartSize")
            ),
            authorization_token=d["authorizationToken"],
        )


@dataclass(frozen=True)
class Bucket:
    account_id: str
    bucket_id: str
    bucket_name: str
    bucket_type: str
    bucket_info: dict[str, Any]
    revision: int
    lifecycle_rules: list[dict[str, Any]]
    cors_rules: list[dict[str, Any]]
    options: tuple[str, ...]
    default_server_side_encryption: dict[str, Any] | None
    file_lock_configuration: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    replication_configuration: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Bucket:
        return cls(
            account_id=d.get("accountId", ""),
            bucket_id=d["bucketId"],
            bucket_name=d["bucketName"],
            bucket_type=d.get("bucketType", ""),
            bucket_info=d.get("bucketInfo") or {},
            revision=int(d.get("revision") or 0),
            lifecycle_rules=d.get("lifecycleRules") or [],
            cors_rules=d.get("corsRules") or [],
            options=tuple(d.get("options") or ()),
            default_server_side_encryption=d.get("defaultServerSideEncryption"),
            file_lock_configuration=d.get("fileLockConfiguration"),
            raw=d,
            replication_configuration=d.get("replicationConfiguration"),
        )

    def to_json(self) -> dict[str, Any]:
        return self.raw

    @property
    def default_encryption_mode(self) -> str | None:
        """ "SSE-B2" when new files are encrypted by default (None: not, or not readable)."""
        return _sse_of(_readable(self.raw, "defaultServerSideEncryption"))[0]

    @property
    def is_file_lock_enabled(self) -> bool | None:
        lock = _readable(self.raw, "fileLockConfiguration")
        return None if lock is None else bool(lock.get("isFileLockEnabled"))

    @property
    def default_retention(self) -> dict[str, Any] | None:
        lock = _readable(self.raw, "fileLockConfiguration")
        return None if lock is None else lock.get("defaultRetention")

    @property
    def replication(self) -> dict[str, Any] | None:
        """``asReplicationSource`` / ``asReplicationDestination`` (None when none or not
        readable)."""
        return _readable(self.raw, "replicationConfiguration")


@dataclass(frozen=True)
class FileVersion:
    """One file version (or hide marker, unfinished large file, or listing folder).

    ``action``: upload | hide | start | folder | copy. Folders have no ``file_id``.
    ``content_sha1`` is B2's raw field ("none" for large files, "unverified:<hex>"
    for do_not_verify uploads); ``sha1`` is the best known hex digest or None.
    ``encryption_mode`` is "SSE-B2", "SSE-C" or None (``customer_key_md5`` names the
    SSE-C key); ``file_retention`` and ``legal_hold`` ("on"/"off") are None when unset
    or not readable by the key; ``replication_status`` is pending, completed, failed,
    replica or None.
    """

    file_id: str | None
    file_name: str
    size: int
    content_sha1: str | None
    content_type: str | None
    file_info: dict[str, str]
    upload_timestamp: int
    action: str
    bucket_id: str | None
    account_id: str | None = None
    content_md5: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    encryption_mode: str | None = None
    customer_key_md5: str | None = None
    file_retention: FileRetention | None = None
    legal_hold: str | None = None
    replication_status: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileVersion:
        mode, md5 = _sse_of(d.get("serverSideEncryption"))
        retention = FileRetention.from_json(_readable(d, "fileRetention"))
        return cls(
            file_id=d.get("fileId"),
            file_name=d["fileName"],
            size=int(d.get("contentLength") or d.get("size") or 0),
            content_sha1=d.get("contentSha1"),
            content_type=d.get("contentType"),
            file_info=dict(d.get("fileInfo") or {}),
            upload_timestamp=int(d.get("uploadTimestamp") or 0),
            action=d.get("action", "upload"),
            bucket_id=d.get("bucketId"),
            account_id=d.get("accountId"),
            content_md5=d.get("contentMd5"),
            raw=d,
            encryption_mode=mode,
            customer_key_md5=md5,
            file_retention=retention if retention and retention.mode else None,
            legal_hold=_readable(d, "legalHold"),
            replication_status=d.get("replicationStatus"),
        )

    @property
    def mtime_millis(self) -> int:
        """``src_last_modified_millis`` from file info, else the upload time."""
        try:
            return int(self.file_info[SRC_LAST_MODIFIED])
        except (KeyError, ValueError):
            return self.upload_timestamp

    @property
    def sha1(self) -> str | None:
        return best_sha1(self.content_sha1, self.file_info)

    @property
    def is_folder(self) -> bool:
        return self.action == "folder"


def best_sha1(content_sha1: str | None, file_info: dict[str, str]) -> str | None:
    """The hex SHA-1 of the whole content if known: B2's, else ``large_file_sha1``."""
    sha1 = content_sha1 or ""
    sha1 = sha1.removeprefix("unverified:")
    if len(sha1) == 40:
        return sha1.lower()
    large = file_info.get(LARGE_FILE_SHA1, "")
    return large.lower() if len(large) == 40 else None


@dataclass(frozen=True)
class FileIdAndName:
    file_id: str
    file_name: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileIdAndName:
        return cls(d["fileId"], d["fileName"])


@dataclass(frozen=True)
class Part:
    """A part of a large file, uploaded or copied."""

    part_number: int
    size: int
    sha1: str
    file_id: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Part:
        return cls(int(d["partNumber"]), int(d["contentLength"]), d["contentSha1"], d.get("fileId"))


@dataclass(frozen=True)
class UploadUrl:
    """An upload URL and its own token (for one bucket, or one large file's parts)."""

    url: str
    authorization_token: str = field(repr=False)
    target: str = ""  # bucket id or large file id


@dataclass(frozen=True)
class DownloadAuthorization:
    bucket_id: str
    file_name_prefix: str
    authorization_token: str = field(repr=False)


@dataclass(frozen=True)
class ApplicationKey:
    key_id: str
    key_name: str
    capabilities: tuple[str, ...]
    account_id: str
    bucket_ids: tuple[str, ...] | None
    name_prefix: str | None
    expiration_timestamp: int | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApplicationKey:
        ids = d.get("bucketIds")
        if ids is None and d.get("bucketId"):
            ids = [d["bucketId"]]
        return cls(
            key_id=d["applicationKeyId"],
            key_name=d.get("keyName", ""),
            capabilities=tuple(d.get("capabilities") or ()),
            account_id=d.get("accountId", ""),
            bucket_ids=None if ids is None else tuple(ids),
            name_prefix=d.get("namePrefix"),
            expiration_timestamp=d.get("expirationTimestamp"),
        )


@dataclass(frozen=True)
class NewApplicationKey(ApplicationKey):
    """A key just created: the only time B2 returns its secret."""

    application_key: str = field(default="", repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NewApplicationKey:
        base = ApplicationKey.from_json(d)
        return cls(**base.__dict__, application_key=d["applicationKey"])


@dataclass
class LargeFileUploadState:
    """Where a large-file upload stands: enough to resume it later, in another process.

    ``parts`` maps part number to the SHA-1 of a part B2 has accepted. Save
    ``to_json()`` after each ``on_state`` callback; pass ``from_json(...)`` as
    ``resume=`` with the same source to continue.
    """

    file_id: str
    bucket_id: str
    file_name: str
    size: int | None
    part_size: int
    parts: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> str:
        d = {
            "file_id": self.file_id,
            "bucket_id": self.bucket_id,
            "file_name": self.file_name,
            "size": self.size,
            "part_size": self.part_size,
            "parts": {str(k): v for k, v in sorted(self.parts.items())},
        }
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> LargeFileUploadState:
        d = json.loads(text)
        return cls(
            file_id=d["file_id"],
            bucket_id=d["bucket_id"],
            file_name=d["file_name"],
            size=d["size"],
            part_size=int(d["part_size"]),
            parts={int(k): v for k, v in d["parts"].items()},
        )

    def copy(self) -> LargeFileUploadState:
        return LargeFileUploadState(
            self.file_id,
            self.bucket_id,
            self.file_name,
            self.size,
            self.part_size,
            dict(self.parts),
        )


@dataclass(frozen=True)
class DownloadedFile:
    """What the download headers say about the file (and the byte range served)."""

    file_id: str
    file_name: str
    size: int  # the whole file's size
    content_type: str | None
    content_sha1: str | None
    file_info: dict[str, str]
    upload_timestamp: int
    range_start: int  # first byte served
    range_end: int  # last byte served (inclusive); -1 for an empty file
    encryption_mode: str | None = None  # "SSE-B2", "SSE-C" or None
    customer_key_md5: str | None = None
    file_retention: FileRetention | None = None  # lock-enabled buckets, keys that may read it
    legal_hold: str | None = None
    replication_status: str | None = None

    @property
    def sha1(self) -> str | None:
        return best_sha1(self.content_sha1, self.file_info)

    @property
    def mtime_millis(self) -> int:
        try:
            return int(self.file_info[SRC_LAST_MODIFIED])
        except (KeyError, ValueError):
            return self.upload_timestamp
