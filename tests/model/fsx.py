"""A randomised model check of a b2fs mount: operations mirrored on a local reference file.

``Checker`` draws a seeded sequence of file operations (``Op``) on a small pool of
names in a b2fs mount and applies each one twice: on the mount, and on the same name
in a reference directory on a local disk.  Every result that returns data or metadata
(read bytes, mmap contents, ``fstat``/``stat`` sizes, ``lseek(SEEK_END)``, byte
counts, errnos) is compared, and the sizes are compared again after every change, so
the first operation whose outcome differs from the local disk's stops the run with a
``Mismatch``.  Several handles are open at once on the same file (reads through one
see writes through another), and the run is interleaved with what makes the mount's
own state move: uploads landing (sleeps, ``fsync``, ``wait_uploads``), the kernel's
caches dropped (``fadvise``, ``drop_caches``) and remounts (on the same cache
directory or a fresh one, or after a SIGKILL of the mount with every file closed:
what ``close`` acknowledged must come back from the journal).

Offsets and sizes aim at what breaks a block-based mount: block boundaries (the
mount's ``block_size``), the current and previous end of file, the last partial
block, holes far past the end, and mostly small files (a few spanning several blocks).

Every run is reproducible from its ``Config`` (the seed and the generation
parameters): the same config draws the same operations, whatever the mount does,
until the first difference.  ``Checker.log`` holds the operations applied (as text:
``Op.text()``; as JSON lines: ``Op.to_json()``), ``Checker.replay_ops`` applies a
given list instead of drawing one (a log with lines removed still runs: an operation
on a handle that is not open is skipped), which is what ``tests/model/shrink.py``
uses to cut a failing log down.  Used by ``tests/model/test_model.py`` (short
runs) and ``bench/model_check.py`` (long runs, replays, shrinking).

The mount is anything with the ``MountLike`` methods; mmap operations on the mount
run in a forked child, so a SIGBUS (a failed page-in) is reported, not fatal.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

KiB = 1024
MiB = 1024 * KiB
PAGE = mmap.PAGESIZE

# Flags an ``open`` op may carry, by name (names go in the log, values differ by platform).
FLAGS = {
    "O_RDONLY": os.O_RDONLY,
    "O_WRONLY": os.O_WRONLY,
    "O_RDWR": os.O_RDWR,
    "O_APPEND": os.O_APPEND,
    "O_TRUNC": os.O_TRUNC,
    "O_CREAT": os.O_CREAT,
    "O_EXCL": os.O_EXCL,
    "O_SYNC": os.O_SYNC,
    "O_DIRECT": getattr(os, "O_DIRECT", 0),
}


# Ops that fail alike when the same bug is behind them (a shrunk log may fail in another one).
FAMILIES = {"pread": "read", "read": "read", "mmap_read": "read", "verify": "read"}


class MountLike(Protocol):
    """What the checker needs of a mount (tests and bench adapt their mount processes)."""

    path: Path
    log_path: Path  # the mount's log (kept across remounts)

    def remount(self, how: str) -> None:
        """Unmount and mount again. ``same``: unmount (b2fs drains its uploads), mount on the
        same cache dir; ``fresh``: the same, on a new empty cache dir; ``kill``: SIGKILL the
        mount (a crash: its journal holds what is not uploaded), mount on the same cache dir."""

    def pending_uploads(self) -> int:
        """Files the mount has not uploaded yet and may upload now (none open for writing)."""

    def log_tail(self) -> str:
        """The end of the mount's log (printed with a failure)."""


@dataclass
class Config:
    """What decides the operations drawn: with the same config, the same sequence."""

    seed: int = 0
    ops: int = 1000
    files: int = 3  # names in the root; plus one in a subdirectory with ``subdir``
    subdir: bool = True
    block_size: int = MiB  # the mount's: offsets and sizes aim at its boundaries
    max_size: int = 5 * MiB
    small_size: int = 300 * KiB  # most offsets and sizes stay below this
    big: float = 0.12  # share of offsets and sizes drawn up to max_size
    max_handles: int = 4  # few, so files are often closed (and uploaded) between uses
    mmap: bool = True
    direct: bool = True  # O_DIRECT opens (turned off when the mount refuses them)
    remount_every: int = 0  # a remount every N ops (0: none)
    fresh_cache: float = 0.3  # share of remounts on a new, empty cache directory
    crash: float = 0.2  # share of remounts after a SIGKILL of the mount (all files closed)
    drop_caches: bool = True  # the global ``echo 3 > /proc/sys/vm/drop_caches`` (root)
    sleep_max: float = 0.3  # longest sleep op (uploads land meanwhile)
    wait_uploads: float = 0.0  # weight of "wait until the upload queue is empty"
    wait_max: float = 8.0  # longest such wait
    verify_every: int = 400  # a full comparison of every file every N ops (and at the end)
    weights: str = ""  # op weights changed, e.g. "unlink=0,mmap_write=10"

    def cli_args(self) -> list[str]:
        """This config as ``bench/model_check.py`` options (those that differ from the default)."""
        out = []
        default = Config()
        for f in fields(self):
            value, base = getattr(self, f.name), getattr(default, f.name)
            if value == base and f.name not in ("seed", "ops"):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag if value else "--no-" + f.name.replace("_", "-"))
            else:
                out += [flag, str(value)]
        return out


