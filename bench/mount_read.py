"""Read benchmark of the mount: sequential and random reads of a 1 GiB file, ls -lR / find of a
10,000-file tree, against the server's direct download rate and against ``rclone mount``.

    .venv/bin/python bench/mount_read.py [--size-mib 1024] [--repeat 1] [--no-rclone]
        [--sweep] [-o block_size=4M,...] [--profile DIR] [--quiet 0.3]

One run: a fresh local B2 server holds a random file and a tree (10 x 10 directories of 100
small files).  Baselines, measured in the same run: the server's parallel ranged download
(``http.client`` threads, as ``bench/emulator_throughput.py``) and the b2 client's own
(``B2Client.download_range``, 8 ranges of 8 MiB in flight, as the mount asks by default).
Then, on b2fs (``-o`` options, default: the mount's defaults) and on rclone (flags below):

- sequential read (1 MiB ``readinto``): cold (fresh mount, empty cache), warm from the page
  cache (open again in the same mount), warm from the disk cache (after a remount), and a
  third pass after another remount (b2fs's default ``cache_admit=reuse`` streams a large
  file's first pass without keeping it, so its second pass downloads and keeps it);
- 4 KiB ``pread`` at distinct random aligned offsets, one at a time: cold (fresh cache), from
  the page cache (after the sequential reads) and from the disk cache (after a remount);
- ``ls -lR`` and ``find`` of the tree on a fresh mount (cold) and again (warm);
- API calls by class from the server's counters, the mount process's CPU per MiB read (user
  + system of all its threads, from /proc), its peak RSS (VmHWM), and for b2fs the blocks
  it read back from its disk cache (``b2fs status``, through the mount's control socket).

A local copy of the file read from the page cache says what "page-cache speed" is here.
"other load" is the number of cores other work on the machine kept busy meanwhile (it is
shared); ``--quiet CORES`` waits before each workload until that is under CORES.
``--sweep`` adds cold sequential reads under several b2fs option sets, each once per round
(``--repeat`` rounds); ``--profile DIR`` records each b2fs workload with py-spy
(raw stacks and a summary per workload; rates are then lower).  Every mount and process is
ended (by pid) on exit, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import trio
from emulator_throughput import download as raw_download
from measure import (
    MiB,
    OtherLoad,
    calls_text,
    delta,
    load_average,
    print_table,
    profiled,
    random_file,
    read_through,
    rmtree,
    signals_as_interrupt,
    wait_for_quiet,
)
from mounts import B2fsMount, Mount, Session

from b2fs.b2 import B2Client

# rclone with an on-disk cache like b2fs's block cache (2G: rclone empties a cache that has
# reached its limit at start, and the file is 1 GiB), and b2fs's metadata TTLs.
RCLONE_FLAGS = ["--vfs-cache-mode", "full", "--vfs-cache-max-size", "2G",
                "--dir-cache-time", "60s", "--attr-timeout", "1s", "--poll-interval", "0"]  # fmt: skip
# Around the defaults (block 1M, request 8M, concurrency 8, read-ahead 32M of a 64M memory
# cache, kernel read-ahead 1M); a bigger read-ahead comes with a bigger memory cache.
SWEEP: list[dict[str, str]] = [
    {},
    {"cache_admit": "all"},
    {"download_concurrency": "4"},
    {"download_concurrency": "16"},
    {"max_readahead": "16M"},
    {"max_request": "16M"},
    {"max_request": "16M", "max_readahead": "64M", "memory_cache": "128M"},
    {"block_size": "4M", "max_request": "16M"},
    {"block_size": "4M", "max_request": "32M", "max_readahead": "64M", "memory_cache": "128M"},
    {"kernel_readahead": "128K"},
    {"kernel_readahead": "4M"},
]


def disk_hits(mount: Mount) -> int | None:
    """Blocks a b2fs mount has served from its disk cache so far (None for rclone)."""
    if not isinstance(mount, B2fsMount):
        return None
    return int(mount.status()["cache"]["hits"])


def opts_text(options: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


# -- workloads -----------------------------------------------------------------------------


class Reading:
    """The file the benchmark reads, its expected bytes at a few places, and the offsets."""

    def __init__(self, source: Path, size: int, n_random: int, seed: int = 1) -> None:
        self.source = source
        self.size = size
        rng = random.Random(seed)  # distinct 4 KiB pages, so that no read repeats an earlier one
        self.offsets = [p * 4096 for p in rng.sample(range(size // 4096), n_random)]
        with open(source, "rb") as f:
            self.samples = {o: os.pread(f.fileno(), 4096, o) for o in self.offsets[:16]}

    def check(self, path: Path) -> None:
        """Cheap spot checks that the mount returns the right bytes."""
        fd = os.open(path, os.O_RDONLY)
        try:
            for off, want in self.samples.items():
                if os.pread(fd, 4096, off) != want:
                    raise AssertionError(f"{path}: wrong bytes at {off}")
        finally:
            os.close(fd)


def sequential(path: Path, size: int) -> float:
    t = time.perf_counter()
    got = read_through(path)
    took = time.perf_counter() - t
    if got != size:
        raise AssertionError(f"read {got} bytes of {size}")
    return size / took / 1e6


def random_reads(path: Path, offsets: list[int], reading: Reading | None = None) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        t = time.perf_counter()
        for off in offsets:
            if len(os.pread(fd, 4096, off)) != 4096:
                raise AssertionError("short read")
        took = time.perf_counter() - t
    finally:
        os.close(fd)
    if reading is not None:
        reading.check(path)
    return len(offsets) / took


def run_tool(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


# -- setup and baselines -------------------------------------------------------------------


async def make_tree(c: B2Client, bucket_id: str, top: int, sub: int, files: int) -> int:
    limiter = trio.CapacityLimiter(16)
    names = [f"tree/d{i:02d}/s{j:02d}/f{k:03d}.txt" for i in range(top) for j in range(sub)
             for k in range(files)]  # fmt: skip

    async def one(name: str) -> None:
        async with limiter:
            await c.upload(bucket_id, name, name.encode() * 4)

    async with trio.open_nursery() as n:
        for name in names:
            n.start_soon(one, name)
    return len(names)


def server_parallel_rate(s: Session, file_id: str, size: int, streams: int) -> float:
    """bench/emulator_throughput.py's method: http.client threads, one range each."""
    account = s.run(lambda c: c.authorize())
    token = account.authorization_token
    part = size // streams
    spans = [
        (i * part, size - 1 if i == streams - 1 else (i + 1) * part - 1) for i in range(streams)
    ]
    t = time.perf_counter()
    with ThreadPoolExecutor(streams) as ex:
        list(ex.map(lambda sp: raw_download(s.server.realm, token, file_id, *sp), spans))
    return size / (time.perf_counter() - t) / 1e6


