"""Shared pieces of the mount benchmarks: a local B2 server, b2fs and rclone mounts, counters.

Used by ``bench/mount_read.py`` and ``bench/mount_write.py`` (not a benchmark
itself).  ``Session`` owns every process a benchmark starts: the local server
(``b2fs.emulator.process.LocalServer``), ``b2fs mount -f`` processes and
``rclone mount`` processes; leaving its ``with`` block (normally, on an
exception, on Ctrl-C or on SIGTERM/SIGHUP, which are turned into
``KeyboardInterrupt``) unmounts and ends each of them by pid.  Mounts report
their peak RSS (``VmHWM``) and whether their upload queue is empty (b2fs: the
``user.b2fs.status`` xattr; rclone: ``vfs/stats`` of its remote control).
API calls are read from the server's counters, never from the clients.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from b2fs.b2 import B2Client
from b2fs.emulator.process import LocalServer

T = TypeVar("T")
MiB = 1 << 20
GiB = 1 << 30
CLASSES = ("A", "B", "C")


# -- processes and mounts ------------------------------------------------------------------


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, in MiB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mount:
    """One FUSE mount process that we started; ``stop()`` unmounts and ends it by pid."""

    kind = "?"

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path = path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Mount:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_mounted(self.path):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} mount exited:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} mount did not come up in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def rss(self) -> float:
        """Peak RSS so far (kept after the process ends)."""
        if self.proc is not None:
            self.peak_rss = max(self.peak_rss, peak_rss_mib(self.proc.pid))
        return self.peak_rss

    def pending_uploads(self) -> int:
        raise NotImplementedError

    def wait_uploaded(self, done: Callable[[], bool] = lambda: True, timeout: float = 3600.0,
                      poll: float = 0.25) -> float:  # fmt: skip
        """Block until the upload queue is empty and ``done()``; returns time.monotonic() then.

        ``done`` guards against the kernel's asynchronous RELEASE: right after ``close`` a
        mount may not have queued the file yet (rclone queues it at release).  Not polled
        faster: b2fs builds its status (every pending file, as JSON) on each read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending_uploads() == 0 and done():  # b2fs's -1: too many to say
                return time.monotonic()
            time.sleep(poll)
        raise TimeoutError(f"{self.kind}: uploads still pending after {timeout}s")

    def stop(self, timeout: float = 600.0) -> None:
        """Unmount (fusermount3 -u, as a user would) and wait for the process; then by pid."""
        proc = self.proc
        if proc is None:
            return
        self.rss()
        if is_mounted(self.path):
            for _ in range(100):
                r = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True)
                if r.returncode == 0 or not is_mounted(self.path):
                    break
                time.sleep(0.1)  # EBUSY: a file is still open for a moment
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            self.proc = None
            if is_mounted(self.path):
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)

    def kill(self) -> None:
        """The fast way out (Ctrl-C): SIGKILL by pid, then a lazy unmount."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)


class B2fsMount(Mount):
    """``python -m b2fs mount b2://BUCKET MNT -f --cache-dir DIR -o ...`` as the tests run it."""

    kind = "b2fs"

    def __init__(self, server: LocalServer, bucket: str, root: Path, options: dict[str, Any],
                 cache_dir: Path | None = None, proposals: str = "") -> None:  # fmt: skip
        super().__init__(root / "mnt", root / "mount.log")
        self.server = server
        self.bucket = bucket
        self.root = root
        self.cache_dir = cache_dir or root / "cache"
        self.options = options
        self.proposals = proposals

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(B2_APPLICATION_KEY_ID=self.server.key_id, B2_APPLICATION_KEY=self.server.key,
                   B2_ENVIRONMENT=self.server.realm, HOME=str(self.root))  # fmt: skip
        return env

    def command(self) -> list[str]:
        """``-m b2fs``, or bench/proposals.py with the patches in ``proposals``."""
        start = ["-m", "b2fs"]
        if self.proposals:
            start = [str(Path(__file__).with_name("proposals.py")), self.proposals, "--"]
        cmd = [sys.executable, *start, "mount", f"b2://{self.bucket}/", str(self.path),
               "-f", "--cache-dir", str(self.cache_dir)]  # fmt: skip
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return cmd + (["-o", opts] if opts else [])

    def status(self) -> dict[str, Any]:
        return json.loads(os.getxattr(self.path, "user.b2fs.status"))

    def pending_uploads(self) -> int:
        try:
            return len(self.status().get("writeback", {}).get("pending", []))
        except OSError as e:
            if e.errno == errno.E2BIG:  # the status of ~500+ pending files exceeds an xattr
                return -1
            if e.errno == errno.EOPNOTSUPP:  # proposals.py's noxattr: the counters must say
                return 0
            raise