@dataclass
class Op:
    """One operation with its arguments (handles by number, names relative to the root)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    index: int = -1

    def text(self) -> str:
        parts = []
        for k, v in self.args.items():
            if k == "h" or k in ("src", "dst") and isinstance(v, int):
                parts.append(f"{k}=h{v}" if k != "h" else f"h{v}")
            elif k == "flags":
                parts.append("|".join(v) if v else "0")
            elif k == "data":
                parts.append(f"data=#{v}")
            else:
                parts.append(f"{k}={v}")
        return f"{self.index:>7}  {self.kind:<12} " + " ".join(parts)

    def to_json(self) -> str:
        return json.dumps({"i": self.index, "op": self.kind, **self.args})

    @staticmethod
    def from_json(line: str) -> Op:
        d = json.loads(line)
        index = d.pop("i", -1)
        return Op(d.pop("op"), d, index)


@dataclass
class Mismatch(AssertionError):
    """The mount answered an operation differently from the local disk."""

    op: Op
    what: str
    mount: str
    reference: str
    signature: str  # e.g. "read:data", "read:errno EIO", "truncate:value" (FAMILIES; shrinking)

    def __str__(self) -> str:
        return (
            f"op {self.op.index} ({self.op.kind}): {self.what}\n"
            f"    mount:     {self.mount}\n    reference: {self.reference}"
        )


@dataclass
class Handle:
    hid: int
    name: str
    flags: list[str]
    mfd: int  # on the mount
    rfd: int  # on the reference

    @property
    def bits(self) -> int:
        return _flag_bits(self.flags)

    @property
    def readable(self) -> bool:
        return self.bits & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return self.bits & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)

    @property
    def append(self) -> bool:
        return bool(self.bits & os.O_APPEND)


def pool_names(cfg: Config) -> list[str]:
    """The names a run works on: ``f0``, ``f1``... in the root, and ``d/g`` in a subdirectory."""
    return [f"f{i}" for i in range(cfg.files)] + (["d/g"] if cfg.subdir else [])


def _flag_bits(names: Iterable[str]) -> int:
    bits = 0
    for n in names:
        bits |= FLAGS[n]
    return bits


def data_for(seed: int, size: int) -> bytes:
    """The bytes a write op writes: ``size`` random bytes from its data seed."""
    return random.Random(seed).randbytes(size)


class _Outcome:
    """A call's result or errno, comparable and printable."""

    __slots__ = ("value", "err")

    def __init__(self, value: Any = None, err: int | None = None) -> None:
        self.value, self.err = value, err

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Outcome) and (self.err, self.value) == (other.err, other.value)

    def __str__(self) -> str:
        if self.err is not None and self.err < 0:
            return f"killed by {signal.Signals(-self.err).name}"
        if self.err is not None:
            return f"error {errno.errorcode.get(self.err, self.err)} ({os.strerror(self.err)})"
        if isinstance(self.value, bytes | bytearray):
            return f"{len(self.value)} bytes"
        return repr(self.value)


def _call(fn: Callable[[], Any]) -> _Outcome:
    try:
        return _Outcome(fn())
    except OSError as e:
        return _Outcome(err=e.errno)


def describe_difference(offset: int, got: bytes, want: bytes) -> str:
    """Where two byte strings read at ``offset`` first differ, and how."""
    if len(got) != len(want):
        head = f"{len(got)} bytes instead of {len(want)}"
    else:
        head = f"{len(got)} bytes"
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), None)
    if first is None:
        return head + " (equal over the common length)"
    last = next(i for i in range(n - 1, -1, -1) if got[i] != want[i])
    run = got[first : last + 1]
    zeros = " (mount has zeros there)" if not any(run) else ""
    wz = " (reference has zeros there)" if not any(want[first : last + 1]) else ""
    return (
        f"{head}; first difference at file offset {offset + first}, last at {offset + last}"
        f"{zeros}{wz}; mount {got[first : first + 8].hex()} vs reference "
        f"{want[first : first + 8].hex()}"
    )


