"""What B2 bills for some activity: calls by class, bytes downloaded and bytes stored, in dollars.

Pure arithmetic on ``b2fs.prices.Prices``.  ``estimate(..., days=None)`` is the
list price of the calls (what they cost once the day's free calls are used up:
the figure the benchmarks give per workload); with ``days`` the free calls of
that many days are taken off first (``b2fs status``: per day at the current
rate).  Used by ``b2fs status`` and ``bench/measure.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from b2fs.b2.billing import CLASSES
from b2fs.prices import Prices

GB = 10**9
TB = 10**12


@dataclass(frozen=True)
class Cost:
    calls: dict[str, float]  # dollars by billing class
    egress: float  # dollars for the bytes downloaded
    storage_month: float  # dollars per month for the bytes stored

    @property
    def total(self) -> float:
        """Calls and egress (storage is per month, shown on its own)."""
        return sum(self.calls.values()) + self.egress


def estimate(classes: dict[str, int], egress_bytes: int = 0, stored_bytes: int = 0, *,
             prices: Prices, days: float | None = None) -> Cost:  # fmt: skip
    """Dollars for ``classes`` (calls by billing class), ``egress_bytes`` downloaded and
    ``stored_bytes`` kept for a month; ``days``: take that many days' free calls off."""
    calls = {}
    for cls in CLASSES:
        n = classes.get(cls, 0)
        if days is not None:
            n = max(0.0, n - prices.free_per_day(cls) * days)
        calls[cls] = n * prices.per_call(cls)
    return Cost(
        calls=calls,
        egress=egress_bytes / GB * prices.egress_per_gb,
        storage_month=stored_bytes / TB * prices.storage_per_tb_month,
    )


def dollars(x: float) -> str:
    """$1,234.56, $0.0123, $0.000052: three significant digits below a dollar."""
    if x <= 0:
        return "$0"
    if x >= 1:
        return f"${x:,.2f}"
    decimals = min(8, max(2, 2 - math.floor(math.log10(x))))
    return f"${x:.{decimals}f}"
