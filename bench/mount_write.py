"""Write benchmark of the mount: b2fs against ``rclone mount`` in one run, on the workloads by
which the mount's writes are judged (issue 11), each until B2 holds every byte.

    .venv/bin/python bench/mount_write.py [--only seq,untar,gen,git,random,readback,small]
        [--size-mib 1024] [--gen-files 7200] [--seed 1] [--random-ops 10000] [--small 1000]
        [--busy N] [--no-rclone] [-o writeback_delay=5,...] [--quiet CORES] [--profile DIR]

One run: a fresh local B2 server; the b2 client's direct upload of the same random file
(``B2Client.upload_file``: a large file, parts of the account's recommended size, 4 in
parallel) is the baseline; git's steps and the generated tree's untar on the local disk are
the reference.  Then on b2fs (``-o`` options; default: the mount's defaults,
``writeback_delay`` 5 s) and rclone (flags below; ``--vfs-write-back`` 5 s), each workload
on a fresh bucket and mount with an empty cache:

- ``seq``: sequential write of the file (``cp``-like, 1 MiB writes): seconds until ``close``
  returns, and until B2 holds it (the mount's queue is empty -- b2fs: ``b2fs status``, from
  its control socket; rclone: ``vfs/stats`` -- and then B2's listing shows the file);
- ``untar``: ``tar xf`` of Python's standard library (as ``tests/mount/test_write.py``
  builds it): seconds, files per second, seconds until B2 holds every file;
- ``gen``: ``tar xf`` of a generated tree shaped like a source repository (``gentree.py``:
  7,200 files in 600 directories up to 8 levels deep, most 1-20 KiB, a long tail, a few of
  several MiB, some empty; the same bytes from the same ``--seed``), as ``untar``;
- ``git``: the generated tree untarred (not timed; B2 holds it before git starts), then
  ``git init``, ``git add -A``, ``git commit`` (seconds of each, until B2 holds ``.git``) and
  then ``git status`` (must find the tree clean).  git runs with a config of its own:
  automatic gc and maintenance off (they would fork background work on the mount);
- ``random``: a seeded sequence of ``--random-ops`` operations on one file of up to 256 KiB
  (``pwrite`` of 1 B-16 KiB at random offsets, ``pread`` checked against a model,
  ``ftruncate``), then the same with close/reopen every 10 operations (two rows): ops/s; B2
  must then hold the model's bytes;
- ``readback``: right after the ``gen`` (and ``untar``) files are in B2, through the same
  mount (not remounted): ``tar cf - . | md5sum`` of the tree, and the downloads it cost;
- ``small``: ``--small`` files of 1 KiB created one after the other (open, write, close).

Each row: the program's seconds, its rate, seconds until B2 holds everything (and that minus
the write-back delay), the mount process's CPU seconds (utime + stime from
``/proc/PID/stat``, every thread: to the program's end / until B2 holds it) and CPU
milliseconds per file written, downloads (``b2_download_file_by_id`` + ``_by_name``), API
calls by class from the server's counters with their cost, the mount's peak RSS so far
(VmHWM) and "other load": cores other work on the (shared) machine kept busy meanwhile.
``--busy N`` runs N CPU burners (a tight loop each, niceness 0) through every workload, so
that the figures are those of a busy machine (their cores show as other load); ``--quiet
CORES`` waits before each workload until other work (the burners aside) uses under CORES.
``--profile DIR`` records each b2fs workload with py-spy (raw stacks and a summary; the
times are then longer).  Every mount and process is ended (by pid) on exit, Ctrl-C, SIGTERM
or SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gentree import generate, write_tarball
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
from write_workloads import (
    copy_in,
    git_commit,
    git_env,
    git_status,
    random_ops,
    small_files,
    tar_md5,
    tree_counts,
    untar,
)

from b2fs.b2 import B2Client

# rclone with its write cache (the only mode that takes random writes, as b2fs does), the
# same write-back delay and upload parallelism as b2fs's defaults, and b2fs's metadata TTLs.
RCLONE_FLAGS = ["--vfs-cache-mode", "full", "--vfs-write-back", "5s", "--transfers", "4",
                "--dir-cache-time", "60s", "--attr-timeout", "1s", "--poll-interval", "0"]  # fmt: skip
WORKLOADS = ("seq", "untar", "gen", "git", "random", "readback", "small")
DOWNLOADS = ("b2_download_file_by_id", "b2_download_file_by_name")
REOPEN_EVERY = 10
HEADER = ["workload", "s", "rate", "in B2 s", "minus delay", "mount CPU s", "CPU ms/file",
          "downloads", "API calls by class = cost", "RSS MiB", "other load"]  # fmt: skip


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


@dataclass
class Tarball:
    """A tree to untar: its tar, top directory, files, directories and bytes."""

    path: Path
    top: str
    files: int
    dirs: int
    bytes: int


@dataclass
class GitRef:
    """git's steps on the local disk: their seconds, and the files and directories the
    repository holds after them (what B2 must hold after the same steps on a mount)."""

    laps: dict[str, float]
    status: float
    git_files: int
    git_dirs: int


async def names_in_b2(c: B2Client, bucket_id: str, prefix: str) -> dict[str, int]:
    """Files under ``prefix`` in B2 (directory markers, which only b2fs writes, left out)."""
    return {f.file_name: f.size async for f in c.list_file_names(bucket_id, prefix=prefix)
            if not f.file_name.endswith("/.bzEmpty")}  # fmt: skip


@dataclass
class Phase:
    """What one measured block cost: seconds to the program's end and until B2 held it, the
    mount's CPU seconds for both, API calls and other load."""

    seconds: float = 0.0
    in_b2: float | None = None
    cpu_local: float = 0.0
    cpu_all: float = 0.0
    calls: dict[str, Any] = field(default_factory=dict)
    load: float = 0.0
    laps: dict[str, float] = field(default_factory=dict)

    @property
    def downloads(self) -> int:
        return sum(self.calls["calls"].get(k, 0) for k in DOWNLOADS)


