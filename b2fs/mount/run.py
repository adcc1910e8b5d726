"""Running a mount: checks before anything is mounted, then the trio loop until unmount.

Order of events: the mountpoint is checked; the B2 key is authorized; the
bucket, the key's capabilities and its name-prefix restriction are checked
(and, with ``-o encrypt``, the vault is opened; without it, a prefix that
has a vault is refused); only then is the FUSE
mount made, and readiness reported (to the parent process in background
mode, and to systemd with ``READY=1``).  Any failure before that point is a
``StartupError`` whose one-line message the CLI prints, with no mount left
behind.  SIGINT/SIGTERM (and ``fusermount3 -u``) end the loop; pending
uploads are then given ``unmount_wait`` seconds to land, with progress in
the log, before the process exits.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import logging
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyfuse3
import trio

from b2fs.fs import errno_map
from b2fs.mount import sdnotify
from b2fs.mount.allocator import keep_freed_memory
from b2fs.mount.bwlimit import follow, parse_bwlimit
from b2fs.mount.control import serve_control
from b2fs.mount.options import MountOptions, metrics_address
from b2fs.mount.recent import RecentWarnings
from b2fs.mount.source import Source
from b2fs.mount.status import StatusReport, hide_password

log = logging.getLogger("b2fs.mount")

READ_CAPS = ("listFiles", "readFiles")
WRITE_CAPS = ("writeFiles",)


class StartupError(Exception):
    """The mount cannot start; the message says why, in one line."""


@dataclass
class Credentials:
    key_id: str
    key: str = field(repr=False)
    realm: str


def check_mountpoint(path: str, nonempty: bool = False) -> str:
    path = os.path.abspath(path)
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOTCONN:  # the FUSE process behind a mount here has died
            raise StartupError(
                f"mountpoint {path} is a dead FUSE mount (its process ended without "
                f"unmounting): run fusermount3 -uz {path}"
            ) from None
    if not os.path.exists(path):
        raise StartupError(f"mountpoint {path} does not exist")
    if not os.path.isdir(path):
        raise StartupError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise StartupError(f"mountpoint {path} is busy: something is already mounted there")
    try:
        entries = os.listdir(path)
    except OSError as e:
        raise StartupError(f"mountpoint {path} is not usable: {e.strerror}") from None
    if entries and not nonempty:
        raise StartupError(
            f"mountpoint {path} is not empty: the mount would hide its {len(entries)} entr"
            f"{'y' if len(entries) == 1 else 'ies'}; use an empty directory, or -o nonempty"
        )
    return path


def default_cache_dir(realm: str, source: Source, past: bool = False) -> str:
    """One per realm, bucket and prefix; mounts of the past (``version_at``) have their own,
    so one can run beside the mount of the present."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(f"{realm}\0{source.bucket}\0{source.prefix}".encode()).hexdigest()[:12]
    return os.path.join(base, "b2fs", f"{source.bucket}-{tag}" + ("-past" if past else ""))


