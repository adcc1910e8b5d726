"""The control socket of a running mount: what ``b2fs status``, ``versions`` and ``restore`` ask.

A mount listens on a Unix socket whose path is derived from its mountpoint
(so a command finds the right process by path, with no pid file): under
``/run/b2fs`` for root, else ``$XDG_RUNTIME_DIR/b2fs`` or ``/tmp/b2fs-UID``,
in a 0700 directory, the socket 0600 (only the user who mounted may ask).
A client sends one request, a JSON object on one line (``{"op": "status"}``;
a client that sends nothing within 2 s gets the status too), and reads JSON
documents back, one per line, until the mount closes the connection: one
for the status, or what a handler sends (``b2fs.history.service``); a
failure is ``{"error": MESSAGE}``.  Connections are answered concurrently,
so a long restore does not hold up ``b2fs status``.  (Extended attributes
would be the obvious channel, but a file system that answers getxattr is
asked for ``security.capability`` on every write and for ACL names on every
``ls -l``; b2fs answers ENOSYS once and the kernel stops asking.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio

log = logging.getLogger("b2fs.mount")

REQUEST_WAIT = 2.0  # seconds a client has to send its request (else: the status)
REQUEST_MAX = 64 * 1024

Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[dict[str, Any], Send], Awaitable[None]]


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


async def serve_control(mountpoint: str, status: Callable[[], dict[str, Any]],
                        handlers: dict[str, Handler] | None = None,
                        task_status: Any = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Answer every connection (status, or a handler's documents), until cancelled; the
    socket goes at the end."""
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
        log.warning("no control socket (b2fs status, versions, restore will not answer): %s", e)
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
                  handlers: dict[str, Handler]) -> None:  # fmt: skip
    lock = trio.Lock()

    async def send(doc: dict[str, Any]) -> None:
        async with lock:
            await stream.send_all(json.dumps(doc).encode() + b"\n")

    try:
        request = await _request(stream)
        op = request.get("op", "status")
        if op == "status":
            await send(status())
        elif op in handlers:
            try:
                await handlers[op](request, send)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception as e:  # noqa: BLE001 - the client is told, the mount goes on
                if not _known(e):
                    log.error("control request %s: unexpected %s", op, type(e).__name__,
                              exc_info=True)  # fmt: skip
                await send({"error": str(e) or type(e).__name__})
        else:
            await send({"error": f"this mount does not know the request {op!r}"})
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away (Ctrl-C): what was done stays done
    except ValueError as e:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send({"error": f"bad request: {e}"})
    finally:
        await stream.aclose()


def _known(e: Exception) -> bool:
    """An error with a meaning the client is told (the rest are bugs: logged)."""
    from b2fs.codec.errors import CodecError
    from b2fs.posix.errors import FsError

    return isinstance(e, FsError | OSError | CodecError) or hasattr(e, "code")


async def _request(stream: Any) -> dict[str, Any]:
    """The client's request line; {} when it sends none in time (an older ``b2fs status``)."""
    data = b""
    with trio.move_on_after(REQUEST_WAIT):
        while b"\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
            if len(data) > REQUEST_MAX:
                raise ValueError("request too long")
    line = data.partition(b"\n")[0].strip()
    if not line:
        return {}
    request = json.loads(line)
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    return request


def ask(mountpoint: str, request: dict[str, Any], timeout: float | None = 10.0) -> Iterator[Any]:
    """Send ``request`` to the mount on ``mountpoint`` and yield the JSON documents it answers
    (``timeout``: seconds of silence allowed, None for none); OSError when no mount answers
    there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path(mountpoint))
        s.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        while chunk := s.recv(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
        if buffer.strip():
            yield json.loads(buffer)


def read_status(mountpoint: str, timeout: float = 10.0) -> dict[str, Any]:
    """The status of the mount on ``mountpoint``; OSError when none answers there."""
    for doc in ask(mountpoint, {"op": "status"}, timeout):
        return doc
    raise ConnectionError("the mount closed the connection without a status")
