"""Event notifications: a bucket's rules (``b2_set/get_bucket_notification_rules``) and
the webhook POSTs they cause, sent in the background.

Rules are checked as B2 documents them (names, event types and their overlaps, the
webhook target, the signing secret, ``maxEventsPerBatch``) and kept in the bucket's
``notifications`` column. ``Notifier.emit`` matches an event (object created by an
upload, a large file, a copy or a replica; version deleted; hide marker created)
against the enabled rules of its bucket and queues it; one background task POSTs
``{"events": [...]}`` to each rule's URL with B2's headers (``User-Agent:
B2/EventNotifications``, the rule's custom headers, and ``X-Bz-Event-Notification-
Signature: v1=<hex HMAC-SHA256 of the body>`` when the rule has a secret), up to
``maxEventsPerBatch`` events at once, retrying a failed POST twice. Unlike B2, which
only calls HTTPS URLs on the internet, targets here must be on loopback (http or
https): a test server must not send requests elsewhere. Used by ``api`` (rules,
events of JSON calls), ``app`` (uploads) and ``replication`` (replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from b2fs.emulator.errors import BadRequest
from b2fs.emulator.store import Row, now_ms

log = logging.getLogger("b2fs.emulator.notify")

CATEGORIES = {
    "b2:ObjectCreated": ("Upload", "MultipartUpload", "Copy", "Replica", "MultipartReplica"),
    "b2:ObjectDeleted": ("Delete", "LifecycleRule"),
    "b2:HideMarkerCreated": ("Hide", "LifecycleRule"),
}
EVENT_TYPES = {f"{c}:{k}" for c, kinds in CATEGORIES.items() for k in (*kinds, "*")}
MAX_RULES = 25
MAX_BATCH = 50
ATTEMPTS = 3
POST_TIMEOUT = 5.0
_RULE_NAME = re.compile(r"^[A-Za-z0-9-]{6,63}$")
_SECRET = re.compile(r"^[A-Za-z0-9]{32}$")


def _expand(event_type: str) -> set[str]:
    category, _, kind = event_type.rpartition(":")
    return {f"{category}:{k}" for k in CATEGORIES[category]} if kind == "*" else {event_type}


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _target(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("targetType") != "webhook":
        raise BadRequest(f"rule {name}: targetConfiguration.targetType must be 'webhook'")
    url = value.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not _loopback(parts.hostname):
        raise BadRequest(
            f"rule {name}: the webhook url must be http(s) on loopback for this server "
            "(B2 itself calls https URLs only)"
        )
    headers = value.get("customHeaders")
    if isinstance(headers, dict):  # what the b2 CLI sends; B2 documents a list of pairs
        headers = [{"name": k, "value": v} for k, v in headers.items()]
    if headers is not None:
        if not isinstance(headers, list) or len(headers) > 10 or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str)
            and isinstance(h.get("value"), str) and h["name"] for h in headers
        ):  # fmt: skip
            raise BadRequest(f"rule {name}: customHeaders must be up to 10 {{name, value}}")
        if any(h["name"].lower().startswith("x-bz-") for h in headers):
            raise BadRequest(f"rule {name}: custom header names must not start with X-Bz-")
        headers = [{"name": h["name"], "value": h["value"]} for h in headers]
    secret = value.get("hmacSha256SigningSecret")
    if secret is not None and (not isinstance(secret, str) or not _SECRET.match(secret)):
        raise BadRequest(f"rule {name}: hmacSha256SigningSecret must be 32 letters and digits")
    return {"customHeaders": headers, "hmacSha256SigningSecret": secret,
            "targetType": "webhook", "url": url}  # fmt: skip


def _rule(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("each event notification rule must be an object")
    name = value.get("name")
    if not isinstance(name, str) or not _RULE_NAME.match(name) or name.lower().startswith("b2-"):
        raise BadRequest("rule names are 6 to 63 letters, digits and '-', not starting with 'b2-'")
    types = value.get("eventTypes")
    if not isinstance(types, list) or not types:
        raise BadRequest(f"rule {name}: eventTypes must not be empty", "event_types_empty")
    for t in types:
        if t not in EVENT_TYPES:
            raise BadRequest(f"rule {name}: invalid event type {str(t)[:60]}", "event_type_invalid")
    for category in CATEGORIES:
        if f"{category}:*" in types and sum(t.startswith(category + ":") for t in types) > 1:
            raise BadRequest(
                f"rule {name}: {category}:* cannot be combined with other {category} types",
                "event_type_categories",
            )
    prefix = value.get("objectNamePrefix")
    if not isinstance(prefix, str):
        raise BadRequest(f"rule {name}: objectNamePrefix is required")
    enabled = value.get("isEnabled")
    if not isinstance(enabled, bool):
        raise BadRequest(f"rule {name}: isEnabled must be true or false")
    rule: dict[str, Any] = {
        "eventTypes": sorted(set(types)),
        "isEnabled": enabled,
        "name": name,
        "objectNamePrefix": prefix,
        "targetConfiguration": _target(value.get("targetConfiguration"), name),
    }
    batch = value.get("maxEventsPerBatch")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise BadRequest(f"rule {name}: maxEventsPerBatch must be between 1 and {MAX_BATCH}")
        rule["maxEventsPerBatch"] = batch
    return rule


def validate_rules(value: Any) -> list[dict[str, Any]]:
    """Check ``eventNotificationRules``; returns them as kept (sorted by name)."""
    if not isinstance(value, list):
        raise BadRequest("eventNotificationRules must be an array")
    if len(value) > MAX_RULES:
        raise BadRequest(f"a bucket has at most {MAX_RULES} event notification rules")
    rules = [_rule(v) for v in value]
    names = [r["name"] for r in rules]
    if len(set(names)) != len(names):
        raise BadRequest("event notification rule names must be unique in a bucket")
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            pa, pb = a["objectNamePrefix"], b["objectNamePrefix"]
            if not (pa.startswith(pb) or pb.startswith(pa)):
                continue
            for t in b["eventTypes"]:
                if _expand(t) & set().union(*map(_expand, a["eventTypes"])):
                    raise BadRequest(
                        "More than one event notification rule has overlapping prefixes "
                        f"({pa}),({pb}) for the same event type: {t}",
                        "event_type_overlap",
                    )
    return sorted(rules, key=lambda r: r["name"])


def shown(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as b2_get/set_bucket_notification_rules answer it."""
    return {**rule, "isSuspended": False, "suspensionReason": ""}


