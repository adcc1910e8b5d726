"""Real FUSE mounts for tests: ``b2fs mount`` in a subprocess, on the session's local B2 server.

``mount_factory(**options)`` mounts a fresh bucket (or the given one) in a temp
dir and returns a ``MountProcess`` (with a short ``writeback_delay``, and without
the change log of ``b2fs.sync`` unless the options turn it on); every mount is unmounted at teardown
(``fusermount3 -u``, then SIGTERM/SIGKILL of the process we started, then a
lazy unmount as the last resort), so a failing test never leaves a mount or
a process behind.  ``b2`` is an async B2 client on the same server, for
arranging buckets and checking what B2 holds.

``crypt`` is the encryption of a test's mounts: plain unless a module
parametrizes it (``CRYPT_MODES``, indirect): then each test runs on a plain
and on an encrypted mount (``-o encrypt`` with the session's vault, placed at
the root of every mounted prefix).  ``b2sync`` follows it: on an encrypted run
``upload``/``read``/``names`` encrypt and decrypt names and contents as the
mount does, so a test arranges and checks B2 in plaintext terms either way;
``key(name)`` is a name as stored.  A test that cannot mean the same thing on
an encrypted mount is marked ``plain_only("why")``.
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
from b2fs.codec import (
    CHANGES_DIR,
    MARKER,
    VAULT_NAME,
    Argon2idParams,
    CodecError,
    Vault,
    create_vault,
    is_reserved,
)
from b2fs.emulator.process import LocalServer

MOUNT_TIMEOUT = 20.0
CRYPT_MODES = pytest.mark.parametrize("crypt", ["plain", "encrypted"], indirect=True)
PASSPHRASE = "correct horse battery staple"
TEST_KDF = Argon2idParams(memory_kib=1024, iterations=1, lanes=1)  # tests are not about the KDF
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

    @property
    def encrypted(self) -> bool:
        return bool(self.options.get("encrypt"))

    def status(self) -> dict[str, Any]:
        from b2fs.mount.control import read_status

        return read_status(str(self.path))


def until(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait for ``check()`` (e.g. an upload the write-back makes in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        time.sleep(0.05)


@pytest.fixture
def new_bucket_name() -> Callable[[], str]:
    return lambda: f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def b2(local_server: LocalServer) -> AsyncIterator[B2Client]:
    async with B2Client(local_server.key_id, local_server.key, realm=local_server.realm) as client:
        yield client


@pytest.fixture(scope="session")
def test_vault() -> tuple[bytes, Vault]:
    """One vault for every encrypted test mount: (the vault object's bytes, the vault)."""
    return create_vault(PASSPHRASE, kdf=TEST_KDF)


@pytest.fixture
def crypt(
    request: pytest.FixtureRequest, test_vault: tuple[bytes, Vault]
) -> tuple[bytes, Vault] | None:
    """None for plain mounts, else the vault encrypted mounts use (see the module docstring)."""
    if getattr(request, "param", "plain") == "plain":
        return None
    marker = request.node.get_closest_marker("plain_only")
    if marker is not None:
        pytest.skip(f"plain mounts only: {marker.args[0]}")
    return test_vault


@pytest.fixture
def mount_factory(
    server: LocalServer, tmp_path: Path, new_bucket_name: Callable[[], str], b2sync: SyncB2
) -> Iterator[Callable[..., MountProcess]]:
    mounts: list[MountProcess] = []

    def make(bucket: str | None = None, *, prefix: str = "", start: bool = True, srv: LocalServer | None = None,
             passphrase: str | None = None, **options: Any) -> MountProcess:  # fmt: skip
        if bucket is None:
            bucket = new_bucket_name()
            _create_bucket(srv or server, bucket)
        if b2sync.vault is not None and "encrypt" not in options:
            b2sync.put_vault(bucket, prefix.strip("/") + "/" if prefix else "", srv)
            options["encrypt"] = True
            passphrase = PASSPHRASE
        options.setdefault("writeback_delay", 0.2)
        # One mount's own calls and objects, as most tests count them: no change log (the
        # records it writes, its polls); tests/sync turns it on.
        options.setdefault("change_log", False)
        options.setdefault("poll_interval", 0)
        m = MountProcess(
            srv or server, bucket, tmp_path / f"m{next(_serial)}", options, prefix, passphrase
        )
        mounts.append(m)
        return m.start() if start else m

    yield make
    for m in mounts:
        m.cleanup()


class SyncB2:
    """Runs B2 client calls from synchronous test code (each in a thread with its own trio loop).

    With ``crypt`` (the vault of an encrypted run), names and contents go through the
    vault's codecs as an encrypted mount at ``root`` stores them; ``raw=True`` writes a
    name and content exactly as given.
    """

    def __init__(self, server: LocalServer, crypt: tuple[bytes, Vault] | None = None) -> None:
        self.server = server
        self.blob, self.vault = crypt if crypt is not None else (None, None)
        if self.vault is not None:
            self.content, self.names_codec = self.vault.content_codec(), self.vault.name_codec()
        self._vaults: set[tuple[str, str]] = set()

    def run(self, fn: Callable[[B2Client], Awaitable[T]], server: LocalServer | None = None) -> T:
        result: list[Any] = []
        srv = server or self.server

        def target() -> None:
            async def main() -> None:
                async with B2Client(srv.key_id, srv.key, realm=srv.realm) as c:
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

    # -- names as stored --------------------------------------------------------------------

    def encode(self, name: str, root: str = "") -> tuple[str, dict[str, str]]:
        """(stored name, long-name file info) of a plaintext name below ``root``."""
        if self.vault is None:
            return root + name, {}
        parent, long_info = "", {}
        for i, seg in enumerate(name.split("/")):
            if seg == MARKER and i == name.count("/"):
                segment = seg
            else:
                segment, info = self.names_codec.encode(parent, seg)
                long_info = info or {}
            parent = f"{parent}/{segment}" if parent else segment
        return root + parent, long_info

    def key(self, name: str, root: str = "") -> str:
        """The B2 name of a plaintext name (itself on a plain run)."""
        return self.encode(name, root)[0]

    def decode(
        self, stored: str, info: dict[str, str], markers: dict[str, dict[str, str]]
    ) -> str | None:
        """The plaintext name of a stored one (None: the vault object); undecodable names are
        returned as they are, so an assertion shows them."""
        if self.vault is None:
            return stored
        segments = stored.split("/")
        if len(segments) == 1 and is_reserved("", stored):
            return None
        out, parent = [], ""
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            if last and seg == MARKER:
                out.append(seg)
                break
            long_info = info if last else markers.get(f"{parent}/{seg}" if parent else seg)
            try:
                out.append(self.names_codec.decode(parent, seg, long_info))
            except CodecError:
                return "?" + stored
            parent = f"{parent}/{seg}" if parent else seg
        return "/".join(out)

    def names(self, bucket: str, prefix: str = "", records: bool = False) -> list[str]:
        """The names in the bucket (decoded on an encrypted run), without the mounts' change
        records (``.b2fs/changes/``) unless ``records``."""
        bid = self.bucket_id(bucket)

        async def names(c: B2Client) -> list[tuple[str, dict[str, str]]]:
            return [(f.file_name, f.file_info) async for f in c.list_file_names(bid, prefix=prefix)
                    if records or f"/{CHANGES_DIR}/changes/" not in "/" + f.file_name]  # fmt: skip

        listed = self.run(names)
        markers = {n[: -len(MARKER) - 1]: info for n, info in listed if n.endswith("/" + MARKER)}
        decoded = (self.decode(n, info, markers) for n, info in listed)
        return [n for n in decoded if n is not None]

    # -- contents ---------------------------------------------------------------------------

    def read(self, bucket: str, name: str, raw: bool = False) -> bytes:
        bid = self.bucket_id(bucket)
        stored = name if raw else self.key(name)

        async def read(c: B2Client) -> bytes:
            async for f in c.list_file_names(bid, prefix=stored):
                if f.file_name == stored:
                    return await c.download_bytes(file_id=f.file_id)
            raise FileNotFoundError(name)

        data = self.run(read)
        if self.vault is None or raw:
            return data
        n = self.content.header_size()
        size = self.content.plain_size(len(data))
        return self.content.decryptor(data[:n]).decode(0, data[n:], size)

    async def aupload(self, c: B2Client, bucket_id: str, name: str, data: bytes | str, *,
                      root: str = "", raw: bool = False, **kw: Any) -> Any:  # fmt: skip
        """Upload with an open client: ``data`` is bytes or a local path."""
        if self.vault is None or raw:
            return await c.upload(bucket_id, root + name, data, **kw)
        stored, long_info = self.encode(name, root)
        enc = self.content.encryptor()
        kw["file_info"] = {**kw.get("file_info", {}), **enc.file_info, **long_info}
        if isinstance(data, bytes | bytearray):
            return await c.upload(
                bucket_id, stored, _Sealed(enc, lambda o, n: data[o : o + n], len(data)), **kw
            )
        fd = os.open(data, os.O_RDONLY)
        try:
            source = _Sealed(enc, lambda o, n: os.pread(fd, n, o), os.fstat(fd).st_size)
            return await c.upload(bucket_id, stored, source, **kw)
        finally:
            os.close(fd)

    def upload(self, bucket: str, name: str, data: bytes | str, **kw: Any) -> Any:
        bid = self.bucket_id(bucket)
        return self.run(lambda c: self.aupload(c, bid, name, data, **kw))

    def put_vault(self, bucket: str, root: str, server: LocalServer | None = None) -> None:
        """The session's vault object at ``root`` (once per bucket and root)."""
        if (bucket, root) in self._vaults:
            return
        self._vaults.add((bucket, root))

        async def put(c: B2Client) -> None:
            bid = (await c.get_bucket(bucket)).bucket_id
            await c.upload(bid, root + VAULT_NAME, self.blob)

        self.run(put, server)


class _Sealed:
    """An encrypted upload source over plaintext that ``read(offset, length)`` returns."""

    def __init__(self, encryptor: Any, read: Callable[[int, int], bytes], plain_size: int) -> None:
        self.encryptor, self._read, self.plain_size = encryptor, read, plain_size
        self.size = encryptor.stored_size(plain_size)

    async def read(self, offset: int, length: int) -> bytes:
        return self.encryptor.read_stored(self._read, self.plain_size, offset, offset + length)


@pytest.fixture
def b2sync(local_server: LocalServer, crypt: tuple[bytes, Vault] | None) -> SyncB2:
    return SyncB2(local_server, crypt)


def _create_bucket(server: LocalServer, name: str) -> None:
    SyncB2(server).run(lambda c: c.create_bucket(name, "allPrivate"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "plain_only(reason): skipped on encrypted runs of a CRYPT_MODES module"
    )