class Checker:
    """Draws (or replays) operations and applies them to the mount and the reference."""

    def __init__(self, config: Config, mount: MountLike, ref_dir: Path,
                 progress: Callable[[Checker], None] | None = None) -> None:  # fmt: skip
        self.cfg = config
        self.mount = mount
        self.ref = Path(ref_dir)
        self.rng = random.Random(config.seed)
        self.progress = progress
        self.handles: dict[int, Handle] = {}
        self.next_hid = 1
        self.log: list[Op] = []
        self.counts: Counter[str] = Counter()
        self.skipped = 0
        self.seconds: Counter[str] = Counter()  # time spent, by kind
        self._verifies = 0  # periodic verifies drawn
        self._log_read = 0  # how much of the mount's log _check_log has read
        self.ends: dict[int, list[int]] = {}  # recent sizes by reference inode (see _remember)
        self.slowest = (-1, 0.0)  # (op index, seconds)
        self.names = pool_names(config)
        self.root = os.geteuid() == 0
        self.started = time.monotonic()

    # -- running ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.ref.mkdir(parents=True, exist_ok=True)
        for base in (self.mount.path, self.ref):
            os.makedirs(base / ".fsx", exist_ok=True)  # for probes; its contents are not compared
            if self.cfg.subdir:
                os.makedirs(base / "d", exist_ok=True)
        if self.cfg.direct and not self._direct_allowed():
            self.cfg.direct = False

    def _direct_allowed(self) -> bool:
        probe = self.mount.path / ".fsx" / "direct-probe"
        try:
            fd = os.open(probe, os.O_RDWR | os.O_CREAT | FLAGS["O_DIRECT"], 0o644)
        except OSError:
            return False
        try:
            os.pwrite(fd, b"x" * 3, 1)
            return os.pread(fd, 3, 1) == b"xxx"
        except OSError:
            return False
        finally:
            os.close(fd)
            os.unlink(probe)

    def run(self) -> None:
        """Draw and apply ``cfg.ops`` operations, then verify everything (Mismatch on a difference)."""
        self.setup()
        while len(self.log) < self.cfg.ops:
            for op in self.draw():
                self.apply(op)
                if len(self.log) >= self.cfg.ops:
                    break
        self.finish()

    def replay_ops(self, ops: list[Op], stop_at: int | None = None) -> None:
        """Apply a given list of operations (a log, perhaps cut down), then verify."""
        self.setup()
        for op in ops:
            if stop_at is not None and op.index > stop_at:
                break
            self.apply(Op(op.kind, dict(op.args), op.index))
        self.finish()

    def finish(self) -> None:
        self.apply(Op("verify", {}))
        self.close_all()

    def close_all(self) -> None:
        for h in list(self.handles.values()):
            self._close(h)

    def abandon(self) -> None:
        """Close every handle, ignoring errors (cleanup after a failure)."""
        for h in list(self.handles.values()):
            del self.handles[h.hid]
            for fd in (h.mfd, h.rfd):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def apply(self, op: Op) -> None:
        if op.index < 0:
            op.index = len(self.log)
        self.log.append(op)
        t0 = time.monotonic()
        done = getattr(self, "_op_" + op.kind)(**op.args)
        if done is False:
            self.skipped += 1
        else:
            self.counts[op.kind] += 1
            spent = time.monotonic() - t0
            self.seconds[op.kind] += spent
            if spent > self.slowest[1]:
                self.slowest = (op.index, spent)
        if self.progress is not None:
            self.progress(self)

    # -- comparing ---------------------------------------------------------------------

    def _same(self, op: Op, what: str, m: _Outcome, r: _Outcome, offset: int = 0) -> None:
        if m == r:
            return
        family = FAMILIES.get(op.kind, op.kind)
        if m.err is None and r.err is None and isinstance(m.value, bytes | bytearray):
            detail = describe_difference(offset, bytes(m.value), bytes(r.value))
            raise Mismatch(op, f"{what}: {detail}", str(m), str(r), f"{family}:data")
        if m.err is not None and m.err < 0:
            category = "signal"
        elif m.err is not None:
            category = "errno " + errno.errorcode.get(m.err, str(m.err))
        else:
            category = "value"
        raise Mismatch(op, what, str(m), str(r), f"{family}:{category}")

    def _both(self, op: Op, what: str, fm: Callable[[], Any], fr: Callable[[], Any],
              offset: int = 0) -> _Outcome:  # fmt: skip
        m = _call(fm)
        r = _call(fr)
        self._same(op, what, m, r, offset)
        return r

    def _sizes(self, op: Op, h: Handle) -> None:
        r = self._both(op, "fstat size", lambda: os.fstat(h.mfd).st_size,
                       lambda: os.fstat(h.rfd).st_size)  # fmt: skip
        if r.err is None:
            self._remember(os.fstat(h.rfd).st_ino, r.value)

    def _remember(self, ino: int, size: int) -> None:
        """Keep a file's last few sizes: reads and writes aim at earlier ends of file too
        (a read past the old end of a grown file, inside its last block, was issue 10)."""
        ends = self.ends.setdefault(ino, [])
        if not ends or ends[-1] != size:
            ends.append(size)
            del ends[:-6]

    def _current(self) -> Op:
        return self.log[-1]

    # -- drawing -------------------------------------------------------------------------

    def _weights(self) -> dict[str, float]:
        hs = list(self.handles.values())
        readable = any(h.readable for h in hs)
        writable = any(h.writable for h in hs)
        w = {
            "open": 8.0 if len(hs) < self.cfg.max_handles else 0.0,
            "close": 8.0 if hs else 0.0,
            "reopen": 2.0 if hs else 0.0,
            "pwrite": 14.0 if writable else 0.0,
            "write": 3.0 if writable else 0.0,
            "pread": 14.0 if readable else 0.0,
            "read": 3.0 if readable else 0.0,
            "lseek": 2.0 if hs else 0.0,
            "ftruncate": 5.0 if writable else 0.0,
            "truncate": 2.5,
            "fstat": 2.0 if hs else 0.0,
            "stat": 1.5,
            "mmap_read": 3.0 if self.cfg.mmap and readable else 0.0,
            "mmap_write": 3.0
            if self.cfg.mmap and any(h.bits & os.O_ACCMODE == os.O_RDWR for h in hs)
            else 0.0,  # fmt: skip
            "copy_range": 4.0 if readable and writable else 0.0,
            "fsync": 1.2 if hs else 0.0,
            "rename": 1.0,
            "unlink": 0.8,
            "dir_roundtrip": 0.3 if self.cfg.subdir else 0.0,
            "fadvise": 2.0 if hs else 0.0,
            "drop_caches": 0.03 if self.cfg.drop_caches and self.root else 0.0,
            "sleep": 0.8 if self.cfg.sleep_max > 0 else 0.0,
            "wait_uploads": self.cfg.wait_uploads,
            "verify": 0.1,
        }
        for item in filter(None, self.cfg.weights.split(",")):
            kind, _, value = item.partition("=")
            if kind not in w:
                raise ValueError(f"no op kind {kind!r} to weigh")
            if w[kind] > 0:  # available now (a weight never makes an op possible)
                w[kind] = float(value)
        return {k: v for k, v in w.items() if v > 0}

    def draw(self) -> list[Op]:
        """The next operation(s): one op, or a few that belong together (reopen, remount)."""
        n = len(self.log)
        every = self.cfg.remount_every
        if every and n >= every * (self.counts["remount"] + 1):  # remount verifies too
            r = self.rng.random()
            how = (
                "fresh"
                if r < self.cfg.fresh_cache
                else "kill"
                if r < self.cfg.fresh_cache + self.cfg.crash
                else "same"
            )
            return [Op("remount", {"how": how})]
        if self.cfg.verify_every and n >= self.cfg.verify_every * (self._verifies + 1):
            self._verifies = n // self.cfg.verify_every
            return [Op("verify", {})]
        weights = self._weights()
        kind = self.rng.choices(list(weights), list(weights.values()))[0]
        return getattr(self, "_draw_" + kind)()

    def _pick(self, want: Callable[[Handle], bool]) -> Handle:
        """A handle that fits (almost always), or any (so errnos of misuse get compared too)."""
        hs = list(self.handles.values())
        good = [h for h in hs if want(h)]
        if good and self.rng.random() < 0.97:
            return self.rng.choice(good)
        return self.rng.choice(hs)

    def _ref_size(self, h: Handle) -> int:
        return os.fstat(h.rfd).st_size

    def _ends(self, h: Handle) -> list[int]:
        return self.ends.get(os.fstat(h.rfd).st_ino, [])

    def _at(self, h: Handle) -> int:
        """An offset that matters in the file of handle ``h``."""
        return self._offset(self._ref_size(h), self._ends(h))

    def _big(self) -> bool:
        return self.rng.random() < self.cfg.big

    def _offset(self, size: int, ends: list[int] | None = None) -> int:
        """An offset that matters to a block-based file of ``size`` bytes that had the sizes
        ``ends`` before."""
        rng, bs = self.rng, self.cfg.block_size
        top = self.cfg.max_size if self._big() else self.cfg.small_size
        r = rng.random()
        if r < 0.22 and size:
            off = rng.randrange(size)
        elif r < 0.38 or r < 0.5 and not ends:
            off = size + rng.randint(-4 * PAGE, 2 * PAGE)  # around the end of file
        elif r < 0.5:
            assert ends
            end = rng.choice(ends)  # around an earlier end: at it, in its page, the pages after
            off = end + rng.choice([0, 1, -1, PAGE - end % PAGE, rng.randint(-PAGE, 3 * PAGE)])
        elif r < 0.65:
            k = rng.randint(0, max(size, top) // bs + 1)
            off = k * bs + rng.choice([0, 0, -1, 1, rng.randint(-PAGE, PAGE)])
        elif r < 0.75:
            off = rng.randrange(0, top, PAGE)
        elif r < 0.85:
            off = size + rng.randint(1, 2 * bs if top > self.cfg.small_size else top)  # a hole
        else:
            off = rng.randrange(top)
        return max(0, min(off, self.cfg.max_size - 1))

    def _length(self, big_ok: bool = True) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            n = rng.randint(1, 4 * KiB)
        elif r < 0.6:
            n = PAGE * rng.randint(1, 16)
        elif r < 0.85:
            n = rng.randint(1, 64 * KiB)
        elif r < 0.95 or not big_ok:
            n = rng.randint(1, self.cfg.small_size)
        else:
            n = rng.randint(1, self.cfg.block_size * 3 // 2)
        return n

    def _new_size(self, size: int) -> int:
        rng, bs = self.rng, self.cfg.block_size
        top = self.cfg.max_size if self._big() else self.cfg.small_size
        r = rng.random()
        if r < 0.08:
            n = 0
        elif r < 0.35:
            n = size + rng.randint(-3 * PAGE, 3 * PAGE)
        elif r < 0.55:
            n = rng.randint(0, max(size, top) // bs + 1) * bs + rng.choice(
                [0, -1, 1, rng.randint(-PAGE, PAGE)]
            )
        elif r < 0.7:
            n = size + rng.randint(1, bs if top > self.cfg.small_size else top // 2)  # grow
        elif r < 0.85:
            n = rng.randint(0, size) if size else 0  # shrink
        else:
            n = rng.randint(0, top)
        return max(0, min(n, self.cfg.max_size))

    def _draw_open(self) -> list[Op]:
        rng = self.rng
        name = rng.choice(self.names)
        acc = rng.choices(["O_RDONLY", "O_WRONLY", "O_RDWR"], [3, 2, 5])[0]
        flags = [acc]
        if rng.random() < 0.7:
            flags.append("O_CREAT")
            if rng.random() < 0.1:
                flags.append("O_EXCL")
        if rng.random() < 0.15:
            flags.append("O_APPEND")
        if rng.random() < (0.08 if acc != "O_RDONLY" else 0.02):
            flags.append("O_TRUNC")
        if rng.random() < 0.03:
            flags.append("O_SYNC")
        if self.cfg.direct and rng.random() < 0.1:
            flags.append("O_DIRECT")
        hid = self.next_hid
        self.next_hid += 1
        return [Op("open", {"h": hid, "name": name, "flags": flags})]

    def _draw_close(self) -> list[Op]:
        return [Op("close", {"h": self.rng.choice(list(self.handles))})]

    def _draw_reopen(self) -> list[Op]:
        h = self.handles[self.rng.choice(list(self.handles))]
        hid = self.next_hid
        self.next_hid += 1
        flags = [f for f in h.flags if f not in ("O_TRUNC", "O_EXCL")]
        return [Op("close", {"h": h.hid}), Op("open", {"h": hid, "name": h.name, "flags": flags})]

    def _draw_pwrite(self) -> list[Op]:
        h = self._pick(lambda h: h.writable)
        off = self._at(h)
        n = min(self._length(), self.cfg.max_size - off)
        return [Op("pwrite", {"h": h.hid, "off": off, "len": n, "data": self.rng.getrandbits(31)})]

    def _draw_write(self) -> list[Op]:
        h = self._pick(lambda h: h.writable)
        n = self._length(big_ok=False)
        return [Op("write", {"h": h.hid, "len": n, "data": self.rng.getrandbits(31)})]

    def _draw_pread(self) -> list[Op]:
        h = self._pick(lambda h: h.readable)
        return [Op("pread", {"h": h.hid, "off": self._at(h), "len": self._length()})]

    def _draw_read(self) -> list[Op]:
        h = self._pick(lambda h: h.readable)
        return [Op("read", {"h": h.hid, "len": self._length()})]

    def _draw_lseek(self) -> list[Op]:
        h = self._pick(lambda h: True)
        whence = self.rng.choice(["SEEK_END", "SEEK_END", "SEEK_SET", "SEEK_CUR"])
        if whence == "SEEK_SET":
            off = self._at(h)
        else:
            off = self.rng.choice([0, 0, self.rng.randint(-PAGE, PAGE)])
        return [Op("lseek", {"h": h.hid, "off": off, "whence": whence})]

    def _draw_ftruncate(self) -> list[Op]:
        h = self._pick(lambda h: h.writable)
        return [Op("ftruncate", {"h": h.hid, "size": self._new_size(self._ref_size(h))})]

    def _draw_truncate(self) -> list[Op]:
        name = self.rng.choice(self.names)
        try:
            size = os.stat(self.ref / name).st_size
        except OSError:
            size = 0
        return [Op("truncate", {"name": name, "size": self._new_size(size)})]

    def _draw_fstat(self) -> list[Op]:
        return [Op("fstat", {"h": self.rng.choice(list(self.handles))})]

    def _draw_stat(self) -> list[Op]:
        return [Op("stat", {"name": self.rng.choice(self.names)})]

    def _draw_mmap_read(self) -> list[Op]:
        h = self._pick(lambda h: h.readable)
        size = self._ref_size(h)
        if size == 0:
            return self._draw_pread() if h.readable else [Op("fstat", {"h": h.hid})]
        off = self._offset(size, self._ends(h)) % size
        n = min(self._length(), size - off)
        return [Op("mmap_read", {"h": h.hid, "off": off, "len": n})]

    def _draw_mmap_write(self) -> list[Op]:
        h = self._pick(lambda h: h.bits & os.O_ACCMODE == os.O_RDWR)
        size = self._ref_size(h)
        if size == 0:
            return self._draw_ftruncate() if h.writable else [Op("fstat", {"h": h.hid})]
        off = self._offset(size, self._ends(h)) % size
        n = min(self._length(), size - off)
        return [Op("mmap_write", {"h": h.hid, "off": off, "len": n, "data": self.rng.getrandbits(31),
                                  "msync": self.rng.random() < 0.8})]  # fmt: skip

    def _draw_copy_range(self) -> list[Op]:
        src = self._pick(lambda h: h.readable)
        dst = self._pick(lambda h: h.writable and not h.append)
        size = self._ref_size(src)
        off_src = self._offset(size, self._ends(src)) if self.rng.random() < 0.2 else (
            self.rng.randint(0, size) if size else 0)  # fmt: skip
        off_dst = self._at(dst)
        n = min(self._length(), self.cfg.max_size - off_dst)
        return [Op("copy_range", {"src": src.hid, "dst": dst.hid, "off_src": off_src,
                                  "off_dst": off_dst, "len": n})]  # fmt: skip

    def _draw_fsync(self) -> list[Op]:
        h = self._pick(lambda h: True)
        return [Op("fsync", {"h": h.hid, "data_only": self.rng.random() < 0.3})]

    def _draw_rename(self) -> list[Op]:
        src, dst = self.rng.choice(self.names), self.rng.choice(self.names)
        return [Op("rename", {"src_name": src, "dst_name": dst})]

    def _draw_dir_roundtrip(self) -> list[Op]:
        return [Op("dir_roundtrip", {"via": self.rng.choice(["e", "d2"])})]

    def _draw_unlink(self) -> list[Op]:
        return [Op("unlink", {"name": self.rng.choice(self.names)})]

    def _draw_fadvise(self) -> list[Op]:
        return [Op("fadvise", {"h": self.rng.choice(list(self.handles))})]

    def _draw_drop_caches(self) -> list[Op]:
        return [Op("drop_caches", {})]

    def _draw_sleep(self) -> list[Op]:
        return [Op("sleep", {"secs": round(self.rng.uniform(0.01, self.cfg.sleep_max), 3)})]

    def _draw_wait_uploads(self) -> list[Op]:
        return [Op("wait_uploads", {"secs": self.cfg.wait_max})]

    def _draw_verify(self) -> list[Op]:
        return [Op("verify", {})]

    # -- applying ------------------------------------------------------------------------

    def _handle(self, hid: int) -> Handle | None:
        return self.handles.get(hid)

    def _op_open(self, h: int, name: str, flags: list[str]) -> bool:
        op = self._current()
        if h in self.handles:
            return False
        bits = _flag_bits(flags)
        if bits & FLAGS["O_DIRECT"] and not self.cfg.direct:
            bits &= ~FLAGS["O_DIRECT"]
        m = _call(lambda: os.open(self.mount.path / name, bits | os.O_CLOEXEC, 0o644))
        # The reference is on a local disk: O_DIRECT there only adds alignment rules.
        r = _call(
            lambda: os.open(self.ref / name, (bits & ~FLAGS["O_DIRECT"]) | os.O_CLOEXEC, 0o644)
        )
        if (m.err is None) != (r.err is None) or m.err != r.err:
            for o in (m, r):
                if o.err is None:
                    os.close(o.value)
            self._same(op, f"open {name}", _Outcome(None, m.err), _Outcome(None, r.err))
        if m.err is None:
            self.handles[h] = Handle(h, name, flags, m.value, r.value)
            self._sizes(op, self.handles[h])
        return True

    def _close(self, h: Handle) -> None:
        del self.handles[h.hid]
        m = _call(lambda: os.close(h.mfd))
        r = _call(lambda: os.close(h.rfd))
        self._same(self._current(), f"close h{h.hid}", m, r)

    def _op_close(self, h: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        self._close(handle)
        return True

    def _op_pwrite(self, h: int, off: int, len: int, data: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        op = self._current()
        buf = data_for(data, len)
        self._both(op, "pwrite count", lambda: os.pwrite(handle.mfd, buf, off),
                   lambda: os.pwrite(handle.rfd, buf, off))  # fmt: skip
        self._sizes(op, handle)
        return True

    def _op_write(self, h: int, len: int, data: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        op = self._current()
        buf = data_for(data, len)
        self._both(op, "write count", lambda: os.write(handle.mfd, buf),
                   lambda: os.write(handle.rfd, buf))  # fmt: skip
        self._both(op, "position after write", lambda: os.lseek(handle.mfd, 0, os.SEEK_CUR),
                   lambda: os.lseek(handle.rfd, 0, os.SEEK_CUR))  # fmt: skip
        self._sizes(op, handle)
        return True

    def _op_pread(self, h: int, off: int, len: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        self._both(self._current(), f"pread of {len} bytes at {off}",
                   lambda: os.pread(handle.mfd, len, off), lambda: os.pread(handle.rfd, len, off),
                   offset=off)  # fmt: skip
        return True

    def _op_read(self, h: int, len: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        op = self._current()
        pos = os.lseek(handle.rfd, 0, os.SEEK_CUR)
        self._both(op, f"read of {len} bytes at position {pos}", lambda: os.read(handle.mfd, len),
                   lambda: os.read(handle.rfd, len), offset=pos)  # fmt: skip
        return True

    def _op_lseek(self, h: int, off: int, whence: str) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        w = getattr(os, whence)
        self._both(self._current(), f"lseek({off}, {whence})", lambda: os.lseek(handle.mfd, off, w),
                   lambda: os.lseek(handle.rfd, off, w))  # fmt: skip
        return True

    def _op_ftruncate(self, h: int, size: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        op = self._current()
        self._both(op, f"ftruncate to {size}", lambda: os.ftruncate(handle.mfd, size),
                   lambda: os.ftruncate(handle.rfd, size))  # fmt: skip
        self._sizes(op, handle)
        return True

    def _op_truncate(self, name: str, size: int) -> bool:
        op = self._current()
        self._both(op, f"truncate {name} to {size}", lambda: os.truncate(self.mount.path / name, size),
                   lambda: os.truncate(self.ref / name, size))  # fmt: skip
        self._op_stat(name)
        try:
            st = os.stat(self.ref / name)
            self._remember(st.st_ino, st.st_size)
        except OSError:
            pass
        return True

    def _op_fstat(self, h: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        self._sizes(self._current(), handle)
        return True

    def _op_stat(self, name: str) -> bool:
        self._both(self._current(), f"stat {name} (size)",
                   lambda: os.stat(self.mount.path / name).st_size,
                   lambda: os.stat(self.ref / name).st_size)  # fmt: skip
        return True

    def _map_range(self, handle: Handle, off: int, length: int) -> tuple[int, int, int] | None:
        """(map offset, map length, offset in the map), within the file as both sides see it."""
        op = self._current()
        self._sizes(op, handle)  # a mapping past the end would SIGBUS: sizes must agree first
        size = self._ref_size(handle)
        length = min(length, size - off)
        if length <= 0:
            return None
        start = off - off % mmap.ALLOCATIONGRANULARITY
        return start, off + length - start, off - start

    def _op_mmap_read(self, h: int, off: int, len: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        span = self._map_range(handle, off, len)
        if span is None:
            return False
        start, maplen, rel = span
        n = maplen - rel
        m = mmap_in_child(handle.mfd, start, maplen, rel, n)
        r = _call(lambda: _mmap_local(handle.rfd, start, maplen, rel, n))
        self._same(self._current(), f"mmap read of {n} bytes at {off}", m, r, offset=off)
        return True

    def _op_mmap_write(self, h: int, off: int, len: int, data: int, msync: bool) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        span = self._map_range(handle, off, len)
        if span is None:
            return False
        start, maplen, rel = span
        buf = data_for(data, maplen - rel)
        op = self._current()
        m = mmap_in_child(handle.mfd, start, maplen, rel, 0, buf, msync)
        r = _call(lambda: _mmap_local(handle.rfd, start, maplen, rel, 0, buf, msync))
        self._same(op, f"mmap write of {len} bytes at {off}", m, r)
        self._sizes(op, handle)
        return True

    def _op_copy_range(self, src: int, dst: int, off_src: int, off_dst: int, len: int) -> bool:
        s, d = self._handle(src), self._handle(dst)
        if s is None or d is None:
            return False
        op = self._current()
        self._both(op, f"copy_file_range h{src}@{off_src} -> h{dst}@{off_dst} ({len} bytes)",
                   lambda: os.copy_file_range(s.mfd, d.mfd, len, off_src, off_dst),
                   lambda: os.copy_file_range(s.rfd, d.rfd, len, off_src, off_dst))  # fmt: skip
        self._sizes(op, d)
        return True

    def _op_fsync(self, h: int, data_only: bool) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        fn = os.fdatasync if data_only else os.fsync
        self._both(self._current(), fn.__name__, lambda: fn(handle.mfd), lambda: fn(handle.rfd))
        return True

    def _op_rename(self, src_name: str, dst_name: str) -> bool:
        self._both(self._current(), f"rename {src_name} -> {dst_name}",
                   lambda: os.rename(self.mount.path / src_name, self.mount.path / dst_name),
                   lambda: os.rename(self.ref / src_name, self.ref / dst_name))  # fmt: skip
        return True

    def _op_dir_roundtrip(self, via: str) -> bool:
        """Rename directory ``d`` (files in it open, pending or uploaded) away and back."""
        op = self._current()
        for a, b in (("d", via), (via, "d")):
            self._both(op, f"rename {a} -> {b}", lambda a=a, b=b: os.rename(self.mount.path / a, self.mount.path / b),
                       lambda a=a, b=b: os.rename(self.ref / a, self.ref / b))  # fmt: skip
            self._both(op, f"listing of {b}", lambda b=b: sorted(os.listdir(self.mount.path / b)),
                       lambda b=b: sorted(os.listdir(self.ref / b)))  # fmt: skip
        return True

    def _op_unlink(self, name: str) -> bool:
        self._both(self._current(), f"unlink {name}", lambda: os.unlink(self.mount.path / name),
                   lambda: os.unlink(self.ref / name))  # fmt: skip
        return True

    def _op_fadvise(self, h: int) -> bool:
        handle = self._handle(h)
        if handle is None:
            return False
        os.posix_fadvise(handle.mfd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True

    def _op_drop_caches(self) -> bool:
        if not self.root:
            return False
        with open("/proc/sys/vm/drop_caches", "w") as f:  # clean pages only: no sync first
            f.write("3\n")
        return True

    def _op_sleep(self, secs: float) -> bool:
        time.sleep(secs)
        return True

    def _op_wait_uploads(self, secs: float) -> bool:
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline and self.mount.pending_uploads():
            time.sleep(0.1)
        return True

    def _check_log(self, op: Op) -> None:
        """The mount logged no error and no failed upload since the last look (against the
        local server nothing fails: such a line is a bug, e.g. an upload retried for ever)."""
        try:
            with open(self.mount.log_path, "rb") as f:
                f.seek(self._log_read)
                new = f.read()
        except OSError:
            return
        self._log_read += len(new)
        bad = [ln for ln in new.decode(errors="replace").splitlines()
               if " ERROR " in ln or "failed (attempt" in ln or "not done" in ln]  # fmt: skip
        if bad:
            raise Mismatch(op, "the mount logged an error", bad[0][:300], "(nothing)", "log:error")

    def _op_remount(self, how: str) -> bool:
        self.close_all()
        self._check_log(self._current())
        self.mount.remount(how)
        self._check_log(self._current())
        self._op_verify()
        return True

    def _op_verify(self) -> bool:
        """Every name: listed alike, same size, same bytes (through new read-only handles); and
        no error in the mount's log."""
        op = self._current()
        self._check_log(op)
        for d in ("", "d") if self.cfg.subdir else ("",):
            self._both(op, f"listing of /{d}", lambda d=d: sorted(os.listdir(self.mount.path / d)),
                       lambda d=d: sorted(os.listdir(self.ref / d)))  # fmt: skip
        for name in self.names:
            r = self._both(op, f"stat {name} (size)", lambda n=name: os.stat(self.mount.path / n).st_size,
                           lambda n=name: os.stat(self.ref / n).st_size)  # fmt: skip
            if r.err is not None:
                continue
            mfd = os.open(self.mount.path / name, os.O_RDONLY | os.O_CLOEXEC)
            rfd = os.open(self.ref / name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for off in range(0, r.value + 1, MiB):
                    self._both(op, f"contents of {name} at {off}",
                               lambda o=off, fd=mfd: os.pread(fd, MiB, o),
                               lambda o=off, fd=rfd: os.pread(fd, MiB, o), offset=off)  # fmt: skip
            finally:
                os.close(mfd)
                os.close(rfd)
        return True

    # -- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {"ops": len(self.log), "skipped": self.skipped, "by_kind": dict(self.counts),
                "seconds_by_kind": dict(self.seconds), "slowest": self.slowest,
                "seconds": round(time.monotonic() - self.started, 1)}  # fmt: skip

    def log_text(self, last: int | None = None) -> str:
        ops = self.log if last is None else self.log[-last:]
        return "\n".join(op.text() for op in ops)

    def save_log(self, path: Path) -> None:
        path.write_text("".join(op.to_json() + "\n" for op in self.log))


def load_log(path: Path) -> list[Op]:
    return [Op.from_json(line) for line in Path(path).read_text().splitlines() if line.strip()]


def failure_report(checker: Checker, failure: Mismatch, replay: str, log_path: Path | None,
                   mount_log: str = "") -> str:  # fmt: skip
    """What a failed run prints: the seed, the difference, the last ops, how to replay it."""
    lines = [
        f"MODEL CHECK FAILED (seed {checker.cfg.seed}) at {failure}",
        "",
        f"last operations (of {len(checker.log)}; 'h' = open handle, data=#N: the seed of the bytes):",
        checker.log_text(last=40),
        "",
        f"replay: {replay}",
    ]
    if log_path is not None:
        lines.append(f"full operation log (JSON lines, for --replay-log): {log_path}")
    if mount_log:
        notable, in_trace = [], False
        for ln in mount_log.splitlines():
            logged = ln[:4].isdigit()  # a log line starts with its date; a traceback's do not
            if logged:
                in_trace = False
            if " WARNING " in ln or " ERROR " in ln or "fuse_" in ln or in_trace:
                notable.append(ln)
            in_trace = in_trace or "Traceback" in ln
        if notable:
            lines += [
                "",
                "mount log (warnings, errors, tracebacks; last 40 lines):",
                *notable[-40:],
            ]
    return "\n".join(lines)


# -- mmap ---------------------------------------------------------------------------------


def _mmap_local(fd: int, start: int, maplen: int, rel: int, n: int, data: bytes | None = None,
                msync: bool = False) -> bytes | None:  # fmt: skip
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if data is not None else 0)
    with mmap.mmap(fd, maplen, flags=mmap.MAP_SHARED, prot=prot, offset=start) as mm:
        if data is None:
            return mm[rel : rel + n]
        mm[rel : rel + len(data)] = data
        if msync:
            mm.flush()
        return None


def mmap_in_child(fd: int, start: int, maplen: int, rel: int, n: int, data: bytes | None = None,
                  msync: bool = False) -> _Outcome:  # fmt: skip
    """``_mmap_local`` in a forked child: a SIGBUS (the mount failed a page-in) becomes an
    outcome (``err`` = -SIGBUS) instead of killing the checker."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python cleanup, no exceptions past this block
        code = 0
        try:
            os.close(r)
            out = _mmap_local(fd, start, maplen, rel, n, data, msync)
            view = memoryview(out or b"")
            while view:
                view = view[os.write(w, view) :]
        except OSError as e:
            os.write(w, str(e.errno).encode())
            code = 3
        except BaseException:
            code = 4
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 20):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks)
    if os.WIFSIGNALED(status):
        return _Outcome(err=-os.WTERMSIG(status))
    code = os.WEXITSTATUS(status)
    if code == 3:
        return _Outcome(err=int(out))
    if code != 0:
        raise RuntimeError(f"the mmap child failed (exit {code})")
    return _Outcome(out if data is None else None)


def summary_table(summary: dict[str, Any]) -> str:
    """Ops by kind, as ``bench/model_check.py`` prints them."""
    rows = sorted(summary["by_kind"].items(), key=lambda kv: -kv[1])
    secs = summary["seconds_by_kind"]
    width = max([len(k) for k, _ in rows] + [4])
    out = [f"{'op':<{width}}  {'count':>8}  {'seconds':>8}"]
    out += [f"{k:<{width}}  {v:>8}  {secs.get(k, 0):>8.1f}" for k, v in rows]
    index, slowest = summary["slowest"]
    out.append(f"{'all':<{width}}  {sum(v for _, v in rows):>8}  {summary['seconds']:>8.1f}   "
               f"({summary['skipped']} skipped; slowest: op {index}, {slowest:.1f} s)")  # fmt: skip
    return "\n".join(out)
