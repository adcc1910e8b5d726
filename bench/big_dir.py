"""One directory of 100,000 files through the mount: listing time, API calls, and the
mount's memory while the kernel holds the entries.

    .venv/bin/python bench/big_dir.py [--files 100000] [--tmp DIR]

A fresh local B2 server gets a bucket with ``big/f000000`` ... (empty files, uploaded 32
at a time through the b2 client). Then, on a fresh ``b2fs mount``:

- names only (``os.scandir``, as ``ls -f`` or ``find`` read a directory): cold, then warm;
- names and attributes of every entry (``scandir`` + ``stat``, as ``ls -l``);
- the mount's resident memory (VmRSS) after mounting, after each listing, and its peak
  (VmHWM), and per entry the kernel holds (READDIRPLUS hands the kernel an inode per entry;
  the mount keeps one small record for each until the kernel forgets it);
- the inodes the mount holds for the kernel (``b2fs status``), after each step and after
  the kernel was told to drop its dentries and inodes (``/proc/sys/vm/drop_caches`` = 2:
  FORGETs). RSS does not shrink then: freed Python objects stay in the process's heap
  for reuse.

API calls come from the server's counters. The server and the mount are ended by pid on
exit, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import trio
from measure import calls_text, delta, load_average, print_table, rmtree, signals_as_interrupt
from mounts import Session

from b2fs.b2 import B2Client


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def fill(c: B2Client, bucket_id: str, n: int) -> None:
    limiter = trio.CapacityLimiter(32)

    async def one(i: int) -> None:
        async with limiter:
            await c.upload(bucket_id, f"big/f{i:06d}", b"")

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--tmp", default=None, help="parent of the run's temp dir")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b2fs-bench-bigdir-", dir=args.tmp))
    rows: list[list[str]] = []
    try:
        with signals_as_interrupt(), Session(tmp) as s:
            bucket, bucket_id = s.new_bucket()
            t = time.monotonic()
            s.run(lambda c: fill(c, bucket_id, args.files))
            print(f"{args.files} files uploaded in {time.monotonic() - t:.0f} s; "
                  f"load {load_average()}", flush=True)  # fmt: skip
            m = s.b2fs(bucket, {})
            pid = m.pid
            base = rss_mib(pid)
            rows.append(["mounted", "", "", f"{base:.0f}", "", str(m.status()["inodes"])])
            big = m.path / "big"

            def step(label: str, fn: object) -> None:
                before = s.counters()
                t = time.monotonic()
                n = fn()  # type: ignore[operator]
                dt = time.monotonic() - t
                assert n == args.files, f"{label}: {n} entries, expected {args.files}"
                rss = rss_mib(pid)
                rows.append([label, f"{dt:.2f} s", calls_text(delta(before, s.counters())),
                             f"{rss:.0f}", f"{(rss - base) * 1024 * 1024 / n:.0f}",
                             str(m.status()["inodes"])])  # fmt: skip

            def names() -> int:
                with os.scandir(big) as it:
                    return sum(1 for _ in it)

            def names_and_stats() -> int:
                with os.scandir(big) as it:
                    return sum(1 for e in it if e.stat().st_size == 0)

            step("names (scandir), cold", names)
            step("names (scandir), warm", names)
            step("names + stat of each (ls -l)", names_and_stats)
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")
            time.sleep(1)
            rss = rss_mib(pid)
            rows.append(["after the kernel dropped its inodes", "", "", f"{rss:.0f}",
                         f"{(rss - base) * 1024 * 1024 / args.files:.0f}",
                         str(m.status()["inodes"])])  # fmt: skip
            peak = m.rss()
            s.unmount(m)
        print(f"\nb2fs: one directory of {args.files} files; load average at the end: "
              f"{load_average()}")  # fmt: skip
        print_table("Listing it through the mount",
                    ["step", "time", "API calls by class = cost", "RSS MiB", "bytes/entry over mounted",
                     "inodes held"],
                    rows)  # fmt: skip
        print(f"peak RSS of the mount: {peak:.0f} MiB")
    finally:
        rmtree(tmp)


if __name__ == "__main__":
    main()
