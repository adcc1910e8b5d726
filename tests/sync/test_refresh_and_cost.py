"""``b2fs refresh`` for changes made by other tools, and what polling costs an idle mount: one
``b2_list_file_names`` per poll, whatever the size of the tree it has listed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import trio

from b2fs.b2 import B2Client
from tests.mount.conftest import MountProcess
from tests.sync.test_mounts_see_each_other import OPTS, POLL, read, seen, settled

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180)]


def refresh(m: MountProcess, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "b2fs", "refresh", path], env=m.env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("options", [OPTS, {**OPTS, "poll_interval": 0, "change_log": False}],
                         ids=["polling", "no-change-log"])  # fmt: skip
def test_refresh_shows_what_other_tools_changed(mount_factory, b2sync, options):
    m = mount_factory(**options)
    (m.path / "d").mkdir()
    settled(m)
    assert os.listdir(m.path / "d") == []  # listed: kept for ten minutes
    b2sync.upload(m.bucket, "d/other", b"from the B2 CLI")  # writes no change record
    time.sleep(POLL * 2.5)
    assert os.listdir(m.path / "d") == []
    r = refresh(m, str(m.path / "d"))
    assert r.returncode == 0, r.stderr
    assert os.listdir(m.path / "d") == ["other"]
    assert read(m.path / "d" / "other") == b"from the B2 CLI"
    b2sync.upload(m.bucket, "top", b"at the root")
    assert refresh(m, str(m.path)).returncode == 0
    assert sorted(os.listdir(m.path)) == ["d", "top"]
    r = refresh(m, str(m.path / "missing"))
    assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
    r = refresh(m, str(m.path.parent))
    assert r.returncode == 1 and "not on a b2fs mount" in r.stderr, r.stderr


def test_an_idle_mount_costs_one_listing_call_per_poll_whatever_its_tree(mount_factory, b2sync):
    m = mount_factory(**OPTS)
    for i in range(30):
        b2sync.upload(m.bucket, f"dir{i:02d}/file", b"x")
    for dirpath, _, files in os.walk(m.path):  # every directory listed and cached
        for f in files:
            os.stat(os.path.join(dirpath, f))
    time.sleep(POLL * 1.5)
    before = m.status()
    time.sleep(POLL * 5)
    after = m.status()
    calls = {k: v - before["b2"]["calls"].get(k, 0) for k, v in after["b2"]["calls"].items()}
    calls = {k: v for k, v in calls.items() if v}
    polls = after["sync"]["poll"]["polls"] - before["sync"]["poll"]["polls"]
    assert polls >= 3
    assert calls == {"b2_list_file_names": polls}, calls


def test_a_lifecycle_rule_for_the_records_when_asked(server, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    other = {
        "fileNamePrefix": "logs/",
        "daysFromUploadingToHiding": 7,
        "daysFromHidingToDeleting": 1,
    }
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate", lifecycle_rules=[other]))
    env = dict(os.environ, B2_APPLICATION_KEY_ID=server.key_id, B2_APPLICATION_KEY=server.key,
               B2_ENVIRONMENT=server.realm)  # fmt: skip

    def rule(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "b2fs", "bucket", "change-log-rule", *args],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip

    def rules() -> list[dict]:
        return b2sync.run(lambda c: c.get_bucket(bucket)).lifecycle_rules

    r = rule(f"b2://{bucket}/team/", "--days", "2")
    assert r.returncode == 0, r.stderr
    assert "team/.b2fs/changes/: records purged after 2 day(s)" in r.stdout
    mine = {"fileNamePrefix": "team/.b2fs/changes/", "daysFromUploadingToHiding": 2,
            "daysFromHidingToDeleting": 1}  # fmt: skip
    assert rules() == [other, mine]
    assert rule(f"b2://{bucket}/team", "--days", "2").returncode == 0  # again: still one rule
    assert rules() == [other, mine]
    assert rule(f"b2://{bucket}/team", "--remove").returncode == 0
    assert rules() == [other]
    r = rule("b2://no", "--days", "0")
    assert r.returncode != 0 and "does not name a B2 bucket" in r.stderr


def test_a_change_in_a_large_directory_rereads_that_name_only(mount_factory, b2sync):
    """A directory of more than 1,000 names (two listing pages): a changed name is read again
    alone (one call) instead of the whole directory (two)."""
    a = mount_factory(**OPTS)
    b = mount_factory(a.bucket, **OPTS)

    async def fill(c: B2Client) -> None:
        bid = (await c.get_bucket(a.bucket)).bucket_id
        limiter = trio.CapacityLimiter(16)

        async def one(i: int) -> None:
            async with limiter:
                await c.upload(bid, f"big/f{i:04d}", b"old")

        async with trio.open_nursery() as nursery:
            for i in range(1100):
                nursery.start_soon(one, i)

    b2sync.run(fill)
    assert len(os.listdir(b.path / "big")) == 1100
    assert read(b.path / "big" / "f0007") == b"old"
    before = b.status()
    (a.path / "big" / "f0007").write_bytes(b"new!")
    settled(a)
    seen(lambda: read(b.path / "big" / "f0007") == b"new!", "the new version")
    (a.path / "big" / "added").write_bytes(b"added")
    settled(a)
    seen(lambda: "added" in os.listdir(b.path / "big"), "the new name")
    os.unlink(a.path / "big" / "f0100")
    settled(a)
    seen(lambda: "f0100" not in os.listdir(b.path / "big"), "the removed name")
    assert len(os.listdir(b.path / "big")) == 1100
    after = b.status()
    assert after["listings"]["fetches"] == before["listings"]["fetches"]  # never read again
    assert after["sync"]["names_refreshed"] - before["sync"]["names_refreshed"] == 3


def test_a_restore_shows_on_the_other_mount_and_the_log_not_in_the_versions_view(mount_factory):
    from tests.sync.test_mounts_see_each_other import mounts

    a, b = mounts(mount_factory, 2)
    (a.path / "d").mkdir()
    (a.path / "d" / "f").write_bytes(b"keep me")
    settled(a)
    seen(lambda: read(b.path / "d" / "f") == b"keep me", "the file on b")
    os.unlink(a.path / "d" / "f")
    settled(a)
    seen(lambda: not (b.path / "d" / "f").exists(), "the unlink on b")
    r = subprocess.run([sys.executable, "-m", "b2fs", "restore", str(a.path / "d" / "f")],
                       env=a.env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen(lambda: read(b.path / "d" / "f") == b"keep me", "the restored file on b")
    assert ".b2fs" not in os.listdir(a.path / ".b2fs-versions")