def client_parallel_rate(s: Session, file_id: str, size: int, request: int, parallel: int) -> float:
    """The b2 client's ranged downloads, ``parallel`` requests of ``request`` bytes in flight."""

    async def fetch(c: B2Client) -> float:
        await c.authorize()
        limiter = trio.CapacityLimiter(parallel)

        async def one(start: int) -> None:
            async with limiter:
                await c.download_range(file_id, start, min(start + request, size) - 1)

        t = time.perf_counter()
        async with trio.open_nursery() as n:
            for start in range(0, size, request):
                n.start_soon(one, start)
        return size / (time.perf_counter() - t) / 1e6

    return s.run(fetch)


# -- one mount implementation through every read workload -----------------------------------


class Runner:
    def __init__(self, s: Session, bucket: str, reading: Reading, args: argparse.Namespace) -> None:
        self.s = s
        self.bucket = bucket
        self.reading = reading
        self.args = args
        self.rows: list[list[str]] = []
        self.tree_rows: list[list[str]] = []
        self.rss: dict[str, float] = {}
        self.kernel_readahead = ""
        self.cpu: dict[str, float] = {}  # CPU ms per MiB of the mount, by workload

    def mount(self, who: str, cache: Path, options: dict[str, str] | None = None) -> Mount:
        if who == "rclone":
            return self.s.rclone(self.bucket, RCLONE_FLAGS, cache_dir=cache)
        return self.s.b2fs(self.bucket, options or {}, cache_dir=cache)

    def measure(self, label: str, fn: Callable[[], float], unit: str, rows: list[list[str]],
                mount: Mount, mib: float = 0.0) -> float:  # fmt: skip
        """One workload's row; ``mib``: the MiB it reads, for the mount's CPU ms per MiB."""
        wait_for_quiet(self.s.pids, self.args.quiet, self.args.quiet_timeout)
        hits = disk_hits(mount)
        with profiled(self.args.profile, mount, label), OtherLoad(self.s.pids) as load:
            before, cpu = self.s.counters(), mount.cpu()
            value = fn()
            cpu = mount.cpu() - cpu
            d = delta(before, self.s.counters())
        hits_text = "" if hits is None else f"{(disk_hits(mount) or 0) - hits:,}"
        fmt = f"{value:,.0f}" if unit != "s" else f"{value:.2f}"
        cpu_text = f"{cpu * 1000 / mib:.2f}" if mib else ""
        rows.append([label, f"{fmt} {unit}", calls_text(d), f"{d['bytes_out'] / MiB:,.0f}", hits_text,
                     cpu_text, f"{mount.rss():.0f}", f"{load.cores:.2f}"])  # fmt: skip
        self.cpu[label] = cpu * 1000 / mib if mib else 0.0
        return value

    def done(self, who: str, m: Mount) -> None:
        self.s.unmount(m)
        self.rss[who] = max(self.rss.get(who, 0.0), m.peak_rss)

    def file_reads(self, who: str, options: dict[str, str] | None = None) -> dict[str, float]:
        size, r, rows = self.reading.size, self.reading, self.rows
        out: dict[str, float] = {}
        warm, cold = r.offsets[: self.args.random_warm], r.offsets[: self.args.random_cold]
        cache = self.s.root(f"{who}-cache")
        m = self.mount(who, cache, options)
        if isinstance(m, B2fsMount):
            self.kernel_readahead = m.kernel_readahead()
        f = m.path / "big.bin"
        out["cold"] = self.measure(f"{who}: sequential, cold", lambda: sequential(f, size), "MB/s",
                                   rows, m, size / MiB)  # fmt: skip
        r.check(f)
        out["page"] = self.measure(f"{who}: sequential, warm (page cache)",
                                   lambda: sequential(f, size), "MB/s", rows, m,
                                   size / MiB)  # fmt: skip
        self.measure(f"{who}: 4 KiB random, warm (page cache, {len(warm)} reads)",
                     lambda: random_reads(f, warm), "IOPS", rows, m)  # fmt: skip
        self.done(who, m)
        m = self.mount(who, cache, options)
        f = m.path / "big.bin"
        out["disk"] = self.measure(f"{who}: sequential, warm (disk cache, remounted)",
                                   lambda: sequential(f, size), "MB/s", rows, m,
                                   size / MiB)  # fmt: skip
        self.done(who, m)
        # b2fs's default admission keeps a large file on its second pass: the third reads it
        m = self.mount(who, cache, options)
        f = m.path / "big.bin"
        out["disk3"] = self.measure(f"{who}: sequential, third pass (remounted again)",
                                    lambda: sequential(f, size), "MB/s", rows, m,
                                    size / MiB)  # fmt: skip
        self.done(who, m)
        m = self.mount(who, cache, options)
        f = m.path / "big.bin"
        self.measure(f"{who}: 4 KiB random, warm (disk cache, remounted, {len(warm)} reads)",
                     lambda: random_reads(f, warm, r), "IOPS", rows, m)  # fmt: skip
        self.done(who, m)
        rmtree(cache)
        cache = self.s.root(f"{who}-cache-random")
        m = self.mount(who, cache, options)
        f = m.path / "big.bin"
        self.measure(f"{who}: 4 KiB random, cold ({len(cold)} reads)",
                     lambda: random_reads(f, cold, r), "IOPS", rows, m)  # fmt: skip
        self.done(who, m)
        rmtree(cache)
        return out

    def tree(self, who: str) -> None:
        for tool in (["ls", "-lR"], ["find"]):
            m = self.mount(who, self.s.root(f"{who}-cache-tree"))
            argv = [*tool, str(m.path / "tree")]
            name = " ".join(tool)
            self.measure(f"{who}: {name}, cold", lambda a=argv: run_tool(a), "s",  # type: ignore[misc]
                         self.tree_rows, m)  # fmt: skip
            self.measure(f"{who}: {name}, warm", lambda a=argv: run_tool(a), "s",  # type: ignore[misc]
                         self.tree_rows, m)  # fmt: skip
            self.done(who, m)

    def cold_only(self, options: dict[str, str]) -> tuple[float, dict[str, Any], float, float]:
        cache = self.s.root("sweep-cache")
        m = self.mount("b2fs", cache, options)
        wait_for_quiet(self.s.pids, self.args.quiet, self.args.quiet_timeout)
        with OtherLoad(self.s.pids) as load:
            before, cpu = self.s.counters(), m.cpu()
            rate = sequential(m.path / "big.bin", self.reading.size)
            cpu = (m.cpu() - cpu) * 1000 / (self.reading.size / MiB)
            d = delta(before, self.s.counters())
        self.done("b2fs", m)
        rmtree(cache)  # a GiB per run: the temp dir would otherwise hold them all
        d["cpu_ms_per_mib"] = cpu
        return rate, d, m.peak_rss, load.cores


