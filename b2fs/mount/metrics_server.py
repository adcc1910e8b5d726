"""The HTTP endpoint of ``-o metrics=``: ``GET /metrics`` answered on the mount's trio loop.

A deliberately small HTTP/1.1 responder (one request per connection, then
close): Prometheus asks for one path every few seconds, so no web framework
is needed, and answering on the loop means the metrics read the mount's state
where it lives, without threads or locks.  The text itself is made by the
Prometheus client library (``mount/metrics.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger("b2fs.mount")

MAX_REQUEST = 16 * 1024
READ_TIMEOUT = 10.0


async def listen(host: str, port: int) -> list[trio.SocketListener]:
    """Bind (an OSError says why not: in use, no such address)."""
    return await trio.open_tcp_listeners(port, host=host)


def bound_port(listeners: list[trio.SocketListener]) -> int:
    return listeners[0].socket.getsockname()[1]


async def serve(listeners: list[trio.SocketListener], render: Callable[[], bytes],
                content_type: str) -> None:  # fmt: skip
    async def answer(stream: trio.SocketStream) -> None:
        try:
            request = b""
            with trio.move_on_after(READ_TIMEOUT):
                while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
            line = request.split(b"\r\n", 1)[0].split()
            if len(line) < 2 or line[0] not in (b"GET", b"HEAD"):
                await _reply(stream, 405, b"only GET /metrics\n", "text/plain")
            elif line[1].split(b"?")[0] in (b"/metrics", b"/"):
                body = render()
                await _reply(stream, 200, body if line[0] == b"GET" else b"", content_type,
                             len(body))  # fmt: skip
            else:
                await _reply(stream, 404, b"b2fs serves /metrics\n", "text/plain")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("metrics: answering a request failed")
        finally:
            await stream.aclose()

    await trio.serve_listeners(answer, listeners)


async def _reply(stream: trio.SocketStream, code: int, body: bytes, content_type: str,
                 length: int | None = None) -> None:  # fmt: skip
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[code]
    head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    await stream.send_all(head.encode() + body)
