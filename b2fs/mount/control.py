"""The control socket of a running mount: what ``b2fs status`` and ``b2fs refresh`` ask.

A mount listens on a Unix socket whose path is derived from its mountpoint
(so the command finds the right process by path, with no pid file): under
``/run/b2fs`` for root, else ``$XDG_RUNTIME_DIR/b2fs`` or ``/tmp/b2fs-UID``,
in a 0700 directory.  A client connects, sends one JSON line (``{"op":
"status"}``, or ``{"op": "refresh", "path": "dir/sub"}``; nothing at all is
a status request, as older clients sent) and reads one JSON document back:
the mount's status, or the outcome of the request (``{"error": "..."}`` when
it failed).  (Extended attributes would be the obvious channel, but a
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
from collections.abc import Awaitable, Callable
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


REQUEST_WAIT = 2.0  # seconds a connection has to send its request (none: status)


async def serve_status(mountpoint: str, status: Callable[[], dict[str, Any]],
                       handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] | None = None,
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Answer every connection (the status, or a request of ``handlers``: op -> async
    function of the request's other fields), until cancelled; the socket goes at the end."""
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
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(_answer, stream, status, handlers or {})
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        await listener.aclose()


async def _answer(stream: Any, status: Callable[[], dict[str, Any]],
                  handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]]) -> None:  # fmt: skip
    try:
        request = await _request(stream)
        op = request.pop("op", "status")
        if op == "status":
            answer = status()
        elif op in handlers:
            try:
                answer = await handlers[op](**request)
            except TypeError as e:
                answer = {"error": f"bad request: {e}"}
            except Exception as e:  # noqa: BLE001 - said to the client, which exits 1
                answer = {"error": _why(e)}
        else:
            answer = {"error": f"unknown request {op!r}"}
        await stream.send_all(json.dumps(answer).encode())
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def _request(stream: Any) -> dict[str, Any]:
    data = b""
    with trio.move_on_after(REQUEST_WAIT):
        while b"\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    try:
        request = json.loads(data.split(b"\n", 1)[0] or b"{}")
    except ValueError:
        return {"op": "?"}
    return request if isinstance(request, dict) else {"op": "?"}


def _why(e: Exception) -> str:
    from b2fs.posix.errors import FsError

    if isinstance(e, FsError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def ask(mountpoint: str, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send ``request`` to the mount on ``mountpoint``; its answer. OSError when none answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path(mountpoint))
        s.sendall(json.dumps(request).encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def read_status(mountpoint: str, timeout: float = 10.0) -> dict[str, Any]:
    """The status of the mount on ``mountpoint``; OSError when none answers there."""
    return ask(mountpoint, {"op": "status"}, timeout)
