"""Fault injection (sequences, seeded probabilities, each kind, --fault, X-Bz-Test-Mode)
and the counters (calls, billing classes, bytes)."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(60)


def outcome(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        fn()
        return "ok"
    except ApiFailure as e:
        return str(e.status)
    except httpx.TransportError:
        return "drop"


def test_sequence(server: LocalServer, raw: Raw, bucket: str) -> None:
    server.set_faults(
        [{"call": "b2_list_file_names", "sequence": ["503", "ok", "500", "408", "expire_token"]}]
    )
    got = [outcome(lambda: raw.names(bucket)) for _ in range(7)]
    assert got == ["503", "ok", "500", "408", "401", "ok", "ok"]
    c = server.counters()
    assert c["faults_injected"] == {"b2_list_file_names": 4}
    assert c["calls"]["b2_list_file_names"] == 7


def test_error_bodies_and_retry_after(server: LocalServer, raw: Raw, bucket: str) -> None:
    server.set_faults([{"call": "*", "sequence": ["429", "expire_token"], "retry_after": 0}])
    r = raw.http.post(f"{raw.realm}/b2api/v4/b2_list_file_names", json={"bucketId": bucket},
                      headers={"Authorization": raw.token})  # fmt: skip
    assert (r.status_code, r.json()["code"], r.headers["retry-after"]) == (
        429,
        "too_many_requests",
        "0",
    )
    r = raw.http.post(f"{raw.realm}/b2api/v4/b2_list_file_names", json={"bucketId": bucket},
                      headers={"Authorization": raw.token})  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (401, "expired_auth_token")
    server.set_faults([{"call": "b2_get_file_info", "kinds": ["429"], "probability": 1}])
    r = raw.http.post(
        f"{raw.realm}/b2api/v4/b2_get_file_info", json={}, headers={"Authorization": raw.token}
    )
    assert r.headers["retry-after"] == "1"


def test_probability_is_seeded(server: LocalServer, raw: Raw, bucket: str) -> None:
    rules = [{"call": "b2_list_file_names", "kinds": ["503", "500"], "probability": 0.4}]
    runs = []
    for _ in range(2):
        server.set_faults(rules)  # setting rules reseeds the RNG
        runs.append([outcome(lambda: raw.names(bucket)) for _ in range(30)])
    assert runs[0] == runs[1]
    assert {"ok", "503", "500"} <= set(runs[0])
    server.clear_faults()
    assert all(outcome(lambda: raw.names(bucket)) == "ok" for _ in range(5))


def test_drop_and_delay(server: LocalServer, raw: Raw, bucket: str) -> None:
    data = b"z" * 300_000
    f = raw.upload(bucket, "d.bin", data)
    server.set_faults([{"call": "b2_download_file_by_id", "sequence": ["drop"]},
                       {"call": "b2_upload_file", "sequence": ["drop"]},
                       {"call": "b2_list_buckets", "sequence": ["drop", "delay:0.3"]}])  # fmt: skip
    with pytest.raises(httpx.TransportError):
        raw.by_id(f["fileId"])
    assert raw.by_id(f["fileId"]).content == data
    with pytest.raises(httpx.TransportError):
        raw.upload(bucket, "never", b"abc")
    assert [x["fileName"] for x in raw.names(bucket)["files"]] == ["d.bin"]
    with pytest.raises(httpx.TransportError):
        raw.call("b2_list_buckets", accountId=raw.account_id)
    t = time.monotonic()
    raw.call("b2_list_buckets", accountId=raw.account_id)
    assert time.monotonic() - t >= 0.3
    assert server.counters()["faults_injected"] == {
        "b2_download_file_by_id": 1, "b2_upload_file": 1, "b2_list_buckets": 2}  # fmt: skip


def test_upload_faults_leave_nothing(server: LocalServer, raw: Raw, bucket: str) -> None:
    server.set_faults([{"call": "b2_upload_file", "sequence": ["503", "500"]}])
    assert outcome(lambda: raw.upload(bucket, "a", b"1")) == "503"
    assert outcome(lambda: raw.upload(bucket, "a", b"1")) == "500"
    assert outcome(lambda: raw.upload(bucket, "a", b"1")) == "ok"
    assert len(raw.versions(bucket)["files"]) == 1


def test_bad_rules_are_refused(server: LocalServer) -> None:
    for rules in ([{"call": "x", "kinds": ["nope"], "probability": 1}], [{"kinds": ["503"]}],
                  [{"call": "x", "kinds": ["503"], "probability": 2}], {"call": "x"}):  # fmt: skip
        with pytest.raises(Exception, match="400"):
            server.set_faults(rules)  # type: ignore[arg-type]


def test_admin_needs_master_key(server: LocalServer) -> None:
    r = httpx.get(f"{server.realm}/_admin/counters")
    assert r.status_code == 401
    r = httpx.get(f"{server.realm}/_admin/counters", auth=(server.key_id, "wrong"))
    assert r.status_code == 401


def test_fault_from_command_line(make_local_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_local_server(
        extra_args=["--fault", '{"call": "b2_list_buckets", "sequence": ["503"]}', "--seed", "7"]
    )
    raw = Raw(srv)
    assert outcome(lambda: raw.call("b2_list_buckets", accountId=raw.account_id)) == "503"
    assert outcome(lambda: raw.call("b2_list_buckets", accountId=raw.account_id)) == "ok"


def test_test_mode_header(server: LocalServer, raw: Raw, bucket: str) -> None:
    raw.http.headers["X-Bz-Test-Mode"] = "force_cap_exceeded"
    assert outcome(lambda: raw.names(bucket)) == "403"
    raw.http.headers["X-Bz-Test-Mode"] = "expire_some_account_authorization_tokens"
    got = {outcome(lambda: raw.names(bucket)) for _ in range(40)}
    assert got == {"ok", "401"}
    raw.http.headers["X-Bz-Test-Mode"] = "fail_some_uploads"
    got = {outcome(lambda: raw.upload(bucket, "u", b"1")) for _ in range(30)}
    assert got == {"ok", "503"}
    del raw.http.headers["X-Bz-Test-Mode"]


def test_counters(server: LocalServer, raw: Raw, bucket: str) -> None:
    server.reset_counters()
    data = b"c" * 1000
    f = raw.upload(bucket, "c.bin", data)
    raw.names(bucket)
    raw.by_id(f["fileId"], Range="bytes=0-99")
    raw.http.head(f"{raw.realm}/b2api/v4/b2_download_file_by_id?fileId={f['fileId']}",
                  headers={"Authorization": raw.token})  # fmt: skip
    raw.call("b2_get_file_info", fileId=f["fileId"])
    raw.call("b2_hide_file", bucketId=bucket, fileName="c.bin")
    raw.call("b2_copy_file", sourceFileId=f["fileId"], fileName="c2")
    c = server.counters()
    assert c["calls"] == {
        "b2_get_upload_url": 1, "b2_upload_file": 1, "b2_list_file_names": 1,
        "b2_download_file_by_id": 2, "b2_get_file_info": 1, "b2_hide_file": 1, "b2_copy_file": 1,
    }  # fmt: skip
    assert c["classes"] == {"A": 3, "B": 3, "C": 2}
    assert (c["bytes_in"], c["bytes_out"]) == (1000, 100)
    server.reset_counters()
    assert server.counters() == {"calls": {}, "classes": {"A": 0, "B": 0, "C": 0}, "bytes_in": 0,
                                 "bytes_out": 0, "faults_injected": {}}  # fmt: skip
    assert hashlib.sha1(data).hexdigest() == f["contentSha1"]
