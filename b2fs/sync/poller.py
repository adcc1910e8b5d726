"""Reading the other mounts' change records: one listing call per poll, whatever the tree size.

Every ``poll_interval`` seconds the poller lists the change log from a little
before the last poll that succeeded (``LOOKBACK``: records are named by their
writer's estimate of B2's clock before they are uploaded, so one may land a
little after a later one; names already read are skipped).  When nothing
changed that is one ``b2_list_file_names`` (class C) returning nothing; a
busy log costs one call per 1,000 records.  A record carries its changes in
its file info, or, when large, in its body (one download, class B).  This
mount's own records are skipped; records it cannot read (another vault's,
damaged) are skipped with one log line.  The changes go to ``apply`` (the
vfs refresher and the kernel's caches) and to ``foreign`` (conflicts).

A mount that could not poll for longer than records are kept (a suspended
laptop, a network down for an hour) may have missed records: it drops every
cached listing instead (``lost``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from b2fs.sync.records import (
    Change,
    RecordError,
    decode,
    in_info,
    log_prefix,
    parse_name,
    start_name,
)
from b2fs.sync.writer import RETENTION

log = logging.getLogger("b2fs.sync")

LOOKBACK_MS = 60_000  # how far before the last good poll each poll lists again


class Poller:
    def __init__(self, client: Any, bucket_id: str, root: str, codec: Any, *, own: str | None,
                 interval: float, apply: Callable[[list[Change]], Awaitable[None]],
                 foreign: Callable[[list[Change]], None],
                 lost: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
        self.client = client
        self.bucket_id = bucket_id
        self.root = root
        self.codec = codec
        self.own = own  # this mount's writer id (its records are skipped)
        self.interval = interval
        self.apply = apply
        self.foreign = foreign
        self.lost = lost
        self.last_ok = client.server_time_millis()  # what happened before: listings are fresh
        self._seen: dict[str, int] = {}  # record names read (or skipped), with their time
        self._lock = trio.Lock()
        self._poke = trio.Event()
        self._failing = False
        self._warned: set[str] = set()
        self.polls = 0
        self.failures = 0
        self.records_read = 0
        self.changes_applied = 0
        self.downloads = 0
        self.last_poll_at: float | None = None  # trio time of the last good poll
        self.last_error: str | None = None

    async def run(self) -> None:
        """Poll every ``interval`` (a little jitter, so mounts started together spread)."""
        while True:
            with trio.move_on_after(self.interval * random.uniform(0.9, 1.1)):
                await self._poke.wait()
            self._poke = trio.Event()
            await self.poll()

    def poke(self) -> None:
        """Poll now (``b2fs refresh``)."""
        self._poke.set()

    async def poll(self) -> bool:
        """One poll; False when it failed (the next one covers what this one missed)."""
        async with self._lock:
            started = self.client.server_time_millis()
            try:
                if started - self.last_ok > RETENTION * 1000 - LOOKBACK_MS:
                    log.info("change log: not read for %.0f s (records may be gone): every "
                             "listing is read again", (started - self.last_ok) / 1000)  # fmt: skip
                    await self.lost()
                    self.last_ok = started
                changes = await self._read_new()
            except Exception as e:  # noqa: BLE001 - B2 unreachable & co: the next poll retries
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if not self._failing:
                    log.warning("change log: reading it failed (%s); changes made elsewhere show "
                                "late (retrying every %.0f s)", self.last_error, self.interval)  # fmt: skip
                self._failing = True
                return False
            self._failing = False
            self.last_error = None
            self.polls += 1
            self.last_poll_at = trio.current_time()
            if changes:
                self.changes_applied += len(changes)
                self.foreign(changes)
                await self.apply(changes)
            self.last_ok = started
            cutoff = started - 3 * LOOKBACK_MS
            for name in [n for n, ms in self._seen.items() if ms < cutoff]:
                del self._seen[name]
            return True

    async def _read_new(self) -> list[Change]:
        """The changes of the records not read yet, in the order of their names."""
        prefix = log_prefix(self.root)
        start: str | None = start_name(self.root, self.last_ok - LOOKBACK_MS)
        changes: list[Change] = []
        while start:
            files, start = await self.client.list_file_names_page(
                self.bucket_id, prefix=prefix, start_file_name=start, max_file_count=1000
            )
            for f in files:
                if f.file_name in self._seen:
                    continue
                parsed = parse_name(self.root, f.file_name)
                if parsed is None or parsed[1] == self.own:
                    self._seen[f.file_name] = parsed[0] if parsed else self.last_ok
                    continue
                body = None
                if not in_info(f.file_info or {}):
                    body = await self.client.download_bytes(file_id=f.file_id)
                    self.downloads += 1
                try:
                    changes.extend(decode(dict(f.file_info or {}), body, self.codec))
                except RecordError as e:
                    if parsed[1] not in self._warned:
                        self._warned.add(parsed[1])
                        log.warning("change log: skipping the records of writer %s: %s (another "
                                    "vault's, or not b2fs's)", parsed[1], e)  # fmt: skip
                self._seen[f.file_name] = parsed[0]
                self.records_read += 1
        return changes

    def status(self) -> dict[str, Any]:
        ago = None if self.last_poll_at is None else trio.current_time() - self.last_poll_at
        return {
            "poll_interval": self.interval,
            "polls": self.polls,
            "poll_failures": self.failures,
            "last_poll_ago": ago,
            "last_error": self.last_error,
            "records_read": self.records_read,
            "record_downloads": self.downloads,
            "changes_applied": self.changes_applied,
        }
