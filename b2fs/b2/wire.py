"""B2 wire details that are not JSON: percent-encoding of names and info headers,
upload headers, download headers, and ``Content-Range`` parsing.

Pure functions, no I/O; used by the upload and download paths of ``b2fs.b2``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_plus

from b2fs.b2.errors import UnexpectedResponse
from b2fs.b2.models import SRC_LAST_MODIFIED, DownloadedFile, FileRetention
from b2fs.b2.sse import ServerSideEncryption

INFO_PREFIX = "x-bz-info-"
HEX_DIGITS_AT_END = "hex_digits_at_end"
_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def encode(value: str) -> str:
    """Percent-encode UTF-8 for ``X-Bz-File-Name``, ``X-Bz-Info-*`` and URLs ('/' kept)."""
    return quote(value.encode("utf-8"), safe="/")


def decode(value: str) -> str:
    return unquote_plus(value)


def file_info_with_mtime(
    file_info: Mapping[str, str] | None, mtime_millis: int | None
) -> dict[str, str]:
    info = dict(file_info or {})
    if mtime_millis is not None:
        info[SRC_LAST_MODIFIED] = str(int(mtime_millis))
    return info


def upload_headers(
    token: str,
    length: int,
    sha1: str | None,
    *,
    file_name: str | None = None,
    content_type: str | None = None,
    file_info: Mapping[str, str] | None = None,
    part_number: int | None = None,
    sse: ServerSideEncryption | None = None,
    file_retention: FileRetention | None = None,
    legal_hold: bool | None = None,
    custom_upload_timestamp: int | None = None,
) -> dict[str, str]:
    """Headers of ``b2_upload_file`` (file_name given) or ``b2_upload_part`` (part_number).
    ``sha1`` None means the 40 hex digits follow the body (``length`` excludes them). A
    part carries only an SSE-C key (SSE-B2 is named when the large file starts)."""
    headers = {
        "Authorization": token,
        "Content-Length": str(length + (0 if sha1 else 40)),
        "X-Bz-Content-Sha1": sha1 or HEX_DIGITS_AT_END,
    }
    if file_name is not None:
        headers["X-Bz-File-Name"] = encode(file_name)
        headers["Content-Type"] = content_type or "b2/x-auto"
        for k, v in (file_info or {}).items():
            headers[f"X-Bz-Info-{k}"] = encode(v)
    if part_number is not None:
        headers["X-Bz-Part-Number"] = str(part_number)
        if sse is not None:
            headers |= sse.read_headers()
    elif sse is not None:
        headers |= sse.upload_headers()
    if file_retention is not None and file_retention.mode is not None:
        headers["X-Bz-File-Retention-Mode"] = file_retention.mode
        headers["X-Bz-File-Retention-Retain-Until-Timestamp"] = str(file_retention.retain_until)
    if legal_hold is not None:
        headers["X-Bz-File-Legal-Hold"] = "on" if legal_hold else "off"
    if custom_upload_timestamp is not None:
        headers["X-Bz-Custom-Upload-Timestamp"] = str(int(custom_upload_timestamp))
    return headers


def parse_content_range(value: str | None) -> tuple[int, int, int | None]:
    m = _RANGE_RE.fullmatch((value or "").strip())
    if not m:
        raise UnexpectedResponse(f"bad Content-Range {value!r}")
    total = None if m[3] == "*" else int(m[3])
    return int(m[1]), int(m[2]), total


def downloaded_file(headers: Mapping[str, str], start: int, end: int, size: int) -> DownloadedFile:
    """The file described by download response headers (``headers`` lower-case keyed)."""
    info = {
        k[len(INFO_PREFIX) :]: decode(v) for k, v in headers.items() if k.startswith(INFO_PREFIX)
    }
    try:
        ts = int(headers.get("x-bz-upload-timestamp") or 0)
    except ValueError:
        ts = 0
    retention = None
    if headers.get("x-bz-file-retention-mode"):
        until = headers.get("x-bz-file-retention-retain-until-timestamp", "")
        retention = FileRetention(
            headers["x-bz-file-retention-mode"], int(until) if until.isdigit() else None
        )
    mode = headers.get("x-bz-server-side-encryption") and "SSE-B2"
    if headers.get("x-bz-server-side-encryption-customer-algorithm"):
        mode = "SSE-C"
    return DownloadedFile(
        file_id=headers.get("x-bz-file-id", ""),
        file_name=decode(headers.get("x-bz-file-name", "")),
        size=size,
        content_type=headers.get("content-type"),
        content_sha1=headers.get("x-bz-content-sha1"),
        file_info=info,
        upload_timestamp=ts,
        range_start=start,
        range_end=end,
        encryption_mode=mode or None,
        customer_key_md5=headers.get("x-bz-server-side-encryption-customer-key-md5"),
        file_retention=retention,
        legal_hold=headers.get("x-bz-file-legal-hold"),
        replication_status=headers.get("x-bz-replication-status"),
    )
