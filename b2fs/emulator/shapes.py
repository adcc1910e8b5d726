"""B2's JSON shapes, per API version (v1..v4), rendered from ``store`` rows.

Used by ``api`` and ``transfer``. Differences handled here: the authorize response
(top-level fields in v1/v2, ``apiInfo.storageApi`` in v3, plus ``allowed`` in v4),
keys (``bucketId`` up to v3, ``bucketIds`` in v4) and the ``size`` alias of v1 files.
"""

from __future__ import annotations

import json
from typing import Any

from b2fs.emulator.auth import Principal
from b2fs.emulator.store import Row, Store

UNKNOWN_RETENTION = {"isClientAuthorizedToRead": True, "value": {"mode": None, "period": None}}


def bucket(row: Row, account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "bucketId": row["bucket_id"],
        "bucketName": row["name"],
        "bucketType": row["type"],
        "bucketInfo": json.loads(row["info"]),
        "corsRules": json.loads(row["cors"]),
        "lifecycleRules": json.loads(row["lifecycle"]),
        "revision": row["revision"],
        "options": ["s3"],
        "defaultServerSideEncryption": {
            "isClientAuthorizedToRead": True,
            "value": json.loads(row["sse"]),
        },
        "fileLockConfiguration": {
            "isClientAuthorizedToRead": True,
            "value": {
                "defaultRetention": {"mode": None, "period": None},
                "isFileLockEnabled": bool(row["file_lock"]),
            },
        },
        "replicationConfiguration": {"isClientAuthorizedToRead": True, "value": None},
    }


def file(row: Row, account_id: str, version: int, action: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "accountId": account_id,
        "action": action or row["action"],
        "bucketId": row["bucket_id"],
        "contentLength": row["size"],
        "contentSha1": row["sha1"],
        "contentMd5": row["md5"],
        "contentType": row["content_type"],
        "fileId": row["file_id"],
        "fileInfo": json.loads(row["info"]),
        "fileName": row["name"],
        "fileRetention": {"isClientAuthorizedToRead": True, "value": {"mode": None, "retainUntilTimestamp": None}},
        "legalHold": {"isClientAuthorizedToRead": True, "value": None},
        "replicationStatus": None,
        "serverSideEncryption": {"mode": None, "algorithm": None},
        "uploadTimestamp": row["upload_ms"],
    }  # fmt: skip
    if version == 1:
        d["size"] = row["size"]
    return d


def folder(name: str, bucket_id: str, account_id: str, version: int) -> dict[str, Any]:
    d: dict[str, Any] = {
        "accountId": account_id,
        "action": "folder",
        "bucketId": bucket_id,
        "contentLength": 0,
        "contentSha1": None,
        "contentMd5": None,
        "contentType": None,
        "fileId": None,
        "fileInfo": {},
        "fileName": name,
        "uploadTimestamp": 0,
    }
    if version == 1:
        d["size"] = 0
    return d


def part(row: Row) -> dict[str, Any]:
    return {
        "fileId": row["file_id"],
        "partNumber": row["part_number"],
        "contentLength": row["size"],
        "contentSha1": row["sha1"],
        "contentMd5": None,
        "serverSideEncryption": {"mode": None, "algorithm": None},
        "uploadTimestamp": row["upload_ms"],
    }


def key(row: Row, account_id: str, version: int, secret: str | None = None) -> dict[str, Any]:
    ids = None if row["bucket_ids"] is None else json.loads(row["bucket_ids"])
    d: dict[str, Any] = {
        "accountId": account_id,
        "applicationKeyId": row["key_id"],
        "capabilities": json.loads(row["capabilities"]),
        "expirationTimestamp": row["expires_ms"],
        "keyName": row["name"],
        "namePrefix": row["name_prefix"],
        "options": ["s3"],
    }
    if version >= 4:
        d["bucketIds"] = ids
    else:
        d["bucketId"] = ids[0] if ids else None
    if secret is not None:
        d["applicationKey"] = secret
    return d


def authorize(
    store: Store,
    principal: Principal,
    token: str,
    base_url: str,
    version: int,
    recommended: int,
    minimum: int,
) -> dict[str, Any]:
    buckets = None
    if principal.bucket_ids is not None:
        buckets = []
        for bid in principal.bucket_ids:
            row = store.bucket(bid)
            buckets.append({"id": bid, "name": row["name"] if row else None})
    caps = sorted(principal.capabilities)
    first = buckets[0] if buckets else {"id": None, "name": None}
    legacy = {
        "capabilities": caps,
        "bucketId": first["id"],
        "bucketName": first["name"],
        "namePrefix": principal.name_prefix,
    }
    urls = {"apiUrl": base_url, "downloadUrl": base_url, "s3ApiUrl": base_url}
    sizes = {"recommendedPartSize": recommended, "absoluteMinimumPartSize": minimum}
    out: dict[str, Any] = {"accountId": store.account_id, "authorizationToken": token}
    if version <= 2:
        out |= urls | sizes | {"minimumPartSize": recommended, "allowed": legacy}
        return out
    storage: dict[str, Any] = {**urls, **sizes, "infoType": "storageApi"}
    if version == 3:
        storage |= legacy
    else:
        storage["allowed"] = {
            "buckets": buckets,
            "capabilities": caps,
            "namePrefix": principal.name_prefix,
        }
        storage |= {"capabilities": caps, "namePrefix": principal.name_prefix}
    out["apiInfo"] = {"storageApi": storage, "groupsApi": {}}
    return out
