"""Writing this mount's change records, batched, and deleting them once they are old.

Changes are noted as they reach B2 (``note``) and written as one record at most
every ``batch`` seconds while they flow: the first change of a quiet spell
waits ``batch`` for company, so a burst of a thousand uploads makes a few
records, not a thousand.  A record is one ``b2_upload_file`` (class A: free
on B2).  A record that failed to go up is retried with backoff, its changes
kept and merged with the next ones; one whose upload took so long that
readers may have listed past its name is written again under a new one.

Records are deleted by their writer ``retention`` seconds after they were
written (``b2_delete_file_version``, class A), and at start every mount
deletes the records older than that which mounts that ended left behind; a
key without ``deleteFiles`` leaves them to a lifecycle rule (``b2fs bucket
change-log-rule``).
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections import deque
from typing import Any

import trio

from b2fs.sync.records import Change, encode, log_prefix, parse_name, record_name, start_name

log = logging.getLogger("b2fs.sync")

BATCH = 1.0  # seconds between two records while changes flow
RETENTION = 3600.0  # seconds a record is kept
LATE_MS = 20_000  # a record that landed this much after its name's time is written again
PRUNE_EVERY = 60.0
SWEEP_PAGES = 10  # listing pages of old records a start deletes at most


class ChangeWriter:
    def __init__(self, client: Any, bucket_id: str, root: str, codec: Any, *, can_delete: bool,
                 batch: float = BATCH, retention: float = RETENTION) -> None:  # fmt: skip
        self.client = client
        self.bucket_id = bucket_id
        self.root = root
        self.codec = codec
        self.can_delete = can_delete
        self.batch = batch
        self.retention = retention
        self.writer_id = secrets.token_hex(6)
        self._seq = itertools.count(1)
        self._pending: list[Change] = []
        self._wake = trio.Event()
        self._written: deque[tuple[str, str, int]] = deque()  # (name, fileId, ms), oldest first
        self._failing = False
        self.records_written = 0
        self.changes_written = 0
        self.failures = 0
        self.pruned = 0

    def note(self, change: Change) -> None:
        self._pending.append(change)
        self._wake.set()

    # -- the task ------------------------------------------------------------------------

    async def run(self) -> None:
        """Write records as changes come, prune old ones (in the mount's service nursery)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pruner)
            last = -math.inf
            backoff = 1.0
            while True:
                while not self._pending:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await trio.sleep_until(max(last, trio.current_time()) + self.batch)
                last = trio.current_time()
                if await self.flush():
                    backoff = 1.0
                else:
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)

    async def _pruner(self) -> None:
        if not self.can_delete:
            return
        await self._sweep()
        while True:
            await trio.sleep(PRUNE_EVERY)
            await self._prune()

    async def flush(self) -> bool:
        """Write what is noted as one record; False when it failed (kept for the next try)."""
        changes, self._pending = self._pending, []
        if not changes:
            return True
        try:
            await self._write(changes)
        except BaseException as e:  # the changes stay: the next record carries them
            self._pending[:0] = changes
            if not isinstance(e, Exception):
                raise  # cancelled (unmount): close() writes them
            self.failures += 1
            if not self._failing:
                log.warning("change log: writing a record failed (%s: %s); other mounts see "
                            "these changes late (retrying)", type(e).__name__, e)  # fmt: skip
            self._failing = True
            return False
        if self._failing:
            log.info("change log: records are written again")
        self._failing = False
        return True

    async def close(self, timeout: float = 10.0) -> None:
        """At unmount: write what is left (for up to ``timeout`` seconds)."""
        with trio.move_on_after(timeout):
            while self._pending and not await self.flush():
                await trio.sleep(1.0)
        if self._pending:
            log.warning("change log: %d change(s) not written at unmount; other mounts see them "
                        "after their dir_cache_time", len(self._pending))  # fmt: skip

    async def _write(self, changes: list[Change]) -> None:
        for _ in range(2):
            ms = self.client.server_time_millis()
            name = record_name(self.root, ms, self.writer_id, next(self._seq))
            info, body = encode(changes, self.codec, name)
            version = await self.client.upload(self.bucket_id, name, body, file_info=info)
            self._written.append((name, version.file_id, ms))
            self.records_written += 1
            if version.upload_timestamp - ms < LATE_MS:
                break
            log.info("change log: record %s landed %.0f s after its time; written again",
                     name, (version.upload_timestamp - ms) / 1000)  # fmt: skip
        self.changes_written += len(changes)

    # -- pruning -------------------------------------------------------------------------

    async def _prune(self) -> None:
        """Delete this mount's records older than the retention."""
        if not self.can_delete:
            return
        cutoff = self.client.server_time_millis() - int(self.retention * 1000)
        while self._written and self._written[0][2] < cutoff:
            name, file_id, _ = self._written[0]
            try:
                await self.client.delete_file_version(file_id, name)
            except Exception as e:  # noqa: BLE001 - gone already, or later: the start sweep
                log.debug("change log: deleting %s: %s", name, e)
            self._written.popleft()
            self.pruned += 1

    async def _sweep(self) -> None:
        """Delete records older than the retention (left by mounts that ended)."""
        prefix = log_prefix(self.root)
        cutoff = start_name(
            self.root, self.client.server_time_millis() - int(self.retention * 1000)
        )
        start: str | None = None
        try:
            for _ in range(SWEEP_PAGES):
                files, start = await self.client.list_file_names_page(
                    self.bucket_id, prefix=prefix, start_file_name=start, max_file_count=1000
                )
                old = [
                    f for f in files if f.file_name < cutoff and parse_name(self.root, f.file_name)
                ]
                for f in old:
                    try:
                        await self.client.delete_file_version(f.file_id, f.file_name)
                    except Exception as e:  # noqa: BLE001 - another mount swept it first
                        log.debug("change log: deleting %s: %s", f.file_name, e)
                    self.pruned += 1
                if not start or start >= cutoff or len(old) < len(files):
                    return
        except Exception as e:  # noqa: BLE001 - the next start tries again
            log.info("change log: deleting old records failed (%s); the next mount retries", e)

    def status(self) -> dict[str, Any]:
        return {
            "writer": self.writer_id,
            "records_written": self.records_written,
            "changes_written": self.changes_written,
            "pending_changes": len(self._pending),
            "write_failures": self.failures,
            "records_pruned": self.pruned,
        }