class Notifier:
    """Matches events to rules and POSTs them from one background task."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.queue: deque[tuple[dict[str, Any], dict[str, Any]]] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def emit(self, bucket: Row, event_type: str, name: str, file_id: str | None,
             size: int | None = None) -> None:  # fmt: skip
        rules = json.loads(bucket["notifications"] or "[]")
        for rule in rules:
            if not rule["isEnabled"] or not name.startswith(rule["objectNamePrefix"]):
                continue
            if not any(event_type in _expand(t) for t in rule["eventTypes"]):
                continue
            event: dict[str, Any] = {
                "accountId": self.account_id,
                "bucketId": bucket["bucket_id"],
                "bucketName": bucket["name"],
                "eventId": hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                "eventTimestamp": now_ms(),
                "eventType": event_type,
                "eventVersion": 1,
                "matchedRuleName": rule["name"],
                "objectName": name,
            }
            if size is not None:
                event["objectSize"] = size
            if file_id is not None:
                event["objectVersionId"] = file_id
            self.queue.append((rule, event))
            self.wake.set()

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self) -> None:
        import httpx  # only a server with notification rules needs it

        async with httpx.AsyncClient(timeout=POST_TIMEOUT, trust_env=False) as http:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queue:
                    rule, first = self.queue.popleft()
                    batch = [first, *self._more_like(rule, first)]
                    await self._post(http, rule, batch)

    def _more_like(self, rule: dict[str, Any], first: dict[str, Any]) -> list[dict[str, Any]]:
        """Queued events of the same rule and bucket, up to ``maxEventsPerBatch`` in all
        (the others keep their order)."""
        n = rule.get("maxEventsPerBatch", 1) - 1
        taken: list[dict[str, Any]] = []
        kept: deque[tuple[dict[str, Any], dict[str, Any]]] = deque()
        while self.queue and len(taken) < n:
            r, e = self.queue.popleft()
            if r["name"] == rule["name"] and e["bucketId"] == first["bucketId"]:
                taken.append(e)
            else:
                kept.append((r, e))
        self.queue.extendleft(reversed(kept))
        return taken

    async def _post(self, http: Any, rule: dict[str, Any], events: list[dict[str, Any]]) -> None:
        target = rule["targetConfiguration"]
        body = json.dumps({"events": events}).encode()
        headers = {"Content-Type": "application/json; charset=UTF-8",
                   "User-Agent": "B2/EventNotifications"}  # fmt: skip
        for h in target.get("customHeaders") or []:
            headers[h["name"]] = h["value"]
        secret = target.get("hmacSha256SigningSecret")
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Bz-Event-Notification-Signature"] = f"v1={digest}"
        for attempt in range(ATTEMPTS):
            try:
                r = await http.post(target["url"], content=body, headers=headers)
                if r.status_code < 300:
                    self.sent += len(events)
                    return
                reason = f"HTTP {r.status_code}"
            except Exception as e:  # any failure of the receiver is its own business
                reason = type(e).__name__
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(0.2 * (attempt + 1))
        self.failed += len(events)
        log.warning("event notification rule %s: %s gave up after %d attempts (%s)",
                    rule["name"], target["url"], ATTEMPTS, reason)  # fmt: skip
