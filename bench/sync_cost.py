"""What staying fresh costs a mount: the change log against a listing-based poll of the same tree.

    .venv/bin/python bench/sync_cost.py [--minutes 10] [--dirs 100] [--files 10] [--tmp DIR]

Three buckets on a fresh local B2 server, each with the same tree (``--dirs`` directories of
``--files`` small files), and four mounts running side by side for ``--minutes``:

- *idle, change log*: a mount with the defaults (``poll_interval=10``) that listed the whole
  tree once, then sits idle; it sees other mounts' changes within ~10 s;
- *idle, listing poll*: the same freshness without a change log: ``poll_interval=0``,
  ``nochange_log``, ``dir_cache_time=5``, and every 10 s every directory is read (names and
  attributes), as a mount with nothing better than a directory cache (rclone on B2) must do
  to see changes anywhere in the tree within 10 s;
- *busy writer*: a mount with the defaults that overwrites one file a second, in a directory
  chosen at random, for the whole run;
- *its reader*: a mount with the defaults on the writer's bucket, idle after listing the tree,
  that forgets each changed listing as the writer's records come in; at the end it must read
  the writer's last content of every file it changed.

The calls are each mount's own (its ``b2fs status`` counters, by name and billing class);
their cost is at B2's list prices without the daily free calls (``b2fs/prices.py``), and
per day at this run's rate.  Every process is ended by pid on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from measure import CLASSES, cost_text, load_average, print_table, rmtree, signals_as_interrupt
from mounts import B2fsMount, Session

from b2fs.b2 import B2Client


async def fill(c: B2Client, bucket_id: str, dirs: int, files: int) -> None:
    limiter = trio.CapacityLimiter(32)

    async def one(name: str) -> None:
        async with limiter:
            await c.upload(bucket_id, name, b"initial content\n")

    async with trio.open_nursery() as nursery:
        for d in range(dirs):
            for f in range(files):
                nursery.start_soon(one, f"d{d:03d}/f{f:02d}")


def walk(root: Path) -> int:
    """Read every directory of the tree (names and attributes, as ``ls -lR``); entries seen."""
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            n += 1
    return n


def calls(m: B2fsMount) -> dict[str, Any]:
    b2 = m.status()["b2"]
    return {"calls": Counter(b2["calls"]), "classes": Counter(b2["classes"])}


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": {k: v for k, v in (after["calls"] - before["calls"]).items() if v},
        "classes": {c: after["classes"][c] - before["classes"][c] for c in CLASSES},
        "bytes_in": 0,
        "bytes_out": 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--tmp", default=None, help="parent of the run's temp dir")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="b2fs-bench-sync-", dir=args.tmp))
    seconds = args.minutes * 60
    stop = threading.Event()
    try:
        with signals_as_interrupt(), Session(tmp) as s:
            buckets = [s.new_bucket() for _ in range(3)]
            for _, bucket_id in buckets:
                s.run(lambda c, b=bucket_id: fill(c, b, args.dirs, args.files))
            print(f"3 buckets of {args.dirs} directories x {args.files} files; "
                  f"{args.minutes:g} minutes; load {load_average()}", flush=True)  # fmt: skip
            idle = s.b2fs(buckets[0][0], {}, label="idle-log")
            polled = s.b2fs(buckets[1][0], {"poll_interval": 0, "change_log": 0,
                                            "dir_cache_time": 5}, label="idle-listing")  # fmt: skip
            writer = s.b2fs(buckets[2][0], {}, label="writer")
            reader = s.b2fs(buckets[2][0], {}, label="reader")
            for m in (idle, polled, reader):
                walk(m.path)
            time.sleep(2)
            before = {m: calls(m) for m in (idle, polled, writer, reader)}
            start = time.monotonic()
            sweeps = [0]
            written: dict[str, bytes] = {}
            writes = [0]

            def lister() -> None:  # the listing-based poll: every directory, every 10 s
                while not stop.wait(max(0.0, start + 10 * (sweeps[0] + 1) - time.monotonic())):
                    walk(polled.path)
                    sweeps[0] += 1

            def write() -> None:  # one file a second
                rng = random.Random(1)
                i = 0
                while not stop.wait(max(0.0, start + i - time.monotonic())):
                    name = f"d{rng.randrange(args.dirs):03d}/f{rng.randrange(args.files):02d}"
                    data = f"version {i} of {name}\n".encode()
                    (writer.path / name).write_bytes(data)
                    written[name] = data
                    i += 1
                    writes[0] = i

            threads = [threading.Thread(target=lister), threading.Thread(target=write)]
            for t in threads:
                t.start()
            try:
                time.sleep(seconds)
            finally:
                stop.set()
                for t in threads:
                    t.join()
            after = {m: calls(m) for m in (idle, polled, writer, reader)}
            elapsed = time.monotonic() - start
            writer.wait_uploaded()
            time.sleep(15)  # the writer's last records, the reader's next poll
            stale = [n for n, data in written.items() if (reader.path / n).read_bytes() != data]
            sync = {m: m.status().get("sync") or {} for m in (idle, writer, reader)}
        rows = []
        labels = {idle: "idle, change log (poll_interval=10)",
                  polled: "idle, listing poll (every directory every 10 s)",
                  writer: "busy writer (one overwrite a second)",
                  reader: "its reader (poll_interval=10)"}  # fmt: skip
        for m, label in labels.items():
            d = delta(before[m], after[m])
            per_day = {c: d["classes"][c] * 86400 / elapsed for c in CLASSES}
            busiest = ", ".join(f"{k.removeprefix('b2_')} {v}" for k, v in
                                sorted(d["calls"].items(), key=lambda kv: -kv[1])[:4])  # fmt: skip
            rows.append([label, *(str(d["classes"][c]) for c in CLASSES), busiest,
                         cost_text(d), cost_text({**d, "classes": per_day})])  # fmt: skip
        print(f"\n{elapsed / 60:.1f} minutes; {writes[0]} overwrites by the writer "
              f"({len(written)} distinct files); the listing poll read the tree "
              f"{sweeps[0]} times; load average at the end {load_average()}")  # fmt: skip
        print_table("API calls of each mount over the run",
                    ["mount", "A", "B", "C", "calls", "cost", "cost per day at this rate"],
                    rows)  # fmt: skip
        poll = sync[reader].get("poll") or {}
        log = sync[writer].get("log") or {}
        print(f"writer: {log.get('records_written')} records for {log.get('changes_written')} "
              f"changes; reader: {poll.get('polls')} polls, {poll.get('records_read')} records "
              f"read ({poll.get('record_downloads')} downloaded), "
              f"{sync[reader].get('listings_dropped')} listings forgotten; idle mount: "
              f"{(sync[idle].get('poll') or {}).get('polls')} polls")  # fmt: skip
        print(
            f"reader shows the writer's last content of every file: "
            f"{'yes' if not stale else f'NO, {len(stale)} stale: {stale[:5]}'}"
        )
    finally:
        stop.set()
        rmtree(tmp)


if __name__ == "__main__":
    main()
