"""Cloud Replication between buckets of this server: configurations, and the background
task that copies new files from a source bucket to its destinations.

A bucket's ``replicationConfiguration`` has an ``asReplicationSource`` part (rules:
destination bucket, name prefix, priority, enabled, whether existing files are
included; the source key) and an ``asReplicationDestination`` part (which source key
maps to which destination key). B2 replicates across accounts; here the keys are keys
of this server. A file written into a source bucket (upload, large file, copy) whose
name matches an enabled rule starts ``replicationStatus: "pending"``; the
``Replicator`` task then copies it (hard links: no bytes move) to the destination
bucket of the highest-priority matching rule, as a version with status ``"replica"``
(same name, content, info, upload time and SSE-B2), and marks the source
``"completed"``, or ``"failed"`` when the destination does not accept it (no key
mapping, a key without ``writeFiles``, a missing bucket, an SSE-C file, whose key the
server never has). Pending files survive a restart. Used by ``api``/``app`` (status of
new versions, configurations) and started by ``app`` with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any

from b2fs.emulator import filelock, sse, transfer
from b2fs.emulator.auth import Principal
from b2fs.emulator.errors import BadRequest
from b2fs.emulator.notify import Notifier
from b2fs.emulator.store import Row, Store

log = logging.getLogger("b2fs.emulator.replication")

PENDING, COMPLETED, FAILED, REPLICA = "pending", "completed", "failed", "replica"
MAX_RULES = 10
_RULE_NAME = re.compile(r"^[A-Za-z0-9-]{6,63}$")


def _source(value: Any, store: Store) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("asReplicationSource must be an object")
    key_id = value.get("sourceApplicationKeyId")
    if not isinstance(key_id, str) or store.key(key_id) is None:
        raise BadRequest("asReplicationSource.sourceApplicationKeyId must name an existing key")
    rules = value.get("replicationRules")
    if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
        raise BadRequest(f"asReplicationSource needs 1 to {MAX_RULES} replicationRules")
    out, names = [], set()
    for r in rules:
        if not isinstance(r, dict):
            raise BadRequest("each replication rule must be an object")
        name = r.get("replicationRuleName")
        if not isinstance(name, str) or not _RULE_NAME.match(name) or name in names:
            raise BadRequest("replicationRuleName: 6 to 63 letters, digits and '-', unique")
        names.add(name)
        dest = r.get("destinationBucketId")
        if not isinstance(dest, str) or store.bucket(dest) is None:
            raise BadRequest(f"rule {name}: destinationBucketId must name a bucket of this server")
        priority = r.get("priority")
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not 1 <= priority <= 2**31 - 1
        ):
            raise BadRequest(f"rule {name}: priority must be between 1 and 2147483647")
        prefix = r.get("fileNamePrefix", "")
        if not isinstance(prefix, str):
            raise BadRequest(f"rule {name}: fileNamePrefix must be a string")
        flags = (r.get("isEnabled", True), r.get("includeExistingFiles", False))
        if not all(isinstance(f, bool) for f in flags):
            raise BadRequest(f"rule {name}: isEnabled and includeExistingFiles are booleans")
        out.append({"destinationBucketId": dest, "fileNamePrefix": prefix,
                    "includeExistingFiles": flags[1], "isEnabled": flags[0],
                    "priority": priority, "replicationRuleName": name})  # fmt: skip
    return {"replicationRules": out, "sourceApplicationKeyId": key_id}


def _destination(value: Any, store: Store) -> dict[str, Any] | None:
    if value is None:
        return None
    mapping = value.get("sourceToDestinationKeyMapping") if isinstance(value, dict) else None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and store.key(v) is not None
        for k, v in mapping.items()
    ):
        raise BadRequest(
            "asReplicationDestination.sourceToDestinationKeyMapping must map key ids "
            "to keys of this server"
        )
    return {"sourceToDestinationKeyMapping": dict(mapping)}


def validate(value: Any, store: Store) -> dict[str, Any]:
    """Check a ``replicationConfiguration``; returns it as kept."""
    if not isinstance(value, dict):
        raise BadRequest("replicationConfiguration must be an object")
    return {
        "asReplicationSource": _source(value.get("asReplicationSource"), store),
        "asReplicationDestination": _destination(value.get("asReplicationDestination"), store),
    }


def config_of(bucket: Row) -> dict[str, Any] | None:
    return json.loads(bucket["replication"]) if bucket["replication"] else None


def _rule_for(bucket: Row, name: str) -> dict[str, Any] | None:
    """The enabled source rule with the highest priority whose prefix matches ``name``."""
    config = config_of(bucket)
    source = (config or {}).get("asReplicationSource") or {}
    rules = [r for r in source.get("replicationRules", [])
             if r["isEnabled"] and name.startswith(r["fileNamePrefix"])]  # fmt: skip
    return max(rules, key=lambda r: r["priority"]) if rules else None


def status_for_new(bucket: Row, name: str) -> str | None:
    """``replicationStatus`` of a version just written to ``bucket``."""
    return PENDING if _rule_for(bucket, name) is not None else None


def include_existing(store: Store, bucket: Row) -> int:
    """Mark the files a new ``includeExistingFiles`` rule covers as pending."""
    config = config_of(bucket) or {}
    rules = [r for r in (config.get("asReplicationSource") or {}).get("replicationRules", [])
             if r["isEnabled"] and r["includeExistingFiles"]]  # fmt: skip
    n = 0
    for rule in rules:
        with store.tx() as db:
            n += db.execute(
                "UPDATE files SET replication=? WHERE bucket_id=? AND action='upload' "
                "AND replication IS NULL AND substr(name, 1, ?)=?",
                (PENDING, bucket["bucket_id"], len(rule["fileNamePrefix"]),
                 rule["fileNamePrefix"]),
            ).rowcount  # fmt: skip
    return n


class Replicator:
    """The background task: replicates every pending version, oldest first."""

    def __init__(self, store: Store, notifier: Notifier, delay: float = 0.0) -> None:
        self.store, self.notifier, self.delay = store, notifier, delay
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self.wake.set()

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
            self.wake.set()  # pending files from before a restart

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.delay:
                await asyncio.sleep(self.delay)
            while rows := self.store.pending_replications(100):
                for row in rows:
                    try:
                        status = self.replicate(row)
                    except Exception:
                        log.exception("replicating %s failed", row["file_id"])
                        status = FAILED
                    self.store.update_version(row["file_id"], replication=status)
                    await asyncio.sleep(0)  # requests go first

    def _destination_key(self, source: Row, rule: dict[str, Any], dest: Row) -> Principal | None:
        """The destination key that the configurations of both buckets agree on."""
        src_config = (config_of(source) or {}).get("asReplicationSource") or {}
        dst_config = (config_of(dest) or {}).get("asReplicationDestination") or {}
        dst_key_id = dst_config.get("sourceToDestinationKeyMapping", {}).get(
            src_config.get("sourceApplicationKeyId")
        )
        src_key = self.store.key(src_config.get("sourceApplicationKeyId") or "")
        dst_key = self.store.key(dst_key_id) if dst_key_id else None
        if src_key is None or dst_key is None:
            return None
        src, dst = Principal.from_row(src_key), Principal.from_row(dst_key)
        if "readFiles" not in src.capabilities or not src.may_touch_bucket(source["bucket_id"]):
            return None
        if "writeFiles" not in dst.capabilities or not dst.may_touch_bucket(dest["bucket_id"]):
            return None
        return dst

    def replicate(self, row: Row) -> str:
        """Copy one version to its destination; returns the source's new status."""
        source = self.store.bucket(row["bucket_id"])
        rule = _rule_for(source, row["name"]) if source is not None else None
        dest = self.store.bucket(rule["destinationBucketId"]) if rule else None
        if source is None or rule is None or dest is None or row["action"] != "upload":
            return FAILED
        encryption = sse.Sse.from_db(row["sse"])
        if encryption.mode == sse.SSE_C or self._destination_key(source, rule, dest) is None:
            return FAILED
        extras = filelock.for_new_version(dest, _NOBODY, None, None, row["upload_ms"])
        blobs = transfer.link_copy(self.store, transfer.blobs_of(row))
        replica = self.store.add_version(
            dest["bucket_id"], row["name"], "upload", row["size"], row["sha1"],
            row["content_type"], json.loads(row["info"]), blobs, md5=row["md5"],
            upload_ms=row["upload_ms"], sse=encryption.to_db(), replication=REPLICA, **extras,
        )  # fmt: skip
        large = row["sha1"] == "none"
        self.notifier.emit(dest, "b2:ObjectCreated:MultipartReplica" if large
                           else "b2:ObjectCreated:Replica", replica["name"],
                           replica["file_id"], replica["size"])  # fmt: skip
        return COMPLETED


# Replicas get the destination's default retention; nobody asks for more.
_NOBODY = Principal("", frozenset(), None, None, False)
