"""Input checks shared by the emulator's calls: file and bucket names, file info,
percent-decoded headers, numeric parameters and HTTP ranges.

Pure functions; each raises ``errors.BadRequest`` (or ``RangeNotSatisfiable``) with
B2's wording. Used by ``api`` (JSON calls) and ``transfer`` (uploads/downloads).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from b2fs.emulator.errors import BadRequest, RangeNotSatisfiable

MAX_NAME_BYTES = 1024
MAX_SEGMENT_BYTES = 250
MAX_INFO_ITEMS = 10
MAX_INFO_KEY_BYTES = 50
MAX_NAME_AND_INFO_BYTES = 7000
MAX_NAME_AND_INFO_BYTES_SSE = 2048  # with server-side encryption or in a lock-enabled bucket
MAX_SMALL_FILE = 5_000_000_000
MAX_LARGE_FILE = 10_000_000_000_000
MAX_PARTS = 10_000
MAX_PART_SIZE = 5_000_000_000
ALLOWED_B2_INFO = {
    "b2-content-disposition",
    "b2-content-language",
    "b2-expires",
    "b2-cache-control",
    "b2-content-encoding",
}
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9-]{6,63}$")
_INFO_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")


def file_name(name: Any, field: str = "fileName") -> str:
    """Check a B2 file name (what the docs and b2sdk enforce)."""
    if not isinstance(name, str) or name == "":
        raise BadRequest(f"{field} is required")
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_NAME_BYTES:
        raise BadRequest(f"File names must not exceed {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadRequest("File names must not contain control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("File names must be valid UTF-8") from None
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise BadRequest("File names must not start or end with '/', nor contain '//'")
    if any(len(seg.encode()) > MAX_SEGMENT_BYTES for seg in name.split("/")):
        raise BadRequest(f"File name segments must not exceed {MAX_SEGMENT_BYTES} bytes")
    return name


def bucket_name(name: Any) -> str:
    if not isinstance(name, str) or not _BUCKET_NAME.match(name):
        raise BadRequest(
            "Bucket names must be 6 to 63 characters of letters, digits and '-'",
            "bad_bucket_name" if isinstance(name, str) else None,
        )
    if name.lower().startswith("b2-"):
        raise BadRequest("Bucket names must not start with 'b2-'", "bad_bucket_name")
    return name


def file_info(info: Any, name: str, limit: int = MAX_NAME_AND_INFO_BYTES) -> dict[str, str]:
    """Check file info (JSON form or decoded ``X-Bz-Info-*`` headers); keys lower-cased.
    ``limit``: bytes of name plus info (B2: 7000, or 2048 with SSE or Object Lock)."""
    if info is None:
        return {}
    if not isinstance(info, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in info.items()
    ):
        raise BadRequest("fileInfo must be an object of strings")
    if len(info) > MAX_INFO_ITEMS:
        raise BadRequest(f"too many file info entries (at most {MAX_INFO_ITEMS})")
    out: dict[str, str] = {}
    for key, value in info.items():
        k = key.lower()
        if len(k.encode()) > MAX_INFO_KEY_BYTES or not _INFO_KEY.match(k):
            raise BadRequest(f"Invalid file info key: {key[:60]!r}")
        if k.startswith("b2-") and k not in ALLOWED_B2_INFO:
            raise BadRequest(f"Invalid file info key, reserved prefix b2-: {key[:60]!r}")
        out[k] = value
    total = len(name.encode()) + sum(len(k.encode()) + len(v.encode()) for k, v in out.items())
    if total > limit:
        raise BadRequest(f"file name and file info together must not exceed {limit} bytes")
    return out


def percent_decoded(value: str, what: str) -> str:
    """Decode a percent-encoded UTF-8 header value (``+`` means space)."""
    try:
        return unquote_plus(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not valid percent-encoded UTF-8") from None


def sha1_hex(value: Any, what: str = "sha1") -> str:
    if not isinstance(value, str) or not _SHA1.match(value):
        raise BadRequest(f"{what} must be 40 hex digits")
    return value.lower()


def integer(params: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    """An optional integer parameter within [lo, hi] (strings of digits are accepted for GET)."""
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{key} out of range: must be between {lo} and {hi}")
    return value


def required_str(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or value == "":
        raise BadRequest(f"required field {key} is missing")
    return value


def optional_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` into an inclusive (start, end).

    None means "the whole file" (no header, or a form we ignore such as multiple ranges);
    an unsatisfiable range raises ``RangeNotSatisfiable``.
    """
    if not header:
        return None
    spec = header.strip()
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first, _, last = spec[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise ValueError
            start, end = max(0, size - n), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
            if end < start:
                return None
    except ValueError:
        raise BadRequest(f"invalid Range header: {header[:80]}") from None
    if start >= size:
        raise RangeNotSatisfiable(
            f"range {header[:80]} not satisfiable for size {size}",
            headers={"content-range": f"bytes */{size}"},
        )
    return start, min(end, size - 1)


def copy_range(value: Any, size: int) -> tuple[int, int] | None:
    """The ``range`` parameter of b2_copy_file / b2_copy_part (``bytes=a-b``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("bytes="):
        raise BadRequest("range must look like bytes=a-b")
    first, _, last = value[6:].partition("-")
    if not first.isdigit() or not last.isdigit():
        raise BadRequest("range must look like bytes=a-b")
    start, end = int(first), int(last)
    if end < start or end >= size:
        raise RangeNotSatisfiable(f"range {value} not satisfiable for size {size}")
    return start, end
