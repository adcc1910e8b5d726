"""The change log's parts without a mount: record names and contents, the conflict check, the
writer's batching, retries and pruning (against the local server), the poller's window."""

from __future__ import annotations

import logging
import time

import pytest
import trio

from b2fs.b2 import B2Client
from b2fs.codec import PlainContentCodec, create_vault
from b2fs.codec.vault import Argon2idParams
from b2fs.sync.conflicts import Conflicts
from b2fs.sync.poller import LOOKBACK_MS, Poller
from b2fs.sync.records import (
    Change,
    RecordError,
    decode,
    encode,
    log_prefix,
    parse_name,
    record_name,
    start_name,
)
from b2fs.sync.writer import ChangeWriter

PLAIN = PlainContentCodec()


@pytest.fixture(scope="module")
def sealed():
    return create_vault("pw", kdf=Argon2idParams(memory_kib=1024, iterations=1, lanes=1))[1]


# -- records -------------------------------------------------------------------------------


def test_names_sort_by_time_and_parse_back():
    a = record_name("p/", 1_700_000_000_000, "0123456789ab", 7)
    b = record_name("p/", 1_700_000_000_001, "ffffffffffff", 1)
    assert a.startswith("p/.b2fs/changes/") and a < b
    assert parse_name("p/", a) == (1_700_000_000_000, "0123456789ab", 7)
    assert parse_name("p/", "p/.b2fs/changes/junk") is None
    assert parse_name("", a) is None  # another prefix's
    assert start_name("p/", 1_700_000_000_000) < a < start_name("p/", 1_700_000_000_001)
    assert log_prefix("") == ".b2fs/changes/"


def test_small_records_travel_in_file_info_large_ones_in_the_body(sealed):
    small = [Change("put", "a/b", "4_z1", 5), Change("gone", "c", None, 6)]
    info, body = encode(small, PLAIN, "x")
    assert body == b"" and decode(info, None, PLAIN) == small
    big = [Change("put", f"dir/file-{i}-{'é' * 20}", f"4_z{i}", i) for i in range(400)]
    info, body = encode(big, PLAIN, "x")
    assert info == {} and body and decode(info, body, PLAIN) == big
    with pytest.raises(RecordError):
        decode(info, None, PLAIN)  # its body is needed


def test_encrypted_records_need_the_vault(sealed):
    codec = sealed.content_codec()
    changes = [Change("tree", "secret/path", None, 1)]
    info, body = encode(changes, codec, "x")
    assert b"secret" not in repr(info).encode() + body
    assert decode(info, body, codec) == changes
    with pytest.raises(RecordError):
        decode(info, body, PLAIN)
    other = create_vault("pw2", kdf=Argon2idParams(memory_kib=1024, iterations=1, lanes=1))[1]
    with pytest.raises(RecordError):
        decode(info, body, other.content_codec())
    with pytest.raises(RecordError):
        decode({"b2fs-changes": "not base64!"}, None, PLAIN)


# -- conflicts -----------------------------------------------------------------------------


def conflicts() -> Conflicts:
    return Conflicts(lambda p: p, set())


def test_an_upload_over_another_mounts_version_is_a_conflict():
    c = conflicts()
    c.foreign([Change("put", "f", "theirs", 100)])
    c.mine("f", "ours", 200, seen="base")
    assert c.count == 1 and c.keep == {"theirs"}
    assert c.recent[0]["other"] == "theirs" and c.recent[0]["ours"] == "ours"


def test_a_record_that_comes_after_the_upload_is_checked_too():
    c = conflicts()
    c.mine("f", "ours", 200, seen="base")
    assert c.count == 0
    c.foreign([Change("put", "f", "theirs", 150)])  # landed before ours: we replaced it blindly
    assert c.count == 1
    c.foreign([Change("put", "f", "later", 300)])  # landed after ours: their conflict, not ours
    assert c.count == 1


def test_what_is_not_a_conflict():
    c = conflicts()
    c.foreign([Change("put", "f", "theirs", 100)])
    c.mine("f", "ours", 200, seen="theirs")  # made from their version
    c.mine("f", "ours2", 300, seen="ours")  # then from our own
    c.foreign([Change("gone", "g", None, 100)])
    c.mine("g", "new", 200, seen=None)  # removed there, made anew here
    c.mine("h", "only", 200, seen="old")  # nothing known before it
    c.foreign([Change("tree", "f", None, 250), Change("dir", "f", "m", 250)])
    assert c.count == 0


def test_the_listing_is_a_witness_and_removals_count():
    c = conflicts()
    c.mine("f", "ours", 200, seen="base", listed="by-another-tool")
    assert c.count == 1 and c.keep == {"by-another-tool"}
    c.foreign([Change("gone", "g", None, 100)])
    c.mine("g", "ours", 200, seen="base")  # it was removed elsewhere after we opened it
    assert c.count == 2 and c.recent[-1]["other"] is None


def test_a_listing_that_shows_this_mounts_own_upload_is_no_witness():
    c = conflicts()
    c.mine("f", "p1", 100, seen="base")  # uploaded; a later version was made from "base" too
    c.mine("f", "p2", 200, seen="base", listed="p1")  # (it was pending when the next began)
    assert c.count == 0
    c.mine("f", "p3", 300, seen="p2", listed="elsewhere")
    assert c.count == 1


