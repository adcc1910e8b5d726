"""The change log belongs to the mounted prefix: mounts of other prefixes, plain or encrypted,
never read each other's records, and an encrypted mount's records hold no plaintext path."""

from __future__ import annotations

import os

import pytest

from b2fs.b2 import B2Client
from b2fs.codec import PlainContentCodec
from b2fs.sync.records import RecordError, decode
from tests.mount.conftest import PASSPHRASE, SyncB2
from tests.sync.test_mounts_see_each_other import OPTS, read, seen, settled

pytestmark = [pytest.mark.mount, pytest.mark.timeout(240)]


def records(b2sync: SyncB2, bucket: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(name, file info, body) of every change record in the bucket."""
    bid = b2sync.bucket_id(bucket)

    async def fetch(c: B2Client) -> list[tuple[str, dict[str, str], bytes]]:
        out = []
        async for f in c.list_file_names(bid):
            if "/.b2fs/changes/" in "/" + f.file_name:
                out.append((f.file_name, f.file_info, await c.download_bytes(file_id=f.file_id)))
        return out

    return b2sync.run(fetch)


def test_plain_and_encrypted_prefixes_ignore_each_other(mount_factory, b2sync, local_server,
                                                         test_vault):  # fmt: skip
    p1 = mount_factory(prefix="p/", **OPTS)
    bucket = p1.bucket
    p2 = mount_factory(bucket, prefix="p/", **OPTS)
    SyncB2(local_server, test_vault).put_vault(bucket, "e/")
    e1 = mount_factory(bucket, prefix="e/", encrypt=True, passphrase=PASSPHRASE, **OPTS)
    e2 = mount_factory(bucket, prefix="e/", encrypt=True, passphrase=PASSPHRASE, **OPTS)
    for m in (p2, e2):
        assert os.listdir(m.path) == []
    (e1.path / "secret-dir-Zq").mkdir()
    (e1.path / "secret-dir-Zq" / "secret-file-Qx").write_bytes(b"hidden")
    (p1.path / "plain-file").write_bytes(b"open")
    settled(e1)
    settled(p1)
    seen(lambda: read(e2.path / "secret-dir-Zq" / "secret-file-Qx") == b"hidden", "e1's on e2")
    seen(lambda: read(p2.path / "plain-file") == b"open", "p1's on p2")
    assert os.listdir(p2.path) == ["plain-file"] and os.listdir(e2.path) == ["secret-dir-Zq"]

    found = records(b2sync, bucket)
    by_prefix = {name.split(".b2fs/")[0] for name, _, _ in found}
    assert by_prefix == {"p/", "e/"}, by_prefix  # none at the bucket's root
    vault = test_vault[1].content_codec()
    for name, info, body in found:
        blob = repr(info).encode() + body
        assert b"secret-dir-Zq" not in blob and b"secret-file-Qx" not in blob, name
        if name.startswith("e/"):
            with pytest.raises(RecordError):
                decode(info, body, PlainContentCodec())
            paths = {c.path for c in decode(info, body, vault)}
            assert paths <= {"secret-dir-Zq", "secret-dir-Zq/secret-file-Qx"}, paths
        else:
            paths = {c.path for c in decode(info, body, PlainContentCodec())}
            assert paths == {"plain-file"}
    # Each read only its own prefix's records (its partner's).
    written = {m: m.status()["sync"]["log"]["records_written"] for m in (p1, e1)}
    assert 1 <= p2.status()["sync"]["poll"]["records_read"] <= written[p1]
    assert 1 <= e2.status()["sync"]["poll"]["records_read"] <= written[e1]
