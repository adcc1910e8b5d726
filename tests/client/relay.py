"""A TCP relay in front of the local B2 server that can lose responses.

The emulator's faults all strike before a call takes effect; to test what the
client does when a call *did* take effect but its answer never arrived, this
relay forwards a request whose bytes contain a chosen call name, waits for the
server's answer, then closes the client's connection instead of relaying it.
The server names its URLs after the Host header, so after authorizing through
the relay every call goes through it. Used with anyio in the test's event loop.
Also usable as a plain HTTP forward proxy for http:// targets (it relays bytes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc


class LossyRelay:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lose: Counter[str] = Counter()  # call name -> responses still to lose
        self.lost: Counter[str] = Counter()
        self.connections = 0
        self.heads: list[bytes] = []  # the start of each request seen
        self.strip_range = False  # play a proxy that drops Range headers
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        try:
            async with client, await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
                await self._pump(client, upstream)
        except Exception:  # a peer went away: nothing to relay any more
            pass

    async def _pump(self, client: anyio.abc.SocketStream, upstream: anyio.abc.SocketStream) -> None:
        losing: list[str] = []

        async def up() -> None:
            async for data in client:
                if data[:5] in (b"GET /", b"POST ", b"HEAD ", b"GET h"):
                    self.heads.append(bytes(data[:2048]))
                for name, left in self.lose.items():
                    if left > 0 and name.encode() in data:
                        self.lose[name] -= 1
                        losing.append(name)
                        break
                if self.strip_range:
                    data = data.replace(b"\r\nrange:", b"\r\nx-no-range:")
                    data = data.replace(b"\r\nRange:", b"\r\nX-No-Range:")
                await upstream.send(data)
            await upstream.send_eof()

        async def down() -> None:
            async for data in upstream:
                if losing:  # the request took effect; its answer is lost
                    self.lost[losing[0]] += 1
                    await anyio.sleep(0.05)  # let the server finish its work
                    break
                await client.send(data)
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(up)
            tg.start_soon(down)


@asynccontextmanager
async def lossy_relay(upstream_realm: str) -> AsyncIterator[LossyRelay]:
    relay = LossyRelay(int(upstream_realm.rsplit(":", 1)[1]))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    relay.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, relay._handle)
        try:
            yield relay
        finally:
            tg.cancel_scope.cancel()
