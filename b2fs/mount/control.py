"""The control socket of a running mount: what ``b2fs status MOUNTPOINT`` asks.

A mount listens on a Unix socket whose path is derived from its mountpoint
(so the command finds the right process by path, with no pid file): under
``/run/b2fs`` for root, else ``$XDG_RUNTIME_DIR/b2fs`` or ``/tmp/b2fs-UID``,
in a 0700 directory.  A client connects and reads one JSON document: the
mount's status.  (Extended attributes would be the obvious channel, but a
file system that answers getxattr is asked for ``security.capability`` on
every write and for ACL names on every ``ls -l``; b2fs answers ENOSYS once
and the kernel stops asking.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import trio

log = logging.getLogger("b2fs.mount")


def socket_path(mountpoint: str) -> str:
    mountpoint = os.path.realpath(mountpoint)
    if os.geteuid() == 0:
        base = "/run/b2fs"
    elif os.environ.get("XDG_RUNTIME_DIR"):
        base = os.path.join(os.environ["XDG_RUNTIME_DIR"], "b2fs")
    else:
        base = f"/tmp/b2fs-{os.geteuid()}"
    tag = hashlib.sha256(mountpoint.encode()).hexdigest()[:20]
    return os.path.join(base, f"{tag}.sock")


async def serve_status(mountpoint: str, status: Callable[[], dict[str, Any]],
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Answer every connection with the status JSON, until cancelled; the socket goes at the end."""
    path = socket_path(mountpoint)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a mount that died
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as e:
        log.warning("no status socket (b2fs status will not answer): %s", e)
        task_status.started()
        return
    task_status.started()
    listener = trio.SocketListener(sock)
    try:
        while True:
            stream = await listener.accept()
            try:
                await stream.send_all(json.dumps(status()).encode())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await stream.aclose()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        await listener.aclose()


def read_status(mountpoint: str, timeout: float = 10.0) -> dict[str, Any]:
    """The status of the mount on ``mountpoint``; OSError when none answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path(mountpoint))
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))
