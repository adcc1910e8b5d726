"""A bandwidth limit shared by all transfers in one direction (bytes per second).

A virtual-clock token bucket on anyio time: ``await take(n)`` returns once ``n``
more bytes fit under the rate, allowing a burst of ``burst`` seconds' worth.
Used by the upload and download paths of ``b2fs.b2``.
"""

from __future__ import annotations

import anyio


class Throttle:
    def __init__(self, bytes_per_second: float, burst: float = 0.25) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bandwidth limit must be positive")
        self.rate = float(bytes_per_second)
        self.burst = burst
        self._free_at: float | None = None  # when the bytes granted so far are "sent"

    async def take(self, n: int) -> None:
        now = anyio.current_time()
        start = now - self.burst if self._free_at is None else max(self._free_at, now - self.burst)
        self._free_at = start + n / self.rate
        wait = self._free_at - now
        if wait > 0:
            await anyio.sleep(wait)
