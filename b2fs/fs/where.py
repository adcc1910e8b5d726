"""Which file a FUSE operation was about, for its log line: its path, or its stored name.

``where(op, args)`` reads the handler's arguments (the ``Operations`` object
first, then inode numbers, names and handles, by position as pyfuse3 passes
them) and names the file the way logs may: its path below the mount root, or
in an encrypted mount its stored B2 name (log files hold no plaintext names).
It never fails: an unknown inode or handle gives what is known ("inode 42").
Inodes and handles of the versions view are named by their path in it (in an
encrypted mount: the stored name of the file or directory they are about).
"""

from __future__ import annotations

import os
from typing import Any

# operation -> what its arguments after ``self`` are (i: inode, n: name, h: file handle,
# d: directory handle); the rest are ignored
_ARGS = {
    "lookup": "in", "getattr": "i", "readlink": "i", "opendir": "i", "readdir": "d",
    "releasedir": "d", "open": "i", "read": "h", "flush": "h", "release": "h", "fsync": "h",
    "create": "in", "write": "h", "setattr": "i", "mkdir": "in", "rmdir": "in", "unlink": "in",
    "rename": "inin", "symlink": "in", "link": "iin", "mknod": "in", "fsyncdir": "d",
}  # fmt: skip


def where(op: str, args: tuple[Any, ...]) -> str:
    """The file(s) ``op`` was called on, as log lines may name them ("" when unknown), and the
    offset of a read or write."""
    try:
        text = " -> ".join(_paths(op, args))
        if op in ("read", "write") and len(args) > 2:
            text += f" at offset {args[2]}"
        return text
    except Exception:  # a log line must not fail the operation
        return ""


def _paths(op: str, args: tuple[Any, ...]) -> list[str]:
    spec = _ARGS.get(op, "")
    if not args or not spec:
        return []
    ops, values = args[0], args[1 : 1 + len(spec)]
    fs = ops.fs
    out: list[str] = []
    pending: str | None = None
    in_view = False  # the last inode was the versions view's: a name after it is in there
    for kind, value in zip(spec, values, strict=False):
        if kind == "n" and in_view:
            if not fs.ns.names.encrypted:
                out[-1] += "/" + os.fsdecode(value)
            in_view = False
            continue
        if kind == "n":
            name = os.fsdecode(value)
            parent = pending if pending is not None else ""
            out.append(_show(fs, f"{parent}/{name}" if parent else name))
            pending = None
            continue
        if pending is not None:
            out.append(_show(fs, pending))
        pending = None
        view = getattr(ops, "versions", None)
        in_view = view is not None and view.owns(value)
        if in_view:
            out.append(_in_view(fs, view, value, kind))
            continue
        if kind == "i":
            node = _node(fs, value)
            if node is None:
                out.append(f"inode {value}")
            else:
                pending = node.path
        elif kind in "hd":
            handle = (fs.files if kind == "h" else fs.dirs).get(value)
            out.append(_show(fs, handle.node.path) if handle is not None else f"handle {value}")
    if pending is not None:
        out.append(_show(fs, pending))
    return out


def _node(fs: Any, ino: int) -> Any:
    try:
        return fs.inodes.get(ino)
    except Exception:
        return None


def _in_view(fs: Any, view: Any, number: int, kind: str) -> str:
    if kind == "i":
        node = view.nodes.find(number)
    else:
        handle = (view.files if kind == "h" else view.dirs).get(number)
        node = handle.node if handle is not None else None
    if node is None:
        return f"{view.name}: {'inode' if kind == 'i' else 'handle'} {number}"
    if not fs.ns.names.encrypted:
        return f"{view.name}/{node.path}"
    about = node.path.rpartition("/")[0] if node.kind.name != "DIR" else node.path
    return f"{view.name}: {_show(fs, about)}"


def _show(fs: Any, path: str) -> str:
    """A path as logs may show it: itself, or its stored name in an encrypted mount."""
    return fs.shown(path)