class RcloneMount(Mount):
    """``rclone mount emu:BUCKET MNT`` on the local server (B2 API v1), with its remote
    control on a loopback port so that the upload queue can be watched."""

    kind = "rclone"

    def __init__(self, server: LocalServer, bucket: str, root: Path, flags: list[str],
                 cache_dir: Path | None = None) -> None:  # fmt: skip
        super().__init__(root / "mnt", root / "mount.log")
        self.server = server
        self.bucket = bucket
        self.root = root
        self.cache_dir = cache_dir or root / "cache"
        self.flags = flags
        self.rc_port = free_port()

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                "RCLONE_CONFIG": str(self.root / "none.conf"), "RCLONE_CONFIG_EMU_TYPE": "b2",
                "RCLONE_CONFIG_EMU_ACCOUNT": self.server.key_id,
                "RCLONE_CONFIG_EMU_KEY": self.server.key,
                "RCLONE_CONFIG_EMU_ENDPOINT": self.server.realm}  # fmt: skip

    def command(self) -> list[str]:
        return ["rclone", "mount", f"emu:{self.bucket}", str(self.path),
                "--cache-dir", str(self.cache_dir), "--rc", "--rc-no-auth",
                "--rc-addr", f"127.0.0.1:{self.rc_port}", *self.flags]  # fmt: skip

    def rc(self, command: str) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.rc_port}/{command}", data=b"{}",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def pending_uploads(self) -> int:
        cache = self.rc("vfs/stats").get("diskCache", {})
        return int(cache.get("uploadsInProgress", 0)) + int(cache.get("uploadsQueued", 0))


# -- the session: server, client, every process --------------------------------------------


class Session:
    """A temp dir, a fresh local B2 server, and every mount started through it."""

    def __init__(self, tmp: Path, min_part_size: int | None = None) -> None:
        self.tmp = tmp
        self.server = LocalServer(tmp / "b2data", min_part_size=min_part_size)
        self.mounts: list[Mount] = []
        self._n = 0

    def __enter__(self) -> Session:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        interrupted = exc[0] is not None and issubclass(exc[0], KeyboardInterrupt)  # type: ignore[arg-type]
        try:
            for m in reversed(self.mounts):
                m.kill() if interrupted else m.stop()
        finally:
            self.server.stop()

    def root(self, label: str) -> Path:
        self._n += 1
        path = self.tmp / f"{self._n:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def b2fs(self, bucket: str, options: dict[str, Any], cache_dir: Path | None = None,
             label: str = "b2fs", proposals: str = "") -> B2fsMount:  # fmt: skip
        m = B2fsMount(self.server, bucket, self.root(label), options, cache_dir, proposals)
        self.mounts.append(m)
        return m.start()  # type: ignore[return-value]

    def rclone(self, bucket: str, flags: list[str], cache_dir: Path | None = None,
               label: str = "rclone") -> RcloneMount:  # fmt: skip
        m = RcloneMount(self.server, bucket, self.root(label), flags, cache_dir)
        self.mounts.append(m)
        return m.start()  # type: ignore[return-value]

    def unmount(self, m: Mount) -> float:
        """Unmount (waiting for its uploads) and return its peak RSS in MiB."""
        m.stop()
        return m.peak_rss

    def run(self, fn: Callable[[B2Client], Awaitable[T]]) -> T:
        """Run ``fn(client)`` with a B2 client on this server, in a trio loop of its own."""

        async def main() -> T:
            async with B2Client(self.server.key_id, self.server.key, realm=self.server.realm) as c:
                return await fn(c)

        return trio.run(main)

    def new_bucket(self) -> tuple[str, str]:
        name = f"bench-{uuid.uuid4().hex[:12]}"
        bucket = self.run(lambda c: c.create_bucket(name, "allPrivate"))
        return name, bucket.bucket_id

    def counters(self) -> dict[str, Any]:
        return self.server.counters()

    def pids(self) -> list[int]:
        """This process, the server and every live mount: what is *not* other work."""
        live = [m.proc.pid for m in self.mounts if m.proc is not None]
        return [os.getpid(), self.server.pid, *live]


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """API calls (by class and by name) and bytes between two counter readings."""
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    return {
        "classes": {c: after["classes"].get(c, 0) - before["classes"].get(c, 0) for c in CLASSES},
        "calls": {k: v for k, v in sorted(calls.items()) if v},
        "bytes_in": after["bytes_in"] - before["bytes_in"],
        "bytes_out": after["bytes_out"] - before["bytes_out"],
    }


