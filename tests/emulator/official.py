"""Backblaze's own tools pointed at a local server, for the feature tests: the ``b2``
command line (a subprocess, keys in its environment only) and b2sdk's current interface.

``Cli(server, home)`` authorizes once; ``cli("ls", ...)`` returns stdout and asserts
success, ``cli.json(...)`` parses it, ``cli.fails(...)`` the output of a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from b2fs.emulator.process import LocalServer

B2 = str(Path(sys.executable).parent / "b2")


class Cli:
    def __init__(self, server: LocalServer, home: Path, key_id: str | None = None,
                 key: str | None = None, authorize: bool = True) -> None:  # fmt: skip
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(home),
            "B2_ENVIRONMENT": server.realm, "B2_ACCOUNT_INFO": str(home / "account"),
            "B2_APPLICATION_KEY_ID": key_id or server.key_id,
            "B2_APPLICATION_KEY": key or server.key, "B2_ESCAPE_CONTROL_CHARACTERS": "0",
        }  # fmt: skip
        if authorize:
            self("account", "authorize")

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([B2, *args], env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> str:
        r = self.run(*args, env=env)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return json.loads(self(*args, env=env))

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Its output (stdout and stderr: some commands report failures on stdout)."""
        r = self.run(*args, env=env)
        assert r.returncode != 0, (args, r.stdout)
        return r.stdout + r.stderr


def sdk(server: LocalServer, key_id: str | None = None, key: str | None = None) -> Any:
    """A b2sdk ``B2Api`` (its current interface, /b2api/v4) authorized on ``server``."""
    from b2sdk import v3

    api = v3.B2Api(v3.InMemoryAccountInfo())
    api.authorize_account(key_id or server.key_id, key or server.key, server.realm)
    return api
