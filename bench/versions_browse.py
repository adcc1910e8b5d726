"""What browsing the history costs: a directory of 1,000 files with 3 versions each, through
the versions view, ``b2fs versions``, ``b2fs restore --dry-run`` and ``-o version_at``.

    .venv/bin/python bench/versions_browse.py [--files 1000] [--versions 3] [--tmp DIR]

A fresh local B2 server gets a bucket with ``dir/f0000`` ... uploaded ``--versions`` times
each (1 KiB, through the b2 client, 32 at a time), then one more file ``dir/late`` after a
pause. On a fresh ``b2fs mount`` (default options, so ``dir_cache_time`` 60 s):

- ``ls`` of the tree directory: the normal listing (for comparison);
- ``ls .b2fs-versions/dir`` (names, ``scandir``) cold, then warm;
- ``ls -l`` of every file's versions directory (``scandir`` + ``stat`` of each version);
- ``cat`` of one old version of 10 files (the reads go by fileId through the block cache);
- ``b2fs versions`` of one file, ``b2fs restore --dry-run`` of the directory at a time
  between the second and third versions;
- a second mount with ``-o version_at`` of that time: ``ls -l`` of ``dir``.

API calls come from the server's counters. The server and the mounts are ended by pid on
exit, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from measure import calls_text, delta, load_average, print_table, rmtree, signals_as_interrupt
from mounts import Session

from b2fs.b2 import B2Client
from b2fs.history.times import format_ms


async def fill(c: B2Client, bucket_id: str, files: int, versions: int) -> None:
    limiter = trio.CapacityLimiter(32)

    async def one(i: int, v: int) -> None:
        async with limiter:
            await c.upload(bucket_id, f"dir/f{i:04d}", f"{i} {v}\n".encode().ljust(1024, b"."))

    for v in range(versions):  # every file's version v before any file's v + 1
        async with trio.open_nursery() as nursery:
            for i in range(files):
                nursery.start_soon(one, i, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="parent of the run's temp dir")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b2fs-bench-versions-", dir=args.tmp))
    rows: list[list[str]] = []
    try:
        with signals_as_interrupt(), Session(tmp) as s:
            bucket, bucket_id = s.new_bucket()
            t = time.monotonic()
            s.run(lambda c: fill(c, bucket_id, args.files, args.versions - 1))
            time.sleep(0.05)
            between = time.time()
            time.sleep(0.05)
            s.run(lambda c: fill(c, bucket_id, args.files, 1))
            print(f"{args.files} files x {args.versions} versions uploaded in "
                  f"{time.monotonic() - t:.0f} s; load {load_average()}", flush=True)  # fmt: skip
            m = s.b2fs(bucket, {})
            view = m.path / ".b2fs-versions" / "dir"

            def step(label: str, fn: object, mount: object = m) -> None:
                before = s.counters()
                t = time.monotonic()
                what = fn()  # type: ignore[operator]
                dt = time.monotonic() - t
                rows.append(
                    [label, f"{dt:.2f} s", str(what), calls_text(delta(before, s.counters()))]
                )

            def names(path: Path) -> int:
                with os.scandir(path) as it:
                    return sum(1 for _ in it)

            def versions_of_each() -> int:
                n = 0
                with os.scandir(view) as files:
                    for f in files:
                        with os.scandir(f.path) as versions:
                            n += sum(1 for v in versions if v.stat().st_size > 0)
                return n

            def old_versions() -> int:
                n = 0
                for i in range(10):
                    first = sorted(os.listdir(view / f"f{i:04d}"))[0]
                    n += len((view / f"f{i:04d}" / first).read_bytes())
                return n

            def cli(*argv: str) -> int:
                r = subprocess.run([sys.executable, "-m", "b2fs", *argv], capture_output=True,
                                   text=True, check=True)  # fmt: skip
                return len(r.stdout.splitlines())

            step("ls dir (the tree, for comparison)", lambda: names(m.path / "dir"))
            step("ls .b2fs-versions/dir, cold", lambda: names(view))
            step("ls .b2fs-versions/dir, warm", lambda: names(view))
            step("ls -l of every file's versions", versions_of_each)
            step("cat an old version of 10 files", old_versions)
            step("b2fs versions dir/f0000 (lines)",
                 lambda: cli("versions", str(m.path / "dir" / "f0000")))  # fmt: skip
            at = format_ms(int(between * 1000))
            step("b2fs restore --dry-run --at (lines)",
                 lambda: cli("restore", "-n", "-q", "--at", at, str(m.path / "dir")))  # fmt: skip
            past = s.b2fs(bucket, {"version_at": at}, label="past")

            def past_listing() -> int:
                with os.scandir(past.path / "dir") as it:
                    return sum(1 for e in it if e.stat().st_size == 1024)

            step("version_at mount: ls -l dir", past_listing)
            s.unmount(past)
            s.unmount(m)
        print(f"\nb2fs: {args.files} files x {args.versions} versions in one directory; load "
              f"average at the end: {load_average()}")  # fmt: skip
        print_table("Browsing the history", ["step", "time", "entries", "API calls by class = cost"],
                    rows)  # fmt: skip
    finally:
        rmtree(tmp)


if __name__ == "__main__":
    main()
