"""``./dev demo`` (``python -m b2fs.demo``): a B2 bucket mounted and used, then unmounted on Ctrl-C.

With no B2 account configured it starts the local B2 server (``b2fs serve``,
data in ``/var/tmp/b2fs-demo``), puts a few files in bucket ``b2fs-demo``
through the B2 API, and mounts that bucket on ``/mnt/b2fs-demo`` with
``b2fs mount ... -f`` in a subprocess.  With ``B2_APPLICATION_KEY_ID`` and
``B2_APPLICATION_KEY`` set it mounts ``$B2_BUCKET`` of that account instead
(or the one bucket the key is restricted to), and works in its
``b2fs-demo/`` directory only.  Then it uses the mount like any program
would (ls, cat, writes, a rename, reading back), shows ``b2fs status``,
waits for the uploads with fsync, and prints what B2 holds and the API calls
it cost by billing class (from the local server's counters).  It stays
mounted until Ctrl-C (``--once``: unmounts at once and exits 0).

Neighbours: ``b2fs.cli.mount`` (the mount it runs), ``b2fs.emulator.process``
(the local server), ``b2fs.b2`` (seeding and checking the bucket).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import faulthandler
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from b2fs.b2 import B2Client, BucketNotFound
from b2fs.credentials import CredentialsError, load_credentials

BUCKET = "b2fs-demo"
SEED = {
    "hello.txt": b"Hello from b2fs! This file was uploaded through the B2 API.\n",
    "docs/readme.md": b"# b2fs\nA Backblaze B2 bucket as a directory.\n",
    "docs/notes/todo.txt": b"- mount it\n- use it\n",
    "photos/caf\u00e9 au lait.jpg": bytes(range(256)) * 64,
}
MOUNT_TIMEOUT = 30.0


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


@dataclass
class Target:
    """What to mount and with which credentials."""

    key_id: str
    key: str
    realm: str
    bucket: str
    prefix: str  # where the demo writes, relative to the mount ("" or "b2fs-demo/")
    server: Any = None  # the LocalServer, in local mode
    own_calls: Counter[str] = field(default_factory=Counter)  # the demo's, not the mount's


def say(text: str = "") -> None:
    print(text, flush=True)


def shell(argv: list[str], shown: str | None = None) -> None:
    """Run a real program on the mount and show it like a terminal would."""
    say(f"$ {shown or ' '.join(argv)}")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        say(out)
    if r.returncode != 0:
        raise DemoError(f"{argv[0]} exited with {r.returncode}")


# -- the B2 side ----------------------------------------------------------------------------


def local_target(data: Path) -> Target:
    from b2fs.emulator.process import LocalServer
    from b2fs.mount.local import start_shielded

    say(f"No B2 account configured: starting the local B2 server (data in {data}).")
    server = start_shielded(LocalServer(data))
    say(f"  realm {server.realm}, pid {server.pid}")
    return Target(server.key_id, server.key, server.realm, BUCKET, "", server)


def account_target() -> Target:
    try:
        creds = load_credentials()
    except CredentialsError as e:
        raise DemoError(str(e)) from None
    bucket = os.environ.get("B2_BUCKET", "")
    if not bucket:
        bucket = trio.run(_only_bucket, creds.key_id, creds.key, creds.realm)
    say(f"B2 account configured: mounting bucket {bucket} at {creds.realm}; "
        "the demo writes in its b2fs-demo/ directory only.")  # fmt: skip
    return Target(creds.key_id, creds.key, creds.realm, bucket, "b2fs-demo/")


async def _only_bucket(key_id: str, key: str, realm: str) -> str:
    async with B2Client(key_id, key, realm=realm) as client:
        account = await client.authorize()
    allowed = account.allowed_buckets or ()
    if len(allowed) == 1 and allowed[0].bucket_name:
        return allowed[0].bucket_name
    raise DemoError("set B2_BUCKET to the bucket to mount (the key is not restricted to one)")


async def seed(t: Target) -> list[str]:
    """Create the bucket on the local server; upload the seed files that are missing."""
    async with B2Client(t.key_id, t.key, realm=t.realm) as client:
        try:
            bucket = await client.get_bucket(t.bucket)
        except BucketNotFound:
            if t.server is None:
                raise DemoError(
                    f"bucket {t.bucket!r} does not exist or the key cannot see it"
                ) from None
            bucket = await client.create_bucket(t.bucket, "allPrivate")
        have = {
            f.file_name async for f in client.list_file_names(bucket.bucket_id, prefix=t.prefix)
        }
        added = []
        for name, content in SEED.items():
            if t.prefix + name not in have:
                await client.upload(bucket.bucket_id, t.prefix + name, content)
                added.append(t.prefix + name)
        return added


async def bucket_contents(t: Target) -> list[tuple[str, int]]:
    async with B2Client(t.key_id, t.key, realm=t.realm) as client:
        bucket = await client.get_bucket(t.bucket)
        return [(f.file_name, f.size)
                async for f in client.list_file_names(bucket.bucket_id, prefix=t.prefix)]  # fmt: skip


# -- the mount -------------------------------------------------------------------------------


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def prepare_mountpoint(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise DemoError(f"cannot use {path}: {e.strerror}") from None
    try:
        os.stat(path)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise
        say(f"{path} holds a dead mount (a demo that was killed): clearing it")
        subprocess.run(["fusermount3", "-uz", str(path)], check=True)
    if is_mounted(path):
        raise DemoError(f"something is already mounted on {path}: unmount it first")


class MountProcess:
    """``b2fs mount ... -f`` in its own session: the demo decides when it unmounts."""

    def __init__(self, t: Target, mountpoint: Path, cache_dir: str | None, log: Path) -> None:
        self.mountpoint = mountpoint
        self.log = log
        self.argv = [sys.executable, "-m", "b2fs", "-v", "mount", f"b2://{t.bucket}",
                     str(mountpoint), "-f"]  # fmt: skip
        if cache_dir:
            self.argv += ["--cache-dir", cache_dir]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("B2_")}
        self.env.update(B2_APPLICATION_KEY_ID=t.key_id, B2_APPLICATION_KEY=t.key,
                        B2_ENVIRONMENT=t.realm)  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        say(
            f"$ b2fs {' '.join(self.argv[4:])}   # key and realm in the environment; log: {self.log}"
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        say(f"  mount process pid {self.proc.pid}")
        started = time.monotonic()
        while not is_mounted(self.mountpoint):
            if self.proc.poll() is not None:
                raise DemoError(f"the mount exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() - started > MOUNT_TIMEOUT:
                raise DemoError(
                    f"the mount did not come up in {MOUNT_TIMEOUT:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.05)
        say(f"  mounted in {time.monotonic() - started:.1f}s")

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (unmount, then pending uploads land); a Ctrl-C meanwhile stops waiting."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            while True:
                try:
                    self.proc.wait()
                    break
                except KeyboardInterrupt:
                    say("  not waiting for pending uploads (they stay in the journal)")
                    self.proc.send_signal(signal.SIGTERM)
        return self.proc.returncode


# -- the demo --------------------------------------------------------------------------------


def use_the_mount(t: Target, mnt: Path) -> None:
    root = mnt / t.prefix
    say("\n# The bucket, as a directory tree:")
    shell(["ls", "-lR", str(root)], f"ls -lR {root}")
    shell(["cat", str(root / "hello.txt")], f"cat {root / 'hello.txt'}")

    say("\n# Writing through the mount (close returns at local speed; uploads follow):")
    random_data = os.urandom(4 << 20)
    writes = {"notes/today.txt": b"Written through the mount.\n",
              "notes/draft.txt": b"A plan, to be renamed.\n", "data/random.bin": random_data}  # fmt: skip
    for name, content in writes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        (root / name).write_bytes(content)
        ms = (time.perf_counter() - started) * 1000
        say(f"  wrote {name} ({len(content):,} bytes), closed in {ms:.0f} ms")
    (root / "projects").mkdir(exist_ok=True)
    os.replace(root / "notes/draft.txt", root / "projects/plan.txt")
    say("  renamed notes/draft.txt to projects/plan.txt")
    back = (root / "data/random.bin").read_bytes()
    same = hashlib.sha256(back).digest() == hashlib.sha256(random_data).digest()
    say(f"  read data/random.bin back: {'identical' if same else 'DIFFERENT'}")
    if not same:
        raise DemoError("data/random.bin read back differs from what was written")
    shell([sys.executable, "-m", "b2fs", "status", str(mnt)], f"b2fs status {mnt}")

    say("\n# fsync returns once B2 holds the data (of a directory: its entries):")
    for name in ("notes/today.txt", "projects/plan.txt", "data/random.bin", "notes", "projects",
                 "data", "."):  # fmt: skip
        fd = os.open(root / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    shell([sys.executable, "-m", "b2fs", "status", str(mnt)], f"b2fs status {mnt}")

    show_calls(t, "API calls of the mount so far")
    say(f"\n# What B2 holds now (b2_list_file_names of {t.bucket}/{t.prefix}):")
    before = Counter(t.server.counters()["calls"]) if t.server is not None else Counter()
    for name, size in trio.run(bucket_contents, t):
        say(f"  {size:>9,}  {name}")
    if t.server is not None:
        t.own_calls += Counter(t.server.counters()["calls"]) - before


def show_calls(t: Target, title: str) -> None:
    """The local server's counters, less the demo's own calls (seeding, checking the bucket)."""
    if t.server is None:
        say("\n(The local server counts API calls; on B2, see your account's reports.)")
        return
    from b2fs.emulator.counters import billing_class

    calls = Counter(t.server.counters()["calls"])
    calls.subtract(t.own_calls)
    say(f"\n# {title}, by billing class (the local server's counters):")
    classes: Counter[str] = Counter()
    for name, count in sorted(calls.items(), key=lambda kv: (billing_class(kv[0]), kv[0])):
        if count > 0:
            say(f"  {billing_class(name)}  {count:5}  {name}")
            classes[billing_class(name)] += count
    from b2fs.cost import dollars, estimate
    from b2fs.prices import Prices, PricesError, load_prices

    try:
        prices = load_prices()
    except PricesError:
        prices = Prices()
    cost = estimate(classes, prices=prices).total
    say(f"  class A {classes['A']}, class B {classes['B']}, class C {classes['C']}: "
        f"{dollars(cost)} at B2's list prices")  # fmt: skip


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[list[bool]]:
    """Note a Ctrl-C instead of raising, for a block that must not be cut short."""
    seen: list[bool] = []
    old = signal.signal(signal.SIGINT, lambda *_: seen.append(True))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, old)


def run(args: argparse.Namespace) -> int:
    account = bool(os.environ.get("B2_APPLICATION_KEY_ID") or os.environ.get("B2_APPLICATION_KEY"))
    t = account_target() if account else local_target(args.data)
    mount: MountProcess | None = None
    try:
        added = trio.run(seed, t)
        if added:
            say(
                f"  uploaded {len(added)} file(s) to {t.bucket} through the B2 API: {', '.join(added)}"
            )
        if t.server is not None:
            t.server.reset_counters()  # from here on, the counters are the mount's
        prepare_mountpoint(args.mountpoint)
        log = args.data / "mount.log" if not account else Path("/var/tmp/b2fs-demo-mount.log")
        mount = MountProcess(t, args.mountpoint, args.cache_dir, log)
        mount.start()
        use_the_mount(t, args.mountpoint)
        if not args.once:
            try:  # entered before the prompt: a Ctrl-C right after it lands here too
                say(f"\nThe bucket stays mounted on {args.mountpoint}: use it from another shell "
                    "(ls, cp, vim, git...). Press Ctrl-C to unmount.")  # fmt: skip
                while mount.alive():
                    time.sleep(0.2)
                say(
                    f"the mount ended by itself (exit {mount.proc.returncode if mount.proc else '?'})"
                )
            except KeyboardInterrupt:
                say("")
        say("Unmounting (pending uploads land first)...")
        code = mount.stop()
        say(f"  unmounted (b2fs exit {code})")
        if not args.once:
            show_calls(t, "API calls of the whole mount")
        return 0 if code == 0 else 1
    finally:
        if mount is not None and mount.alive():
            mount.stop()
        if t.server is not None:
            with interrupts_deferred():
                t.server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m b2fs.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--once", action="store_true", help="unmount and exit when done (no Ctrl-C)")
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/b2fs-demo"),
                    help="local server data directory (default /var/tmp/b2fs-demo)")  # fmt: skip
    ap.add_argument("--mountpoint", type=Path, default=Path("/mnt/b2fs-demo"),
                    help="where to mount (default /mnt/b2fs-demo)")  # fmt: skip
    ap.add_argument("--cache-dir", help="the mount's cache directory (default: b2fs's own)")
    args = ap.parse_args(argv)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where it is stuck
    # "Press Ctrl-C" must work even when started with SIGINT ignored (as a shell without
    # job control starts background commands): Python then leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.data = args.data.absolute()
    args.mountpoint = args.mountpoint.absolute()
    try:
        return run(args)
    except DemoError as e:
        print(f"b2fs demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("b2fs demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
