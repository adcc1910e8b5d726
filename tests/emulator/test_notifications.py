"""Event notifications (issue item 9): b2_get/set_bucket_notification_rules with B2's
checks, and webhook POSTs with B2's payload, headers and HMAC-SHA256 signature, to a
receiver on loopback. Raw HTTP, b2sdk and the b2 CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.official import Cli, sdk
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)
SECRET = "0123456789abcdefABCDEF0123456789"


class Receiver:
    """A webhook endpoint on 127.0.0.1: each POST is queued as (headers, raw body)."""

    def __init__(self) -> None:
        posts: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.posts = posts
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def events(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``n`` events (from one POST or several)."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            headers, body = self.posts.get(timeout=timeout)
            out += json.loads(body)["events"]
        return out

    def nothing_more(self) -> bool:
        try:
            self.posts.get(timeout=0.3)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def rule(name: str, url: str, types: list[str], prefix: str = "", **kw: Any) -> dict[str, Any]:
    return {"eventTypes": types, "isEnabled": True, "name": name, "objectNamePrefix": prefix,
            "targetConfiguration": {"targetType": "webhook", "url": url, **kw}}  # fmt: skip


def test_rules_are_checked(raw: Raw, bucket: str, receiver: Receiver) -> None:
    def put(*rules: dict) -> Any:
        return raw.call("b2_set_bucket_notification_rules", bucketId=bucket,
                        eventNotificationRules=list(rules))  # fmt: skip

    url = receiver.url
    fails(lambda: put(rule("rule-one", url, [])), 400, "event_types_empty")
    fails(lambda: put(rule("rule-one", url, ["b2:ObjectRead:*"])), 400, "event_type_invalid")
    fails(lambda: put(rule("rule-one", url, ["b2:ObjectCreated:*", "b2:ObjectCreated:Upload"])),
          400, "event_type_categories")  # fmt: skip
    e = fails(lambda: put(rule("rule-one", url, ["b2:ObjectCreated:*"], "images"),
                          rule("rule-two", url, ["b2:ObjectCreated:Upload"], "images/raw")),
              400, "event_type_overlap")  # fmt: skip
    assert e.body["message"] == (
        "More than one event notification rule has overlapping prefixes "
        "(images),(images/raw) for the same event type: b2:ObjectCreated:Upload"
    )
    fails(lambda: put(rule("short", url, ["b2:ObjectCreated:*"])), 400, "bad_request")
    fails(lambda: put(rule("rule-one", "https://example.com/x", ["b2:ObjectCreated:*"])), 400,
          "bad_request")  # fmt: skip
    fails(lambda: put(rule("rule-one", url, ["b2:ObjectCreated:*"], hmacSha256SigningSecret="x")),
          400, "bad_request")  # fmt: skip
    assert put() == {"bucketId": bucket, "eventNotificationRules": []}


def test_webhooks_raw(server: LocalServer, raw: Raw, bucket: str, receiver: Receiver) -> None:
    r = rule("in-rule", receiver.url,
             ["b2:ObjectCreated:*", "b2:ObjectDeleted:*", "b2:HideMarkerCreated:*"], "in/",
             customHeaders=[{"name": "X-Source", "value": "b2fs"}], hmacSha256SigningSecret=SECRET)  # fmt: skip
    shown = {**r, "isSuspended": False, "suspensionReason": ""}
    shown["eventTypes"] = sorted(r["eventTypes"])
    answer = raw.call(
        "b2_set_bucket_notification_rules", bucketId=bucket, eventNotificationRules=[r]
    )
    assert answer == {"bucketId": bucket, "eventNotificationRules": [shown]}
    got = raw.http.get(f"{raw.realm}/b2api/v4/b2_get_bucket_notification_rules",
                       params={"bucketId": bucket}, headers={"Authorization": raw.token})  # fmt: skip
    assert got.json() == answer
    raw.upload(bucket, "out/ignored", b"x")
    f = raw.upload(bucket, "in/a.txt", b"hello")
    headers, body = receiver.posts.get(timeout=10)
    (event,) = json.loads(body)["events"]
    bucket_name = raw.call("b2_list_buckets", accountId=raw.account_id, bucketId=bucket)["buckets"][
        0
    ]
    assert event == {
        "accountId": raw.account_id, "bucketId": bucket, "bucketName": bucket_name["bucketName"],
        "eventId": event["eventId"], "eventTimestamp": event["eventTimestamp"],
        "eventType": "b2:ObjectCreated:Upload", "eventVersion": 1, "matchedRuleName": "in-rule",
        "objectName": "in/a.txt", "objectSize": 5, "objectVersionId": f["fileId"],
    }  # fmt: skip
    assert len(event["eventId"]) == 64 and event["eventTimestamp"] >= f["uploadTimestamp"]
    assert (headers["user-agent"], headers["x-source"]) == ("B2/EventNotifications", "b2fs")
    assert headers["content-type"].startswith("application/json")
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-bz-event-notification-signature"] == f"v1={expected}"
    # copies, hide markers, deletes and large files
    c = raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="in/copy")
    hidden = raw.call("b2_hide_file", bucketId=bucket, fileName="in/a.txt")
    raw.call("b2_delete_file_version", fileId=c["fileId"], fileName="in/copy")
    start = raw.call(
        "b2_start_large_file", bucketId=bucket, fileName="in/big", contentType="b2/x-auto"
    )
    src = raw.upload(bucket, "out/part", b"p" * 5_000_000)
    sha = [raw.call("b2_copy_part", sourceFileId=src["fileId"], largeFileId=start["fileId"],
                    partNumber=n)["contentSha1"] for n in (1, 2)]  # fmt: skip
    raw.call("b2_finish_large_file", fileId=start["fileId"], partSha1Array=sha)
    events = receiver.events(4)
    assert [(e["eventType"], e["objectName"], e.get("objectSize")) for e in events] == [
        ("b2:ObjectCreated:Copy", "in/copy", 5),
        ("b2:HideMarkerCreated:Hide", "in/a.txt", None),
        ("b2:ObjectDeleted:Delete", "in/copy", 5),
        ("b2:ObjectCreated:MultipartUpload", "in/big", 10_000_000),
    ]
    assert events[1]["objectVersionId"] == hidden["fileId"]
    assert receiver.nothing_more()
    # reading and writing rules need their capabilities
    k = raw.call("b2_create_key", accountId=raw.account_id, keyName="no-notify",
                 capabilities=["listBuckets", "writeFiles"])  # fmt: skip
    other = Raw(server, key_id=k["applicationKeyId"], key=k["applicationKey"])
    fails(
        lambda: other.call("b2_get_bucket_notification_rules", bucketId=bucket), 401, "unauthorized"
    )
    fails(lambda: other.call("b2_set_bucket_notification_rules", bucketId=bucket,
                             eventNotificationRules=[]), 401, "unauthorized")  # fmt: skip


def test_batches(raw: Raw, bucket: str, receiver: Receiver) -> None:
    r = rule("batch-rule", receiver.url, ["b2:ObjectCreated:Upload"], maxEventsPerBatch=10)
    raw.call("b2_set_bucket_notification_rules", bucketId=bucket, eventNotificationRules=[r])
    for i in range(5):
        raw.upload(bucket, f"f{i}", b"x")
    sizes = []
    while sum(sizes) < 5:
        sizes.append(len(json.loads(receiver.posts.get(timeout=10)[1])["events"]))
    assert max(sizes) <= 10


def test_notifications_b2sdk(server: LocalServer, receiver: Receiver) -> None:
    api = sdk(server)
    bucket = api.create_bucket(f"sdk-ev-{uuid.uuid4().hex[:8]}", "allPrivate")
    rules = bucket.set_notification_rules([rule("sdk-rule", receiver.url, ["b2:ObjectCreated:*"],
                                                hmacSha256SigningSecret=SECRET)])  # fmt: skip
    assert [(x["name"], x["isSuspended"]) for x in rules] == [("sdk-rule", False)]
    assert bucket.get_notification_rules() == rules
    fv = bucket.upload_bytes(b"sdk", "s.txt")
    (event,) = receiver.events(1)
    assert (event["objectVersionId"], event["matchedRuleName"]) == (fv.id_, "sdk-rule")


def test_notifications_cli(server: LocalServer, tmp_path: Path, receiver: Receiver) -> None:
    cli = Cli(server, tmp_path / "home")
    name = f"cli-ev-{uuid.uuid4().hex[:8]}"
    cli("bucket", "create", name, "allPrivate")
    cli("bucket", "notification-rule", "create", f"b2://{name}/logs/", "cli-rule", "--event-type",
        "b2:ObjectCreated:*", "--webhook-url", receiver.url, "--sign-secret", SECRET,
        "--custom-header", "X-From=cli")  # fmt: skip
    (listed,) = cli.json("bucket", "notification-rule", "list", "--json", f"b2://{name}")
    assert (listed["name"], listed["objectNamePrefix"], listed["eventTypes"]) == (
        "cli-rule", "logs/", ["b2:ObjectCreated:*"])  # fmt: skip
    f = tmp_path / "l.txt"
    f.write_text("log line\n")
    up = cli.json("file", "upload", "--quiet", name, str(f), "logs/l.txt")
    headers, body = receiver.posts.get(timeout=10)
    (event,) = json.loads(body)["events"]
    assert (event["objectVersionId"], headers["x-from"]) == (up["fileId"], "cli")
    assert headers["x-bz-event-notification-signature"] == "v1=" + hmac.new(
        SECRET.encode(), body, hashlib.sha256).hexdigest()  # fmt: skip
