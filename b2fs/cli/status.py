"""``b2fs status MOUNTPOINT``: what a running mount is doing (its upload queue, caches, calls).

The mount answers on a control socket whose path follows from the mountpoint
(``b2fs.mount.control``), so the command finds the right process by path.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SHOWN = 50  # pending files listed one per line


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show the upload queue and caches of a running mount")
    p.add_argument("mountpoint")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    from b2fs.mount.control import read_status

    try:
        status = read_status(args.mountpoint)
    except OSError as e:
        print(
            f"b2fs: {args.mountpoint} is not a running b2fs mount ({e.strerror})", file=sys.stderr
        )
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    wb = status.get("writeback")
    if wb is None:
        print("read-only mount: no uploads")
    else:
        pending = wb["pending"]
        print(f"pending uploads: {len(pending)} file(s), {_size(wb['pending_bytes'])}")
        for p in pending[:SHOWN]:
            err = f"  last error: {p['last_error']}" if p["last_error"] else ""
            print(
                f"  {p['state']:9} {_size(p['bytes']):>9}  retries {p['attempts']}  {p['path']}{err}"
            )
        if len(pending) > SHOWN:
            print(f"  ... and {len(pending) - SHOWN} more (--json lists them all)")
        print(f"uploaded: {wb['uploads_done']} file(s), {_size(wb['bytes_uploaded'])} sent, "
              f"{_size(wb['bytes_copied'])} copied server-side; failed attempts: {wb['uploads_failed']}")  # fmt: skip
    cache = status["cache"]
    print(f"block cache: {_size(cache['bytes'])} of {_size(cache['budget'])}, {cache['hits']} hits, "
          f"{cache['misses']} misses")  # fmt: skip
    reader = status["reader"]
    print(f"downloads: {reader['downloads']} ({_size(reader['downloaded_bytes'])}); "
          f"listings: {status['listings']['fetches']}")  # fmt: skip
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
