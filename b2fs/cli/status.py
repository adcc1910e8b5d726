"""``b2fs status MOUNTPOINT``: what a running mount is doing, once or live (``--watch``).

The mount answers on a control socket whose path follows from the mountpoint
(``b2fs.mount.control``), so the command finds the right process by path.
The text comes from ``b2fs.cli.status_view``, the dollars from
``b2fs.prices`` (B2's list prices, or the ones in your prices file).

``--watch`` on a terminal redraws one screen in place (the alternate screen,
as ``top`` does: the cursor goes home and each line is rewritten and cleared
to its end, so nothing flickers, and the terminal is given back as it was on
Ctrl-C); into a pipe or file it writes one plain line per sample, and with
``--json`` one JSON document per line.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any, TextIO

ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
WIDTH = 80  # the one-shot text is made to fit 80 columns (a wider terminal gets wider lines)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="show the upload queue, caches, API calls and their cost of a running mount",
        description="Show what a running mount is doing: pending uploads (with progress), the "
        "block cache, API calls by class (last minute and since the mount started) and what "
        "they cost at B2's prices, network settings, and its last warnings.",
    )
    p.add_argument("mountpoint")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.add_argument("-w", "--watch", action="store_true",
                   help="keep showing it, refreshed every --interval seconds (Ctrl-C stops)")  # fmt: skip
    p.add_argument("-n", "--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between refreshes of --watch (default 1)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: Any) -> int:
    from b2fs.mount.control import read_status
    from b2fs.prices import PricesError, load_prices

    try:
        prices = load_prices()
    except PricesError as e:
        print(f"b2fs: {e}", file=sys.stderr)
        return 1
    try:
        status = read_status(args.mountpoint)
    except OSError as e:
        print(
            f"b2fs: {args.mountpoint} is not a running b2fs mount ({e.strerror})", file=sys.stderr
        )
        return 1
    if args.watch:
        if args.interval <= 0:
            print("b2fs: --interval must be more than 0", file=sys.stderr)
            return 2
        return watch(args.mountpoint, status, prices, args.interval, args.json, sys.stdout)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    from b2fs.cli.status_view import screen

    width = max(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    print("\n".join(screen(status, prices, width, wrap=True)))
    return 0


def watch(mountpoint: str, status: dict[str, Any], prices: Any, interval: float, as_json: bool,
          out: TextIO) -> int:  # fmt: skip
    from b2fs.cli.status_view import plain_line, screen
    from b2fs.mount.control import read_status

    live = out.isatty() and not as_json
    if live:
        out.write(ENTER)
    ended = None
    try:
        while True:
            if live:
                cols, rows = shutil.get_terminal_size((WIDTH, 24))
                lines = screen(status, prices, width=cols, rows=rows, clock=True)
                out.write(HOME + (CLEAR_LINE + "\r\n").join(lines) + CLEAR_LINE + CLEAR_BELOW)
            elif as_json:
                out.write(json.dumps(status) + "\n")
            else:
                out.write(plain_line(status, prices) + "\n")
            out.flush()
            time.sleep(interval)
            try:
                status = read_status(mountpoint)
            except OSError:
                ended = f"b2fs: {mountpoint}: the mount has ended"
                return 0
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    finally:
        if live:
            out.write(LEAVE)
            out.flush()
        if ended:
            print(ended, file=sys.stderr)
