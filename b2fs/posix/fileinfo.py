"""The file-info keys that hold a file's (or a directory marker's) POSIX attributes in B2.

B2 keeps at most 10 file-info pairs per version, so attributes are packed:

- ``src_last_modified_millis``: mtime in milliseconds (what the B2 CLI, rclone and the
  web UI read and write; negative before 1970);
- ``b2fs-times``: ``"MTIME ATIME CTIME"`` in nanoseconds since the epoch (any sign), so
  nanoseconds, atime and ctime survive; its mtime counts only while it agrees with
  ``src_last_modified_millis`` (a tool that changed the latter changed the mtime);
- ``b2fs-mode`` (octal permission bits with set-user-ID, set-group-ID and sticky),
  ``b2fs-uid``, ``b2fs-gid``: kept when the mount keeps attributes;
- ``b2fs-type``: ``symlink``, ``fifo``, ``chr``, ``blk`` or ``sock`` (absent: a file);
- ``b2fs-rdev``: a device's number (``st_rdev``, decimal).

``read_info`` turns a version's info into ``Attrs``; ``write_info`` the other way.
"""

from __future__ import annotations

from dataclasses import dataclass

from b2fs.posix.entries import Kind

MTIME_KEY = "src_last_modified_millis"
TIMES_KEY = "b2fs-times"
MODE_KEY = "b2fs-mode"
UID_KEY = "b2fs-uid"
GID_KEY = "b2fs-gid"
TYPE_KEY = "b2fs-type"
RDEV_KEY = "b2fs-rdev"
ATTR_KEYS = (MTIME_KEY, TIMES_KEY, MODE_KEY, UID_KEY, GID_KEY, TYPE_KEY, RDEV_KEY)

_TYPE_NAMES = {Kind.SYMLINK: "symlink", Kind.FIFO: "fifo", Kind.CHR: "chr", Kind.BLK: "blk",
               Kind.SOCK: "sock"}  # fmt: skip
_TYPES = {v: k for k, v in _TYPE_NAMES.items()}


@dataclass(slots=True)
class Attrs:
    """What file info says of a version besides its bytes (None: not kept there)."""

    kind: Kind = Kind.FILE
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int = 0
    atime_ns: int | None = None
    ctime_ns: int | None = None
    rdev: int = 0


def _int(info: dict[str, str], key: str, base: int = 10) -> int | None:
    value = info.get(key)
    if value is None:
        return None
    try:
        return int(value, base)
    except ValueError:
        return None


def kind_of(info: dict[str, str]) -> Kind:
    return _TYPES.get(info.get(TYPE_KEY, ""), Kind.FILE)


def read_info(info: dict[str, str], upload_timestamp_ms: int) -> Attrs:
    """Attributes from file info; mtime falls back to the upload time."""
    mode = _int(info, MODE_KEY, 8)
    millis = _int(info, MTIME_KEY)
    mtime = (millis if millis is not None else int(upload_timestamp_ms)) * 1_000_000
    atime = ctime = None
    times = info.get(TIMES_KEY)
    if times:
        try:
            m, a, c = (int(t) for t in times.split())
        except ValueError:
            pass
        else:
            if millis is None or m // 1_000_000 == millis:
                mtime = m
            atime, ctime = a, c
    return Attrs(kind_of(info), None if mode is None else mode & 0o7777, _int(info, UID_KEY),
                 _int(info, GID_KEY), mtime, atime, ctime, _int(info, RDEV_KEY) or 0)  # fmt: skip


def write_info(a: Attrs, keep_owner: bool = True) -> dict[str, str]:
    """File info for a version with these attributes (mode and owner only when kept)."""
    atime = a.mtime_ns if a.atime_ns is None else a.atime_ns
    ctime = a.mtime_ns if a.ctime_ns is None else a.ctime_ns
    info = {MTIME_KEY: str(a.mtime_ns // 1_000_000), TIMES_KEY: f"{a.mtime_ns} {atime} {ctime}"}
    if a.kind in _TYPE_NAMES:
        info[TYPE_KEY] = _TYPE_NAMES[a.kind]
    if a.kind in (Kind.CHR, Kind.BLK):
        info[RDEV_KEY] = str(a.rdev)
    if keep_owner:
        if a.mode is not None:
            info[MODE_KEY] = format(a.mode & 0o7777, "o")
        if a.uid is not None:
            info[UID_KEY] = str(a.uid)
        if a.gid is not None:
            info[GID_KEY] = str(a.gid)
    return info
