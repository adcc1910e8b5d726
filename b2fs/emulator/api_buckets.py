"""The bucket calls of the B2 native API: create, list, update, delete, and a bucket's
event notification rules (get/set).

Beside type, info, CORS and lifecycle rules (kept, not applied), a bucket carries its
default server-side encryption (``sse``), Object Lock (``filelock``: enabled, default
retention), replication configuration (``replication``) and notification rules
(``notify``), each written with its own capability (401 without it) and shown only to
keys that may read it (``shapes``). Registers its handlers in ``api.CALLS``.
"""

from __future__ import annotations

import json
from typing import Any

from b2fs.emulator import filelock, notify, replication, shapes, sse, validate
from b2fs.emulator.api import Ctx, _bucket, _check_account, _json_field, call
from b2fs.emulator.auth import Principal
from b2fs.emulator.errors import BadRequest, Conflict, Unauthorized
from b2fs.emulator.store import Row

BUCKET_TYPES = ("allPrivate", "allPublic")
MAX_BUCKETS = 1000  # B2 allows 100 per account; tests sharing one server need more


def _is_source(config: dict[str, Any] | None) -> bool:
    return bool(config and config.get("asReplicationSource"))


def _source_conflict() -> BadRequest:
    return BadRequest(
        "Turning on file lock for an existing bucket having source replication "
        "configuration is not allowed.",
        "source_replication_conflict",
    )


