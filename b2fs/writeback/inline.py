"""Small pending files staged in memory, their bytes journaled in their row: no staging file.

Most files a program writes are small (a source tree averages a few KiB), and a
staging file costs each of them a create, writes, an fsync by the background
sync, an unlink and a close with dirty pages.  ``InlineStaging`` keeps the bytes
of a file up to ``INLINE_MAX`` in memory instead; the journal row carries them
(sealed with the row in an encrypted mount), so they survive what the row
survives.  A file that grows past ``INLINE_MAX``, or that would push the bytes
held inline by the whole mount past ``INLINE_BUDGET``, moves to a staging file
(``WriteBack._spill``) before the write that needs room; a file opened on an
existing version moves there at its first partial write (base blocks are a
``block_size`` each).  Same interface as ``b2fs.codec.staging.StagingFile``.
"""

from __future__ import annotations

INLINE_MAX = 64 << 10  # largest file staged in memory
INLINE_BUDGET = 32 << 20  # memory for all inline files of a mount together


class InlineBudget:
    """Bytes held by the mount's inline files."""

    def __init__(self, limit: int = INLINE_BUDGET) -> None:
        self.limit = limit
        self.used = 0


class InlineStaging:
    fd = -1

    def __init__(self, budget: InlineBudget, data: bytes = b"") -> None:
        self.budget = budget
        self.data = bytearray(data)
        budget.used += len(self.data)

    def fits(self, size: int) -> bool:
        """Can the file grow to ``size`` bytes and stay inline?"""
        grow = size - len(self.data)
        return size <= INLINE_MAX and (grow <= 0 or self.budget.used + grow <= self.budget.limit)

    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])

    def pwrite(self, offset: int, data: bytes) -> int:
        end = offset + len(data)
        if end > len(self.data):
            self._resize(end)
        self.data[offset:end] = data
        return len(data)

    def truncate(self, size: int) -> None:
        self._resize(size)

    def _resize(self, size: int) -> None:
        old = len(self.data)
        if size < old:
            del self.data[size:]
        else:
            self.data.extend(bytes(size - old))
        self.budget.used += size - old

    def content(self) -> bytes:
        return bytes(self.data)

    def release(self) -> None:
        """The file is gone (uploaded, unlinked, spilled): its memory goes back."""
        self.budget.used -= len(self.data)
        self.data = bytearray()
