"""systemd readiness notifications (sd_notify), spoken directly on ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for ``READY=1`` before it considers the
mount started; ``STATUS=`` lines show in ``systemctl status``; ``STOPPING=1``
announces a clean shutdown.  Without ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*fields: str) -> bool:
    """Send ``KEY=value`` fields; True when a notify socket took them."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall("\n".join(fields).encode())
        return True
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", address, e.strerror)
        return False


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []), f"MAINPID={os.getpid()}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def stopping() -> bool:
    return notify("STOPPING=1")
