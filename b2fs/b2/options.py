"""Tunables of the B2 client: timeouts, retry policy and transfer defaults.

Plain frozen dataclasses passed to ``B2Client(...)``; ``b2fs.b2.core`` reads them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``connect``/``read``/``write``/``pool`` bound each network wait;
    ``call`` bounds one attempt of a JSON API call, start to end (transfers are
    bounded by ``read``/``write`` stalls instead, so big bodies are not cut)."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 60.0
    call: float | None = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter on 408, 429, 5xx and network errors.

    The n-th retry waits a random time in [d/2, d] with d = min(max_delay,
    initial_delay * multiplier**(n-1)); a ``Retry-After`` header wins when it is
    longer. A call gives up after ``max_attempts`` attempts or when the next wait
    would end past ``max_total`` seconds from its start; transfers (uploads and
    downloads) get ``max_transfer_attempts``, counted anew whenever a resumed
    download makes progress.
    """

    max_attempts: int = 8
    max_transfer_attempts: int = 20
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    max_total: float = 600.0
    max_reauthorizations: int = 3  # per call: re-authorize after expired/bad token
    # a dropped connection or a 500 is retried at once (on a fresh connection), then the
    # schedule above; a 503, 429 or 408 backs off from its first failure
    first_retry_at_once: bool = True

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        d = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, retry_number - 1))
        d = rng.uniform(d / 2, d)
        if retry_after is not None:
            d = max(d, retry_after)
        return d


@dataclass(frozen=True)
class TransferOptions:
    """Defaults for uploads (each call may override them).

    ``large_file_threshold``: sizes at or above it go up as large files (None: the
    account's recommended part size). ``part_size``: None means the account's
    recommended size. ``concurrency``: parts in flight at once per upload.
    ``chunk_size``: bytes read/sent per step (also the hashing and throttling unit).
    ``hash_large_files``: read a local file once before uploading it as a large file,
    to store its SHA-1 as ``large_file_sha1`` (B2 keeps none for large files), so that
    whole-file downloads can be verified. Bytes are always hashed; ``UploadSource``
    objects and streams are not (pass ``large_file_sha1=`` when it is known).
    """

    large_file_threshold: int | None = None
    part_size: int | None = None
    concurrency: int = 4
    chunk_size: int = 1 << 20
    hash_large_files: bool = True
