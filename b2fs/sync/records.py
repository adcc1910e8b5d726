"""Change records: what a mount tells the other mounts of its prefix, as objects in the bucket.

A record is one small object under ``PREFIX.b2fs/changes/`` (``PREFIX`` is the
mounted prefix, "" for a whole bucket), named
``<ms>-<writer>-<seq>``: ``ms`` is B2's clock (as the writer estimates it)
when the record was written, 13 digits, so a listing returns records in time
order; ``writer`` is a random id of the mount process, so a mount knows its
own; ``seq`` counts its records.  Its content is the list of changes: ``put``
(a new version of a file at a path: its fileId and B2's upload time), ``gone``
(a name hidden or deleted), ``dir`` (a directory's marker: the directory made,
or its attributes changed) and ``tree`` (everything at and below a directory
path changed: moved, removed, exchanged).  Paths are the mount's plaintext
paths: a record means the same to every mount of the prefix.

The content is JSON, compressed; in an encrypted mount it is sealed by the
content codec (a fresh key per record, as any object), so the bucket holds
no plaintext path and a mount without the vault cannot read it.  When it is
small it travels in the record's file info (``b2fs-changes``, base64url), so
the listing that finds a record also carries it: no download.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from b2fs.codec import CHANGES_DIR, b64

OPS = ("put", "gone", "dir", "tree")
INFO_KEY = "b2fs-changes"
INFO_BUDGET = 1900  # bytes of name plus file info that stay under B2's 2,048 (with SSE)
VERSION = 1
_NAME = re.compile(r"(\d{13})-([0-9a-f]{12})-(\d{6,})")


class RecordError(ValueError):
    """A record this mount cannot read (another vault's, damaged, or not a record)."""


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # one of OPS
    path: str  # plaintext path below the mount root ("" is the root)
    file_id: str | None = None  # put, dir: the new version
    ts: int = 0  # when it took effect, B2's clock in ms (an upload's uploadTimestamp)

    def to_json(self) -> list[Any]:
        return [self.op, self.path, self.file_id, self.ts]

    @classmethod
    def from_json(cls, item: Any) -> Change:
        if not (isinstance(item, list) and len(item) == 4):
            raise RecordError("a change is [op, path, fileId, ts]")
        op, path, file_id, ts = item
        if op not in OPS or not isinstance(path, str) or not isinstance(ts, int):
            raise RecordError(f"not a change: {item!r}")
        if file_id is not None and not isinstance(file_id, str):
            raise RecordError(f"not a change: {item!r}")
        return cls(op, path, file_id, ts)


def log_prefix(root: str) -> str:
    """Where the records of the mounts of ``root`` (the mounted prefix) live."""
    return f"{root}{CHANGES_DIR}/changes/"


def record_name(root: str, ms: int, writer: str, seq: int) -> str:
    return f"{log_prefix(root)}{ms:013d}-{writer}-{seq:06d}"


def start_name(root: str, ms: int) -> str:
    """The first name a listing of the records written from ``ms`` on starts at."""
    return f"{log_prefix(root)}{max(0, ms):013d}"


def parse_name(root: str, name: str) -> tuple[int, str, int] | None:
    """(ms, writer, seq) of a record's name; None for anything else under the prefix."""
    m = (
        _NAME.fullmatch(name[len(log_prefix(root)) :])
        if name.startswith(log_prefix(root))
        else None
    )
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def encode(changes: list[Change], codec: Any, name: str) -> tuple[dict[str, str], bytes]:
    """(file info, body) of a record: the changes in the info when they fit, else the body."""
    raw = zlib.compress(json.dumps({"v": VERSION, "c": [c.to_json() for c in changes]},
                                   separators=(",", ":")).encode(), 6)  # fmt: skip
    if codec.encrypted:
        enc = codec.encryptor()
        raw = enc.read_stored(lambda o, n: raw[o : o + n], len(raw), 0, enc.stored_size(len(raw)))
    text = b64.encode(raw)
    if len(name.encode()) + len(INFO_KEY) + len(text) <= INFO_BUDGET:
        return {INFO_KEY: text}, b""
    return {}, raw


def in_info(info: dict[str, str]) -> bool:
    """Does the record carry its changes in its file info (no download needed)?"""
    return INFO_KEY in info


def decode(info: dict[str, str], body: bytes | None, codec: Any) -> list[Change]:
    """The changes of a record (from its info, else ``body``); RecordError if unreadable."""
    try:
        raw = b64.decode(info[INFO_KEY]) if INFO_KEY in info else body
        if raw is None:
            raise RecordError("the record's body is needed")
        if codec.encrypted:
            n = codec.header_size()
            raw = codec.decryptor(raw[:n]).decode(0, raw[n:], codec.plain_size(len(raw)))
        doc = json.loads(zlib.decompress(raw))
    except RecordError:
        raise
    except Exception as e:  # base64, the codec's errors, zlib, JSON: not a record we can read
        raise RecordError(f"{type(e).__name__}: {e}") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION or not isinstance(doc.get("c"), list):
        raise RecordError("not a change record of this version")
    return [Change.from_json(item) for item in doc["c"]]