def test_history_forgets_names_out_of_the_window_and_keeps_recent_ones():
    now = int(time.time() * 1000)
    c = conflicts()
    for i in range(3000):
        c.mine(f"old{i}", f"o{i}", now - 700_000, check=False)  # out of the 600 s window
    for i in range(5000):
        c.mine(f"new{i}", f"n{i}", now, check=False)
    assert not any(p.startswith("old") for p in c.history)
    assert len(c.history) == 5000
    c.foreign([Change("put", "new0", "theirs", now + 1)])
    c.mine("new0", "ours", now + 2, seen="n0")  # the facts of a recent name are still known
    assert c.count == 1


# -- the writer and the poller, against the local server -----------------------------------


@pytest.fixture
async def client(local_server):
    async with B2Client(local_server.key_id, local_server.key, realm=local_server.realm) as c:
        yield c


async def new_bucket(c: B2Client) -> str:
    import uuid

    return (await c.create_bucket(f"t-{uuid.uuid4().hex[:20]}", "allPrivate")).bucket_id


async def test_the_writer_batches_prunes_and_sweeps(client):
    bid = await new_bucket(client)
    w = ChangeWriter(client, bid, "r/", PLAIN, can_delete=True, batch=0.2, retention=0.5)
    got: list[Change] = []

    async def apply(changes: list[Change]) -> None:
        got.extend(changes)

    reader = Poller(client, bid, "r/", PLAIN, own=None, interval=1, apply=apply,
                    foreign=lambda changes: None, lost=trio.sleep)  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(w.run)
        for i in range(30):
            w.note(Change("put", f"f{i}", f"id{i}", i))
            await trio.sleep(0.01)
        await trio.sleep(0.6)
        assert 1 <= w.records_written <= 3 and w.changes_written == 30
        await reader.poll()
        assert [c.path for c in got] == [f"f{i}" for i in range(30)]
        await reader.poll()  # nothing new: nothing again
        assert len(got) == 30 and reader.records_read == w.records_written
        await trio.sleep(0.6)
        await w._prune()  # older than the retention: deleted by its writer
        nursery.cancel_scope.cancel()
    files, _ = await client.list_file_names_page(bid, prefix=log_prefix("r/"))
    assert files == [] and w.pruned == w.records_written
    # Records a mount that ended left behind: the next writer's start sweeps them.
    left = ChangeWriter(client, bid, "r/", PLAIN, can_delete=True, retention=0.3)
    left.note(Change("gone", "x", None, 1))
    assert await left.flush()
    await client.upload(bid, log_prefix("r/") + "not-a-record", b"")
    await trio.sleep(0.5)
    await ChangeWriter(client, bid, "r/", PLAIN, can_delete=True, retention=0.3)._sweep()
    files, _ = await client.list_file_names_page(bid, prefix=log_prefix("r/"))
    assert [f.file_name for f in files] == [log_prefix("r/") + "not-a-record"]


async def test_a_failed_record_keeps_its_changes(client, local_server, caplog):
    bid = await new_bucket(client)
    w = ChangeWriter(client, bid, "", PLAIN, can_delete=True)
    w.note(Change("gone", "a", None, 1))
    w.bucket_id = "no-such-bucket"
    with caplog.at_level(logging.WARNING, logger="b2fs.sync"):
        assert not await w.flush()
        w.note(Change("gone", "b", None, 2))
        assert not await w.flush()
    assert sum("writing a record failed" in r.message for r in caplog.records) == 1  # said once
    w.bucket_id = bid
    assert await w.flush()
    got: list[Change] = []

    async def apply(changes: list[Change]) -> None:
        got.extend(changes)

    reader = Poller(client, bid, "", PLAIN, own=None, interval=1, apply=apply,
                    foreign=lambda changes: None, lost=trio.sleep)  # fmt: skip
    reader.last_ok -= 5000
    assert await reader.poll()
    assert [c.path for c in got] == ["a", "b"]


async def test_the_poller_skips_its_own_records_and_reads_late_ones(client):
    bid = await new_bucket(client)
    mine = ChangeWriter(client, bid, "", PLAIN, can_delete=True)
    other = ChangeWriter(client, bid, "", PLAIN, can_delete=True)
    got: list[Change] = []

    async def apply(changes: list[Change]) -> None:
        got.extend(changes)

    reader = Poller(client, bid, "", PLAIN, own=mine.writer_id, interval=1, apply=apply,
                    foreign=lambda changes: None, lost=trio.sleep)  # fmt: skip
    mine.note(Change("put", "mine", "1", 1))
    other.note(Change("put", "theirs", "2", 2))
    assert await mine.flush() and await other.flush()
    assert await reader.poll()
    assert [c.path for c in got] == ["theirs"]
    # A record named in the past (its upload took a while) but within the lookback: read.
    late = record_name("", reader.last_ok - LOOKBACK_MS // 2, other.writer_id, 99)
    info, body = encode([Change("gone", "late", None, 3)], PLAIN, late)
    await client.upload(bid, late, body, file_info=info)
    assert await reader.poll()
    assert [c.path for c in got] == ["theirs", "late"]