def open_cache_dir(path: str) -> int:
    """Create the cache directory (0700) and lock it for this mount; returns the lock fd."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StartupError(f"cache directory {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise StartupError(
            f"cache directory {path} is in use by another b2fs mount{pid}: each mount needs "
            "its own; give this one --cache-dir DIR (or -o cache_dir=DIR)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def client_args(opts: MountOptions) -> dict[str, Any]:
    """The ``B2Client`` keywords that the mount options set (timeouts, retries, network, and
    the server-side encryption every upload, copy and download carries: ``-o sse``,
    ``-o sse_c_key_file``). StartupError for an unusable SSE-C key file."""
    from b2fs.b2 import RetryPolicy, Timeouts
    from b2fs.mount.sse import SseKeyError, encryption

    try:
        sse = encryption(opts)
    except SseKeyError as e:
        raise StartupError(str(e)) from None
    t = opts.io_timeout
    up = down = None
    if opts.bwlimit:
        up, down = parse_bwlimit(opts.bwlimit).limits_at(time.localtime())
    cert: str | tuple[str, str] | None = opts.client_cert
    if opts.client_cert and opts.client_key:
        cert = (opts.client_cert, opts.client_key)
    return {
        "retry": RetryPolicy(max_total=t),
        "timeouts": Timeouts(
            connect=min(10.0, t), read=min(60.0, t), write=min(60.0, t), pool=t, call=t
        ),
        "http2": opts.http2,
        "proxy": opts.proxy,
        "ca_bundle": opts.ca_bundle,
        "client_cert": cert,
        "max_connections": opts.connections,
        "upload_limit": up,
        "download_limit": down,
        "server_side_encryption": sse,
    }


async def connect(creds: Credentials, source: Source, opts: MountOptions) -> tuple[Any, Any]:
    """Authorize and find the bucket; returns (client, bucket). Raises StartupError."""
    from b2fs.b2 import B2Client, B2Error, BucketNotFound
    from b2fs.b2.errors import CertificateError, InvalidAuthToken, NetworkError, Unauthorized

    try:
        client = B2Client(creds.key_id, creds.key, realm=creds.realm, **client_args(opts))
    except (OSError, ssl.SSLError) as e:  # the CA bundle or client certificate files
        what = "ca_bundle" if opts.ca_bundle and not opts.client_cert else "ca_bundle/client_cert"
        name = f" {e.filename}" if getattr(e, "filename", None) else ""
        raise StartupError(f"{what}: cannot load{name}: {e.strerror or e}") from None
    try:
        await client.__aenter__()
    except ImportError as e:
        raise StartupError(f"-o http2 needs the h2 package (pip install h2): {e}") from None
    try:
        try:
            account = await client.authorize()
        except (InvalidAuthToken, Unauthorized):
            raise StartupError(
                "B2 refused the application key (bad key id or key, or the key was deleted)"
            ) from None
        except CertificateError as e:
            raise StartupError(
                f"B2 at {creds.realm} has a certificate this machine does not trust ({e}); "
                "-o ca_bundle=FILE names the authority to trust"
            ) from None
        except NetworkError as e:
            hint = f" (through the proxy {hide_password(opts.proxy)})" if opts.proxy else ""
            raise StartupError(f"cannot reach B2 at {creds.realm}{hint}: {e}") from None
        except B2Error as e:
            raise StartupError(f"authorizing with B2 failed: {e}") from None
        try:
            bucket = await client.get_bucket(source.bucket)
        except BucketNotFound:
            raise StartupError(
                f"bucket {source.bucket!r} does not exist or this key cannot see it: create it "
                f"with `b2fs bucket create {source.bucket}`, or list the ones this key sees "
                "with `b2fs bucket list`"
            ) from None
        except Unauthorized as e:
            raise StartupError(f"this key may not list bucket {source.bucket!r}: {e}") from None
        if account.allowed_buckets is not None and bucket.bucket_id not in {
            b.bucket_id for b in account.allowed_buckets
        }:
            raise StartupError(f"this key is restricted to other buckets than {source.bucket!r}")
        needed = READ_CAPS + (() if opts.read_only else WRITE_CAPS)
        if opts.hard_delete and not opts.read_only:
            needed += ("deleteFiles",)
        missing = [c for c in needed if c not in account.capabilities]
        if missing:
            hint = "" if opts.read_only else " (mount with -o ro to read only)"
            raise StartupError(f"the key lacks the capabilities {', '.join(missing)}{hint}")
        if account.name_prefix and not source.prefix.startswith(account.name_prefix):
            raise StartupError(
                f"the key is restricted to names starting with {account.name_prefix!r}: "
                f"mount b2://{source.bucket}/{account.name_prefix} or below"
            )
        return client, bucket
    except BaseException:
        await client.aclose()
        raise


def fuse_options(source: Source, opts: MountOptions) -> set[str]:
    fsname = f"b2://{source.bucket}/{source.prefix}"
    if any(c in fsname for c in ", \t\n\\"):
        fsname = f"b2://{source.bucket}"
    options = {f"fsname={fsname}", "subtype=b2fs", "default_permissions", "noatime"}
    if opts.allow_other:
        options.add("allow_other")
    if opts.read_only:
        options.add("ro")
    return options


async def serve(creds: Credentials, source: Source, mountpoint: str, opts: MountOptions,
                ready: Callable[[], None], passphrase: str | None = None) -> None:  # fmt: skip
    """Everything from authorize to unmount. ``ready`` is called once the mount is up;
    ``passphrase`` opens the vault of an encrypted mount (``-o encrypt``)."""
    from b2fs.mount.assemble import assemble
    from b2fs.mount.vault import VaultRefused, mount_codecs
    from b2fs.writeback.journal import JournalError

    cache_dir = opts.cache_dir or default_cache_dir(
        creds.realm, source, opts.version_at is not None
    )
    keep_freed_memory()
    stop = _Stop()
    lock_fd = -1
    warnings = RecentWarnings()
    logging.getLogger("b2fs").addHandler(warnings)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            client, bucket = await connect(creds, source, opts)
            try:
                try:
                    codecs = await mount_codecs(client, bucket, source, opts, passphrase)
                    lock_fd = open_cache_dir(cache_dir)  # after the checks: no directory for a typo
                    mount = await assemble(client, bucket, source, cache_dir, opts, codecs)
                except (VaultRefused, JournalError) as e:
                    raise StartupError(str(e)) from None
                table = parse_bwlimit(opts.bwlimit) if opts.bwlimit else None
                report = StatusReport(mount, client, source=source, mountpoint=mountpoint,
                                      cache_dir=cache_dir, opts=opts, bwlimit=table,
                                      warnings=warnings)  # fmt: skip
                metrics = await _open_metrics(opts, report)
                async with trio.open_nursery() as services:  # uploads and other background work
                    services.start_soon(stop.watch, signals, mountpoint)
                    services.start_soon(report.activity.run)
                    if table is not None:
                        services.start_soon(follow, table, client)
                    if metrics is not None:
                        services.start_soon(metrics)
                    await services.start(serve_control, mountpoint, report.status,
                                         {**mount.history.handlers(), "refresh": mount.refresh_request})  # fmt: skip
                    await mount.start(services)
                    await _run_fuse(mount, source, mountpoint, opts, ready, stop)
                    with stop.drain:
                        async with trio.open_nursery() as draining:
                            draining.start_soon(_drain_progress, report, opts)
                            await mount.stop(opts.unmount_wait)
                            draining.cancel_scope.cancel()
                    services.cancel_scope.cancel()
            finally:
                errno_map.set_observer(None)
                with trio.CancelScope(shield=True):
                    await client.aclose()
    finally:
        logging.getLogger("b2fs").removeHandler(warnings)
        if lock_fd >= 0:
            os.close(lock_fd)


async def _open_metrics(opts: MountOptions, report: StatusReport) -> Any:
    """With ``-o metrics=``: bind its port now (a StartupError if that fails) and return the
    task that serves it; the FUSE operations are observed from then on."""
    if opts.metrics is None:
        return None
    from b2fs.mount import metrics_server
    from b2fs.mount.metrics import CONTENT_TYPE, Metrics

    host, port = metrics_address(opts.metrics)
    try:
        listeners = await metrics_server.listen(host, port)
    except OSError as e:
        raise StartupError(
            f"-o metrics={opts.metrics}: cannot listen on {host}:{port}: {e.strerror or e}"
        ) from None
    metrics = Metrics(report.status)
    shown = f"[{host}]" if ":" in host else host
    report.metrics_url = f"http://{shown}:{metrics_server.bound_port(listeners)}/metrics"
    errno_map.set_observer(metrics.observe)
    log.info("metrics at %s", report.metrics_url)
    return functools.partial(metrics_server.serve, listeners, metrics.render, CONTENT_TYPE)


async def _drain_progress(report: StatusReport, opts: MountOptions, every: float = 5.0) -> None:
    """While uploads drain at unmount: what is left and the rate, every few seconds (to the log,
    and to the terminal in the foreground, where the log shows warnings only)."""
    wb = report.mount.writeback
    if wb is None:
        return
    stats = report.client.stats
    start = trio.current_time()
    sent = stats.bytes_uploaded
    while True:
        pending = wb.status()["pending"]
        files = len(pending)
        left = sum(max(0, p["total"] - p["sent"]) if "sent" in p else p["bytes"] for p in pending)
        if not files:
            return
        now = trio.current_time()
        waited = now - start
        rate = (stats.bytes_uploaded - sent) / waited if waited > 0 else 0.0
        line = f"unmount: {files} upload(s) left, {_size(left)}"
        if waited >= 1:
            eta = f", about {left / rate:.0f} s" if rate > 0 else ""
            line += f", at {_size(rate)}/s{eta}"
        line += f"; waiting up to {max(0.0, opts.unmount_wait - waited):.0f} s more"
        log.info("%s", line)
        if opts.foreground and not log.isEnabledFor(logging.INFO):
            print(f"b2fs: {line}", file=sys.stderr, flush=True)
        await trio.sleep(every)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class _Stop:
    """Signals: the first unmounts; another one while uploads drain stops waiting for them."""

    def __init__(self) -> None:
        self.requested = False
        self.fuse_running = False
        self.drain = trio.CancelScope()

    async def watch(self, signals: Any, mountpoint: str) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not self.requested:
                self.requested = True
                log.info("%s: unmounting %s", name, mountpoint)
                if self.fuse_running:
                    pyfuse3.terminate()
            else:
                log.warning(
                    "%s again: not waiting for pending uploads (they stay in the journal)", name
                )
                self.drain.cancel()


async def _run_fuse(mount: Any, source: Source, mountpoint: str, opts: MountOptions,
                    ready: Callable[[], None], stop: _Stop) -> None:  # fmt: skip
    """Mount, serve requests until unmounted or told to stop, unmount."""
    if stop.requested:
        return
    # The kernel sets the mount's read-ahead from the INIT answer: raise it after that.
    mount.operations.after_init = lambda: set_kernel_readahead(mountpoint, opts.kernel_readahead)
    mount.operations.enable_writeback_cache = opts.writeback_cache  # read by pyfuse3's INIT
    try:
        pyfuse3.init(mount.operations, mountpoint, fuse_options(source, opts))
    except RuntimeError as e:
        raise StartupError(f"mounting on {mountpoint} failed ({e}); is /dev/fuse usable?") from None
    kernel_ended = False
    try:
        async with trio.open_nursery() as requests:  # the FUSE loop's own tasks
            log.info("mounted %s on %s", source, mountpoint)
            mount.start_fuse(requests)
            ready()
            sdnotify.ready(f"mounted {source} on {mountpoint}")
            stop.fuse_running = True
            await pyfuse3.main()
            stop.fuse_running = False
            kernel_ended = not stop.requested  # fusermount3 -u or umount
            requests.cancel_scope.cancel()
    finally:
        stop.fuse_running = False
        sdnotify.stopping()
        pyfuse3.close(unmount=not kernel_ended)
        log.info("unmounted %s", mountpoint)


def set_kernel_readahead(mountpoint: str, size: int) -> None:
    """Raise the kernel's read-ahead for this mount's device (sequential reads then reach us
    in requests of up to 1 MiB instead of 128 KiB). Only root may; others keep the default.

    The device comes from /proc/self/mountinfo: a stat of the mountpoint would ask this very
    process, whose FUSE loop is not running yet, and never return.
    """
    if size <= 0:
        return
    try:
        device = None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if _unescape(fields[4]) == mountpoint:  # the last one listed is the newest there
                    device = fields[2]
        if device is None:
            return
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(str(max(4, size // 1024)))
    except OSError as e:
        log.debug("kernel read-ahead left at its default: %s", e.strerror)


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash as \\ooo)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
