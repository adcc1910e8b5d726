"""Races lose nothing: two mounts writing one file, a write over a version made elsewhere, a
hard delete of a name someone else just wrote.  The last upload wins (B2's order), the other
version stays in B2's history, and the conflict is logged with both versions and counted."""

from __future__ import annotations

import os
import time

import pytest

from b2fs.b2 import B2Client
from tests.mount.conftest import CRYPT_MODES, MountProcess, SyncB2, until
from tests.sync.test_mounts_see_each_other import OPTS, mounts, read, seen, settled

pytestmark = [pytest.mark.mount, pytest.mark.timeout(240)]


def versions(b2sync: SyncB2, m: MountProcess, name: str) -> list[tuple[str, str, bytes | None]]:
    """(action, fileId, plaintext content) of every version of ``name``, newest first."""
    bid = b2sync.bucket_id(m.bucket)
    stored = b2sync.key(name)

    async def fetch(c: B2Client) -> list[tuple[str, str, bytes | None]]:
        out = []
        for v in await c.versions_of(bid, stored):
            data = None
            if v.action == "upload":
                data = await c.download_bytes(file_id=v.file_id)
                if b2sync.vault is not None:
                    n = b2sync.content.header_size()
                    size = b2sync.content.plain_size(len(data))
                    data = b2sync.content.decryptor(data[:n]).decode(0, data[n:], size)
            out.append((v.action, v.file_id, data))
        return out

    return b2sync.run(fetch)


def conflicts(m: MountProcess) -> int:
    return m.status()["writeback"]["conflicts"]


@CRYPT_MODES
def test_two_mounts_writing_one_file_at_once(mount_factory, b2sync):
    a, b = mounts(mount_factory, 2)
    (a.path / "f").write_bytes(b"base")
    settled(a)
    seen(lambda: read(b.path / "f") == b"base", "the base on b")
    fa, fb = open(a.path / "f", "r+b"), open(b.path / "f", "r+b")  # noqa: SIM115
    fa.write(b"from a")
    fb.write(b"from b")
    fa.close()
    fb.close()
    settled(a)
    settled(b)
    until(lambda: conflicts(a) + conflicts(b) == 1, 10, "one conflict reported")
    time.sleep(2)  # and no second one
    assert conflicts(a) + conflicts(b) == 1
    loser, winner = (a, b) if conflicts(b) else (b, a)  # the later upload reports it
    contents = [data for action, _, data in versions(b2sync, a, "f") if action == "upload"]
    assert sorted(contents[:2]) == [b"from a", b"from b"] and contents[2] == b"base", contents
    log = winner.log()
    line = next(x for x in log.splitlines() if "conflict:" in x)
    ids = [fid for action, fid, _ in versions(b2sync, a, "f") if action == "upload"]
    assert ids[0] in line and ids[1] in line and ids[2] in line, line  # ours, theirs, the base
    status = winner.status()["sync"]
    assert status["conflicts"] == 1 and status["recent_conflicts"][0]["other"] == ids[1]
    # Both end up showing the newest version.
    for m in (a, b):
        seen(lambda m=m: read(m.path / "f") == contents[0], f"the newest on {m.path}")
    assert loser.status()["sync"]["conflicts"] == 0


def test_an_upload_over_a_version_seen_only_after_the_file_was_opened(mount_factory, b2sync):
    a, b = mounts(mount_factory, 2)
    (a.path / "f").write_bytes(b"base")
    settled(a)
    seen(lambda: read(b.path / "f") == b"base", "the base on b")
    with open(a.path / "f", "r+b") as fa:  # a's change starts from the base...
        (b.path / "f").write_bytes(b"b's")  # ...b writes meanwhile, and a learns of it
        settled(b)
        until(lambda: a.status()["sync"]["poll"]["changes_applied"] >= 1, 10, "a polled")
        fa.write(b"a's!")
    settled(a)
    until(lambda: conflicts(a) == 1, 5, "a reports the conflict")
    assert conflicts(b) == 0
    contents = [data for action, _, data in versions(b2sync, a, "f") if action == "upload"]
    assert contents == [b"a's!", b"b's", b"base"]
    seen(lambda: read(b.path / "f") == b"a's!", "a's version on b")


def test_no_conflict_for_changes_in_turn(mount_factory):
    a, b = mounts(mount_factory, 2)
    (a.path / "f").write_bytes(b"1")
    settled(a)
    for i, writer in enumerate([b, a, b], start=2):
        seen(lambda w=writer, i=i: read(w.path / "f") == b"%d" % (i - 1), "the previous one")
        (writer.path / "f").write_bytes(b"%d" % i)
        settled(writer)
    seen(lambda: read(b.path / "f") == b"4", "the last one")
    time.sleep(2)
    assert conflicts(a) == conflicts(b) == 0


def test_hard_delete_keeps_what_was_written_elsewhere(mount_factory, b2sync):
    """A hard delete (and the upload before it) never deletes a version this mount did not see:
    it stays in B2's history, the name hidden."""
    a = mount_factory(**OPTS, hard_delete=True)
    b = mount_factory(a.bucket, **OPTS)
    # A conflict superseded b's version here: a's unlink keeps it.
    (a.path / "f").write_bytes(b"base")
    settled(a)
    seen(lambda: read(b.path / "f") == b"base", "the base on b")
    with open(a.path / "f", "r+b") as fa:
        (b.path / "f").write_bytes(b"b's")
        settled(b)
        until(lambda: a.status()["sync"]["poll"]["changes_applied"] >= 1, 10, "a polled")
        fa.write(b"a's")
    settled(a)
    until(lambda: conflicts(a) == 1, 5, "a reports the conflict")
    os.unlink(a.path / "f")
    after = versions(b2sync, a, "f")
    assert [(action, data) for action, _, data in after] == [("hide", None), ("upload", b"b's")]
    # A name rewritten elsewhere that a has not heard of yet: its unlink keeps that version.
    c = mount_factory(a.bucket, **{**OPTS, "poll_interval": 0}, hard_delete=True)
    (b.path / "g").write_bytes(b"base")
    settled(b)
    assert read(c.path / "g") == b"base"
    (b.path / "g").write_bytes(b"b's newer")
    settled(b)
    os.unlink(c.path / "g")  # c shows the base still
    after = versions(b2sync, a, "g")
    assert [(action, data) for action, _, data in after] == [
        ("hide", None),
        ("upload", b"b's newer"),
    ]
    assert conflicts(c) == 1
    assert "kept" in c.log()
