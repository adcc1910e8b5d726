"""Object Lock as B2 enforces it: bucket default retention, file retention (governance or
compliance, until a time), legal hold, and what they forbid.

A file-lock-enabled bucket may carry a ``defaultRetention`` ({mode, period}) applied to
new files that name none. A version's retention is ``{"mode", "retainUntilTimestamp"}``
and its legal hold "on"/"off"; both come from upload headers
(``X-Bz-File-Retention-Mode``, ``X-Bz-File-Retention-Retain-Until-Timestamp``,
``X-Bz-File-Legal-Hold``) or JSON (``fileRetention``, ``legalHold``), need the
``writeFileRetentions`` / ``writeFileLegalHolds`` capabilities (401) and a lock-enabled
bucket (400 ``bucket_missing_file_lock``). Deleting a version under an active retention
or a legal hold is refused (401 ``access_denied``) unless governance is bypassed
(``bypassGovernance`` and the capability); changing a retention follows B2's rules
(403 ``access_denied`` otherwise). Used by ``app`` (uploads, download headers) and
``api``/``api_lock`` (large files, copies, deletes, updates).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from b2fs.emulator.auth import Principal
from b2fs.emulator.errors import AccessDenied, BadRequest, Unauthorized
from b2fs.emulator.store import Row

GOVERNANCE, COMPLIANCE = "governance", "compliance"
MODES = (GOVERNANCE, COMPLIANCE)
H_MODE = "x-bz-file-retention-mode"
H_UNTIL = "x-bz-file-retention-retain-until-timestamp"
H_HOLD = "x-bz-file-legal-hold"
DAY_MS = 86_400_000
UNIT_MS = {"days": DAY_MS, "years": 365 * DAY_MS}
NO_RETENTION = {"mode": None, "retainUntilTimestamp": None}
NO_DEFAULT = {"mode": None, "period": None}
_DIGITS = re.compile(r"^[0-9]{1,16}$")


def missing_lock() -> BadRequest:
    return BadRequest("The bucket is not file lock enabled", "bucket_missing_file_lock")


# ---- bucket default ------------------------------------------------------------------


def bucket_default(value: Any) -> dict[str, Any]:
    """Check ``defaultRetention``: {mode: null|governance|compliance, period: {duration,
    unit: days|years}} (a mode needs a period)."""
    if not isinstance(value, dict):
        raise BadRequest("defaultRetention must be an object")
    mode = value.get("mode")
    if mode is None:
        return dict(NO_DEFAULT)
    if mode not in MODES:
        raise BadRequest(f"defaultRetention mode must be one of {', '.join(MODES)} or null")
    period = value.get("period")
    if not isinstance(period, dict) or period.get("unit") not in UNIT_MS:
        raise BadRequest("defaultRetention needs a period of {duration, unit: days|years}")
    duration = period.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        raise BadRequest("defaultRetention period duration must be a positive integer")
    return {"mode": mode, "period": {"duration": duration, "unit": period["unit"]}}


def default_of(bucket: Row) -> dict[str, Any]:
    return json.loads(bucket["default_retention"]) if bucket["default_retention"] else NO_DEFAULT


# ---- a version's retention and legal hold --------------------------------------------


def retention_value(value: Any, now: int, field: str = "fileRetention") -> dict[str, Any]:
    """Check a requested retention; mode null means none."""
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object")
    mode, until = value.get("mode"), value.get("retainUntilTimestamp")
    if mode is None:
        return dict(NO_RETENTION)
    if mode not in MODES:
        raise BadRequest(f"{field} mode must be one of {', '.join(MODES)} or null")
    if isinstance(until, bool) or not isinstance(until, int):
        raise BadRequest(f"{field} needs retainUntilTimestamp (milliseconds)")
    if until <= now:
        raise BadRequest(
            "The retainUntilTimestamp must be in future", "retain_until_timestamp_must_be_in_future"
        )
    return {"mode": mode, "retainUntilTimestamp": until}


def legal_hold_value(value: Any, field: str = "legalHold") -> str:
    if value not in ("on", "off"):
        raise BadRequest(f"{field} must be 'on' or 'off'")
    return value  # type: ignore[no-any-return]


def from_headers(h: Mapping[str, str], now: int) -> tuple[dict[str, Any] | None, str | None]:
    """(retention, legal hold) named by upload headers; None where not named."""
    retention = None
    if H_MODE in h or H_UNTIL in h:
        mode, until = h.get(H_MODE), h.get(H_UNTIL, "")
        if mode not in MODES:
            raise BadRequest(f"X-Bz-File-Retention-Mode must be one of {', '.join(MODES)}")
        if not _DIGITS.match(until):
            raise BadRequest("X-Bz-File-Retention-Retain-Until-Timestamp must be milliseconds")
        retention = retention_value(
            {"mode": mode, "retainUntilTimestamp": int(until)}, now, "X-Bz-File-Retention-Mode"
        )
    hold = legal_hold_value(h[H_HOLD], "X-Bz-File-Legal-Hold") if H_HOLD in h else None
    return retention, hold


def from_json(p: Mapping[str, Any], now: int) -> tuple[dict[str, Any] | None, str | None]:
    """(retention, legal hold) named by ``fileRetention`` / ``legalHold`` in a JSON call."""
    retention = None if p.get("fileRetention") is None else retention_value(p["fileRetention"], now)
    hold = None if p.get("legalHold") is None else legal_hold_value(p["legalHold"])
    return retention, hold


def for_new_version(
    bucket: Row,
    pr: Principal,
    retention: dict[str, Any] | None,
    hold: str | None,
    upload_ms: int,
) -> dict[str, str | None]:
    """The ``retention``/``legal_hold`` texts of a new version in ``bucket``: the requested
    ones (capabilities first, then the bucket), else the bucket's default retention."""
    if retention is not None:
        pr.require("writeFileRetentions", bucket_id=bucket["bucket_id"])
    if hold is not None:
        pr.require("writeFileLegalHolds", bucket_id=bucket["bucket_id"])
    if (retention is not None or hold is not None) and not bucket["file_lock"]:
        raise missing_lock()
    if retention is None and bucket["file_lock"]:
        default = default_of(bucket)
        if default["mode"] is not None:
            period = default["period"]
            until = upload_ms + period["duration"] * UNIT_MS[period["unit"]]
            retention = {"mode": default["mode"], "retainUntilTimestamp": until}
    out: dict[str, str | None] = {}
    if retention is not None and retention["mode"] is not None:
        out["retention"] = json.dumps(retention)
    if hold is not None:
        out["legal_hold"] = hold
    return out


