"""Mount options: the ``-o a,b=c`` string of mount(8)/fstab, parsed into one typed record.

Neighbours: ``b2fs.cli.mount`` parses the command line and hands the ``-o``
string here; everything below the CLI (vfs, reader, cache, writeback) reads
its settings from the ``MountOptions`` this module builds.  Sizes accept
``K``/``M``/``G``/``T`` suffixes (powers of 1024); times are seconds.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

# Options mount(8) and mount.fuse3 pass along that only matter to them.
_IGNORED = {
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto", "user",
    "nouser", "users", "_netdev", "nofail", "defaults", "async", "atime", "noatime",
    "relatime", "norelatime", "strictatime", "lazytime", "nolazytime", "loop",
}  # fmt: skip


class OptionError(ValueError):
    """A ``-o`` option that is unknown or has a bad value."""


def parse_size(text: str) -> int:
    """``"64M"`` -> 67108864; plain digits are bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = float(t)
    except ValueError:
        raise OptionError(f"not a size: {text!r}") from None
    if value < 0:
        raise OptionError(f"negative size: {text!r}")
    return int(value * mult)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on", ""):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"not a boolean: {text!r}")


@dataclass
class MountOptions:
    """Every tunable of a mount, with its default."""

    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    umask: int = 0o022
    allow_other: bool = False
    read_only: bool = False
    nonempty: bool = False  # mount on a directory that has entries (they are hidden meanwhile)
    # metadata caching
    dir_cache_time: float = 60.0  # listing TTL (other mounts' changes show up after this)
    attr_timeout: float = 1.0  # kernel attribute cache
    entry_timeout: float = 1.0  # kernel positive dentry cache
    negative_timeout: float = 1.0  # kernel negative dentry cache
    # other mounts of the same prefix (b2fs.sync)
    poll_interval: float = 10.0  # read their change records this often (0: never)
    change_log: bool = True  # write change records of this mount's changes for them
    # reads and the block cache
    block_size: int = 1 << 20
    cache_size: int = 1 << 30
    cache_dir: str | None = None
    # which downloaded blocks go to the disk cache: "reuse" (on evidence of reuse; the first
    # sequential pass over a large file streams without writes) or "all"
    cache_admit: str = "reuse"
    memory_cache: int = 64 << 20  # decoded blocks kept in memory
    # half the memory cache: read-ahead blocks are read before they age out of it
    max_readahead: int = 32 << 20
    kernel_readahead: int = 1 << 20  # the kernel's own read-ahead on this mount (its read size)
    max_request: int = 8 << 20  # largest single ranged GET
    download_concurrency: int = 8
    io_timeout: float = 120.0  # a B2 call (with its retries) that takes longer fails: EIO
    # writes
    writeback_delay: float = 5.0
    upload_concurrency: int = 4
    large_file_threshold: int = 0  # 0: the account's recommended part size
    part_size: int = 0  # 0: the account's recommended part size
    unmount_wait: float = 600.0  # how long unmount waits for pending uploads
    sync_close: bool = False  # close fsyncs staging and journal (survives a power cut at once)
    writeback_cache: bool = False  # the kernel's FUSE write-back cache (one machine's mount only)
    hard_delete: bool = False
    keep_attrs: bool = True  # persist mode/uid/gid in file info
    # history (b2fs.history)
    versions: bool = True  # the versions view at the mount root
    show_versions: bool = False  # ... listed by readdir of the root (else reachable by name only)
    version_at: str | None = None  # RFC 3339 or epoch seconds: the bucket as it was then (ro)
    # encryption
    encrypt: bool = False
    passphrase_file: str | None = None
    # the network (the B2 client's controls)
    bwlimit: str | None = None  # "UP:DOWN" or a time table (b2fs.mount.bwlimit)
    connections: int = 64  # HTTP connections to B2 kept open at most
    http2: bool = False
    proxy: str | None = None
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    # watching it
    metrics: str | None = None  # [HOST:]PORT of the Prometheus endpoint (loopback by default)
    sse: str | None = None  # "b2": B2 encrypts new files with its keys (SSE-B2)
    sse_c_key_file: str | None = None  # SSE-C: B2 encrypts with this key, which reads need
    # credentials for the fstab form
    credentials: str | None = None
    realm: str | None = None
    local: str | None = None  # data dir of an embedded local B2 server
    log_file: str | None = None
    foreground: bool = False
    debug: bool = False

    def validate(self) -> None:
        if self.block_size < 64 << 10 or self.block_size > 64 << 20:
            raise OptionError("block_size must be between 64K and 64M")
        if self.block_size % (64 << 10):
            raise OptionError("block_size must be a multiple of 64K")
        if self.max_request < self.block_size:
            self.max_request = self.block_size
        if self.cache_admit not in ("reuse", "all"):
            raise OptionError("cache_admit is reuse or all")
        if self.download_concurrency < 1 or self.upload_concurrency < 1:
            raise OptionError("concurrency options must be at least 1")
        if not 0 <= self.umask <= 0o777:
            raise OptionError("umask must be an octal number up to 777")
        if self.passphrase_file and not self.encrypt:
            raise OptionError("passphrase_file is only used with -o encrypt")
        if not 0 <= self.poll_interval <= 3000:
            raise OptionError("poll_interval is seconds from 0 (off) to 3000")
        if self.connections < 1:
            raise OptionError("connections must be at least 1")
        if self.client_key and not self.client_cert:
            raise OptionError("client_key goes with client_cert")
        if self.proxy and not self.proxy.startswith(("http://", "https://")):
            raise OptionError("proxy is a URL: http://HOST:PORT (or https://...)")
        if self.bwlimit is not None:
            from b2fs.mount.bwlimit import parse_bwlimit

            parse_bwlimit(self.bwlimit)
        if self.metrics is not None:
            metrics_address(self.metrics)
        if self.sse not in (None, "b2"):
            raise OptionError("sse takes b2 (SSE-B2); for SSE-C give sse_c_key_file")
        if self.sse and self.sse_c_key_file:
            raise OptionError("sse=b2 and sse_c_key_file are two kinds of encryption: choose one")
        if self.version_at is not None:
            from b2fs.history.times import TimeError, parse_time

            try:
                parse_time(self.version_at)
            except TimeError as e:
                raise OptionError(f"version_at: {e}") from None
            self.read_only = True  # the past cannot be changed
        if self.show_versions and not self.versions:
            raise OptionError("show_versions lists the versions view, which noversions turns off")


