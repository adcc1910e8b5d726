"""What ``b2fs versions`` and ``b2fs restore`` share: finding the mount a path is in, and asking it.

A path inside a running b2fs mount (a deleted file's too: it need not exist)
is split into its mountpoint, the nearest directory above it that is a mount
and has a control socket (``b2fs.mount.control``), and the path below it.
The command then asks that mount, which has the key, the bucket and the
codecs (no credentials or passphrase needed here), and prints its answers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

EXIT_ERROR = 1


class NotInAMount(Exception):
    """The path is not inside a running b2fs mount."""


def locate(path: str) -> tuple[str, str]:
    """(mountpoint, path below it, "" for the mountpoint itself)."""
    from b2fs.mount.control import socket_path

    full = os.path.abspath(path)
    candidate = full
    while True:
        if os.path.exists(socket_path(candidate)) and os.path.ismount(candidate):
            rel = os.path.relpath(full, candidate)
            return candidate, "" if rel == "." else rel
        parent = os.path.dirname(candidate)
        if parent == candidate:
            raise NotInAMount(f"{path} is not inside a running b2fs mount")
        candidate = parent


def ask(prog: str, path: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The mount's answers to ``request`` about ``path``; errors end the command (exit 1)."""
    from b2fs.mount.control import ask as ask_mount

    try:
        mountpoint, rel = locate(path)
    except NotInAMount as e:
        fail(prog, str(e))
    try:
        for doc in ask_mount(mountpoint, {**request, "path": rel}, timeout=None):
            if "error" in doc:
                fail(prog, f"{path}: {doc['error']}")
            yield doc
    except OSError as e:
        fail(prog, f"{mountpoint}: the mount does not answer ({e.strerror or e})")


def fail(prog: str, message: str) -> Any:
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_ERROR)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
