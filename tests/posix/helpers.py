"""The POSIX suite's tools: who runs a test body, the system calls Python lacks, persistent cases.

``run_as(identity, cwd, fn, *args)`` runs ``fn`` in a forked child: as root it
changes into ``cwd`` (so an unprivileged identity needs no access to the
directories above it), drops to the identity's groups, gid and uid, runs
``fn(*args)`` with umask 022, and sends back its return value (pickled) or
its traceback through a pipe; the parent raises ``ChildFailed`` (an
``AssertionError``) with the child's traceback, or kills a child that does
not finish in time.  A body running as root may call ``run_as`` itself to
act as another user in the same directory (``as_user``).

Bodies use names relative to their working directory.  ``Persistent`` pairs
a ``build`` (operations that leave state) with a ``check`` of that state: a
rule's test runs both on a live mount, and ``test_remount.py`` runs every
build, remounts on an empty cache, then runs every check.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import platform
import select
import signal
import stat
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# -- identities -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def __str__(self) -> str:
        return self.name


ROOT = Identity("root", 0, 0, (0,))
USER = Identity("user", 65534, 65534, (65534, 65533))  # the unprivileged user under test
OTHER = Identity("other", 65532, 65532, (65532,))  # another user, owner of what USER may not touch
SHARED_GID = 65533  # a supplementary group of USER (not of OTHER)
FOREIGN_GID = OTHER.gid  # a group USER is not in

CHILD_TIMEOUT = 45.0


class ChildFailed(AssertionError):
    """A body failed in its child process; the message holds the child's traceback."""


def run_as(who: Identity, cwd: str | os.PathLike[str], fn: Callable[..., Any], *args: Any,
           timeout: float = CHILD_TIMEOUT) -> Any:  # fmt: skip
    """``fn(*args)`` in a forked child running as ``who`` in ``cwd``; its return value."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            signal.signal(
                signal.SIGALRM, signal.SIG_DFL
            )  # pytest-timeout's handler is the parent's
            try:
                os.chdir(cwd)
                if who.uid != os.geteuid():
                    os.setgroups(list(who.groups))
                    os.setgid(who.gid)
                    os.setuid(who.uid)
                os.umask(0o022)
                outcome: tuple[str, Any] = ("ok", fn(*args))
            except BaseException as e:  # everything goes back to the parent
                outcome = ("error", (_summary(e), "".join(traceback.format_exception(e))))
            try:
                payload = pickle.dumps(outcome)
            except Exception as e:
                payload = pickle.dumps(("error", (f"unpicklable result: {e}", "")))
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view) :]
        finally:
            os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise ChildFailed(f"{_name(fn)} as {who}: did not finish in {timeout:.0f} s")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        raise ChildFailed(f"{_name(fn)} as {who}: the child died without a result")
    status, value = pickle.loads(b"".join(chunks))
    if status == "ok":
        return value
    last, tb = value
    raise ChildFailed(f"{_name(fn)} as {who}: {last}\n--- in the child ---\n{tb}")


def _summary(e: BaseException) -> str:
    """One line: the exception, and where in the tests it happened."""
    if isinstance(e, ChildFailed):  # from a nested run_as: its own summary line
        return str(e).split("\n", 1)[0]
    text = traceback.format_exception_only(type(e), e)[-1].strip()
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/tests/posix/" in f.filename]
    if frames and not frames[-1].filename.endswith("helpers.py"):
        f = frames[-1]
        text += f" [{os.path.basename(f.filename)}:{f.lineno}: {(f.line or '').strip()}]"
    return text


def as_user(who: Identity, fn: Callable[..., Any], *args: Any) -> Any:
    """From a body running as root: ``fn(*args)`` as ``who`` in the same working directory."""
    return run_as(who, os.getcwd(), fn, *args)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


# -- persistent cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Persistent:
    """State a rule leaves: ``build(who)`` makes it and returns what ``check(who, built)`` needs.

    Both run as ``who`` (one of ``actors``) in the case's own workspace, owned by ``who``;
    a case about several users runs as root and uses ``as_user`` inside.
    """

    name: str
    build: Callable[[Identity], Any]
    check: Callable[[Identity, Any], None]
    actors: tuple[Identity, ...] = (ROOT, USER)


# -- errors -----------------------------------------------------------------------------------


def deferred(failures: list[str], fn: Callable[..., Any], *args: Any) -> bool:
    """Run a step that belongs to another rule (a special file in a test of names, say): on
    OSError note it in ``failures`` and go on, so that ``no_deferred`` reports it after the
    rule's own assertions, and one missing feature does not hide how the rest fares."""
    try:
        fn(*args)
    except OSError as e:
        failures.append(f"{_name(fn)}({', '.join(short(a) for a in args)}): {e.strerror}")
        return False
    return True