class Runner:
    def __init__(self, s: Session, args: argparse.Namespace, source: Path,
                 tarballs: dict[str, Tarball], git_ref: GitRef | None) -> None:  # fmt: skip
        self.s = s
        self.args = args
        self.source = source
        self.tarballs = tarballs
        self.git_ref = git_ref
        self.rows: list[list[str]] = []
        self.rss: dict[str, float] = {}
        self.notes: list[str] = []

    # -- mounts and measuring -----------------------------------------------------------

    def mount(self, who: str, options: dict[str, str]) -> tuple[Mount, str, str]:
        """A fresh bucket and a mount of it: the mount, the bucket's name and id."""
        bucket, bucket_id = self.s.new_bucket()
        if who == "rclone":
            return self.s.rclone(bucket, RCLONE_FLAGS), bucket, bucket_id
        return self.s.b2fs(bucket, options), bucket, bucket_id

    def unmount(self, who: str, m: Mount) -> None:
        self.s.unmount(m)
        self.rss[who] = max(self.rss.get(who, 0.0), m.peak_rss)

    def quiet(self) -> None:
        wait_for_quiet(self.s.pids_and_burners, self.args.quiet, self.args.quiet_timeout)

    def measure(self, m: Mount, label: str, run: Callable[[Path], object],
                bucket_id: str = "", prefix: str = "", listed: int = 0,
                uploads: int = 0) -> Phase:  # fmt: skip
        """Run ``run(mount path)``; with ``listed``, then wait until the mount's upload queue
        is empty, the server has seen ``uploads`` more uploads (the kernel's RELEASE comes
        after ``close`` returns: until then the queue may look empty) and B2's listing under
        ``prefix`` holds ``listed`` files.  A dict ``run`` returns is kept as the laps."""
        self.quiet()
        p = Phase()
        with profiled(self.args.profile, m, f"{m.kind} {label}"), OtherLoad(self.s.pids) as load:
            before, cpu0 = self.s.counters(), m.cpu()
            t0 = time.monotonic()
            out = run(m.path)
            p.seconds = time.monotonic() - t0
            p.cpu_local = m.cpu() - cpu0
            p.laps = out if isinstance(out, dict) else {}
            if listed:
                floor = uploads_done(before) + uploads
                m.wait_uploaded(lambda: uploads_done(self.s.counters()) >= floor)
            p.calls = delta(before, self.s.counters())  # the listings below are ours
            p.cpu_all = m.cpu() - cpu0
            if listed:
                p.in_b2 = self.wait_listed(bucket_id, prefix, listed) - t0
        p.load = load.cores
        return p

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

    def row(self, m: Mount, label: str, p: Phase, rate: str, files: int = 0) -> None:
        delay = self.delay(m)
        b2 = "" if p.in_b2 is None else f"{p.in_b2:.2f}"
        minus = "" if p.in_b2 is None else f"{p.in_b2 - delay:.2f}"
        cpu = f"{p.cpu_all:.2f}" if p.in_b2 is None else f"{p.cpu_local:.2f} / {p.cpu_all:.2f}"
        per_file = f"{p.cpu_all * 1000 / files:.2f}" if files else ""
        self.rows.append([f"{m.kind}: {label}", f"{p.seconds:.2f}", rate, b2, minus, cpu, per_file,
                          f"{p.downloads:,}", calls_text(p.calls), f"{m.rss():.0f}",
                          f"{p.load:.2f}"])  # fmt: skip
        print(f"{m.kind} {label}: {p.seconds:.2f} s, in B2 {b2 or '-'} s, CPU {cpu} s, "
              f"downloads {p.downloads}; load {load_average()}", flush=True)  # fmt: skip

    def delay(self, m: Mount) -> float:
        if m.kind == "rclone":
            return 5.0
        return float(self.args.b2fs_options.get("writeback_delay", 5.0))

    # -- workloads ----------------------------------------------------------------------

    def files_workload(self, who: str, options: dict[str, str], label: str,
                       run: Callable[[Path], None], prefix: str, files: int, dirs: int,
                       rate: Callable[[Phase], str],
                       after: Callable[[Mount], None] | None = None) -> None:  # fmt: skip
        """Fresh bucket and mount; run; until B2 holds the ``files`` files (b2fs also uploads
        a marker per directory made: rclone writes none); one row; ``after`` on the same
        mount."""
        m, _, bucket_id = self.mount(who, options)
        uploads = files + (dirs if m.kind == "b2fs" else 0)
        p = self.measure(m, label, run, bucket_id, prefix, files, uploads)
        self.row(m, label, p, rate(p), files if files > 1 else 0)
        if after is not None:
            after(m)
        self.unmount(who, m)

    def tar_workload(self, who: str, options: dict[str, str], kind: str) -> None:
        t = self.tarballs[kind]
        label = f"tar xf {kind} ({t.files:,} files, {t.dirs} dirs, {t.bytes / 1e6:.0f} MB)"
        after = self.readback(t) if "readback" in self.args.only else None
        self.files_workload(who, options, label, lambda p: untar(t.path, p), f"{t.top}/",
                            t.files, t.dirs, lambda p: f"{t.files / p.seconds:,.0f} files/s",
                            after)  # fmt: skip

    def readback(self, t: Tarball) -> Callable[[Mount], None]:
        def run(m: Mount) -> None:
            p = self.measure(m, f"readback {t.top}", lambda path: tar_md5(path / t.top))
            self.row(m, f"  tar cf - . | md5sum of {t.top}, right after", p,
                     f"{t.bytes / p.seconds / 1e6:,.0f} MB/s")  # fmt: skip

        return run

    def git(self, who: str, options: dict[str, str]) -> None:
        t, ref = self.tarballs["gen"], self.git_ref
        assert ref is not None
        env = git_env(self.s.tmp / f"git-home-{who}")
        m, _, bucket_id = self.mount(who, options)
        prefix = f"{t.top}/"
        uploads = t.files + (t.dirs if m.kind == "b2fs" else 0)
        p = self.measure(
            m, "git: untar", lambda path: untar(t.path, path), bucket_id, prefix, t.files, uploads
        )
        print(f"{who} git: the tree untarred in {p.seconds:.2f} s, in B2 after {p.in_b2:.2f} s",
              flush=True)  # fmt: skip
        uploads = ref.git_files + (ref.git_dirs + 1 if m.kind == "b2fs" else 0)
        p = self.measure(m, "git", lambda path: git_commit(path / t.top, env), bucket_id, prefix,
                         t.files + ref.git_files, uploads)  # fmt: skip
        laps = " + ".join(f"{k} {v:.2f}" for k, v in p.laps.items())
        self.row(m, f"git init, add -A, commit ({ref.git_files:,} files in .git)", p,
                 f"{laps} s", ref.git_files)  # fmt: skip
        p = self.measure(m, "git status", lambda path: git_status(path / t.top, env))
        self.row(m, "  git status, then", p, "")
        self.unmount(who, m)

    def random(self, who: str, options: dict[str, str], reopen: int) -> None:
        n, seed = self.args.random_ops, self.args.seed
        label = f"random ops ({n:,})" + (f", close/reopen every {reopen}" if reopen else "")
        m, bucket, bucket_id = self.mount(who, options)
        final: list[bytes] = []

        def run(path: Path) -> None:
            final.append(random_ops(path / "random.bin", n, seed, reopen))

        p = self.measure(m, label, run, bucket_id, "random.bin", 1, 1)
        self.row(m, label, p, f"{n / p.seconds:,.0f} ops/s")
        got = self.s.run(lambda c: c.download_bytes(bucket_name=bucket, file_name="random.bin"))
        if got != final[0]:
            self.notes.append(f"{who} {label}: B2 holds {len(got)} bytes that differ from the "
                              f"{len(final[0])} written")  # fmt: skip
        self.unmount(who, m)

    def all(self, who: str, options: dict[str, str]) -> None:
        only = self.args.only
        if "seq" in only:
            size = self.args.size_mib * MiB
            self.files_workload(who, options, f"write {self.args.size_mib} MiB",
                                lambda p: copy_in(self.source, p / "big.bin"), "big.bin", 1, 0,
                                lambda p: f"{size / p.seconds / 1e6:,.0f} MB/s")  # fmt: skip
        if "untar" in only:
            self.tar_workload(who, options, "stdlib")
        if "gen" in only:
            self.tar_workload(who, options, "gen")
        if "git" in only:
            self.git(who, options)
        if "random" in only:
            self.random(who, options, 0)
            self.random(who, options, REOPEN_EVERY)
        if "small" in only:
            n = self.args.small
            self.files_workload(who, options, f"{n} x 1 KiB creates",
                                lambda p: small_files(p / "small", n), "small/", n, 1,
                                lambda p: f"{n / p.seconds:,.0f} files/s")  # fmt: skip


