"""Conflicts: an upload that replaced a version this mount never saw.

B2 orders the versions of a name by upload time, and the last upload is the
file; b2fs keeps that (last writer wins) and reports when it happened
blindly: this mount uploads a version made from version X while the newest
version in B2 was already Y, written elsewhere.  The upload still goes in, Y
stays in B2's history as an older version, and the conflict is logged
(naming both versions) and counted (``b2fs status``, ``b2fs_conflicts_total``);
with ``hard_delete``, Y is never deleted by this mount (``RemoteNames.keep``).

What the check costs is nothing: it compares what this mount knows anyway.
Its facts are the versions of each name in the last ``WINDOW`` seconds: its
own uploads (B2's upload time, and the version each was made from) and the
other mounts' ``put``/``gone`` changes from their change records.  An upload
conflicts when the latest of those facts before it, by B2's clock, is
another mount's and is not the version it was made from; records arrive
after a poll, so an upload checked clean is checked again when a record of
an earlier change comes in.  The mount's own listing is the other witness:
if the listing, at upload time, shows a version it was not made from, that
one was written elsewhere (by any tool, once the listing is re-read).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from b2fs.sync.records import Change

log = logging.getLogger("b2fs.sync")

WINDOW = 600.0  # seconds of history kept per name


@dataclass(slots=True)
class Fact:
    ts: int  # B2's clock, ms
    file_id: str | None  # None: the name was removed
    mine: bool
    seen: str | None = None  # mine: the version it was made from
    reported: bool = False


class Conflicts:
    def __init__(self, shown: Callable[[str], str], keep: set[str]) -> None:
        self.shown = shown  # how a log line names a path (its B2 name in an encrypted mount)
        self.keep = keep  # versions superseded here: hard_delete leaves them (RemoteNames.keep)
        self.history: dict[str, list[Fact]] = {}
        self.count = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)

    # -- facts ---------------------------------------------------------------------------

    def mine(self, path: str, file_id: str | None, ts: int, seen: str | None = None,
             listed: str | None = None, check: bool = True) -> None:  # fmt: skip
        """This mount's change of ``path``; with ``check``, an upload made from ``seen``
        (``listed``: what the listing showed just before it, if cached)."""
        fact = Fact(ts, file_id, True, seen, reported=not check)
        self._add(path, fact)
        if not check:
            return
        if listed is not None and listed not in (seen, file_id) and not self._ours(path, listed):
            self._report(path, fact, listed, None)
            return
        self._check(path, fact)

    def _ours(self, path: str, file_id: str) -> bool:
        """Whether this mount uploaded ``file_id`` of ``path`` (within the window): a listing
        that shows it was written here, whatever the pending version was made from."""
        return any(f.mine and f.file_id == file_id for f in self.history.get(path, ()))

    def foreign(self, changes: list[Change]) -> None:
        """Other mounts' changes (from their records), checked against this mount's uploads."""
        for c in changes:
            if c.op not in ("put", "gone"):
                continue
            self._add(c.path, Fact(c.ts, c.file_id if c.op == "put" else None, False))
            for fact in self.history.get(c.path, ()):
                if fact.mine and not fact.reported and fact.ts > c.ts:
                    self._check(c.path, fact)

    def _add(self, path: str, fact: Fact) -> None:
        facts = self.history.pop(path, None) or []  # re-inserted: the dict runs oldest first
        self.history[path] = facts
        facts.append(fact)
        cutoff = fact.ts - WINDOW * 1000
        if facts[0].ts < cutoff:
            facts[:] = [f for f in facts if f.ts >= cutoff]
        if len(self.history) > 4096:
            self._prune()

    def _prune(self) -> None:
        """Forget the names least recently changed while their last fact is out of the window
        (from the front of the dict: amortized O(1) per fact, however many names are recent)."""
        cutoff = (time.time() - WINDOW) * 1000
        while len(self.history) > 1:  # the name just changed stays
            path, facts = next(iter(self.history.items()))
            if facts[-1].ts >= cutoff:
                return
            del self.history[path]

    # -- the check -----------------------------------------------------------------------

    def _check(self, path: str, fact: Fact) -> None:
        before = [f for f in self.history.get(path, ()) if f.ts < fact.ts and f is not fact]
        if not before:
            return  # nothing known before it: what it replaced is older than the window
        latest = max(before, key=lambda f: f.ts)
        if latest.mine or latest.file_id == fact.seen:
            return
        if latest.file_id is None and fact.seen is None:
            return  # removed elsewhere, made anew here: nothing was replaced
        self._report(path, fact, latest.file_id, latest.ts)

    def _report(self, path: str, fact: Fact, other: str | None, other_ts: int | None) -> None:
        fact.reported = True
        self.count += 1
        when = (
            time.strftime(" at %H:%M:%S", time.localtime(other_ts / 1000))
            if other_ts is not None
            else ""
        )
        if other is None:
            what = f"it was removed elsewhere{when}"
        else:
            self.keep.add(other)
            what = f"version {other} was written elsewhere{when}"
        log.warning(
            "conflict: %s: %s, after version %s that this mount's change was made from; "
            "this mount's version %s is the newest now (last writer wins), the other stays in "
            "B2's versions",
            self.shown(path), what, fact.seen or "(none: a new file)", fact.file_id,
        )  # fmt: skip
        self.recent.append({"path": self.shown(path), "ours": fact.file_id, "other": other,
                            "base": fact.seen, "at": time.time()})  # fmt: skip
