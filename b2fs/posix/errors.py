"""Errors of the POSIX view, each carrying the errno a program should see.

The fs edge (``b2fs.fs.errno_map``) turns these, B2 client errors and codec
errors into errnos in one place; code in the vfs raises these types with a
message that says why, which the edge logs.
"""

from __future__ import annotations

import errno as _errno


class FsError(Exception):
    """A failure with a definite errno; the message is logged, not shown to the program.

    ``plain_names``: the message may name files by plaintext path, so an encrypted
    mount does not log it (the reader's and the write-back's messages use stored names).
    ``quiet``: an expected refusal, logged at debug level only.
    """

    errno: int = _errno.EIO

    def __init__(self, message: str = "", *, errno: int | None = None, plain_names: bool = True,
                 quiet: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        if errno is not None:
            self.errno = errno
        self.plain_names = plain_names
        self.quiet = quiet


class NotFound(FsError):
    errno = _errno.ENOENT


class Exists(FsError):
    errno = _errno.EEXIST


class NotEmpty(FsError):
    errno = _errno.ENOTEMPTY


class NotADirectory(FsError):
    errno = _errno.ENOTDIR


class IsADirectory(FsError):
    errno = _errno.EISDIR


class NameTooLong(FsError):
    errno = _errno.ENAMETOOLONG


class InvalidName(FsError):
    """A name B2 cannot store (control characters, invalid UTF-8)."""

    errno = _errno.EINVAL


class ReadOnly(FsError):
    errno = _errno.EROFS


class NotPermitted(FsError):
    errno = _errno.EPERM


class NotSupported(FsError):
    errno = _errno.ENOTSUP


class InvalidArgument(FsError):
    errno = _errno.EINVAL


class NoSpace(FsError):
    errno = _errno.ENOSPC


class Stale(FsError):
    errno = _errno.ESTALE


class BadHandle(FsError):
    errno = _errno.EBADF
