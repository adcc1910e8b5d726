"""Reading a tree of small files back through a fresh mount, with and without B2's faults.

    .venv/bin/python bench/read_faults.py [--files 1000] [--repeat 1]

A fresh local B2 server holds a tree of small files (10 directories); a program reads them
back one at a time (``os.walk`` and a whole-file read of each) through a fresh b2fs mount
with an empty cache: once without faults, once with a quarter of the downloads failing
(503, 500, a connection dropped mid-body) and 5 % of every call (re-authorizations
included) answering that the token expired, as issue 16 measured it.  Prints the times,
their ratio (goal: at most 2), the downloads, faults, retries and re-authorizations, and
whether any read failed.  Every mount and process is ended (by pid) on exit or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from measure import print_table, signals_as_interrupt
from mounts import Session

FAULTS = [
    {"call": "b2_download_file_by_id", "kinds": ["503", "500", "drop"], "probability": 0.25},
    {"call": "*", "kinds": ["expire_token"], "probability": 0.05},
]


def read_back(root: Path, expected: dict[str, int]) -> tuple[float, int]:
    """Seconds to read every file (one at a time), and how many reads failed."""
    failed = 0
    got: dict[str, int] = {}
    t = time.perf_counter()
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            try:
                with open(path, "rb") as f:
                    got[os.path.relpath(path, root)] = len(f.read())
            except OSError:
                failed += 1
    took = time.perf_counter() - t
    if got != expected and not failed:
        raise AssertionError("the tree read back differs from the one uploaded")
    return took, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--files", type=int, default=1000, help="small files in the tree")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (each: without, then with)")
    ap.add_argument("--tmp", default=None, help="directory for temp files")
    args = ap.parse_args()
    sizes = {f"d{i % 10}/f{i:05d}.txt": 200 + (i * 997) % 20_000 for i in range(args.files)}
    rows: list[list[str]] = []
    ratios: list[float] = []
    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="b2fs-bench-faults-", dir=args.tmp) as tmp, \
            Session(Path(tmp)) as s:  # fmt: skip
        bucket, bucket_id = s.new_bucket()

        async def upload_all(c: Any) -> None:
            limiter = trio.CapacityLimiter(16)

            async def one(name: str, size: int) -> None:
                async with limiter:
                    await c.upload_bytes(bucket_id, name, os.urandom(size))

            async with trio.open_nursery() as n:
                for name, size in sizes.items():
                    n.start_soon(one, name, size)

        s.run(upload_all)
        print(f"{len(sizes)} files uploaded", flush=True)
        for _ in range(args.repeat):
            clean = 0.0
            for label, faults in (("no faults", None), ("faults", FAULTS)):
                m = s.b2fs(bucket, {}, cache_dir=s.root("cache"))
                s.server.reset_counters()
                if faults:
                    s.server.set_faults(faults)
                try:
                    took, failed = read_back(m.path, sizes)
                finally:
                    s.server.clear_faults()
                client = m.status().get("b2", {})
                counters = s.counters()
                s.unmount(m)
                calls = counters["calls"]
                downloads = calls.get("b2_download_file_by_id", 0)
                injected = sum(counters.get("faults_injected", {}).values())
                if faults is None:
                    clean = took
                else:
                    ratios.append(took / clean)
                rows.append([label, f"{took:.1f}", f"{took / clean:.2f}", f"{downloads:,}",
                             f"{injected:,}", f"{calls.get('b2_authorize_account', 0):,}",
                             str(client.get("retries", "?")), str(failed)])  # fmt: skip
                print(f"{label}: {took:.1f} s, {failed} failed reads", flush=True)
    print_table(f"Reading back {len(sizes):,} small files through a fresh mount, one at a time",
                ["run", "seconds", "x no faults", "downloads", "faults injected",
                 "authorizations", "client retries", "failed reads"], rows)  # fmt: skip
    print(f"\nratio with faults / without: {', '.join(f'{r:.2f}' for r in ratios)} (goal <= 2)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit(
            f"interrupted ({e.args[0] if e.args else 'SIGINT'}); mounts and processes cleaned up"
        )
