"""Write benchmark of the mount: a 1 GiB sequential write, an untar of a source tree and small-file
creates, until B2 holds every byte, against the b2 client's direct upload and ``rclone mount``.

    .venv/bin/python bench/mount_write.py [--size-mib 1024] [--small 1000] [--no-rclone]
        [-o writeback_delay=5,...] [--only seq,untar,small]

One run: a fresh local B2 server; the b2 client's direct upload of the same random file
(``B2Client.upload_file``: a large file, parts of the account's recommended size, 4 in
parallel) is the baseline.  Then on b2fs (``-o`` options; default: the mount's defaults,
``writeback_delay`` 5 s) and rclone (flags below; ``--vfs-write-back`` 5 s), each on a fresh
mount with an empty cache:

- sequential write of the file through the mount (``cp``-like, 1 MiB writes): seconds until
  ``close`` returns, and until B2 holds it (the mount's queue is empty -- b2fs: ``b2fs
  status``, from its control socket; rclone: ``vfs/stats`` -- and then B2's listing shows
  the file);
- ``tar xf`` of Python's standard library (as ``tests/mount/test_write.py`` builds it):
  seconds, files per second, seconds until uploaded;
- ``--small`` files of 1 KiB created one after the other (open, write, close): creates/s;
- API calls by class from the server's counters, and the mount's peak RSS (VmHWM).

"other load": cores other work on the (shared) machine kept busy
meanwhile; ``--quiet CORES`` waits before each workload until that is under CORES.
``--profile DIR`` records each b2fs workload with py-spy (raw stacks and a summary; the times
are then longer).  Every mount and process is ended (by pid) on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

from measure import (
    MiB,
    OtherLoad,
    calls_text,
    delta,
    load_average,
    print_table,
    profiled,
    random_file,
    signals_as_interrupt,
    uploads_done,
    wait_for_quiet,
)
from mounts import Mount, Session

from b2fs.b2 import B2Client

# rclone with its write cache (the only mode that takes random writes, as b2fs does), the
# same write-back delay and upload parallelism as b2fs's defaults, and b2fs's metadata TTLs.
RCLONE_FLAGS = ["--vfs-cache-mode", "full", "--vfs-write-back", "5s", "--transfers", "4",
                "--dir-cache-time", "60s", "--attr-timeout", "1s", "--poll-interval", "0"]  # fmt: skip


def stdlib_tarball(tmp: Path) -> tuple[Path, int, int, int]:
    """Python's standard library as a tar (as in tests/mount/test_write.py): path, files,
    bytes, directories."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tar_path = tmp / "stdlib.tar"
    files = size = dirs = 0

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        nonlocal files, size, dirs
        parts = Path(info.name).parts
        if "__pycache__" in parts or (len(parts) > 1 and (parts[1] in ("site-packages", "lib-dynload")
                                                          or parts[1].startswith("config-"))):  # fmt: skip
            return None
        if info.isfile():
            files, size = files + 1, size + info.size
        dirs += info.isdir()
        return info

    with tarfile.open(tar_path, "w") as tar:
        tar.add(stdlib, arcname="stdlib", filter=keep)
    return tar_path, files, size, dirs


def copy_in(source: Path, dest: Path) -> None:
    buf = bytearray(MiB)
    with open(source, "rb", buffering=0) as src, open(dest, "wb", buffering=0) as out:
        while n := src.readinto(buf):
            view = memoryview(buf)[:n]
            while view:
                view = view[out.write(view) :]


def small_files(dest: Path, count: int) -> None:
    dest.mkdir()
    data = os.urandom(1024)
    for i in range(count):
        with open(dest / f"f{i:05d}.bin", "wb") as f:
            f.write(data)


async def names_in_b2(c: B2Client, bucket_id: str, prefix: str) -> dict[str, int]:
    """Files under ``prefix`` in B2 (directory markers, which only b2fs writes, left out)."""
    return {f.file_name: f.size async for f in c.list_file_names(bucket_id, prefix=prefix)
            if not f.file_name.endswith("/.bzEmpty")}  # fmt: skip


