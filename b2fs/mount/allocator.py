"""The C allocator's settings for the mount process: keep freed megabytes for reuse.

The data path allocates and frees buffers of a few hundred KiB to several MiB all
the time (socket reads, blocks, staging chunks, upload parts). glibc hands every
allocation above its mmap threshold fresh pages from the kernel and gives them
back on free, so each new megabyte is paid again in page faults; on the 2-vCPU
development VM that cost more than AES-GCM over the same bytes. With the threshold
raised above the largest buffer the mount makes (``max_request``, upload parts are
streamed) and the heap trimmed only past a generous slack, freed buffers are reused.
Measured with ``bench/mount_crypto.py`` (256 MiB): +10-19 % on writes, uploads and
cold reads, plain and encrypted. Other C libraries: nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the most older glibc accepts on 64-bit
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False (and a debug line) elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("allocator: no mallopt (not glibc): left as it is")
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not ok:
        log.debug("allocator: mallopt refused the thresholds")
    return ok
