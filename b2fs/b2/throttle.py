"""A bandwidth limit shared by all transfers in one direction (bytes per second).

A virtual-clock token bucket on anyio time: ``await take(n)`` returns once ``n``
more bytes fit under the rate, allowing a burst of ``burst`` seconds' worth.
``rate`` may change at any time (a mount's time table does); None is no limit.
Used by the upload and download paths of ``b2fs.b2``.
"""

from __future__ import annotations

import anyio


class Throttle:
    def __init__(self, bytes_per_second: float | None, burst: float = 0.25) -> None:
        self.burst = burst
        self._free_at: float | None = None  # when the bytes granted so far are "sent"
        self.rate = bytes_per_second

    @property
    def rate(self) -> float | None:
        return self._rate

    @rate.setter
    def rate(self, bytes_per_second: float | None) -> None:
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bandwidth limit must be positive")
        self._rate = None if bytes_per_second is None else float(bytes_per_second)
        self._free_at = None  # the new rate starts now, without the old one's debt

    async def take(self, n: int) -> None:
        if self._rate is None:
            return
        now = anyio.current_time()
        start = now - self.burst if self._free_at is None else max(self._free_at, now - self.burst)
        self._free_at = start + n / self._rate
        wait = self._free_at - now
        if wait > 0:
            await anyio.sleep(wait)
