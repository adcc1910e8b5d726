"""``LocalServer``: run ``b2fs serve`` as a subprocess and talk to its admin endpoints.

Synchronous on purpose (used from pytest fixtures, benchmarks and the mount's
``--local`` mode, whatever their event loop). The server is ended by pid.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


class LocalServerError(RuntimeError):
    pass


class LocalServer:
    """A ``b2fs serve`` subprocess on 127.0.0.1.

    ``start()`` waits for its JSON line; then ``realm``, ``key_id``, ``key``, ``pid``
    are set. Usable as a context manager.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int = 0,
        token_lifetime: float | None = None,
        min_part_size: int | None = None,
        extra_args: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.token_lifetime = token_lifetime
        self.min_part_size = min_part_size
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.realm = ""
        self.key_id = ""
        self.key = ""
        self.pid = 0

    def __repr__(self) -> str:
        return f"LocalServer(realm={self.realm!r}, key_id={self.key_id!r}, pid={self.pid})"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "b2fs", "serve", "--data", str(self.data_dir),
               "--port", str(self.port), "--json"]  # fmt: skip
        if self.token_lifetime is not None:
            cmd += ["--token-lifetime", str(self.token_lifetime)]
        if self.min_part_size is not None:
            cmd += ["--min-part-size", str(self.min_part_size)]
            if "--recommended-part-size" not in self.extra_args:
                cmd += ["--recommended-part-size", str(max(self.min_part_size, 100_000_000))]
        return cmd + self.extra_args

    def start(self, timeout: float = 20) -> LocalServer:
        if self.proc is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise LocalServerError("b2fs serve did not start (see its stderr)")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if ready:
                byte = os.read(self.proc.stdout.fileno(), 1)
                if not byte:
                    continue
                line += byte
        info = json.loads(line)
        self.realm, self.key_id = info["realm"], info["key_id"]
        saved = json.loads((self.data_dir / "master-key.json").read_text())
        self.key = saved["key"]
        return self

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- admin endpoints -------------------------------------------------------------

    def admin(self, method: str, what: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.realm}/_admin/{what}", data=data, method=method)
        auth = base64.b64encode(f"{self.key_id}:{self.key}".encode()).decode()
        req.add_header("Authorization", f"Basic {auth}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def counters(self) -> dict[str, Any]:
        return self.admin("GET", "counters")

    def reset_counters(self) -> None:
        self.admin("POST", "counters/reset", {})

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.admin("POST", "faults", rules)

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def expire_tokens(self) -> None:
        self.admin("POST", "expire_tokens", {})
