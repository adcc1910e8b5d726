"""What the B2 client reports about itself: events (for a daemon's log or a CLI)
and running counters (``client.stats``).

Events are delivered to the ``on_event`` callback given to ``B2Client``; they are
also logged on the ``b2fs.b2`` logger. Neither ever holds a token or key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["retry", "reauthorize", "recovered", "upload_url_discarded"]


@dataclass(frozen=True)
class ClientEvent:
    """``retry``: attempt ``attempt`` of ``call`` failed with ``error``, next try in
    ``delay`` s. ``reauthorize``: the account token was renewed. ``recovered``: a
    retried non-idempotent call had in fact succeeded, its result was found.
    ``upload_url_discarded``: an upload URL was dropped after a failure."""

    kind: EventKind
    call: str
    attempt: int = 0
    delay: float = 0.0
    error: str = ""


@dataclass
class ClientStats:
    """Counters since the client was made: API calls sent by name, their outcomes by
    (name, outcome) where the outcome is ``ok``, the B2 error code of the answer, or
    ``network`` (no answer), retries by name (from the ``retry`` events), and the rest."""

    calls: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: int = 0
    retries_by_call: Counter[str] = field(default_factory=Counter)
    reauthorizations: int = 0
    recoveries: int = 0
    upload_urls_fetched: int = 0
    upload_urls_discarded: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
