"""Telling the kernel to forget names and inodes that changed elsewhere (FUSE notifications).

The kernel caches names (dentries, for ``entry_timeout``), attributes (for
``attr_timeout``) and pages of files.  When another mount changed something
(``b2fs.sync``), the vfs's notes go here: ``pyfuse3.invalidate_entry`` for a
name in its parent directory, ``pyfuse3.invalidate_inode`` for an inode's
attributes, and its pages unless only attributes changed.  Both calls block
until the kernel is done, and the kernel waits for requests on the same
directory or inode to be answered, by this very process: they run in a
worker thread, never in a request handler, while the trio loop goes on
answering.  The task runs in the FUSE loop's nursery, so it ends (its thread
done) before the FUSE session is closed.  A name or inode the kernel does not
hold (ENOENT) is nothing to forget.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pyfuse3
import trio

log = logging.getLogger(__name__)


class KernelCache:
    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[list[tuple[str, int, Any]]](math.inf)
        self.entries = 0
        self.inodes = 0

    def forget(self, notes: list[tuple[str, int, Any]]) -> None:
        """Queue notes (``("entry", parent inode, name)``, ``("inode", inode, attributes
        only)``) for the running task."""
        if notes:
            self._send.send_nowait(list(notes))

    async def run(self) -> None:
        """Send the queued notes to the kernel, a batch at a time, from a worker thread."""
        async for batch in self._recv:
            while True:  # whatever queued meanwhile goes in the same thread call
                try:
                    batch += self._recv.receive_nowait()
                except trio.WouldBlock:
                    break
            await trio.to_thread.run_sync(self._tell, list(dict.fromkeys(batch)))

    def _tell(self, notes: list[tuple[str, int, Any]]) -> None:
        # Inodes, then names; of an attribute-only note and a full one for an inode, the full one.
        full = {ino for kind, ino, attr_only in notes if kind == "inode" and not attr_only}
        for kind, ino, arg in sorted(notes, key=lambda n: n[0] != "inode"):
            try:
                if kind == "inode":
                    if arg and ino in full:
                        continue
                    pyfuse3.invalidate_inode(ino, attr_only=bool(arg))
                    self.inodes += 1
                else:
                    pyfuse3.invalidate_entry(ino, arg.encode("utf-8", "surrogateescape"))
                    self.entries += 1
            except OSError as e:  # ENOENT: the kernel does not hold it
                if e.errno not in (2, 20):
                    log.debug("kernel cache: %s %s: %s", kind, ino, e)
