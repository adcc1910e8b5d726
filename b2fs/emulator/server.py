"""Running the emulator: the master key, the listening socket and uvicorn.

``run(options)`` opens the store, makes sure the master key exists (generated once and
kept 0600 in ``DATA/master-key.json``, or given), binds the socket (port 0 picks a
free one), writes ``DATA/credentials`` (the key and realm as ``KEY=value`` lines), prints
the realm and a ready ``export`` line (or one JSON line with ``--json``) once listening,
and serves ``app.App`` until SIGTERM/SIGINT. Called by ``b2fs.cli.serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from b2fs.emulator.api import Settings
from b2fs.emulator.app import App, Config, DropFilter
from b2fs.emulator.auth import Auth
from b2fs.emulator.faults import Faults
from b2fs.emulator.store import CAPABILITIES, Store

MASTER_KEY_FILE = "master-key.json"
CREDENTIALS_FILE = "credentials"


@dataclass
class Options:
    data: Path
    host: str = "127.0.0.1"
    port: int = 0
    key_id: str | None = None
    key: str | None = None
    token_lifetime: float = 86_400.0
    min_part_size: int = 5_000_000
    recommended_part_size: int = 100_000_000
    faults: list[Any] = field(default_factory=list)
    seed: int = 0
    json: bool = False
    custom_upload_timestamps: bool = False
    replication_delay: float = 0.0
    keep_alive: float = 75.0  # seconds an idle connection stays open


def master_key(store: Store, key_id: str | None, key: str | None) -> tuple[str, str, bool]:
    """(key_id, key, created): the given key, else the stored one, else a new one."""
    path = store.root / MASTER_KEY_FILE
    created = False
    if key_id and key:
        pass
    elif path.exists():
        saved = json.loads(path.read_text())
        key_id, key = saved["key_id"], saved["key"]
    else:
        key_id, key, created = store.account_id, "K00" + secrets.token_hex(14), True
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"key_id": key_id, "key": key}, f)
    os.chmod(path, 0o600)
    store.put_key(key_id, key, "master", CAPABILITIES, None, None, None, master=True)  # type: ignore[arg-type]
    return key_id, key, created  # type: ignore[return-value]


def write_credentials(root: Path, key_id: str, key: str, realm: str) -> None:
    """``DATA/credentials`` (0600): the master key and this start's realm as ``KEY=value``
    lines, which ``b2fs mount --credentials``, systemd's ``EnvironmentFile=`` and
    ``export $(cat ...)`` read."""
    path = root / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            f"B2_APPLICATION_KEY_ID={key_id}\nB2_APPLICATION_KEY={key}\nB2_ENVIRONMENT={realm}\n"
        )
    os.chmod(path, 0o600)


def build(options: Options) -> tuple[App, Store, bool]:
    store = Store(options.data)
    key_id, key, created = master_key(store, options.key_id, options.key)
    settings = Settings(
        options.recommended_part_size, options.min_part_size, options.custom_upload_timestamps
    )
    config = Config(
        f"http://{options.host}:{options.port}", key_id, key, settings, options.replication_delay
    )
    app = App(
        store, Auth(store, options.token_lifetime), config, Faults(options.seed, options.faults)
    )
    return app, store, created


def run(options: Options) -> int:
    app, store, created = build(options)
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((options.host, options.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    host = f"[{options.host}]" if ":" in options.host else options.host
    realm = f"http://{host}:{port}"
    app.config.realm = realm
    logging.getLogger("uvicorn.error").addFilter(DropFilter())
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",  # starts and stops the notification and replication tasks
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=options.keep_alive,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)

    write_credentials(store.root, app.config.master_key_id, app.config.master_key, realm)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                return await task
            await asyncio.sleep(0.01)
        if options.json:
            print(
                json.dumps({"realm": realm, "key_id": app.config.master_key_id, "pid": os.getpid()})
            )
        else:
            print(f"b2fs serve: B2 realm {realm} (data in {store.root})")
            print(f"  key id: {app.config.master_key_id}")
            if created:
                print(
                    f"  master application key (shown once, kept in {store.root / MASTER_KEY_FILE}):"
                )
                print(f"  {app.config.master_key}")
            creds = shlex.quote(str(store.root / CREDENTIALS_FILE))
            print("  for b2fs and the b2 CLI in this shell (b2sdk: this realm URL):")
            if created:
                print(f"  export B2_APPLICATION_KEY_ID={app.config.master_key_id} "
                      f"B2_APPLICATION_KEY={app.config.master_key} B2_ENVIRONMENT={realm}")  # fmt: skip
            else:
                print(f"  export $(cat {creds})")
            print(f"  (or b2fs mount --credentials {creds} ...)")
        sys.stdout.flush()
        await task

    try:
        uvloop.run(main())
    finally:
        with contextlib.suppress(Exception):
            store.close()
    return 0
