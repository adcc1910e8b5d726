"""``b2fs.history`` without a mount: times, version names, which version shows when, what a
restore decides for one name, the view's inode numbers, and the control socket's requests."""

from __future__ import annotations

import json
import os
import socket

import pytest
import trio

from b2fs.b2.models import FileVersion
from b2fs.history.restore import COPY, NEWER, PENDING, UNCHANGED, UNHIDE, RestoreError, Restorer
from b2fs.history.times import TimeError, format_ms, parse_time, version_names
from b2fs.history.versions import Version, current, visible_at
from b2fs.history.view import VIRTUAL, ViewNodes
from b2fs.mount import control
from b2fs.mount.options import OptionError, parse_options
from b2fs.posix.entries import Kind
from b2fs.posix.errors import Stale
from b2fs.vfs.inodes import InodeTable


def test_times_users_give():
    assert parse_time("2026-11-23T10:10:05Z") == 1795428605000
    assert parse_time("2026-11-23T10:10:05.123Z") == 1795428605123
    assert parse_time("2026-11-23 12:10:05.123+02:00") == 1795428605123
    assert parse_time("1795428605") == 1795428605000
    assert parse_time(" 1795428605.5 ") == 1795428605500
    for bad in ("2026-11-23T10:10:05", "yesterday", "", "2026-13-01T00:00:00Z"):
        with pytest.raises(TimeError):
            parse_time(bad)


def test_version_names_sort_as_time_and_never_rename_older_ones():
    assert format_ms(1795428605123) == "2026-11-23T10:10:05.123Z"
    assert format_ms(5) == "1970-01-01T00:00:00.005Z"
    ms = 1795428605123
    # newest first, as B2 lists them: a deletion, two uploads in one millisecond, an older one
    names = version_names([(ms + 1, True), (ms, False), (ms, False), (ms - 1000, False)])
    assert names == ["2026-11-23T10:10:05.124Z.deleted", "2026-11-23T10:10:05.123Z-1",
                     "2026-11-23T10:10:05.123Z", "2026-11-23T10:10:04.123Z"]  # fmt: skip
    assert sorted(names) == names[::-1]
    # a newer version of the same millisecond leaves the older names as they were
    more = version_names([(ms, False), (ms, False), (ms, False), (ms - 1000, False)])
    assert more[1:] == names[1:]


def _f(ms: int, action: str = "upload", fid: str | None = None) -> FileVersion:
    return FileVersion(fid or f"id{ms}{action}", "f", 0 if action == "hide" else 3, "x" * 40,
                       "text/plain", {}, ms, action, "b")  # fmt: skip


def _v(ms: int, action: str = "upload", fid: str | None = None) -> Version:
    return Version.of(_f(ms, action, fid), 0 if action == "hide" else 3)


@pytest.mark.parametrize("make", [_f, _v])  # B2's records, and the slim ones
def test_which_version_a_name_shows_at_a_time(make):
    versions = [make(40, "hide"), make(30), make(20, "hide"), make(10)]  # newest first
    assert visible_at(versions, 5) is None  # not yet
    assert visible_at(versions, 10) is versions[3]  # uploaded at that very millisecond
    assert visible_at(versions, 19) is versions[3]
    assert visible_at(versions, 25) is None  # deleted then
    assert visible_at(versions, 35) is versions[1]
    assert visible_at(versions, 40) is None
    assert current(versions) is None and current(versions[1:]) is versions[1]


class _Names:
    encrypted = False


class _Listings:
    content = None


class _Ns:
    names = _Names()
    root_stored = ""
    listings = _Listings()


def _restorer(can_delete: bool = True, pending: bool = False) -> Restorer:
    return Restorer(None, "b", _Ns(), None, can_delete=can_delete, pending=lambda p: pending)


