"""``b2fs restore PATH [--at TIME | --version ID] [--dry-run]``: bring back a file or a tree.

Server-side, through the mount that holds PATH (``b2fs.history.restore``): a
version comes back as ``b2_copy_file`` of itself to its own name, or, for a
deleted file whose newest version should return, by deleting the hide
marker above it; nothing is downloaded, and in an encrypted mount the
contents stay ciphertext.  Without ``--at`` or ``--version`` every deleted
name at or below PATH comes back as it was before its deletion; ``--at TIME``
puts each name back as it was then (names that did not exist then stay);
``--version ID`` (or a version's path in ``.b2fs-versions``) is that version
of one file.  Each change is printed as it is made, then a summary with the
API calls and their billing class; ``--dry-run`` makes only the listing
calls and says what would be done.
"""

from __future__ import annotations

import argparse
from typing import Any

from b2fs.cli.mounted import EXIT_ERROR, ask, fail, size

SAID = {"copy": "copied back", "unhide": "undeleted", "pending": "skipped: changes not uploaded "
        "yet", "newer": "left: did not exist then", "unchanged": "already that version",
        "undecodable": "skipped: not a name of this mount"}  # fmt: skip
WOULD = {"copy": "would copy back", "unhide": "would undelete"}
COUNTED = {"unchanged": "already that version", "newer": "left (did not exist then)",
           "pending": "skipped (changes not uploaded yet)",
           "undecodable": "skipped (not names of this mount)"}  # fmt: skip


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="bring back a file or a directory tree as it was (server-side, no download)",
        description="Restore a file or a whole tree of a running mount server-side: deleted "
        "names come back (default), or every name as it was at --at TIME, or one file's "
        "--version ID. PATH need not exist now.",
    )
    p.add_argument("path", metavar="MOUNTPOINT/PATH")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--at", metavar="TIME",
                       help="as it was then: RFC 3339 (2026-11-23T10:10:05Z) or epoch seconds")  # fmt: skip
    which.add_argument("--version", metavar="ID", help="this version (a fileId) of the file")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="say what would be done and which calls it would make; change nothing")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="print the summary only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prog = "b2fs restore"
    request: dict[str, Any] = {"op": "restore", "dry_run": args.dry_run}
    if args.at is not None:
        from b2fs.history.times import TimeError, parse_time

        try:
            request["at_ms"] = parse_time(args.at)
        except TimeError as e:
            fail(prog, f"--at: {e}")
    if args.version is not None:
        request["version"] = args.version
    summary = None
    for doc in ask(prog, args.path, request):
        if "step" in doc and not args.quiet:
            print(_line(doc["step"], args.dry_run))
        elif "summary" in doc:
            summary = doc["summary"]
    if summary is None:
        fail(prog, "the mount ended the restore without a summary (see its log)")
    print(_summary(summary))
    return EXIT_ERROR if summary["failed"] or summary["steps"].get("pending") else 0


def _line(step: dict[str, Any], dry_run: bool) -> str:
    what = step["what"]
    said = (WOULD if dry_run else {}).get(what) or SAID.get(what, what)
    if step.get("error"):
        said = f"FAILED ({step['error']})"
    version = f"  {step['time']}  {size(step['size'])}  {step['version']}" if "time" in step else ""
    return f"{said}: {step['path']}{version}"


def _summary(s: dict[str, Any]) -> str:
    steps = s["steps"]
    verb = "would bring back" if s["dry_run"] else "brought back"
    done = steps.get("copy", 0) + steps.get("unhide", 0) - (0 if s["dry_run"] else s["failed"])
    parts = [f"{verb} {done} name(s) ({steps.get('copy', 0)} by copy, "
             f"{steps.get('unhide', 0)} by deleting hide markers)"]  # fmt: skip
    for what in ("unchanged", "newer", "pending", "undecodable"):
        if steps.get(what):
            parts.append(f"{steps[what]} {COUNTED[what]}")
    if s["failed"]:
        parts.append(f"{s['failed']} FAILED")
    calls = ", ".join(f"{c['count']} {name} (class {c['class']})"
                      for name, c in s["calls"].items())  # fmt: skip
    made = "API calls made so far, and to be made" if s["dry_run"] else "API calls"
    return "; ".join(parts) + f"\n{made}: {calls or 'none'}"
