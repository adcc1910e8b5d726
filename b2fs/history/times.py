"""Times of the history: what users type (RFC 3339 or epoch seconds) and how versions are named.

A version in the versions view is named by its upload time in UTC with
millisecond precision (``2026-11-23T10:10:05.123Z``), which sorts as text in
time order; versions of one name uploaded in the same millisecond get ``-1``,
``-2``... in upload order (the oldest has none), so adding a newer version
never renames an older one.  A hide marker (the name deleted then) ends in
``.deleted``.
"""

from __future__ import annotations

import datetime as dt
import re

UTC = dt.UTC


class TimeError(ValueError):
    """A time that is neither RFC 3339 (with a zone) nor epoch seconds."""


_EPOCH = re.compile(r"[+-]?\d+(\.\d+)?")


def parse_time(text: str) -> int:
    """Milliseconds since the epoch of ``text``: RFC 3339 with a zone (``2026-11-23T10:10:05Z``,
    ``...05.123+02:00``; a space may stand for ``T``) or epoch seconds (``1795774205``,
    fractions allowed)."""
    t = text.strip()
    if _EPOCH.fullmatch(t):
        return round(float(t) * 1000)
    try:
        when = dt.datetime.fromisoformat(t.replace("z", "Z"))
    except ValueError:
        raise TimeError(
            f"not a time: {text!r} (give RFC 3339, e.g. 2026-11-23T10:10:05Z, or epoch seconds)"
        ) from None
    if when.tzinfo is None:
        raise TimeError(
            f"{text!r} has no time zone: add Z for UTC (2026-11-23T10:10:05Z) or an offset (+02:00)"
        )
    return round(when.timestamp() * 1000)


def format_ms(ms: int) -> str:
    """``2026-11-23T10:10:05.123Z``: a time in UTC to the millisecond."""
    when = dt.datetime.fromtimestamp(ms // 1000, UTC) + dt.timedelta(milliseconds=ms % 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def version_names(times: list[tuple[int, bool]]) -> list[str]:
    """Names of a name's versions given (upload ms, is a hide marker), newest first as B2
    lists them: their times, ``-N`` on ties (the oldest of a millisecond has none), and
    ``.deleted`` for hide markers."""
    out = [""] * len(times)
    seen: dict[int, int] = {}
    for i in range(len(times) - 1, -1, -1):  # oldest first: ties numbered in upload order
        ms, hide = times[i]
        n = seen.get(ms, 0)
        seen[ms] = n + 1
        out[i] = format_ms(ms) + (f"-{n}" if n else "") + (".deleted" if hide else "")
    return out
