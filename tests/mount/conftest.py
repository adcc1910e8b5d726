"""Real FUSE mounts for tests: ``b2fs mount`` in a subprocess, on the session's local B2 server.

``mount_factory(**options)`` mounts a fresh bucket (or the given one) in a temp
dir and returns a ``MountProcess``; every mount is unmounted at teardown
(``fusermount3 -u``, then SIGTERM/SIGKILL of the process we started, then a
lazy unmount as the last resort), so a failing test never leaves a mount or
a process behind.  ``b2`` is an async B2 client on the same server, for
arranging buckets and checking what B2 holds.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from b2fs.b2 import B2Client
from b2fs.emulator.process import LocalServer

MOUNT_TIMEOUT = 20.0
T = TypeVar("T")

_serial = itertools.count()


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == target for line in f)


class MountProcess:
    """One ``b2fs mount -f`` process and its mountpoint."""

    def __init__(self, server: LocalServer, bucket: str, root: Path, options: dict[str, Any],
                 prefix: str = "", encrypt_passphrase: str | None = None) -> None:  # fmt: skip
        self.server = server
        self.bucket = bucket
        self.prefix = prefix
        self.root = root
        self.path = root / "mnt"
        self.cache_dir = root / "cache"
        self.log_path = root / "mount.log"
        self.options = dict(options)
        self.passphrase = encrypt_passphrase
        self.proc: subprocess.Popen[bytes] | None = None
        self.path.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            B2_APPLICATION_KEY_ID=self.server.key_id,
            B2_APPLICATION_KEY=self.server.key,
            B2_ENVIRONMENT=self.server.realm,
            HOME=str(self.root),
        )
        if self.passphrase is not None:
            env["B2FS_PASSPHRASE"] = self.passphrase
        return env

    def command(self) -> list[str]:
        opts = ",".join(
            k if v is True else f"{k}=0" if v is False else f"{k}={v}"
            for k, v in self.options.items()
        )

        cmd = [sys.executable, "-m", "b2fs", "-v", "mount", f"b2://{self.bucket}/{self.prefix}", str(self.path),
               "-f", "--cache-dir", str(self.cache_dir)]  # fmt: skip
        if opts:
            cmd += ["-o", opts]
        return cmd

    def start(self, expect_failure: bool = False) -> MountProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )

        deadline = time.monotonic() + MOUNT_TIMEOUT
        while time.monotonic() < deadline:
            if is_mounted(self.path):
                if expect_failure:
                    raise AssertionError("the mount came up though it should have failed")
                return self
            if self.proc.poll() is not None:
                if expect_failure:
                    return self
                raise AssertionError(
                    f"b2fs mount exited with {self.proc.returncode}:\n{self.log()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"the mount did not come up in {MOUNT_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def unmount(self, timeout: float = 60.0) -> int | None:
        """Unmount as a user would (fusermount3 -u) and wait for the process to end."""
        if self.proc is None:
            return None
        if is_mounted(self.path):
            for _ in range(50):
                r = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
                if r.returncode == 0 or not is_mounted(self.path):
                    break
                time.sleep(0.1)  # EBUSY: a file is still open for a moment
        proc = self.proc
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
        return proc.returncode

    def terminate(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, as systemd stops the mount; waits for it to end."""
        if self.proc is None:
            return None
        proc = self.proc
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the mount process (a crash) and clear the dead mount."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)

    def cleanup(self) -> None:
        try:
            self.unmount(timeout=30)
        finally:
            self.kill()

    def status(self) -> dict[str, Any]:
        import json

        return json.loads(os.getxattr(self.path, "user.b2fs.status"))


@pytest.fixture
def new_bucket_name() -> Callable[[], str]:
    return lambda: f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def b2(local_server: LocalServer) -> AsyncIterator[B2Client]:
    async with B2Client(local_server.key_id, local_server.key, realm=local_server.realm) as client:
        yield client


@pytest.fixture
def mount_factory(
    server: LocalServer, tmp_path: Path, new_bucket_name: Callable[[], str]
) -> Iterator[Callable[..., MountProcess]]:
    mounts: list[MountProcess] = []

    def make(bucket: str | None = None, *, prefix: str = "", start: bool = True, srv: LocalServer | None = None,
             passphrase: str | None = None, **options: Any) -> MountProcess:  # fmt: skip
        if bucket is None:
            bucket = new_bucket_name()
            _create_bucket(srv or server, bucket)
        options.setdefault("writeback_delay", 0.2)
        m = MountProcess(
            srv or server, bucket, tmp_path / f"m{next(_serial)}", options, prefix, passphrase
        )
        mounts.append(m)
        return m.start() if start else m

    yield make
    for m in mounts:
        m.cleanup()


class SyncB2:
    """Runs B2 client calls from synchronous test code (each in a thread with its own trio loop)."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server

    def run(self, fn: Callable[[B2Client], Awaitable[T]]) -> T:
        result: list[Any] = []

        def target() -> None:
            async def main() -> None:
                async with B2Client(
                    self.server.key_id, self.server.key, realm=self.server.realm
                ) as c:
                    result.append(await fn(c))

            try:
                trio.run(main)
            except BaseException as e:  # handed to the caller's thread
                result.append(e)

        t = threading.Thread(target=target)
        t.start()
        t.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    def bucket_id(self, name: str) -> str:
        return self.run(lambda c: c.get_bucket(name)).bucket_id

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        bid = self.bucket_id(bucket)

        async def names(c: B2Client) -> list[str]:
            return [f.file_name async for f in c.list_file_names(bid, prefix=prefix)]

        return self.run(names)

    def read(self, bucket: str, name: str) -> bytes:
        bid = self.bucket_id(bucket)

        async def read(c: B2Client) -> bytes:
            async for f in c.list_file_names(bid, prefix=name):
                if f.file_name == name:
                    return await c.download_bytes(file_id=f.file_id)
            raise FileNotFoundError(name)

        return self.run(read)

    def upload(self, bucket: str, name: str, data: bytes, **kw: Any) -> Any:
        bid = self.bucket_id(bucket)
        return self.run(lambda c: c.upload(bid, name, data, **kw))


@pytest.fixture
def b2sync(local_server: LocalServer) -> SyncB2:
    return SyncB2(local_server)


def _create_bucket(server: LocalServer, name: str) -> None:
    SyncB2(server).run(lambda c: c.create_bucket(name, "allPrivate"))
