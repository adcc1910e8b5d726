"""The embedded local B2 server of ``--local DATA_DIR``: started for a mount, stopped with it.

The server (``b2fs serve``) runs as a child process with its own asyncio
loop; the mount talks to it over HTTP on 127.0.0.1 like it would to B2.  The
bucket to mount is created on first use.  The server starts with SIGINT and
SIGHUP blocked: a Ctrl-C at the terminal signals the whole process group, and
the server must outlive the mount's unmount drain (the mount stops it with
SIGTERM once its uploads are done).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import trio

from b2fs.mount.run import Credentials, StartupError

log = logging.getLogger("b2fs.mount")


def start_local(data_dir: str, bucket: str) -> tuple[Any, Credentials]:
    from b2fs.emulator.process import LocalServer, LocalServerError

    try:
        server = start_shielded(LocalServer(data_dir))
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


def start_shielded(server: Any) -> Any:
    """Start a ``LocalServer`` that terminal signals (SIGINT, SIGHUP) do not reach: a blocked
    signal stays blocked across fork and exec, and nothing in the server unblocks it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGHUP})
    try:
        return server.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


async def ensure_bucket(creds: Credentials, name: str) -> None:
    from b2fs.b2 import B2Client, BucketNotFound

    async with B2Client(creds.key_id, creds.key, realm=creds.realm) as client:
        try:
            await client.get_bucket(name)
        except BucketNotFound:
            await client.create_bucket(name, "allPrivate")
            log.info("created bucket %s on the local server", name)
