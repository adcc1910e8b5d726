"""``b2fs refresh MOUNTPOINT[/PATH]``: show what changed in B2 at and below a path, now.

A mount sees the changes of other b2fs mounts of its prefix at its next poll
of their change log (``poll_interval``), and those of other tools (the B2 CLI,
the web UI, rclone) once its listing of the directory is older than
``dir_cache_time``.  This command makes the mount that holds the path read
the change log now, forget what it (and the kernel) cached at and below the
path, and read the listings there again, before it returns.  The mount is
found from ``/proc/self/mountinfo`` (the deepest b2fs mount holding the
path) and asked through its control socket (``b2fs.mount.control``).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "refresh",
        help="make a mount show the changes made elsewhere below a path now",
        description="Make a running mount read the change log of the other mounts now, forget "
        "what it cached at and below PATH, and read its listings there again (for changes made "
        "by other tools, which a mount otherwise sees after dir_cache_time).",
    )
    p.add_argument("path", metavar="MOUNTPOINT[/PATH]", help="a b2fs mountpoint, or a path in one")
    p.set_defaults(func=run)


def b2fs_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mountpoints of b2fs mounts (FUSE type ``fuse.b2fs``), as this process sees them."""
    points = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "fuse.b2fs":
                points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def locate(path: str, mounts: list[str]) -> tuple[str, str] | None:
    """(mountpoint, path below it) of the deepest mount holding ``path`` (no file access:
    the path may be gone from the mount's view, which is why one refreshes)."""
    full = os.path.abspath(path)
    holding = [p for p in mounts if full == p or full.startswith(p.rstrip("/") + "/")]
    if not holding:
        return None
    best = max(holding, key=len)
    return best, full[len(best) :].strip("/")


def run(args: Any) -> int:
    from b2fs.mount.control import ask

    found = locate(args.path, b2fs_mounts())
    if found is None:
        print(f"b2fs: {args.path} is not on a b2fs mount", file=sys.stderr)
        return 1
    mountpoint, rel = found
    try:
        answer = next(iter(ask(mountpoint, {"op": "refresh", "path": rel}, timeout=300)), None)
    except OSError as e:
        print(f"b2fs: {mountpoint} does not answer ({e.strerror or e})", file=sys.stderr)
        return 1
    if answer is None:
        print(f"b2fs: {mountpoint} closed the connection without an answer", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"b2fs: refresh {args.path}: {answer['error']}", file=sys.stderr)
        return 1
    return 0
