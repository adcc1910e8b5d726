"""Helpers shared by the client tests (quick retry policy, names, client factory)."""

from __future__ import annotations

import itertools
import os
from typing import Any

from b2fs.b2 import B2Client, RetryPolicy
from b2fs.emulator.process import LocalServer

# quick retries so fault tests take seconds, not minutes
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.1, max_attempts=8)
MIN_PART = 1000  # absoluteMinimumPartSize of the small-parts server

_names = itertools.count()


def unique_bucket_name(stem: str = "t") -> str:
    return f"{stem}-{os.getpid()}-{next(_names)}-bkt"


def make_client_for(srv: LocalServer, **kw: Any) -> B2Client:
    kw.setdefault("retry", FAST_RETRY)
    return B2Client(srv.key_id, srv.key, srv.realm, **kw)
