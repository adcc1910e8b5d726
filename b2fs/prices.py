"""B2's prices, in one place: what ``b2fs status`` and the benchmarks turn calls into dollars with.

The defaults are Backblaze's published list prices for B2 (US dollars): class
A calls free; class B $0.004 per 10,000 and class C $0.004 per 1,000, each
beyond 2,500 free calls a day; storage $6 per TB per month; downloads
(egress) $0.01 per GB (B2 waives it up to three times the average data
stored in the month, which one mount cannot know).  GB and TB are decimal
(10^9, 10^12 bytes), as B2 bills them.

When the prices change, or your contract has others, put the ones that differ
in a TOML file, ``$B2FS_PRICES`` or ``~/.config/b2fs/prices.toml``
(``$XDG_CONFIG_HOME`` honoured), e.g.::

    storage_per_tb_month = 6.0
    class_c_per_1000 = 0.004
    free_calls_per_day = 2500
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass


class PricesError(ValueError):
    """The prices file cannot be read or holds an unknown key or a bad value."""


@dataclass(frozen=True)
class Prices:
    class_b_per_10000: float = 0.004
    class_c_per_1000: float = 0.004
    free_calls_per_day: int = 2500  # of class B, and again of class C
    storage_per_tb_month: float = 6.0
    egress_per_gb: float = 0.01

    def per_call(self, cls: str) -> float:
        """Dollars per call of billing class ``cls`` (A, B or C)."""
        return {"A": 0.0, "B": self.class_b_per_10000 / 10_000, "C": self.class_c_per_1000 / 1000}[
            cls
        ]

    def free_per_day(self, cls: str) -> int:
        return 0 if cls == "A" else self.free_calls_per_day


def prices_path() -> str:
    if os.environ.get("B2FS_PRICES"):
        return os.environ["B2FS_PRICES"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "b2fs", "prices.toml")


def load_prices(path: str | None = None) -> Prices:
    """The list prices, with what the prices file (if there is one) changes."""
    path = path or prices_path()
    try:
        with open(path, "rb") as f:
            given = tomllib.load(f)
    except FileNotFoundError:
        if path == os.environ.get("B2FS_PRICES"):
            raise PricesError(f"prices file {path} (B2FS_PRICES) does not exist") from None
        return Prices()
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PricesError(f"prices file {path}: {e}") from None
    known = {f.name: f.type for f in dataclasses.fields(Prices)}
    for key, value in given.items():
        if key not in known:
            raise PricesError(
                f"prices file {path}: unknown key {key!r} (known: {', '.join(known)})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PricesError(f"prices file {path}: {key} must be a number >= 0")
    return dataclasses.replace(Prices(), **given)
