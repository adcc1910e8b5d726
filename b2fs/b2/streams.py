"""The byte streams of the client's own kept connections (uploads, downloads): opened with a
timeout, closed without raising."""

from __future__ import annotations

import ssl
from typing import Any

import anyio

CONNECT_ERRORS = (OSError, TimeoutError, ssl.SSLError, anyio.BrokenResourceError)


async def open_stream(host: str, port: int, ssl_context: ssl.SSLContext | None,
                      timeout: float | None) -> Any:  # fmt: skip
    """A TCP stream to ``host:port``, over TLS with ``ssl_context`` (None: plain); one of
    ``CONNECT_ERRORS`` when it cannot be opened within ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        return await anyio.connect_tcp(host, port, ssl_context=ssl_context,
                                       tls_standard_compatible=False)  # fmt: skip


async def close_quietly(stream: Any) -> None:
    """Close ``stream`` (shielded: a cancelled caller still lets it go); a broken one is fine."""
    if stream is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await stream.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