# -- setup and the local reference -----------------------------------------------------------


def local_reference(
    tmp: Path, gen: Tarball, want_git: bool
) -> tuple[list[list[str]], GitRef | None]:
    """The generated tree's untar and git's steps on the local disk (this machine's floor)."""
    rows = []
    where = tmp / "local-ref"
    where.mkdir()
    t = time.monotonic()
    untar(gen.path, where)
    took = time.monotonic() - t
    rows.append([f"tar xf gen ({gen.files:,} files)", f"{took:.2f}",
                 f"{gen.files / took:,.0f} files/s"])  # fmt: skip
    ref = None
    if want_git:
        env = git_env(tmp / "git-home-local")
        laps = git_commit(where / gen.top, env)
        files, dirs = tree_counts(where / gen.top / ".git")
        t = time.monotonic()
        git_status(where / gen.top, env)
        status = time.monotonic() - t
        ref = GitRef(laps, status, files, dirs)
        rows.append([f"git init, add -A, commit ({files:,} files in .git)",
                     f"{sum(laps.values()):.2f}",
                     " + ".join(f"{k} {v:.2f}" for k, v in laps.items()) + " s"])  # fmt: skip
        rows.append(["git status, then", f"{status:.2f}", ""])
    return rows, ref


def parse_o(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item) if text else {}