def parse_o(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item) if text else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the file read (MiB)")
    ap.add_argument("--random-cold", type=int, default=500, help="cold 4 KiB random reads")
    ap.add_argument("--random-warm", type=int, default=20000, help="warm 4 KiB random reads")
    ap.add_argument("--tree", default="10x10x100", help="directories x subdirectories x files")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of the b2fs file reads, baselines and sweep rounds")  # fmt: skip
    ap.add_argument("-o", dest="options", default="", help="b2fs mount options (-o form)")
    ap.add_argument("--no-rclone", action="store_true", help="skip the rclone runs")
    ap.add_argument("--no-files", action="store_true", help="skip the file reads (e.g. to sweep)")
    ap.add_argument("--no-tree", action="store_true", help="skip ls -lR / find")
    ap.add_argument(
        "--sweep", action="store_true", help="cold sequential reads, several option sets"
    )
    ap.add_argument("--streams", type=int, default=4, help="ranges of the server baseline")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="py-spy every b2fs workload into DIR (slows them down)")  # fmt: skip
    ap.add_argument("--quiet", type=float, default=None, metavar="CORES",
                    help="before each workload, wait until other work uses under CORES")  # fmt: skip
    ap.add_argument("--quiet-timeout", type=float, default=300, help="longest such wait (s)")
    ap.add_argument("--tmp", default=None, help="directory for temp files (default: $TMPDIR)")
    args = ap.parse_args()
    size = args.size_mib * MiB
    options = parse_o(args.options)
    top, sub, files = (int(x) for x in args.tree.split("x"))

    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="b2fs-bench-read-", dir=args.tmp) as tmp, \
            Session(Path(tmp)) as s:  # fmt: skip
        print(f"load average at start: {load_average()}", flush=True)
        bucket, bucket_id = s.new_bucket()
        source = Path(tmp) / "big.bin"
        random_file(source, size)
        version = s.run(lambda c: c.upload_file(bucket_id, "big.bin", source))
        reading = Reading(source, size, max(args.random_cold, args.random_warm, 16))
        n_tree = 0 if args.no_tree else s.run(lambda c: make_tree(c, bucket_id, top, sub, files))
        print(f"setup done: {args.size_mib} MiB file, {n_tree} tree files; load {load_average()}",
              flush=True)  # fmt: skip

        base = []
        for label, fn in (
            (f"server, {args.streams} parallel ranges (http.client threads)",
             lambda: server_parallel_rate(s, version.file_id, size, args.streams)),
            ("b2 client, 8 x 8 MiB ranges in flight (download_range, trio)",
             lambda: client_parallel_rate(s, version.file_id, size, 8 * MiB, 8)),
            ("local copy of the file, page cache (what 'page-cache speed' means here)",
             lambda: sequential(source, size)),
        ):  # fmt: skip
            wait_for_quiet(s.pids, args.quiet, args.quiet_timeout)
            with OtherLoad(s.pids) as load:
                rate = max(fn() for _ in range(args.repeat))
            base.append((label, rate, load.cores))
        server_rate, client_rate = base[0][1], base[1][1]

        r = Runner(s, bucket, reading, args)
        colds = []
        for i in range(0 if args.no_files else args.repeat):
            out = r.file_reads("b2fs", options)
            colds.append(out["cold"])
            print(f"b2fs run {i + 1}: cold {out['cold']:.0f} MB/s; load {load_average()}",
                  flush=True)  # fmt: skip
        if not args.no_rclone and not args.no_files:
            r.file_reads("rclone")
        if not args.no_tree:
            r.tree("b2fs")
            if not args.no_rclone:
                r.tree("rclone")
        sweep_rows = []
        if args.sweep:  # every option set once per round, so that load changes hit them all
            configs = SWEEP
            runs: list[list[tuple[float, dict[str, Any], float, float]]] = [[] for _ in configs]
            for round_ in range(args.repeat):
                for i, opts in enumerate(configs):
                    runs[i].append(r.cold_only({**options, **opts}))
                print(f"sweep round {round_ + 1} done; load {load_average()}", flush=True)
            for opts, got in zip(configs, runs, strict=True):
                rates = [g[0] for g in got]
                med = statistics.median(rates)
                cpu = statistics.median(g[1]["cpu_ms_per_mib"] for g in got)
                sweep_rows.append([opts_text(opts), f"{med:,.0f}", f"{max(rates):,.0f}",
                                   f"{med / client_rate:.2f}", f"{med / server_rate:.2f}",
                                   f"{cpu:.2f}", calls_text(got[-1][1], 1),
                                   f"{max(g[2] for g in got):.0f}",
                                   f"{statistics.mean(g[3] for g in got):.2f}"])  # fmt: skip
        load_end = load_average()

    print(f"\nb2fs mount read benchmark: {args.size_mib} MiB file, {os.cpu_count()} cores, "
          f"b2fs options: {opts_text(options)}; load average at the end: {load_end}")  # fmt: skip
    print_table(f"Direct downloads of the file (same run, best of {args.repeat})",
                ["baseline", "MB/s", "other load"],
                [[label, f"{rate:,.0f}", f"{o:.2f}"] for label, rate, o in base])  # fmt: skip
    if r.kernel_readahead:
        print(f"kernel read-ahead of the b2fs mounts (sysfs read_ahead_kb): {r.kernel_readahead}")
    if colds:
        best = max(colds)
        print(f"b2fs cold sequential: {', '.join(f'{c:,.0f}' for c in colds)} MB/s "
              f"(median {statistics.median(colds):,.0f}); best = {best / server_rate:.2f} x server, "
              f"{best / client_rate:.2f} x b2 client  (goal >= 0.8)")  # fmt: skip
    head = ["workload", "rate", "API calls by class = cost (busiest calls)", "MiB downloaded",
            "disk-cache hits", "CPU ms/MiB", "RSS MiB", "other load"]  # fmt: skip
    if r.rows:
        print_table("File reads", head, r.rows)
    if r.tree_rows:
        print_table(
            f"Tree of {n_tree} files in {top * sub + top + 1} directories", head, r.tree_rows
        )
    if sweep_rows:
        print_table(f"b2fs option sweep: cold sequential read, {args.repeat} rounds",
                    ["-o options", "median MB/s", "best", "x client", "x server", "CPU ms/MiB",
                     "API calls = cost",
                     "RSS MiB", "other load"], sweep_rows)  # fmt: skip
    print("\nPeak RSS of the mount process (MiB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in r.rss.items()))  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: every mount and process is gone
        sys.exit(
            f"interrupted ({e.args[0] if e.args else 'SIGINT'}); mounts and processes cleaned up"
        )
