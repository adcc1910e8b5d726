"""``b2fs mount``: mount a bucket (or a prefix of it) on a directory.

Two spellings: ``b2fs mount b2://BUCKET[/PREFIX] MOUNTPOINT [-o opts]`` and
the mount(8)/fstab one, ``b2fs BUCKET[/PREFIX] MOUNTPOINT -o opts``, which
is what ``mount -t fuse.b2fs`` runs through mount.fuse3.  In the background
(the default), the command returns once the mount is up, or prints why it
could not start and exits 1; ``-f`` stays in the foreground (what systemd's
``Type=notify`` unit uses).  With ``--local DATA_DIR`` (or ``-o local=...``)
an embedded local B2 server runs for the life of the mount.  With ``-o
encrypt`` the passphrase is read (``--passphrase-file``/``-o passphrase_file``,
``$B2FS_PASSPHRASE``, or a prompt on the terminal) before forking.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from typing import Any

from b2fs.mount.options import MountOptions, OptionError, parse_options
from b2fs.mount.source import SourceError, parse_source

log = logging.getLogger("b2fs.mount")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mount",
        help="mount a bucket on a directory",
        description="Mount b2://BUCKET[/PREFIX] on MOUNTPOINT. See docs/operations.md for every -o option.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="b2://BUCKET[/PREFIX] (or BUCKET[/PREFIX])")
    p.add_argument("mountpoint", help="an empty directory (or any directory, with -o nonempty)")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="mount options (uid=, gid=, umask=, ro, cache_size=, dir_cache_time=, ...)")  # fmt: skip
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument(
        "--local", metavar="DATA_DIR", help="run an embedded local B2 server on DATA_DIR"
    )
    p.add_argument("--credentials", metavar="FILE", help="credentials file (0600, KEY=value lines)")
    p.add_argument("--passphrase-file", metavar="FILE",
                   help="with -o encrypt: a 0600 file whose first line is the passphrase "
                   "(else $B2FS_PASSPHRASE, else a prompt)")  # fmt: skip
    p.add_argument("--realm", help="B2 realm URL (default: $B2_ENVIRONMENT or production)")
    p.add_argument("--cache-dir", help="cache directory (default ~/.cache/b2fs/BUCKET-...)")
    p.add_argument("--log-file", help="log file in background mode (default CACHE_DIR/mount.log)")
    p.add_argument("--bwlimit", metavar="RATES",
                   help="bandwidth limits: RATE, UP:DOWN, or a time table as rclone's --bwlimit "
                   "(\"08:00,512K 19:00,10M:off 23:00,off\"); see -o bwlimit")  # fmt: skip
    p.add_argument(
        "-n", dest="no_mtab", action="store_true", help=argparse.SUPPRESS
    )  # mount.fuse3 compat
    p.add_argument("-s", dest="single", action="store_true", help=argparse.SUPPRESS)  # fuse compat


def build_options(args: argparse.Namespace) -> MountOptions:
    opts = parse_options(",".join(args.options))
    for name in ("local", "credentials", "realm", "cache_dir", "log_file", "passphrase_file",
                 "bwlimit"):  # fmt: skip
        value = getattr(args, name, None)
        if value:
            setattr(opts, name, value)
    if args.foreground:
        opts.foreground = True
    opts.validate()
    return opts


def run(args: argparse.Namespace) -> int:
    from b2fs.mount.run import StartupError, check_mountpoint

    try:
        source = parse_source(args.source)
        opts = build_options(args)
        mountpoint = check_mountpoint(args.mountpoint, nonempty=opts.nonempty)
    except (SourceError, OptionError, StartupError) as e:
        print(f"b2fs: {e}", file=sys.stderr)
        return 2 if not isinstance(e, StartupError) else 1
    if opts.debug:
        logging.getLogger("b2fs").setLevel(logging.DEBUG)
    passphrase = None
    if opts.encrypt:  # before forking: a prompt needs the terminal
        from b2fs.passphrase import PassphraseError, get_passphrase

        try:
            passphrase = get_passphrase(file=opts.passphrase_file, prompt=f"Passphrase for {source}: ",
                                        file_hint="-o passphrase_file=FILE")  # fmt: skip
        except PassphraseError as e:
            print(f"b2fs: {e}", file=sys.stderr)
            return 1
    report = _Report(sys.stderr)
    if not opts.foreground:
        forked = _daemonize(opts)
        if isinstance(forked, int):  # the parent: the child reported back
            return forked
        report = forked
    return _mount(source, mountpoint, opts, report, passphrase)


def _mount(source: Any, mountpoint: str, opts: MountOptions, report: Any,
           passphrase: str | None = None) -> int:  # fmt: skip
    import trio

    from b2fs.mount.run import StartupError, serve

    _stacks_on_sigusr1()
    server = None
    try:
        if opts.local:
            from b2fs.mount.local import start_local

            server, creds = start_local(opts.local, source.bucket)
        else:
            creds = _credentials(opts)
        trio.run(serve, creds, source, mountpoint, opts, report.ok, passphrase)
        return 0
    except StartupError as e:
        report.fail(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        log.exception("the mount failed")
        report.fail(f"the mount failed: {type(e).__name__}: {e}")
        return 1
    finally:
        if server is not None:
            server.stop()


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` writes every thread's Python stack to the mount's log (stderr in
    the foreground): what a mount that seems stuck is doing, without stopping it."""
    stream = next((h.stream for h in logging.getLogger().handlers
                   if isinstance(h, logging.FileHandler)), sys.stderr)  # fmt: skip
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)


def _credentials(opts: MountOptions) -> Any:
    from b2fs.credentials import CredentialsError, load_credentials
    from b2fs.mount.run import Credentials, StartupError

    try:
        c = load_credentials(opts.credentials, opts.realm)
    except CredentialsError as e:
        raise StartupError(str(e)) from None
    return Credentials(c.key_id, c.key, c.realm)


class _Report:
    """Says whether the mount came up: on stderr (foreground) or through a pipe to the parent."""

    def __init__(self, stream: Any, fd: int | None = None) -> None:
        self.stream = stream
        self.fd = fd

    def ok(self) -> None:
        if self.fd is not None:
            os.write(self.fd, b"ok\n")
            os.close(self.fd)
            self.fd = None

    def fail(self, message: str) -> None:
        if self.fd is not None:
            log.error("%s", message)

            os.write(self.fd, f"error {message}\n".encode())
            os.close(self.fd)
            self.fd = None
        elif self.stream is not None:
            print(f"b2fs: {message}", file=self.stream)


def _daemonize(opts: MountOptions) -> _Report | int:
    """Fork; the parent waits for the child's word and returns an exit code; the child a _Report."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        chunks = []
        while chunk := os.read(r, 4096):
            chunks.append(chunk)
        os.close(r)
        word = b"".join(chunks).decode(errors="replace").strip()
        if word == "ok":
            return 0
        message = (
            word.removeprefix("error ").strip() or "the mount process ended before the mount was up"
        )
        print(f"b2fs: {message}", file=sys.stderr)
        return 1
    os.close(r)
    os.setsid()
    log_file = opts.log_file or os.path.join(_cache_dir_for_log(opts), "mount.log")
    _log_to_file(log_file)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return _Report(None, w)


def _cache_dir_for_log(opts: MountOptions) -> str:
    base = opts.cache_dir or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "b2fs"
    )
    os.makedirs(base, mode=0o700, exist_ok=True)
    return base


def _log_to_file(path: str) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.FileHandler(path)
    os.chmod(path, 0o600)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
