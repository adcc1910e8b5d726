"""B2's JSON shapes, per API version (v1..v4), rendered from ``store`` rows.

Used by ``api`` and ``app``. Differences handled here: the authorize response
(top-level fields in v1/v2, ``apiInfo.storageApi`` in v3, plus ``allowed`` in v4),
keys (``bucketId`` up to v3, ``bucketIds`` in v4) and the ``size`` alias of v1 files.
What a key may read shows as B2 shows it: ``isClientAuthorizedToRead`` false and no
value for a bucket's encryption, retention or replication settings and a file's
retention or legal hold when the key lacks the matching read capability.
"""

from __future__ import annotations

import json
from typing import Any

from b2fs.emulator import filelock, sse
from b2fs.emulator.auth import Principal
from b2fs.emulator.store import CAPABILITIES, Row, Store

Caps = frozenset[str]
EVERYTHING: Caps = frozenset(CAPABILITIES)


def _readable(caps: Caps, capability: str, value: Any) -> dict[str, Any]:
    if capability in caps:
        return {"isClientAuthorizedToRead": True, "value": value}
    return {"isClientAuthorizedToRead": False, "value": None}


def bucket(row: Row, account_id: str, caps: Caps = EVERYTHING) -> dict[str, Any]:
    lock = {
        "defaultRetention": filelock.default_of(row),
        "isFileLockEnabled": bool(row["file_lock"]),
    }
    replication = json.loads(row["replication"]) if row["replication"] else None
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
        "defaultServerSideEncryption": _readable(
            caps, "readBucketEncryption", json.loads(row["sse"])
        ),
        "fileLockConfiguration": _readable(caps, "readBucketRetentions", lock),
        "replicationConfiguration": _readable(caps, "readBucketReplications", replication),
    }


def file(row: Row, account_id: str, version: int, caps: Caps = EVERYTHING,
         action: str | None = None) -> dict[str, Any]:  # fmt: skip
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
        "fileRetention": _readable(caps, "readFileRetentions", filelock.retention_of(row)),
        "legalHold": _readable(caps, "readFileLegalHolds", row["legal_hold"]),
        "replicationStatus": row["replication"],
        "serverSideEncryption": sse.Sse.from_db(row["sse"]).json(),
        "uploadTimestamp": row["upload_ms"],
    }
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


def part(row: Row, encryption: sse.Sse = sse.NONE) -> dict[str, Any]:
    return {
        "fileId": row["file_id"],
        "partNumber": row["part_number"],
        "contentLength": row["size"],
        "contentSha1": row["sha1"],
        "contentMd5": None,
        "serverSideEncryption": encryption.json(),
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
