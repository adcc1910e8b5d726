"""``b2fs serve``: run the local B2 server (the emulator) on a data directory.

Parses the options and hands off to ``b2fs.emulator.server.run``; see docs/emulator.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def _fault(spec: str) -> Any:
    try:
        return json.loads(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--fault takes a JSON rule: {e}") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the local B2 server (emulator)",
        description="Run a local B2 server: the B2 native API on this machine, its files kept "
        "in --data DIR. b2fs, the b2 CLI, b2sdk and rclone use it as they would B2. It prints "
        "its realm URL and an `export ...` line for the shell (the first start creates a master "
        "key, shown once and kept in DIR/master-key.json; DIR/credentials holds it with the "
        "realm for `b2fs mount --credentials`). Ctrl-C or SIGTERM stops it. See docs/emulator.md.",
    )
    p.add_argument("--data", required=True, type=Path, help="data directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    p.add_argument("--key-id", help="master application key id (default: generated once)")
    p.add_argument(
        "--key",
        help="master application key (or set B2FS_SERVE_KEY, which keeps it out of ps)",
    )
    p.add_argument("--token-lifetime", type=float, default=86_400.0, metavar="SECONDS",
                   help="lifetime of account and upload tokens (default 86400)")  # fmt: skip
    p.add_argument("--min-part-size", type=int, default=5_000_000, metavar="BYTES",
                   help="absoluteMinimumPartSize (default 5000000)")  # fmt: skip
    p.add_argument("--recommended-part-size", type=int, default=100_000_000, metavar="BYTES",
                   help="recommendedPartSize (default 100000000)")  # fmt: skip
    p.add_argument("--fault", action="append", type=_fault, default=[], metavar="JSON",
                   help='fault rule, e.g. \'{"call": "b2_upload_part", "kinds": ["503"], "probability": 0.2}\'')  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the fault RNG (default 0)")
    p.add_argument("--custom-upload-timestamps", action="store_true",
                   help="honour X-Bz-Custom-Upload-Timestamp (B2 enables it per account; "
                   "default: refused with custom_timestamp_not_allowed)")  # fmt: skip
    p.add_argument("--keep-alive", type=float, default=75.0, metavar="SECONDS",
                   help="close connections idle this long (clients must cope, as with B2's "
                   "hosts)")  # fmt: skip
    p.add_argument("--replication-delay", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long before replicating new files (default 0)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON line once listening")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from b2fs.emulator.faults import Faults
    from b2fs.emulator.server import Options
    from b2fs.emulator.server import run as serve

    key = args.key or os.environ.get("B2FS_SERVE_KEY")
    if bool(args.key_id) != bool(key):
        raise SystemExit("b2fs serve: --key-id and --key go together")
    if args.min_part_size < 1 or args.recommended_part_size < args.min_part_size:
        raise SystemExit("b2fs serve: need 1 <= --min-part-size <= --recommended-part-size")
    if args.replication_delay < 0:
        raise SystemExit("b2fs serve: --replication-delay must not be negative")
    try:
        Faults(0, args.fault)
    except Exception as e:
        raise SystemExit(f"b2fs serve: bad --fault rule: {e}") from None
    return serve(
        Options(
            data=args.data,
            host=args.host,
            port=args.port,
            key_id=args.key_id,
            key=key,
            token_lifetime=args.token_lifetime,
            min_part_size=args.min_part_size,
            recommended_part_size=args.recommended_part_size,
            faults=args.fault,
            seed=args.seed,
            json=args.json,
            custom_upload_timestamps=args.custom_upload_timestamps,
            replication_delay=args.replication_delay,
            keep_alive=args.keep_alive,
        )
    )
