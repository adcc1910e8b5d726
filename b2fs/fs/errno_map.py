"""The one place where errors become errnos, with the log line that says why.

Every FUSE operation runs under ``fuse_errors``: a ``FsError`` carries its own
errno; B2 client errors map by their B2 code and HTTP status; codec errors
(a tampered or foreign object, a name too long to encode) map to EIO or
ENAMETOOLONG; ``OSError`` from local disk (a full staging area) keeps its
errno.  Anything else is a bug: EIO, logged with its traceback.  Outcomes a
program meets in normal use (ENOENT, EEXIST, ENOTEMPTY, ..., and refusals a
``FsError`` marks ``quiet``) are logged at debug level only; the rest at warning,
one line each, naming what the request was about (the file, by its B2 name in an
encrypted mount, and the offset of a read or write: ``Operations.where``).  An encrypted mount
calls ``hide_messages(True)``: messages that may name files by plaintext
path (``FsError.plain_names``, codec errors) must not reach a log file, so
their lines give the error's type only (the reader's and the write-back's
errors name files by their stored B2 names, and are logged in full).
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from b2fs.codec.errors import CodecError, InvalidName, NameTooLong
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


def fuse_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run an operation; any exception leaves as ``FUSEError`` with the right errno."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            err = errno_of(e)
            known = isinstance(e, FsError | OSError | CodecError) or hasattr(e, "code")
            hide = isinstance(e, CodecError) or getattr(e, "plain_names", False)
            text = type(e).__name__ if _hide_messages and hide else e
            name = errno.errorcode.get(err, err)
            if known and (err in QUIET or getattr(e, "quiet", False)):
                log.debug("%s: %s (%s)", fn.__name__, text, name)
                raise pyfuse3.FUSEError(err) from None
            where = _where(fn.__name__, args)
            if not known:
                log.error(
                    "%s: %sunexpected %s", fn.__name__, where, type(e).__name__, exc_info=True
                )
            else:
                log.warning("%s: %s%s [%s]", fn.__name__, where, _one_line(text), name)
            raise pyfuse3.FUSEError(err) from None

    return wrapper


def _where(op: str, args: tuple[Any, ...]) -> str:
    """``"FILE at offset N: "`` when the operations object can say (see Operations.where)."""
    where = getattr(args[0], "where", None) if args else None
    text = where(op, args[1:]) if where is not None else ""
    return f"{text}: " if text else ""


def _one_line(e: object) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())