def no_deferred(failures: list[str]) -> None:
    assert not failures, "; ".join(failures)


def errno_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The errno ``fn(*args, **kwargs)`` fails with, 0 when it succeeds."""
    try:
        result = fn(*args, **kwargs)
    except OSError as e:
        return e.errno or -1
    if isinstance(result, int) and fn is os.open:
        os.close(result)
    return 0


def errname(code: int) -> str:
    return "success" if code == 0 else errno.errorcode.get(code, str(code))


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:18]}...{text[-12:]}({len(str(value))})"


def expect_errno(expected: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    got = errno_of(fn, *args, **kwargs)
    call = f"{_name(fn)}({', '.join(short(a) for a in args)})"
    assert got == expected, f"{call}: {errname(got)}, expected {errname(expected)}"


# -- names ------------------------------------------------------------------------------------


def name_of(length: int, tag: str = "n") -> str:
    """An ASCII name of exactly ``length`` bytes starting with ``tag``."""
    return (tag + "-").ljust(length, "x")[:length]


def multibyte_name(length: int, tag: str = "m") -> str:
    """A name of exactly ``length`` UTF-8 bytes, mostly two-byte characters (NFC)."""
    head = tag + "-"
    pairs, odd = divmod(length - len(head), 2)
    return head + "é" * pairs + "x" * odd


# -- files ------------------------------------------------------------------------------------


def write(path: str, data: bytes, mode: int = 0o644, sync: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)  # in B2 when fsync returns
    finally:
        os.close(fd)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def meta(path: str) -> tuple[str, int, int, int]:
    """(type letter, permission bits with set-id and sticky, uid, gid) of ``path`` (lstat)."""
    st = os.lstat(path)
    return kind(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def kind(mode: int) -> str:
    return stat.filemode(mode)[0]  # '-', 'd', 'l', 'p', 'c', 'b', 's'


def assert_meta(path: str, want: tuple[str, int, int, int]) -> None:
    got = meta(path)
    assert got == want, (
        f"{short(path)}: type {got[0]!r} mode {got[1]:#o} owner {got[2]}:{got[3]}, "
        f"expected type {want[0]!r} mode {want[1]:#o} owner {want[2]}:{want[3]}"
    )


# -- system calls Python does not offer ------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
NOW, OMIT = "now", "omit"


def _check(rc: int, *names: Any) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), *[os.fsdecode(n) for n in names[:1]])


_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]  # fmt: skip


def renameat2(old: str, new: str, flags: int) -> None:
    _check(_libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags), old)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _timespec(t: int | str) -> _Timespec:
    if t == NOW:
        return _Timespec(0, UTIME_NOW)
    if t == OMIT:
        return _Timespec(0, UTIME_OMIT)
    assert isinstance(t, int)
    return _Timespec(*divmod(t, 1_000_000_000))


def utimensat(path: str, atime: int | str, mtime: int | str, follow: bool = True) -> None:
    """utimensat(2) with times in nanoseconds, or ``NOW`` / ``OMIT``."""
    times = (_Timespec * 2)(_timespec(atime), _timespec(mtime))
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    _check(_libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags), path)


_SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}[platform.machine()]
_libc.syscall.restype = ctypes.c_long
DT_NAMES = {1: "p", 2: "c", 4: "d", 6: "b", 8: "-", 10: "l", 12: "s"}


def dirents(path: str = ".", bufsize: int = 32768) -> list[tuple[str, int, str]]:
    """Every entry getdents64(2) returns, '.' and '..' included: (name, d_ino, type letter)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    buf = ctypes.create_string_buffer(bufsize)
    out: list[tuple[str, int, str]] = []
    try:
        while True:
            n = _libc.syscall(_SYS_GETDENTS64, fd, buf, ctypes.c_uint(bufsize))
            if n < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e), path)
            if n == 0:
                return out
            raw, pos = buf.raw[:n], 0
            while pos < n:
                ino, _off, reclen, dtype = struct.unpack_from("<QqHB", raw, pos)
                name = raw[pos + 19 : pos + reclen].split(b"\0", 1)[0]
                out.append((os.fsdecode(name), ino, DT_NAMES.get(dtype, "?")))
                pos += reclen
    finally:
        os.close(fd)


def listing(path: str = ".") -> list[str]:
    """The names readdir returns, '.' and '..' included, in the order returned."""
    return [name for name, _, _ in dirents(path)]


def names(path: str = ".") -> list[str]:
    """The entries of a directory, sorted (os.listdir: without '.' and '..')."""
    return sorted(os.listdir(path))