def metrics_address(text: str) -> tuple[str, int]:
    """``-o metrics=`` as (host, port): ``PORT`` or ``HOST:PORT``; loopback unless a host is given."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number < 65536 or (sep and not host):
        raise OptionError(f"metrics takes PORT or HOST:PORT (e.g. 127.0.0.1:9464), not {text!r}")
    return host, number


_SIZES = {"block_size", "cache_size", "memory_cache", "max_readahead", "max_request",
          "kernel_readahead", "large_file_threshold", "part_size"}  # fmt: skip
_FLOATS = {
    "io_timeout",
"dir_cache_time", "attr_timeout", "entry_timeout", "negative_timeout",
           "writeback_delay", "unmount_wait", "poll_interval"}  # fmt: skip
_INTS = {"uid", "gid", "download_concurrency", "upload_concurrency", "connections"}
_BOOLS = {"allow_other", "hard_delete", "keep_attrs", "encrypt", "foreground", "debug", "http2",
          "nonempty", "sync_close", "writeback_cache", "versions", "show_versions",
          "change_log"}  # fmt: skip
_STRS = {"cache_dir", "passphrase_file", "credentials", "realm", "local", "log_file", "bwlimit",
         "proxy", "ca_bundle", "client_cert", "client_key", "metrics", "sse",
         "sse_c_key_file", "version_at", "cache_admit"}  # fmt: skip
_ALIASES = {"ro": ("read_only", "1"), "allow_root": ("allow_other", "1")}


def parse_options(text: str | None, base: MountOptions | None = None) -> MountOptions:
    """Parse a comma-separated ``-o`` string onto ``base`` (or the defaults)."""
    opts = base if base is not None else MountOptions()
    fields = {f.name for f in dataclasses.fields(MountOptions)}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if key in _IGNORED or key.startswith("x-") or key == "comment":
            continue
        key = key.replace("-", "_")
        if key == "rw":
            opts.read_only = False
            continue
        if key in _ALIASES:
            key, value = _ALIASES[key][0], value or _ALIASES[key][1]
        if key.startswith("no") and key[2:] in _BOOLS and not sep:
            key, value = key[2:], "0"
        if key not in fields:
            raise OptionError(f"unknown mount option {key!r}")
        try:
            if key in _SIZES:
                setattr(opts, key, parse_size(value))
            elif key in _FLOATS:
                setattr(opts, key, float(value))
            elif key in _INTS:
                setattr(opts, key, int(value))
            elif key == "umask":
                setattr(opts, key, int(value, 8))
            elif key in _BOOLS or key == "read_only":
                setattr(opts, key, _parse_bool(value))
            elif key in _STRS:
                if not value:
                    raise OptionError(f"option {key} needs a value")
                setattr(opts, key, value)
        except ValueError as e:
            if isinstance(e, OptionError):
                raise
            raise OptionError(f"bad value for {key}: {value!r}") from None
    opts.validate()
    return opts
