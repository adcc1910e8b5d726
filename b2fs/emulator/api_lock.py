"""The Object Lock calls on one file version: ``b2_update_file_retention`` and
``b2_update_file_legal_hold``.

As on B2: a key without ``writeFileRetentions`` / ``writeFileLegalHolds`` gets 403
``access_denied`` (b2sdk turns that into its "not authorized to write retention"
error), a version in a bucket without Object Lock 400 ``bucket_missing_file_lock``,
a weaker retention 403 ``access_denied`` unless governance is bypassed
(``filelock.check_retention_change``). Registers its handlers in ``api.CALLS``.
"""

from __future__ import annotations

import json
from typing import Any

from b2fs.emulator import filelock, validate
from b2fs.emulator.api import Ctx, _version, call, flag
from b2fs.emulator.auth import Principal
from b2fs.emulator.errors import AccessDenied, BadRequest
from b2fs.emulator.store import Row, now_ms


def _target(c: Ctx, p: dict[str, Any], capability: str) -> tuple[Principal, Row]:
    pr = c.principal()
    name = validate.required_str(p, "fileName")
    row = _version(c, p.get("fileId"))
    may = (
        capability in pr.capabilities
        and pr.may_touch_bucket(row["bucket_id"])
        and (not pr.name_prefix or row["name"].startswith(pr.name_prefix))
    )
    if not may:
        raise AccessDenied(f"application key does not allow {capability} on this file")
    if row["name"] != name:
        raise BadRequest(f"fileName {name[:80]!r} is not the name of file {row['file_id']}")
    bucket = c.store.bucket(row["bucket_id"])
    if bucket is None or not bucket["file_lock"]:
        raise filelock.missing_lock()
    if row["action"] != "upload":
        raise BadRequest("only uploaded files have a retention or a legal hold")
    return pr, row


@call
async def b2_update_file_retention(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr, row = _target(c, p, "writeFileRetentions")
    now = now_ms()
    new = filelock.retention_value(p.get("fileRetention"), now)
    filelock.check_retention_change(
        filelock.retention_of(row), new, pr, flag(p, "bypassGovernance"), now
    )
    c.store.update_version(
        row["file_id"], retention=None if new["mode"] is None else json.dumps(new)
    )
    return {"fileId": row["file_id"], "fileName": row["name"], "fileRetention": new}


@call
async def b2_update_file_legal_hold(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    _, row = _target(c, p, "writeFileLegalHolds")
    hold = filelock.legal_hold_value(p.get("legalHold"))
    c.store.update_version(row["file_id"], legal_hold=hold)
    return {"fileId": row["file_id"], "fileName": row["name"], "legalHold": hold}
