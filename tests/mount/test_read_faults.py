"""Reads under B2's transient failures: every file comes back whole, and no program sees EIO.

A quarter of the downloads fail (503, 500, a connection dropped mid-body) and 5 % of all
calls answer that the token expired, re-authorizations included: the mount retries
(dropped connections and 500s at once, 503s after a backoff), re-authorizes, retries a
re-authorization that failed, and resumes broken downloads."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180)]

MB = 1024 * 1024

FAULTS = [
    # the first re-authorizations fail: a token answer, a 503, a dropped connection
    {"call": "b2_authorize_account", "sequence": ["expire_token", "503", "drop"]},
    {"call": "b2_download_file_by_id", "kinds": ["503", "500", "drop"], "probability": 0.25},
    {"call": "*", "kinds": ["expire_token"], "probability": 0.05},
]


def test_reads_survive_faults_and_token_expiry(mount_factory, b2sync, new_bucket_name, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    files = {f"d{i % 6}/f{i}.txt": os.urandom(100 + 37 * i) for i in range(90)}
    files["big.bin"] = os.urandom(12 * MB + 5)  # runs of blocks: drops mid-body resume

    async def upload_all(c) -> None:
        bid = (await c.get_bucket(bucket)).bucket_id
        for name, data in files.items():
            await c.upload_bytes(bid, name, data)

    b2sync.run(upload_all)
    m = mount_factory(bucket, block_size="1M", max_request="4M")
    server.reset_counters()
    server.set_faults(FAULTS)
    try:
        seen = {}
        for top, _dirs, names in os.walk(m.path):  # lookups and listings under faults too
            for name in names:
                path = os.path.join(top, name)
                seen[os.path.relpath(path, m.path)] = open(path, "rb").read()  # noqa: SIM115
    finally:
        server.clear_faults()
    assert seen.keys() == files.keys()
    assert all(seen[k] == files[k] for k in files), "a file came back with other bytes"
    counters = server.counters()
    injected = counters["faults_injected"]
    assert injected.get("b2_download_file_by_id", 0) >= 10, injected
    assert injected.get("b2_authorize_account", 0) >= 3, injected  # the failed re-authorizations
    log = m.log()
    assert "refused" not in log and "Input/output" not in log and "EIO" not in log, log[-3000:]
