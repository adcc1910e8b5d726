"""``b2fs.mount.allocator``: after it, a buffer of a few MiB comes from the reusable
heap, not from fresh pages mapped for it alone (glibc's own accounting says which)."""

from __future__ import annotations

import ctypes

import pytest

from b2fs.mount.allocator import keep_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


def _mallinfo() -> _MallInfo2:
    libc = ctypes.CDLL(None)
    try:
        fn = libc.mallinfo2
    except AttributeError:
        pytest.skip("not glibc >= 2.33")
    fn.restype = _MallInfo2
    return fn()


def test_megabyte_buffers_come_from_the_heap() -> None:
    assert keep_freed_memory()
    before = _mallinfo()
    buf = bytearray(8 << 20)
    during = _mallinfo()
    assert during.hblkhd - before.hblkhd < 1 << 20  # not mmapped on its own...
    assert during.uordblks - before.uordblks >= 8 << 20  # ...but in use from the heap
    del buf
