"""What the mount benchmarks read off and print: API calls from the server's counters (and
their cost in dollars at B2's prices, ``b2fs.prices``), the load other work puts on the (shared) machine, py-spy profiles of a mount, tables, and the
files they read and write.

Neighbours: ``bench/mounts.py`` starts the server and the mounts; ``bench/mount_read.py``
and ``bench/mount_write.py`` use both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mounts import Mount

from b2fs.cost import dollars, estimate
from b2fs.prices import load_prices

MiB = 1 << 20
CLASSES = ("A", "B", "C")


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


def cost_text(d: dict[str, Any]) -> str:
    """What the calls and the bytes downloaded of a counter delta cost at B2's list prices
    (b2fs.prices: no daily free calls taken off, so workloads compare as they would at scale)."""
    return dollars(estimate(d["classes"], d["bytes_out"], prices=load_prices()).total)


def calls_text(d: dict[str, Any], top: int = 4) -> str:
    """'A 12 / B 3 / C 40 = $0.000172' (their cost with the egress) plus the busiest call names."""
    cls = " / ".join(f"{c} {d['classes'][c]}" for c in CLASSES) + f" = {cost_text(d)}"
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
    """Flush dirty pages to disk (so that the previous workload's gigabyte is not written back
    during the next one: b2fs fsyncs at every close), then wait (up to ``timeout`` s) until
    other work uses under ``cores`` over 3 s; returns that load."""
    os.sync()
    deadline = time.monotonic() + timeout
    while True:
        with OtherLoad(pids) as load:
            time.sleep(3)
        if cores is None or load.cores < cores or time.monotonic() > deadline:
            return load.cores