def uploads_done(counters: dict[str, Any]) -> int:
    """Files completed in B2 according to the server: simple uploads plus finished large files."""
    calls = counters["calls"]
    return calls.get("b2_upload_file", 0) + calls.get("b2_finish_large_file", 0)


def calls_text(d: dict[str, Any], top: int = 4) -> str:
    """'A 12 / B 3 / C 40' plus the busiest call names."""
    cls = " / ".join(f"{c} {d['classes'][c]}" for c in CLASSES)
    busiest = sorted(d["calls"].items(), key=lambda kv: -kv[1])[:top]
    names = ", ".join(f"{k.removeprefix('b2_')} {v}" for k, v in busiest)
    return f"{cls}  ({names})" if names else cls


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end a benchmark like Ctrl-C does: through every ``finally``."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def drop_file_cache(path: Path) -> None:
    """Evict one local file from the page cache (POSIX_FADV_DONTNEED), not the whole machine's."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def read_through(path: Path, chunk: int = MiB) -> int:
    """Read a file start to end as ``cat`` would (one buffer, reused); returns bytes read."""
    buf = bytearray(chunk)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Profile:
    """``py-spy record`` of a mount process while a workload runs (``--idle``: time the trio
    loop waits shows as ``EpollIOManager.get_events``); writes raw stacks and a summary."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "-p", str(self.pid), "-r", str(self.rate), "--idle",
               "-f", "raw", "-o", str(self.out.with_suffix(".stacks"))]  # fmt: skip
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        stacks = self.out.with_suffix(".stacks")
        if stacks.exists():
            self.out.with_suffix(".txt").write_text(summarize(stacks))


def summarize(stacks: Path, top: int = 30) -> str:
    """Self and inclusive shares of the frames in py-spy's raw output: the main thread (the trio
    loop: its idle time is ``EpollIOManager.get_events``), then any worker threads."""
    main: list[tuple[list[str], int]] = []
    workers: list[tuple[list[str], int]] = []
    for line in stacks.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        (workers if frames[0].startswith("Thread._bootstrap") else main).append((frames, int(n)))
    out = []
    for title, samples, k in (("main thread", main, top), ("worker threads", workers, 8)):
        total = sum(n for _, n in samples)
        if not total:
            continue
        own, incl = Counter[str](), Counter[str]()
        for frames, n in samples:
            own[frames[-1]] += n
            for frame in set(frames):
                incl[frame] += n
        out += [f"== {title}: {total} samples", "-- self"]
        out += [f"{100 * v / total:5.1f}% {f}" for f, v in own.most_common(k)]
        out += ["-- inclusive"] + [f"{100 * v / total:5.1f}% {f}" for f, v in incl.most_common(k)]
    return "\n".join(out) + "\n"


@contextmanager
def profiled(directory: str | None, mount: Mount, label: str) -> Iterator[None]:
    """Profile ``mount`` (b2fs only) into ``directory`` while the block runs, if asked."""
    if directory is None or mount.kind != "b2fs" or mount.proc is None:
        yield
        return
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    with Profile(mount.pid, Path(directory) / slug):
        yield


# -- the rest of the machine -----------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal


def _own_ticks(pids: list[int]) -> int:
    """CPU used by these processes, and by the children they have waited for (tar, ls...)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total


class OtherLoad:
    """Cores kept busy by other work (not this benchmark, its server or its mounts) while the
    block runs: the machine is shared, and this says how much a figure was disturbed."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.cores = 0.0

    def __enter__(self) -> OtherLoad:
        self._pids = self.pids()
        self._t, self._busy, self._own = time.monotonic(), _busy_ticks(), _own_ticks(self._pids)
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self._t
        others = (_busy_ticks() - self._busy) - (_own_ticks(self._pids) - self._own)
        self.cores = max(0.0, others / TICKS / max(elapsed, 1e-6))


def wait_for_quiet(pids: Callable[[], list[int]], cores: float | None, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until other work uses under ``cores`` over 3 s; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        with OtherLoad(pids) as load:
            time.sleep(3)
        if cores is None or load.cores < cores or time.monotonic() > deadline:
            return load.cores
