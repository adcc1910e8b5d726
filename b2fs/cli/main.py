"""The ``b2fs`` command: parses the sub-command and hands off to its module.

Each sub-command lives in its own module under ``b2fs.cli`` and exposes
``add_parser(subparsers)`` (which sets ``func`` on its parser); modules are
imported lazily so that ``b2fs serve`` does not import the FUSE stack.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from b2fs import __version__

# sub-command name -> module under b2fs.cli
COMMANDS = {
    "serve": "serve",
    "mount": "mount",
    "status": "status",
    "refresh": "refresh",
    "bucket": "bucket",
    "key": "key",
    "encryption": "encryption",
    "versions": "versions",
    "restore": "restore",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2fs", description="Backblaze B2 as a filesystem")
    parser.add_argument("--version", action="version", version=f"b2fs {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(f"b2fs.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "mount")  # the mount(8) form: b2fs BUCKET[/PREFIX] MOUNTPOINT -o ...
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 3:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request: only at -vvv

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
