"""Hard links stay unsupported (EPERM), but the errors POSIX checks first come first, and the
refusal is logged at most once per mount (issue 10).
"""

from __future__ import annotations

import errno
import os
import re

import pytest

from tests.posix.helpers import expect_errno, name_of, names, write

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]


def test_link_errors_come_before_eperm(ws, actor, posix_fs):
    on_b2fs = posix_fs.is_b2fs

    def body() -> None:
        write("f", b"f")
        write("g", b"g")
        os.mkdir("d")
        os.symlink("f", "s")
        expect_errno(errno.ENOENT, os.link, "missing", "new")  # no source
        expect_errno(errno.ENOENT, os.link, "missing", "g")  # the source is looked up first
        expect_errno(errno.ENOENT, os.link, "f", "nodir/new")  # no target directory
        expect_errno(errno.ENOTDIR, os.link, "f/x", "new")  # through a file
        expect_errno(errno.ENOTDIR, os.link, "f", "g/new")
        for existing in ("g", "d", "s"):
            expect_errno(errno.EEXIST, os.link, "f", existing)
        expect_errno(errno.EEXIST, os.link, "d", "g")
        expect_errno(errno.ENAMETOOLONG, os.link, "f", name_of(256))
        expect_errno(errno.ENAMETOOLONG, os.link, name_of(256), "new")
        expect_errno(errno.EPERM, os.link, "d", "new")  # a directory: Linux refuses everywhere
        if on_b2fs:
            for source in ("f", "s"):
                expect_errno(errno.EPERM, os.link, source, "new")
            assert os.stat("f").st_nlink == 1
        else:
            os.link("f", "new")
            assert os.stat("f").st_nlink == 2
            os.unlink("new")
        assert names() == ["d", "f", "g", "s"]
        os.mkfifo("p")  # last: a special file (its own rule)
        expect_errno(errno.EEXIST, os.link, "f", "p")
        expect_errno(errno.EEXIST, os.link, "p", "g")

    ws.run(body)


def test_hard_link_refusal_is_logged_at_most_once(ws, actor, posix_fs, b2fs_only):
    def body() -> None:
        write("f", b"f")
        for i in range(300):
            expect_errno(errno.EPERM, os.link, "f", f"n{i}")

    ws.run(body)
    about = re.compile(r"\blink: |hard links?")  # the link operation, not "symbolic links"
    lines = [line for line in posix_fs.log().splitlines() if about.search(line)]
    assert len(lines) <= 1, f"{len(lines)} log lines about links, e.g. {lines[:3]}"
