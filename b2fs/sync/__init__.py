"""Many mounts of one bucket: a change log in the bucket, so each sees the others' changes.

B2 has no change feed a client can subscribe to, and polling listings costs a
class C call per directory per interval.  Every b2fs mount of a prefix writes
what it changes in B2 as small records under ``PREFIX.b2fs/changes/``
(``writer``: batched, class A, deleted after an hour) and reads the other
mounts' records every ``poll_interval`` (``poller``: one class C call when
nothing changed, whatever the tree size), then forgets exactly what changed
(``b2fs.vfs.refresh``, and the kernel's caches through
``b2fs.fs.kernel_cache``).  ``feed`` turns the vfs's hooks into records and
``conflicts`` reports uploads that replaced a version this mount never saw.
The log belongs to the mounted prefix: mounts of other prefixes (plain or
encrypted) never read it, and an encrypted mount's records are sealed with
its vault's key.  ``Sync`` puts the parts together for one mount.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

from b2fs.sync.conflicts import Conflicts
from b2fs.sync.feed import MountFeed
from b2fs.sync.poller import Poller
from b2fs.sync.records import Change
from b2fs.sync.writer import ChangeWriter
from b2fs.vfs.refresh import Refresher

log = logging.getLogger("b2fs.sync")


class Sync:
    def __init__(self, client: Any, bucket_id: str, root: str, codec: Any, fs: Any, *,
                 remote: Any, poll_interval: float, change_log: bool,
                 forget: Callable[[list[Any]], None], mirrors: Sequence[Any] = ()) -> None:  # fmt: skip
        self.fs = fs
        self.forget = forget  # the kernel's caches (b2fs.fs.kernel_cache.KernelCache.forget)
        self.conflicts = Conflicts(fs.shown, remote.keep if remote is not None else set())
        self.writer = None
        if change_log and remote is not None:
            self.writer = ChangeWriter(client, bucket_id, root, codec, can_delete=remote.can_delete)
            remote.on_kept = self._kept
        self.feed = MountFeed(self.writer, self.conflicts, fs.ns, client.server_time_millis)
        self.refresher = Refresher(fs, mirrors)  # mirrors: the versions view's listings
        self.poller = None
        if poll_interval > 0:
            self.poller = Poller(client, bucket_id, root, codec,
                                 own=self.writer.writer_id if self.writer else None,
                                 interval=poll_interval, apply=self._apply,
                                 foreign=self.conflicts.foreign, lost=self._lost)  # fmt: skip
        self._writing = trio.CancelScope()
        self._written = trio.Event()  # the writer's task has ended

    # -- life ----------------------------------------------------------------------------

    def start(self, services: trio.Nursery) -> None:
        """The writer runs in the service nursery: uploads at unmount make records too."""
        if self.writer is not None:
            services.start_soon(self._write)
        else:
            self._written.set()

    async def _write(self) -> None:
        assert self.writer is not None
        try:
            with self._writing:
                await self.writer.run()
        finally:
            self._written.set()

    def start_polling(self, nursery: trio.Nursery) -> None:
        """The poller runs while the kernel mount does (its notes go to the kernel)."""
        if self.poller is not None:
            nursery.start_soon(self.poller.run)

    async def stop(self) -> None:
        """After the write-back drained: the last records."""
        self._writing.cancel()
        await self._written.wait()  # a record it was writing is back among the pending changes
        if self.writer is not None:
            await self.writer.close()

    # -- what others changed -------------------------------------------------------------

    async def _apply(self, changes: list[Change]) -> None:
        self.forget(await self.refresher.apply(changes))

    async def _lost(self) -> None:
        self.forget(self.refresher.drop_all())

    async def refresh(self, path: str) -> dict[str, Any]:
        """``b2fs refresh``: read the change log now, then forget ``path`` and below and read
        its listings again.  NotFound when nothing is there."""
        fetches = self.fs.ns.listings.fetches
        if self.poller is not None:
            await self.poller.poll()
        self.forget(self.refresher.forget(path))
        await self.refresher.reread(path)
        return {"listings_read": self.fs.ns.listings.fetches - fetches}

    def _kept(self, stored: str, newer: list[Any]) -> None:
        """A hard delete kept versions written elsewhere after the one this mount showed."""
        self.conflicts.count += 1
        ids = ", ".join(v.file_id for v in newer)
        log.warning("conflict: %s was removed here, but version(s) %s written elsewhere after the "
                    "one this mount showed are kept (the name is hidden)", stored, ids)  # fmt: skip
        self.conflicts.recent.append({"path": stored, "kept": [v.file_id for v in newer]})

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conflicts": self.conflicts.count,
                               "recent_conflicts": list(self.conflicts.recent),
                               "names_refreshed": self.refresher.names_refreshed,
                               "listings_dropped": self.refresher.listings_dropped}  # fmt: skip
        out["poll"] = self.poller.status() if self.poller is not None else None
        out["log"] = self.writer.status() if self.writer is not None else None
        return out
