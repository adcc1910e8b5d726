"""Special files: FIFOs, character and block devices, Unix sockets (issue 10).

mkfifo, mknod (FIFO, devices with their rdev, a regular file) and bind(2)
make entries that list (with their type), stat (type, rdev, mode, owner),
chmod, chown, rename and unlink like any file and survive remounts; the
kernel does their I/O (a FIFO carries data from a writer to a reader, a
socket accepts a connection).  Only root makes devices (CAP_MKNOD).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
import time

import pytest

from tests.posix.helpers import (
    OTHER,
    ROOT,
    SHARED_GID,
    Identity,
    Persistent,
    assert_meta,
    dirents,
    expect_errno,
)

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]

CHR_RDEV = os.makedev(10, 200)  # a misc device
BLK_RDEV = os.makedev(259, 123_456)  # a major past 255 and a minor past 65535
PAYLOAD = bytes(range(256)) * 512  # 128 KiB: more than a pipe's buffer


def fifo_roundtrip(path: str, payload: bytes = PAYLOAD) -> None:
    """A writer process sends ``payload`` through the FIFO at ``path``; read it all back."""
    st = os.lstat(path)
    assert stat.S_ISFIFO(st.st_mode), f"{path} is not a FIFO: {stat.filemode(st.st_mode)}"
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            wfd = os.open(path, os.O_WRONLY)
            view = memoryview(payload)
            while view:
                view = view[os.write(wfd, view) :]
            os.close(wfd)
            code = 0
        finally:
            os._exit(code)
    got = bytearray()
    deadline = time.monotonic() + 20
    try:
        while len(got) < len(payload) and time.monotonic() < deadline:
            select.select([rfd], [], [], 0.5)
            try:
                chunk = os.read(rfd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:  # no writer yet, or it is done
                time.sleep(0.01)
            got += chunk
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the FIFO's writer failed"
    assert bytes(got) == payload, f"{len(got)} bytes came through the FIFO, not {len(payload)}"
    assert os.lstat(path).st_size == 0


def bind(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    return s


def socket_roundtrip(path: str) -> None:
    """Bind a listening socket at ``path``, connect to it by that path, pass a few bytes."""
    with bind(path) as server, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        server.listen(1)
        client.settimeout(10)
        client.connect(path)
        conn, _ = server.accept()
        with conn:
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        expect_errno(errno.EADDRINUSE, bind, path)  # the name is taken
    os.unlink(path)


# -- the persistent set ---------------------------------------------------------------------------


def build_special(me: Identity) -> dict[str, tuple[tuple[str, int, int, int], int]]:
    """Special files of every kind me may make, changed as a user would; the expected state."""
    other_group = SHARED_GID  # me (root or USER) may give it
    want: dict[str, tuple[tuple[str, int, int, int], int]] = {}
    os.mkfifo("fifo", 0o640)
    os.chmod("fifo", 0o604)
    os.chown("fifo", -1, other_group)
    want["fifo"] = (("p", 0o604, me.uid, other_group), 0)
    os.mknod("nodfifo", stat.S_IFIFO | 0o600)
    os.rename("nodfifo", "renamed-fifo")
    want["renamed-fifo"] = (("p", 0o600, me.uid, me.gid), 0)
    os.mknod("regular", stat.S_IFREG | 0o640)
    want["regular"] = (("-", 0o640, me.uid, me.gid), 0)
    bind("sock0").close()  # the name stays when the socket is closed
    os.rename("sock0", "sock")
    os.chmod("sock", 0o700)
    want["sock"] = (("s", 0o700, me.uid, me.gid), 0)
    os.mkfifo("gone")
    os.unlink("gone")
    if me == ROOT:
        os.mknod("chr", stat.S_IFCHR | 0o640, CHR_RDEV)
        os.chown("chr", OTHER.uid, other_group)
        want["chr"] = (("c", 0o640, OTHER.uid, other_group), CHR_RDEV)
        os.mknod("blk0", stat.S_IFBLK | 0o660, BLK_RDEV)
        os.rename("blk0", "blk")
        os.chmod("blk", 0o600)
        want["blk"] = (("b", 0o600, 0, 0), BLK_RDEV)
        os.mknod("chr-gone", stat.S_IFCHR | 0o600, CHR_RDEV)
        os.unlink("chr-gone")
    return want


def check_special(me: Identity, want: dict[str, tuple[tuple[str, int, int, int], int]]) -> None:
    for name, (expected, rdev) in want.items():
        assert_meta(name, expected)
        st = os.lstat(name)
        assert (st.st_rdev, st.st_size) == (rdev, 0), (
            f"{name}: rdev {os.major(st.st_rdev)},{os.minor(st.st_rdev)} size {st.st_size}, "
            f"expected rdev {os.major(rdev)},{os.minor(rdev)} size 0"
        )
    listed = {name: letter for name, _, letter in dirents(".")}
    for name, (expected, _) in want.items():
        assert listed.get(name) == expected[0], f"readdir gives {name} type {listed.get(name)!r}"
    assert not {"gone", "nodfifo", "sock0", "blk0", "chr-gone"} & set(listed), sorted(listed)
    fifo_roundtrip("fifo")  # I/O still works, and by the kernel
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        expect_errno(errno.ECONNREFUSED, s.connect, "sock")  # a socket file with no listener


SPECIAL = Persistent("special-files", build_special, check_special)


def test_special_files_list_stat_chmod_chown_rename_unlink(ws, actor):
    want = ws.run(SPECIAL.build, actor)
    ws.run(SPECIAL.check, actor, want)
    ws.run(_unprivileged_devices if actor != ROOT else _unlink_all, list(want))


def _unprivileged_devices(names: list[str]) -> None:
    expect_errno(errno.EPERM, os.mknod, "c", stat.S_IFCHR | 0o600, CHR_RDEV)  # CAP_MKNOD
    expect_errno(errno.EPERM, os.mknod, "b", stat.S_IFBLK | 0o600, BLK_RDEV)
    _unlink_all(names)


def _unlink_all(names: list[str]) -> None:
    for name in names:
        os.unlink(name)
    assert [n for n, _, _ in dirents(".") if n not in (".", "..")] == []


def test_fifo_carries_data_from_a_writer_to_a_reader(ws, actor):
    def body() -> None:
        os.mkfifo("pipe", 0o600)
        fifo_roundtrip("pipe")
        fifo_roundtrip("pipe", b"again")
        os.rename("pipe", "pipe2")
        fifo_roundtrip("pipe2", b"renamed")

    ws.run(body)


def test_unix_socket_bind_and_connect(ws, actor):
    def body() -> None:
        socket_roundtrip("sock")
        assert not os.path.lexists("sock")
        with bind("sock2"):
            assert_meta("sock2", ("s", 0o755, os.getuid(), os.getgid()))  # 0777 less the umask

    ws.run(body)


PERSISTENT = [SPECIAL]
