"""The embedded local B2 server of ``--local DATA_DIR``: started for a mount, stopped with it.

The server (``b2fs serve``) runs as a child process with its own asyncio
loop; the mount talks to it over HTTP on 127.0.0.1 like it would to B2.  The
bucket to mount is created on first use.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from b2fs.mount.run import Credentials, StartupError

log = logging.getLogger("b2fs.mount")


def start_local(data_dir: str, bucket: str) -> tuple[Any, Credentials]:
    from b2fs.emulator.process import LocalServer, LocalServerError

    try:
        server = LocalServer(data_dir).start()
    except (LocalServerError, OSError) as e:
        raise StartupError(f"the local B2 server on {data_dir} did not start: {e}") from None
    try:
        creds = Credentials(server.key_id, server.key, server.realm)
        trio.run(ensure_bucket, creds, bucket)
    except BaseException:
        server.stop()
        raise
    log.info("local B2 server on %s at %s", data_dir, server.realm)
    return server, creds


async def ensure_bucket(creds: Credentials, name: str) -> None:
    from b2fs.b2 import B2Client, BucketNotFound

    async with B2Client(creds.key_id, creds.key, realm=creds.realm) as client:
        try:
            await client.get_bucket(name)
        except BucketNotFound:
            await client.create_bucket(name, "allPrivate")
            log.info("created bucket %s on the local server", name)
