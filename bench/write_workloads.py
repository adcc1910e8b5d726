"""The programs ``bench/mount_write.py`` runs in a directory (a mount, or the local disk for
reference): a sequential copy, small-file creates, seeded random small writes, git's steps on
a tree and ``tar cf - . | md5sum``.  Each checks what it can (the random writes read back
against a model of the file; ``git status`` must find the tree clean) and raises
``AssertionError`` when a mount returns something else.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

MiB = 1 << 20
KiB = 1024
GIT_DATE = "2023-11-14T22:13:20+00:00"  # fixed dates: the same objects in every run
GIT_CONFIG = """[user]
\tname = b2fs bench
\temail = bench@example.invalid
[init]
\tdefaultBranch = main
[gc]
\tauto = 0
[maintenance]
\tauto = false
[safe]
\tdirectory = *
"""


def copy_in(source: Path, dest: Path) -> None:
    """``cp``-like: 1 MiB reads and writes, one buffer."""
    buf = bytearray(MiB)
    with open(source, "rb", buffering=0) as src, open(dest, "wb", buffering=0) as out:
        while n := src.readinto(buf):
            view = memoryview(buf)[:n]
            while view:
                view = view[out.write(view) :]


def small_files(dest: Path, count: int) -> None:
    """``count`` files of 1 KiB, one after the other (open, write, close)."""
    dest.mkdir()
    data = os.urandom(1024)
    for i in range(count):
        with open(dest / f"f{i:05d}.bin", "wb") as f:
            f.write(data)


def untar(tarball: Path, dest: Path) -> None:
    subprocess.run(["tar", "xf", str(tarball), "-C", str(dest)], check=True)


def random_ops(path: Path, ops: int, seed: int, reopen_every: int = 0,
               max_size: int = 256 * KiB, max_io: int = 16 * KiB) -> bytes:  # fmt: skip
    """A seeded sequence of ``ops`` operations on one file (created empty): 50 % ``pwrite``
    of 1 B-``max_io`` at a random offset (the file stays under ``max_size``), 40 % ``pread``
    (checked against a model of the file), 10 % ``ftruncate`` to a random size; with
    ``reopen_every``, the file is closed and opened again (``O_RDWR``) every that many
    operations.  Returns the file's final content (the model's)."""
    rng = random.Random(seed)
    pool = rng.randbytes(max_size + max_io)
    model = bytearray()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(ops):
            if reopen_every and i and i % reopen_every == 0:
                os.close(fd)
                fd = -1
                fd = os.open(path, os.O_RDWR)
            r = rng.random()
            length = rng.randint(1, max_io)
            if r < 0.5:
                off = rng.randrange(0, max_size - length + 1)
                src = rng.randrange(0, len(pool) - length)
                data = pool[src : src + length]
                if os.pwrite(fd, data, off) != length:
                    raise AssertionError(f"{path}: short write of {length} at {off} (op {i})")
                if len(model) < off:
                    model.extend(bytes(off - len(model)))
                model[off : off + length] = data
            elif r < 0.9:
                off = rng.randrange(0, max_size)
                got = os.pread(fd, length, off)
                if got != model[off : off + length]:
                    raise AssertionError(
                        f"{path}: op {i}: pread({length}, {off}) returned {len(got)} bytes "
                        f"that differ from what was written (file size {len(model)})"
                    )
            else:
                size = rng.randrange(0, max_size + 1)
                os.ftruncate(fd, size)
                if size < len(model):
                    del model[size:]
                else:
                    model.extend(bytes(size - len(model)))
    finally:
        if fd >= 0:
            os.close(fd)
    return bytes(model)


def git_env(home: Path) -> dict[str, str]:
    """git with no system or user configuration of this machine: a config file of our own
    (no automatic gc or maintenance, which would fork background work on the mount; any
    directory owner accepted), fixed author, committer and dates."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "gitconfig").write_text(GIT_CONFIG)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
            "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE}  # fmt: skip


GIT_STEPS = (("init", ["git", "init", "-q"]), ("add", ["git", "add", "-A"]),
             ("commit", ["git", "commit", "-qm", "generated tree"]))  # fmt: skip


def git_commit(repo: Path, env: dict[str, str]) -> dict[str, float]:
    """``git init``, ``git add -A``, ``git commit`` in ``repo``: seconds of each."""
    laps = {}
    for name, argv in GIT_STEPS:
        t = time.monotonic()
        r = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
        laps[name] = time.monotonic() - t
        if r.returncode:
            raise AssertionError(f"{' '.join(argv)} in {repo}: exit {r.returncode}: {r.stderr}")
    return laps


def git_status(repo: Path, env: dict[str, str]) -> None:
    """``git status --porcelain``: the tree must be clean (what was committed is there)."""
    r = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env, capture_output=True,
                       text=True)  # fmt: skip
    if r.returncode or r.stdout:
        raise AssertionError(f"git status in {repo}: exit {r.returncode}: {r.stdout[:2000]}"
                             f"{r.stderr[:2000]}")  # fmt: skip


def tar_md5(tree: Path) -> str:
    """``tar cf - . | md5sum`` in ``tree`` (either failing fails it)."""
    r = subprocess.run(["bash", "-o", "pipefail", "-c", "tar cf - . | md5sum"], cwd=tree,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode:
        raise AssertionError(f"tar cf - . | md5sum in {tree}: exit {r.returncode}: {r.stderr}")
    return r.stdout.split()[0]


def tree_counts(root: Path) -> tuple[int, int]:
    """Files and directories under ``root`` (``root`` itself not counted)."""
    files = dirs = 0
    for _, dnames, fnames in os.walk(root):
        files += len(fnames)
        dirs += len(dnames)
    return files, dirs
