"""``b2fs.mount.allocator``: after it, a buffer of a few MiB comes from the reusable
heap, not from fresh pages mapped for it alone (glibc's own accounting says which).

Each case runs in a fresh interpreter: glibc raises its mmap threshold by itself once a
large mapped block is freed, so in a process that has already done so (this test run)
an 8 MiB buffer comes from the heap with or without the call.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print(json.dumps(None)); sys.exit()
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    from b2fs.mount.allocator import keep_freed_memory
    assert keep_freed_memory()
before = libc.mallinfo2()
buf = bytearray(8 << 20)
during = libc.mallinfo2()
print(json.dumps({"mapped": during.hblkhd - before.hblkhd,
                  "heap": during.uordblks - before.uordblks}))
"""


def _probe(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    result = json.loads(out)
    if result is None:
        pytest.skip("not glibc >= 2.33 (no mallinfo2)")
    return result


def test_megabyte_buffers_come_from_the_heap() -> None:
    untouched = _probe("default")
    assert untouched["mapped"] >= 8 << 20  # glibc's default: mapped on its own
    tuned = _probe("tuned")
    assert tuned["mapped"] < 1 << 20  # not mmapped on its own...
    assert tuned["heap"] >= 8 << 20  # ...but in use from the heap