@call
async def b2_create_bucket(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("writeBuckets")
    if pr.bucket_ids is not None:
        raise Unauthorized("a bucket-restricted key cannot create buckets")
    name = validate.bucket_name(p.get("bucketName"))
    btype = p.get("bucketType")
    if btype not in BUCKET_TYPES:
        raise BadRequest(f"bucketType must be one of {', '.join(BUCKET_TYPES)}")
    default_sse = {"mode": None}
    if p.get("defaultServerSideEncryption") is not None:
        pr.require("writeBucketEncryption")
        default_sse = sse.bucket_default(p["defaultServerSideEncryption"])
    file_lock = p.get("fileLockEnabled") is True
    if file_lock:
        pr.require("writeBucketRetentions")
    config = None
    if p.get("replicationConfiguration") is not None:
        pr.require("writeBucketReplications")
        config = replication.validate(p["replicationConfiguration"], c.store)
    if c.store.bucket_by_name(name) is not None:
        raise BadRequest("Bucket name is already in use.", "duplicate_bucket_name")
    if len(c.store.buckets()) >= MAX_BUCKETS:
        raise BadRequest(f"Too many buckets (at most {MAX_BUCKETS})", "too_many_buckets")
    row = c.store.create_bucket(
        name,
        btype,
        _json_field(p, "bucketInfo", dict, {}),
        _json_field(p, "corsRules", list, []),
        _json_field(p, "lifecycleRules", list, []),
        default_sse,
        file_lock,
        config,
    )
    return shapes.bucket(row, c.account_id, pr.capabilities)


@call
async def b2_list_buckets(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("listBuckets")
    bucket_id, bucket_name = p.get("bucketId"), p.get("bucketName")
    rows = c.store.buckets()
    if pr.bucket_ids is not None:
        named = (bucket_id is not None and bucket_id in pr.bucket_ids) or (
            bucket_name is not None
            and any(r["name"] == bucket_name and r["bucket_id"] in pr.bucket_ids for r in rows)
        )
        if not named:
            raise Unauthorized("a bucket-restricted key must name its bucket in b2_list_buckets")
    types = _json_field(p, "bucketTypes", list, [])
    out = []
    for r in rows:
        if bucket_id is not None and r["bucket_id"] != bucket_id:
            continue
        if bucket_name is not None and r["name"] != bucket_name:
            continue
        if types and "all" not in types and r["type"] not in types:
            continue
        if pr.may_touch_bucket(r["bucket_id"]):
            out.append(shapes.bucket(r, c.account_id, pr.capabilities))
    return {"buckets": out}


def _lock_changes(pr: Principal, p: dict[str, Any], row: Row, config: Any) -> dict[str, Any]:
    """Object Lock changes of b2_update_bucket: enabling (never disabling), default retention."""
    changes: dict[str, Any] = {}
    enable = p.get("fileLockEnabled")
    if enable is not None:
        pr.require("writeBucketRetentions", bucket_id=row["bucket_id"])
        if enable is False and row["file_lock"]:
            raise BadRequest(
                "fileLockEnabled value of false is not allowed when bucket is already file "
                "lock enabled.",
                "file_lock_conflict",
            )
        if enable is True and not row["file_lock"]:
            if _is_source(config):
                raise _source_conflict()
            changes["file_lock"] = 1
    if p.get("defaultRetention") is not None:
        pr.require("writeBucketRetentions", bucket_id=row["bucket_id"])
        default = filelock.bucket_default(p["defaultRetention"])
        if not (row["file_lock"] or changes.get("file_lock")):
            raise filelock.missing_lock()
        changes["default_retention"] = json.dumps(default)
    return changes


@call
async def b2_update_bucket(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("writeBuckets", bucket_id=p.get("bucketId"))
    row = _bucket(c, p.get("bucketId"))
    revision = p.get("ifRevisionIs")
    if revision is not None and revision != row["revision"]:
        raise Conflict(f"revision is {row['revision']}, not {revision}")
    changes: dict[str, Any] = {}
    if p.get("bucketType") is not None:
        if p["bucketType"] not in BUCKET_TYPES:
            raise BadRequest(f"bucketType must be one of {', '.join(BUCKET_TYPES)}")
        changes["type"] = p["bucketType"]
    for key, col, kind in (
        ("bucketInfo", "info", dict),
        ("corsRules", "cors", list),
        ("lifecycleRules", "lifecycle", list),
    ):
        if p.get(key) is not None:
            changes[col] = json.dumps(_json_field(p, key, kind, None))
    if p.get("defaultServerSideEncryption") is not None:
        pr.require("writeBucketEncryption", bucket_id=row["bucket_id"])
        changes["sse"] = json.dumps(sse.bucket_default(p["defaultServerSideEncryption"]))
    config = replication.config_of(row)
    if p.get("replicationConfiguration") is not None:
        pr.require("writeBucketReplications", bucket_id=row["bucket_id"])
        config = replication.validate(p["replicationConfiguration"], c.store)
        changes["replication"] = json.dumps(config)
    changes |= _lock_changes(pr, p, row, config)
    c.store.update_bucket(row["bucket_id"], changes)
    updated: Row = c.store.bucket(row["bucket_id"])  # type: ignore[assignment]
    if "replication" in changes and replication.include_existing(c.store, updated):
        c.replicator.kick()
    return shapes.bucket(updated, c.account_id, pr.capabilities)


@call
async def b2_delete_bucket(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("deleteBuckets", bucket_id=p.get("bucketId"))
    row = _bucket(c, p.get("bucketId"))
    if not c.store.bucket_is_empty(row["bucket_id"]):
        raise BadRequest("Cannot delete non-empty bucket", "cannot_delete_non_empty_bucket")
    c.store.delete_bucket(row["bucket_id"])
    return shapes.bucket(row, c.account_id, pr.capabilities)


# ---- event notification rules --------------------------------------------------------


def _rules_answer(row: Row) -> dict[str, Any]:
    rules = json.loads(row["notifications"] or "[]")
    return {
        "bucketId": row["bucket_id"],
        "eventNotificationRules": [notify.shown(r) for r in rules],
    }


@call
async def b2_get_bucket_notification_rules(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    pr.require("readBucketNotifications", bucket_id=p.get("bucketId"))
    return _rules_answer(_bucket(c, p.get("bucketId")))


@call
async def b2_set_bucket_notification_rules(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    pr.require("writeBucketNotifications", bucket_id=p.get("bucketId"))
    row = _bucket(c, p.get("bucketId"))
    rules = notify.validate_rules(p.get("eventNotificationRules"))
    c.store.update_bucket(row["bucket_id"], {"notifications": json.dumps(rules)}, revision=False)
    return _rules_answer(c.store.bucket(row["bucket_id"]))  # type: ignore[arg-type]