def retention_of(row: Row) -> dict[str, Any]:
    return json.loads(row["retention"]) if row["retention"] else dict(NO_RETENTION)


def active(retention: dict[str, Any], now: int) -> bool:
    return retention["mode"] is not None and retention["retainUntilTimestamp"] > now


# ---- what the lock forbids -----------------------------------------------------------


def check_delete(row: Row, pr: Principal, bypass: bool, now: int) -> None:
    """A version under legal hold, compliance, or governance (without a bypass) stays."""
    retention = retention_of(row)
    if row["legal_hold"] == "on":
        raise Unauthorized("Access Denied", "access_denied")
    if not active(retention, now):
        return
    if retention["mode"] == COMPLIANCE or not bypass:
        raise Unauthorized("Access Denied", "access_denied")
    pr.require("bypassGovernance", bucket_id=row["bucket_id"], name=row["name"])


def check_retention_change(
    current: dict[str, Any], new: dict[str, Any], pr: Principal, bypass: bool, now: int
) -> None:
    """Extending a retention (or turning governance into compliance) is always allowed;
    shortening or removing governance needs the bypass; compliance never weakens."""
    if not active(current, now):
        return
    weaker = new["mode"] is None or new["retainUntilTimestamp"] < current["retainUntilTimestamp"]
    if current["mode"] == COMPLIANCE:
        if weaker or new["mode"] != COMPLIANCE:
            raise AccessDenied("the file is in compliance mode: its retention cannot be reduced")
        return
    if weaker and not (bypass and "bypassGovernance" in pr.capabilities):
        raise AccessDenied(
            "reducing a governance retention needs bypassGovernance and its capability"
        )