def parse_only(text: str) -> set[str]:
    only = {w.strip() for w in text.split(",") if w.strip()}
    unknown = only - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"--only: unknown workload(s) {', '.join(sorted(unknown))}; "
                         f"known: {','.join(WORKLOADS)}")  # fmt: skip
    if "readback" in only and not only & {"gen", "untar"}:
        only.add("gen")  # the read-back reads what a tree workload wrote
    return only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--only", default=",".join(WORKLOADS), help=f"workloads: {','.join(WORKLOADS)}")
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the sequential write")
    ap.add_argument("--gen-files", type=int, default=7200,
                    help="files of the generated tree (directories: one per 12 files)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated tree and ops")
    ap.add_argument("--random-ops", type=int, default=10000, help="operations of `random`")
    ap.add_argument("--small", type=int, default=1000, help="number of 1 KiB files created")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="N processes burning a core each during the workloads")  # fmt: skip
    ap.add_argument("-o", dest="options", default="", help="b2fs mount options (-o form)")
    ap.add_argument("--no-rclone", action="store_true", help="skip the rclone runs")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="py-spy every b2fs workload into DIR (slows them down)")  # fmt: skip
    ap.add_argument("--quiet", type=float, default=None, metavar="CORES",
                    help="before each workload, wait until other work uses under CORES")  # fmt: skip
    ap.add_argument("--quiet-timeout", type=float, default=300, help="longest such wait (s)")
    ap.add_argument("--tmp", default=None, help="directory for temp files (default: $TMPDIR)")
    args = ap.parse_args()
    args.only = parse_only(args.only)
    args.b2fs_options = options = parse_o(args.options)
    size = args.size_mib * MiB

    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="b2fs-bench-write-", dir=args.tmp) as tmp, \
            Session(Path(tmp)) as s:  # fmt: skip
        print(f"load average at start: {load_average()}", flush=True)
        tarballs: dict[str, Tarball] = {}
        if "untar" in args.only:
            path, files, nbytes, dirs = stdlib_tarball(Path(tmp))
            tarballs["stdlib"] = Tarball(path, "stdlib", files, dirs, nbytes)
        local_rows: list[list[str]] = []
        git_ref = None
        tree_text = ""
        if args.only & {"gen", "git"}:
            tree = generate(args.seed, args.gen_files, max(1, args.gen_files // 12))
            tree_text = tree.describe()
            print(f"generated tree: {tree_text}", flush=True)
            path = Path(tmp) / "gen.tar"
            write_tarball(tree, path)
            gen = tarballs["gen"] = Tarball(path, "repo", len(tree.files), len(tree.dirs),
                                            tree.bytes)  # fmt: skip
            local_rows, git_ref = local_reference(Path(tmp), gen, "git" in args.only)
        direct_rows = []
        if "seq" in args.only:
            source = Path(tmp) / "big.bin"
            random_file(source, size)
            _, bucket_id = s.new_bucket()
            wait_for_quiet(s.pids_and_burners, args.quiet, args.quiet_timeout)
            with OtherLoad(s.pids) as direct_load:
                before = s.counters()
                t = time.monotonic()
                s.run(lambda c: c.upload_file(bucket_id, "big.bin", source))
                direct = time.monotonic() - t
                direct_calls = delta(before, s.counters())
            direct_rows.append([f"{args.size_mib} MiB, upload_file", f"{direct:.2f}",
                                f"{size / direct / 1e6:,.0f}", calls_text(direct_calls),
                                f"{direct_load.cores:.2f}"])  # fmt: skip
        else:
            source = Path(tmp) / "none"
        if args.busy:
            pids = s.busy(args.busy)
            print(f"--busy {args.busy}: burners {', '.join(map(str, pids))}", flush=True)
        r = Runner(s, args, source, tarballs, git_ref)
        r.all("b2fs", options)
        if not args.no_rclone:
            r.all("rclone", {})
        s.idle()
        load_end = load_average()

    opts = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    print(f"\nb2fs mount write benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"b2fs options: {opts}; --busy {args.busy}; load average at the end: {load_end}")  # fmt: skip
    for t in tarballs.values():
        print(f"tarball {t.top}: {t.files:,} files, {t.dirs} directories, {t.bytes / 1e6:.0f} MB")
    if tree_text:
        print(f"generated tree: {tree_text}")
    if direct_rows:
        print_table("Direct upload by the b2 client (same run)",
                    ["upload", "s", "MB/s", "API calls = cost", "other load"], direct_rows)  # fmt: skip
    if local_rows:
        print_table("The local disk (same run, no burners)", ["workload", "s", "rate"], local_rows)
    print_table("Writes through the mount (seconds from the program's start; mount CPU s: to "
                "the program's end / until in B2)", HEADER, r.rows)  # fmt: skip
    for row in r.rows:
        if direct_rows and row[0].endswith(f"write {args.size_mib} MiB"):
            t_close, t_b2, t_up = float(row[1]), float(row[3]), float(row[4])
            upload = t_up - t_close  # from the end of the delay after close to B2 holding it
            print(f"{row[0]}: in B2 after {t_b2:.1f} s = {direct / t_b2:.2f} x the direct upload's "
                  f"speed; {direct / t_up:.2f} x without the write-back delay; the upload alone "
                  f"took {upload:.2f} s = {size / upload / 1e6:,.0f} MB/s = {direct / upload:.2f} x "
                  "the direct upload")  # fmt: skip
    for note in r.notes:
        print(f"NOTE: {note}")
    print("Peak RSS of the mount process (MiB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in r.rss.items()))  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP: every mount and process is gone
        sys.exit(
            f"interrupted ({e.args[0] if e.args else 'SIGINT'}); mounts and processes cleaned up"
        )
