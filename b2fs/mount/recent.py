"""The last warnings of a mount, kept in memory for ``b2fs status`` (a logging handler).

Attached to the ``b2fs`` logger for the life of a mount: every warning or
error line of the mount (they name the file, the B2 call and what the mount
does next) is also kept here, the newest ``keep``, and counted.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any


class RecentWarnings(logging.Handler):
    def __init__(self, keep: int = 10) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        self.lines.append({
            "time": record.created,
            "level": record.levelname.lower(),
            "message": " ".join(message.split()),
        })  # fmt: skip
        self.count += 1

    def recent(self) -> list[dict[str, Any]]:
        return list(self.lines)