class Runner:
    def __init__(self, s: Session, args: argparse.Namespace, source: Path, tarball: Path,
                 tar_files: int, tar_dirs: int) -> None:  # fmt: skip
        self.s = s
        self.args = args
        self.source = source
        self.tarball = tarball
        self.tar_files = tar_files
        self.tar_dirs = tar_dirs
        self.rows: list[list[str]] = []
        self.rss: dict[str, float] = {}

    def mount(self, who: str, bucket: str, options: dict[str, str]) -> Mount:
        if who == "rclone":
            return self.s.rclone(bucket, RCLONE_FLAGS)
        return self.s.b2fs(bucket, options)

    def workload(self, who: str, label: str, options: dict[str, str], run: object, prefix: str,
                 expect: int, dirs: int, delay: float, unit_count: int, unit: str) -> None:  # fmt: skip
        """Fresh bucket and mount; run; wait for the upload queue; check B2; one table row.

        Done: the queue is empty, the server has seen ``expect`` uploads (plus one directory
        marker per directory made, when the mount is b2fs: rclone writes none) and B2's
        listing holds the ``expect`` files."""
        bucket, bucket_id = self.s.new_bucket()
        m = self.mount(who, bucket, options)
        wait_for_quiet(self.s.pids, self.args.quiet, self.args.quiet_timeout)
        with profiled(self.args.profile, m, f"{who} {label}"), OtherLoad(self.s.pids) as load:
            before = self.s.counters()
            t0 = time.monotonic()
            run(m.path)  # type: ignore[operator]
            t_local = time.monotonic() - t0
            floor = uploads_done(before) + expect + (dirs if m.kind == "b2fs" else 0)
            m.wait_uploaded(lambda: uploads_done(self.s.counters()) >= floor)
            d = delta(before, self.s.counters())  # the listings below are ours, not the mount's
            t_b2 = self.wait_listed(bucket_id, prefix, expect) - t0
        self.s.unmount(m)
        self.rss[who] = max(self.rss.get(who, 0.0), m.peak_rss)
        rate = f"{unit_count / t_local:,.0f} {unit}"
        self.rows.append([f"{who}: {label}", f"{t_local:.2f}", rate, f"{t_b2:.2f}",
                          f"{t_b2 - delay:.2f}", calls_text(d), f"{m.peak_rss:.0f}", f"{load.cores:.2f}"])  # fmt: skip
        print(f"{who} {label}: local {t_local:.2f} s, in B2 {t_b2:.2f} s; load {load_average()}",
              flush=True)  # fmt: skip

    def wait_listed(self, bucket_id: str, prefix: str, expect: int, timeout: float = 600) -> float:
        """Poll B2's listing until it holds ``expect`` files (the server counts an upload when
        it starts, so the counters alone cannot say it is done); returns time.monotonic()."""
        deadline = time.monotonic() + timeout
        while True:
            held = self.s.run(lambda c: names_in_b2(c, bucket_id, prefix))
            if len(held) == expect:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"B2 holds {len(held)} files under {prefix!r}, not {expect}")
            time.sleep(0.05)

    def all(self, who: str, options: dict[str, str], delay: float) -> None:
        size = self.args.size_mib * MiB
        only = self.args.only
        if "seq" in only:
            self.workload(who, f"write {self.args.size_mib} MiB", options,
                          lambda p: copy_in(self.source, p / "big.bin"), "big.bin", 1, 0, delay,
                          size // 1_000_000, "MB/s")  # fmt: skip
        if "untar" in only:
            self.workload(who, f"tar xf ({self.tar_files} files)", options,
                          lambda p: subprocess.run(["tar", "xf", str(self.tarball), "-C", str(p)],
                                                   check=True),
                          "stdlib/", self.tar_files, self.tar_dirs, delay, self.tar_files,
                          "files/s")  # fmt: skip
        if "small" in only:
            n = self.args.small
            self.workload(who, f"{n} x 1 KiB creates", options,
                          lambda p: small_files(p / "small", n), "small/", n, 1, delay, n,
                          "files/s")  # fmt: skip


def parse_o(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item) if text else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the sequential write")
    ap.add_argument("--small", type=int, default=1000, help="number of 1 KiB files created")
    ap.add_argument("-o", dest="options", default="", help="b2fs mount options (-o form)")
    ap.add_argument("--no-rclone", action="store_true", help="skip the rclone runs")
    ap.add_argument("--only", default="seq,untar,small", help="workloads: seq,untar,small")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="py-spy every b2fs workload into DIR (slows them down)")  # fmt: skip
    ap.add_argument("--quiet", type=float, default=None, metavar="CORES",
                    help="before each workload, wait until other work uses under CORES")  # fmt: skip
    ap.add_argument("--quiet-timeout", type=float, default=300, help="longest such wait (s)")
    ap.add_argument("--tmp", default=None, help="directory for temp files (default: $TMPDIR)")
    args = ap.parse_args()
    size = args.size_mib * MiB
    options = parse_o(args.options)
    delay = float(options.get("writeback_delay", 5.0))

    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="b2fs-bench-write-", dir=args.tmp) as tmp, \
            Session(Path(tmp)) as s:  # fmt: skip
        print(f"load average at start: {load_average()}", flush=True)
        source = Path(tmp) / "big.bin"
        random_file(source, size)
        tarball, tar_files, tar_bytes, tar_dirs = stdlib_tarball(Path(tmp))
        _, bucket_id = s.new_bucket()
        wait_for_quiet(s.pids, args.quiet, args.quiet_timeout)
        with OtherLoad(s.pids) as direct_load:
            before = s.counters()
            t = time.monotonic()
            s.run(lambda c: c.upload_file(bucket_id, "big.bin", source))
            direct = time.monotonic() - t
            direct_calls = delta(before, s.counters())
        r = Runner(s, args, source, tarball, tar_files, tar_dirs)
        r.all("b2fs", options, delay)
        if not args.no_rclone:
            r.all("rclone", {}, 5.0)
        load_end = load_average()

    opts = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    print(f"\nb2fs mount write benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"b2fs options: {opts}; load average at the end: {load_end}")  # fmt: skip
    print(f"tarball: {tar_files} files, {tar_dirs} directories, {tar_bytes / 1e6:.0f} MB")
    print_table("Direct upload by the b2 client (same run)",
                ["upload", "s", "MB/s", "API calls = cost", "other load"],
                [[f"{args.size_mib} MiB, upload_file", f"{direct:.2f}", f"{size / direct / 1e6:,.0f}",
                  calls_text(direct_calls), f"{direct_load.cores:.2f}"]])  # fmt: skip
    print_table(
        "Writes through the mount (seconds from the first write)",
        [
            "workload",
            "close s",
            "rate",
            "in B2 s",
            "minus delay",
            "API calls by class = cost",
            "RSS MiB",
            "other load",
        ],
        r.rows,
    )
    for row in r.rows:
        if row[0].endswith(f"write {args.size_mib} MiB"):
            t_close, t_b2, t_up = float(row[1]), float(row[3]), float(row[4])
            upload = t_up - t_close  # from the end of the delay after close to B2 holding it
            print(f"{row[0]}: in B2 after {t_b2:.1f} s = {direct / t_b2:.2f} x the direct upload's "
                  f"speed; {direct / t_up:.2f} x without the write-back delay; the upload alone "
                  f"took {upload:.2f} s = {size / upload / 1e6:,.0f} MB/s = {direct / upload:.2f} x "
                  "the direct upload")  # fmt: skip
    print("Peak RSS of the mount process (MiB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in r.rss.items()))  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: every mount and process is gone
        sys.exit(
            f"interrupted ({e.args[0] if e.args else 'SIGINT'}); mounts and processes cleaned up"
        )
