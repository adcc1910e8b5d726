"""Files of secrets (a passphrase, an SSE-C key): read only when no one but their owner can.

A file that group or others may read is refused with the ``chmod`` that fixes it; every
failure is the caller's error type with a message naming the file (never its content).
"""

from __future__ import annotations

import os
import stat


def read_private(path: str, what: str, error: type[Exception], limit: int = -1) -> bytes:
    """The bytes (at most ``limit``) of the file ``what`` at ``path`` (``~`` expanded), or
    ``error`` saying why not: missing, unreadable, or open to group or others."""
    path = os.path.expanduser(path)
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise error(
                f"{what} {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run chmod 600 {path}"
            )
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as e:
        raise error(f"{what} {path}: {e.strerror}") from None