def test_what_a_restore_does_with_one_name():
    deleted = [_v(40, "hide"), _v(30, fid="v30"), _v(10, fid="v10")]
    r = _restorer()
    step = r._decide("f", "f", deleted, None, None)  # undelete: the newest upload comes back
    assert step.what == UNHIDE and step.version.file_id == "v30" and len(step.hides) == 1
    assert _restorer(can_delete=False)._decide("f", "f", deleted, None, None).what == COPY
    assert r._decide("f", "f", deleted, 20, None).what == COPY  # v10 is under v30: a copy
    assert r._decide("f", "f", deleted, 35, None).what == UNHIDE
    assert r._decide("f", "f", deleted, 5, None) is None  # absent then and now: nothing
    assert r._decide("f", "f", deleted[1:], 5, None).what == NEWER  # absent then, there now
    assert r._decide("f", "f", deleted[1:], 35, None).what == UNCHANGED
    assert r._decide("f", "f", deleted[1:], None, None) is None  # not deleted: nothing to do
    assert r._decide("f", "f", deleted, None, "v10").what == COPY
    with pytest.raises(RestoreError):
        r._decide("f", "f", deleted, None, "nope")
    assert _restorer(pending=True)._decide("f", "f", deleted, None, None).what == PENDING
    assert r._decide("", "f", deleted, None, None).what == "undecodable"
    assert r._decide("d/", "d/.bzEmpty", deleted[1:], 5, None) is None  # a marker made since


def test_view_inodes_are_apart_from_the_mount_s():
    nodes, table = ViewNodes(), InodeTable()
    a = nodes.node("d/f", Kind.DIR)
    assert a.ino & VIRTUAL and not table.node("d/f", Kind.DIR).ino & VIRTUAL
    assert nodes.node("d/f", Kind.DIR) is a
    assert ViewNodes().node("d/f", Kind.DIR).ino == a.ino  # stable: a hash of the path
    leaf = nodes.node("d/f/2026-11-23T10:10:05.123Z", Kind.FILE)
    leaf.lookups = 2
    nodes.forget(leaf.ino, 1)
    assert nodes.get(leaf.ino) is leaf
    nodes.forget(leaf.ino, 1)
    with pytest.raises(Stale):
        nodes.get(leaf.ino)


def test_history_options():
    opts = parse_options("version_at=2026-11-23T10:10:05Z")
    assert opts.read_only and opts.versions and not opts.show_versions
    assert parse_options("noversions").versions is False
    for bad in ("version_at=2026-11-23", "noversions,show_versions", "version_at=soon"):
        with pytest.raises(OptionError):
            parse_options(bad)


async def test_control_socket_requests(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "socket_path", lambda mountpoint: str(tmp_path / "c.sock"))
    monkeypatch.setattr(control, "REQUEST_WAIT", 0.3)

    async def echo(request, send):
        for i in range(request["n"]):
            await send({"i": i})
        if request.get("fail"):
            raise RestoreError("no such thing")

    def ask(request):
        return list(control.ask("m", request, timeout=5))

    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve_control, "m", lambda: {"up": 1}, {"echo": echo})
        assert await trio.to_thread.run_sync(control.read_status, "m") == {"up": 1}
        assert await trio.to_thread.run_sync(ask, {"op": "echo", "n": 3}) == [
            {"i": 0}, {"i": 1}, {"i": 2}]  # fmt: skip
        answer = await trio.to_thread.run_sync(ask, {"op": "echo", "n": 1, "fail": True})
        assert answer == [{"i": 0}, {"error": "no such thing"}]
        assert "does not know" in (await trio.to_thread.run_sync(ask, {"op": "x"}))[0]["error"]

        def silent() -> dict:  # an older client: connects and reads
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(tmp_path / "c.sock"))
                return json.loads(s.makefile().read())

        assert await trio.to_thread.run_sync(silent) == {"up": 1}
        nursery.cancel_scope.cancel()
    assert not os.path.exists(tmp_path / "c.sock")
