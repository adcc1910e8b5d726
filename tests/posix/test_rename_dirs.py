"""rename(2) of a directory onto an empty directory replaces it and leaves nothing of it
behind: its parent can be emptied and removed afterwards (found by pjdfstest rename/09.t:
the replaced directory's pending marker stayed in the write-back, so its parent kept
showing a child that was gone and rmdir of the grandparent was ENOTEMPTY).
"""

from __future__ import annotations

import os

import pytest

from tests.posix.helpers import names, write

pytestmark = [pytest.mark.mount, pytest.mark.timeout(60)]


def test_rename_dir_onto_empty_dir(ws, actor):
    def body() -> None:
        os.makedirs("a/c")
        os.makedirs("b/d")
        write("a/c/f", b"moved with its tree")
        os.rename("a/c", "b/d")
        assert names("b") == ["d"]
        assert names("b/d") == ["f"]
        os.unlink("b/d/f")
        os.rmdir("b/d")
        assert names("b") == []
        os.rmdir("b")
        os.rmdir("a")
        assert names() == []
        os.mkdir("b")  # the name is free again, and so is the one below it
        assert names("b") == []

    ws.run(body)
