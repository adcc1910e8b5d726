"""The processes of the mount benchmarks: a local B2 server, b2fs and rclone mounts.

Used by ``bench/mount_read.py`` and ``bench/mount_write.py`` (not a benchmark
itself; ``bench/measure.py`` holds what they read off and print).  ``Session``
owns every process a benchmark starts: the local server
(``b2fs.emulator.process.LocalServer``), ``b2fs mount -f`` processes and
``rclone mount`` processes, and CPU burners (``Session.busy``); leaving its ``with`` block (normally, on an
exception, or on Ctrl-C, SIGTERM or SIGHUP, which ``measure.signals_as_interrupt``
turns into ``KeyboardInterrupt``) unmounts and ends each of them by pid.  Mounts
report their peak RSS (``VmHWM``), their CPU time (``/proc/PID/stat``) and whether their
upload queue is empty (b2fs: its control socket, ``b2fs.mount.control.read_status``, as
``b2fs status`` reads it; rclone: ``vfs/stats`` of its remote control).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from b2fs.b2 import B2Client
from b2fs.emulator.process import LocalServer
from b2fs.mount.control import read_status

T = TypeVar("T")


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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a live process has used, in seconds; 0 when
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime stime


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

    def cpu(self) -> float:
        """CPU seconds (user + system) the mount process has used so far."""
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

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
            if self.pending_uploads() == 0 and done():
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
                 cache_dir: Path | None = None) -> None:  # fmt: skip
        super().__init__(root / "mnt", root / "mount.log")
        self.server = server
        self.bucket = bucket
        self.root = root
        self.cache_dir = cache_dir or root / "cache"
        self.options = options

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(B2_APPLICATION_KEY_ID=self.server.key_id, B2_APPLICATION_KEY=self.server.key,
                   B2_ENVIRONMENT=self.server.realm, HOME=str(self.root))  # fmt: skip
        return env

    def command(self) -> list[str]:
        python = os.environ.get("B2FS_BENCH_MOUNT_PYTHON", sys.executable)  # another checkout's
        cmd = [python, "-m", "b2fs", "mount", f"b2://{self.bucket}/", str(self.path),
               "-f", "--cache-dir", str(self.cache_dir)]  # fmt: skip
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return cmd + (["-o", opts] if opts else [])

    def status(self) -> dict[str, Any]:
        """What ``b2fs status`` shows: cache, reader and write-back counters, pending files."""
        return read_status(str(self.path))

    def pending_uploads(self) -> int:
        return len(self.status().get("writeback", {}).get("pending", []))

    def kernel_readahead(self) -> str:
        """The kernel's read-ahead on this mount (``-o kernel_readahead`` sets it when root)."""
        dev = os.stat(self.path).st_dev
        path = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        try:
            return f"{path.read_text().strip()} KiB"
        except OSError:
            return "?"


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


def _niceness_zero() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:  # not root and started niced: keep the niceness we have
        pass


class Session:
    """A temp dir, a fresh local B2 server, every mount started through it, and the CPU
    burners of ``busy()``."""

    def __init__(self, tmp: Path, min_part_size: int | None = None) -> None:
        self.tmp = tmp
        self.server = LocalServer(tmp / "b2data", min_part_size=min_part_size)
        self.mounts: list[Mount] = []
        self.burners: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def __enter__(self) -> Session:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        interrupted = exc[0] is not None and issubclass(exc[0], KeyboardInterrupt)  # type: ignore[arg-type]
        try:
            self.idle()
            for m in reversed(self.mounts):
                m.kill() if interrupted else m.stop()
        finally:
            self.server.stop()

    def busy(self, n: int) -> list[int]:
        """Start ``n`` processes that each burn a core (a tight loop, niceness 0), so that
        the workloads run on a busy machine; ``idle()`` (or leaving the session) ends them."""
        for _ in range(n):
            self.burners.append(subprocess.Popen(
                [sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_niceness_zero))  # fmt: skip
        return [p.pid for p in self.burners]

    def idle(self) -> None:
        """End the burners (SIGKILL by pid)."""
        while self.burners:
            p = self.burners.pop()
            if p.poll() is None:
                p.kill()
            p.wait()

    def root(self, label: str) -> Path:
        self._n += 1
        path = self.tmp / f"{self._n:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def b2fs(self, bucket: str, options: dict[str, Any], cache_dir: Path | None = None,
             label: str = "b2fs") -> B2fsMount:  # fmt: skip
        m = B2fsMount(self.server, bucket, self.root(label), options, cache_dir)
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
        """This process, the server and every live mount: what is *not* other work (the
        burners of ``busy()`` are: they stand for it)."""
        live = [m.proc.pid for m in self.mounts if m.proc is not None]
        return [os.getpid(), self.server.pid, *live]

    def pids_and_burners(self) -> list[int]:
        """``pids()`` and the burners: what ``--quiet`` waits for others than."""
        return [*self.pids(), *(p.pid for p in self.burners)]
