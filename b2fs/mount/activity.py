"""What a mount did lately: B2 calls by billing class and bytes moved in the last minute.

The client's counters (``client.stats``) only grow; ``Activity`` samples them
every few seconds and keeps a minute of samples, so ``b2fs status`` can say
what the mount does now (calls per minute, transfer rates) and not only what
it did since it started.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from b2fs.b2.billing import by_class


class Activity:
    def __init__(self, client: Any, window: float = 60.0, every: float = 2.0) -> None:
        self.client = client
        self.window = window
        self.every = every
        self._samples: deque[tuple[float, dict[str, int], int, int]] = deque()

    def _sample(self) -> tuple[float, dict[str, int], int, int]:
        s = self.client.stats
        return trio.current_time(), by_class(s.calls), s.bytes_uploaded, s.bytes_downloaded

    async def run(self) -> None:
        while True:
            now = self._sample()
            self._samples.append(now)
            while len(self._samples) > 1 and self._samples[1][0] <= now[0] - self.window:
                self._samples.popleft()
            await trio.sleep(self.every)

    def last_minute(self) -> dict[str, Any]:
        """Calls by class and bytes up/down over the last ``window`` seconds (less just after
        the start: ``seconds`` says how long the figures cover)."""
        t, classes, up, down = self._sample()
        t0, classes0, up0, down0 = self._samples[0] if self._samples else (t, classes, up, down)
        return {
            "seconds": round(t - t0, 3),
            "classes": {c: n - classes0.get(c, 0) for c, n in classes.items()},
            "bytes_uploaded": up - up0,
            "bytes_downloaded": down - down0,
        }
