"""The one place where errors become errnos, with the log line that says why.

Every FUSE operation runs under ``fuse_errors``: a ``FsError`` carries its own
errno; B2 client errors map by their B2 code and HTTP status; codec errors
(a tampered or foreign object, a name too long to encode) map to EIO or
ENAMETOOLONG; ``OSError`` from local disk (a full staging area) keeps its
errno.  Anything else is a bug: EIO, logged with its traceback.  Outcomes a
program meets in normal use (ENOENT, EEXIST, ENOTEMPTY, ..., and refusals a
``FsError`` marks ``quiet``) are logged at debug level only; the rest at
warning, one line each, naming the operation, the file (``b2fs.fs.where``;
with the offset of a read or write), the error (a B2 error names its call)
and what the program gets.  An encrypted mount calls ``hide_messages(True)``:
messages that may name files by plaintext path (``FsError.plain_names``,
codec errors) must not reach a log file, so their lines give the error's
type only (the reader's and the write-back's errors name files by their
stored B2 names, and are logged in full; ``where`` gives stored names too).

``set_observer(fn)`` has every operation reported as ``fn(name, outcome,
seconds, nbytes)`` (outcome ``ok`` or the errno's name; bytes of a read or
write): the mount's Prometheus metrics, when they are on.
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from b2fs.codec.errors import CodecError, InvalidName, NameTooLong
from b2fs.fs.where import where
from b2fs.posix.errors import FsError

log = logging.getLogger("b2fs.fs")

QUIET = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR, errno.ENODATA,
         errno.ENOSYS, errno.EINTR, errno.EAGAIN, errno.ERANGE, errno.ENOTSUP}  # fmt: skip

B2_CODES = {
    "not_found": errno.ENOENT,
    "no_such_file": errno.ENOENT,
    "file_not_present": errno.ENOENT,
    "unauthorized": errno.EACCES,
    "access_denied": errno.EACCES,
    "storage_cap_exceeded": errno.EDQUOT,
    "cap_exceeded": errno.EDQUOT,
    "transaction_cap_exceeded": errno.EIO,
    "already_hidden": errno.ENOENT,
    "source_too_large": errno.EFBIG,
    "file_lock_conflict": errno.EPERM,
}


def errno_of(exc: BaseException) -> int:
    if isinstance(exc, FsError):
        return exc.errno
    if isinstance(exc, pyfuse3.FUSEError):
        return exc.errno
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in B2_CODES:
        return B2_CODES[code]
    if isinstance(exc, NameTooLong):
        return errno.ENAMETOOLONG
    if isinstance(exc, InvalidName):
        return errno.EINVAL
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


T = TypeVar("T")

_hide_messages = False


def hide_messages(on: bool) -> None:
    """Log only the type of errors whose message may hold plaintext names (encrypted mounts)."""
    global _hide_messages
    _hide_messages = on


Observer = Callable[[str, str, float, int], None]
_observer: Observer | None = None


def set_observer(fn: Observer | None) -> None:
    """Report every operation to ``fn(name, outcome, seconds, nbytes)`` (None: stop)."""
    global _observer
    _observer = fn


def fuse_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run an operation; any exception leaves as ``FUSEError`` with the right errno."""
    name = fn.__name__
    size_of = _SIZE_OF.get(name)

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        outcome = "ok"
        nbytes = 0
        try:
            result = await fn(*args, **kwargs)
            if size_of is not None:
                nbytes = size_of(result)
        except pyfuse3.FUSEError as e:
            outcome = errno.errorcode.get(e.errno, str(e.errno))
            raise
        except Exception as e:
            err = errno_of(e)
            outcome = errno.errorcode.get(err, str(err))
            known = isinstance(e, FsError | OSError | CodecError) or hasattr(e, "code")
            hide = isinstance(e, CodecError) or getattr(e, "plain_names", False)
            text = type(e).__name__ if _hide_messages and hide else e
            if not known:
                log.error("%s %s: unexpected %s; the program gets EIO", name, where(name, args),
                          type(e).__name__, exc_info=True)  # fmt: skip
            elif err in QUIET or getattr(e, "quiet", False):
                log.debug("%s: %s (%s)", name, text, outcome)
            else:
                log.warning("%s %s: %s; the program gets %s", name, where(name, args),
                            _one_line(text), outcome)  # fmt: skip
            raise pyfuse3.FUSEError(err) from None
        finally:
            if _observer is not None:
                _observer(name, outcome, time.perf_counter() - start, nbytes)
        return result

    return wrapper


_SIZE_OF: dict[str, Callable[[Any], int]] = {"read": len, "write": int}  # bytes moved


def _one_line(e: object) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())
