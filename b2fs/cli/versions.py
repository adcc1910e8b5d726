"""``b2fs versions PATH``: a file's versions (or those of each name in a directory), from its mount.

Each version with its upload time (UTC), plaintext size, state (``pending``:
written here, not uploaded yet; ``current``; ``old``; ``deleted``: a hide
marker, the file was deleted then), fileId and SHA-1 (of the stored bytes: in
an encrypted mount, of the ciphertext).  The mount answers from its versions
listings (``b2fs.history.service``): one ``b2_list_file_versions`` per 1,000
versions of the directory, reused for ``dir_cache_time``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from b2fs.cli.mounted import ask, size


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "versions",
        help="list the versions of a file (or of each name in a directory) of a mount",
        description="List every version B2 keeps of a file in a running mount, deleted ones "
        "and the deletions too, newest first; for a directory, the versions of each name in "
        "it. PATH need not exist now (a deleted file).",
    )
    p.add_argument("path", metavar="MOUNTPOINT/PATH")
    p.add_argument("--json", action="store_true", help="print the mount's JSON answer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for doc in ask("b2fs versions", args.path, {"op": "versions"}):
        if args.json:
            print(json.dumps(doc, indent=2))
        elif doc["kind"] == "file":
            _table(doc["versions"])
        else:
            for entry in doc["entries"]:
                print(f"{entry['name']}{'/' if entry['dir'] else ''}")
                if entry["versions"]:
                    _table(entry["versions"], indent="  ")
    return 0


def _table(rows: list[dict[str, Any]], indent: str = "") -> None:
    header = ("TIME (UTC)", "SIZE", "STATE", "FILE ID", "SHA1")
    cells = [header] + [
        (
            r["time"] or "(not uploaded)",
            size(r["size"]) if r["state"] != "deleted" else "-",
            r["state"],
            r["file_id"] or "-",
            r["sha1"] or "-",
        )  # fmt: skip
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for c in cells:
        print(indent + "  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
