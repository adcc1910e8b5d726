"""Fixtures of the POSIX suite: a default mount per encryption mode, a workspace per test, actors.

``posix_fs`` is one default b2fs mount (``allow_other``, ``writeback_delay=0.2``)
on the session's local server, plain and encrypted (the vault of
tests/mount/conftest.py), shared by the whole package so that dozens of rule
tests cost two mounts; it is started again if it died (a crash fails one
test, not the rest).  ``remount()`` unmounts (b2fs uploads what is pending)
and mounts the same bucket on a new, empty cache directory, so what it shows
next comes from B2 alone.  ``mount_factory`` is not used because its mounts
live for one test.

``actor`` runs a test as root and as an unprivileged user (``helpers.USER``);
``ws`` is the test's own directory on the mount, owned by the actor (or by
root in a test without an actor), where ``ws.run(fn, ...)`` runs a body as the
actor (see ``helpers.run_as``).

``B2FS_POSIX_REFERENCE=ext4`` runs the same tests on an ext4 image instead (root,
loop devices): the proof that the tests state what ext4 does.  What only b2fs
has (B2's key limit, the hard-link refusal) is skipped there.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from b2fs.emulator.process import LocalServer
from tests.mount.conftest import (
    PASSPHRASE,
    MountProcess,
    SyncB2,
    is_mounted,
    test_vault,  # noqa: F401  (a fixture)
)
from tests.posix.helpers import ROOT, USER, Identity, run_as

REFERENCE = os.environ.get("B2FS_POSIX_REFERENCE", "")
if REFERENCE not in ("", "ext4"):
    raise pytest.UsageError("B2FS_POSIX_REFERENCE may only be 'ext4'")
MODES = ["ext4"] if REFERENCE else ["plain", "encrypted"]
OPTIONS = {"allow_other": True, "writeback_delay": 0.2}

_serial = itertools.count()


class B2fsUnderTest:
    """A b2fs mount of one bucket, which can be remounted on a fresh cache and restarted."""

    is_b2fs = True

    def __init__(self, server: LocalServer, root: Path, vault: Any | None) -> None:
        self.server, self.root, self.kind = server, root, "encrypted" if vault else "plain"
        self.bucket = f"posix-{os.urandom(6).hex()}"
        sync = SyncB2(server, vault)
        sync.run(lambda c: c.create_bucket(self.bucket, "allPrivate"))
        if vault is not None:
            sync.put_vault(self.bucket, "")
        self.mount: MountProcess | None = None
        self.deaths: list[str] = []
        self.start()

    def start(self) -> None:
        options = dict(OPTIONS, encrypt=True) if self.kind == "encrypted" else OPTIONS
        passphrase = PASSPHRASE if self.kind == "encrypted" else None
        m = MountProcess(self.server, self.bucket, self.root / f"m{next(_serial)}", options, "",
                         passphrase)  # fmt: skip
        self.mount = m.start()

    @property
    def path(self) -> Path:
        assert self.mount is not None
        return self.mount.path

    def log(self) -> str:
        """This mount process's whole log (``b2fs -v``: info and above)."""
        assert self.mount is not None
        return self.mount.log_path.read_text(errors="replace")

    def ensure_alive(self) -> None:
        m = self.mount
        if m is not None and m.proc is not None and m.proc.poll() is None and is_mounted(m.path):
            return
        if m is not None:
            self.deaths.append(m.log())
            m.kill()
        self.start()

    def remount(self) -> None:
        assert self.mount is not None
        rc = self.mount.unmount(timeout=90)
        assert rc == 0, f"unmount exited with {rc}:\n{self.mount.log()}"
        self.start()

    def close(self) -> None:
        if self.mount is not None:
            self.mount.cleanup()


class Ext4UnderTest:
    """The reference: an ext4 image mounted noatime (as b2fs mounts are), remounted by umount."""

    is_b2fs = False
    kind = "ext4"

    def __init__(self, root: Path) -> None:
        self.image, self.path = root / "ext4.img", root / "mnt"
        self.path.mkdir()
        subprocess.run(["truncate", "-s", "512M", str(self.image)], check=True)
        # 256-byte inodes: nanoseconds and dates past 2038, as on any ext4 made today
        subprocess.run(["mkfs.ext4", "-q", "-I", "256", str(self.image)], check=True)
        self.start()

    def start(self) -> None:
        subprocess.run(["mount", "-o", "loop,noatime", str(self.image), str(self.path)],
                       check=True, timeout=30)  # fmt: skip

    def log(self) -> str:
        return ""

    def ensure_alive(self) -> None:
        pass

    def remount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True, timeout=60)
        self.start()

    def close(self) -> None:
        subprocess.run(["umount", str(self.path)], capture_output=True, timeout=60)


FsUnderTest = B2fsUnderTest | Ext4UnderTest


@pytest.fixture(scope="package", params=MODES)
def posix_fs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[FsUnderTest]:  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("the POSIX suite runs as root (it acts as other users)")
    root = tmp_path_factory.mktemp(f"posix-{request.param}")
    if request.param == "ext4":
        fs: FsUnderTest = Ext4UnderTest(root)
    else:
        vault = request.getfixturevalue("test_vault") if request.param == "encrypted" else None
        fs = B2fsUnderTest(request.getfixturevalue("local_server"), root, vault)
    try:
        yield fs
    finally:
        fs.close()


@pytest.fixture
def b2fs_only(posix_fs: FsUnderTest) -> None:
    if not posix_fs.is_b2fs:
        pytest.skip("about b2fs itself (B2's limits), not a rule ext4 has")


@pytest.fixture(params=[ROOT, USER], ids=str)
def actor(request: pytest.FixtureRequest) -> Identity:
    return request.param


class Workspace:
    """A test's own directory on the mount (by its name, so it follows a remount)."""

    def __init__(self, fs: FsUnderTest, name: str, owner: Identity) -> None:
        self.fs, self.name, self.owner = fs, name, owner

    @property
    def path(self) -> Path:
        return self.fs.path / self.name

    def run(self, fn: Callable[..., Any], *args: Any, who: Identity | None = None) -> Any:
        """``fn(*args)`` in this directory as ``who`` (the owner by default)."""
        return run_as(who or self.owner, self.path, fn, *args)


def make_workspace(fs: FsUnderTest, name: str, owner: Identity) -> Workspace:
    """A fresh directory ``name`` at the mount's root, mode 0755, owned by ``owner``."""
    fs.ensure_alive()
    path = fs.path / name
    path.mkdir(mode=0o755)
    if owner != ROOT:
        os.chown(path, owner.uid, owner.gid)
        st = os.stat(path)
        if (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
            pytest.fail(
                f"setup: chown of the workspace directory to {owner.uid}:{owner.gid} did not "
                f"take (it shows {st.st_uid}:{st.st_gid}): directory chown is needed"
            )
    return Workspace(fs, name, owner)


@pytest.fixture
def ws(request: pytest.FixtureRequest, posix_fs: FsUnderTest) -> Workspace:
    owner = request.getfixturevalue("actor") if "actor" in request.fixturenames else ROOT
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.originalname.removeprefix("test_"))[:48]
    return make_workspace(posix_fs, f"{base}-{owner}-{next(_serial)}", owner)
