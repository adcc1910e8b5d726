"""The JSON calls of the B2 native API on files: listings, file info, hide, delete, copy,
large files, download authorizations and keys (bucket calls are in ``api_buckets``,
retention and legal hold in ``api_lock``).

``CALLS`` maps a B2 call name to ``async handler(ctx, params) -> dict`` (the other
modules add theirs through ``call``). A ``Ctx`` carries the store, the caller's
principal, the API version, the server's settings and its background services
(event notifications, replication); handlers check capabilities and restrictions
through ``auth.Principal.require``, inputs through ``validate``, encryption through
``sse``, Object Lock through ``filelock``, and render with ``shapes``. ``app`` routes
requests here.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from b2fs.emulator import filelock, replication, shapes, sse, transfer, validate
from b2fs.emulator.auth import Auth, Principal
from b2fs.emulator.errors import BadRequest, NotFound, Unauthorized
from b2fs.emulator.notify import Notifier
from b2fs.emulator.replication import Replicator
from b2fs.emulator.store import ALL_CAPABILITIES, Row, Store, now_ms

_FILE_ID = re.compile(r"^4_z[0-9a-f]{24}_f[0-9a-f]+_")
_KEY_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")


@dataclass
class Settings:
    """What the server's one account is set up with."""

    recommended_part_size: int = 100_000_000
    min_part_size: int = 5_000_000
    custom_upload_timestamps: bool = False  # B2 enables this per account, on request


@dataclass
class Ctx:
    store: Store
    auth: Auth
    settings: Settings
    version: int
    base_url: str
    token: str | None
    notifier: Notifier
    replicator: Replicator

    def principal(self) -> Principal:
        return self.auth.account(self.token)

    @property
    def account_id(self) -> str:
        return self.store.account_id

    def written(self, bucket: Row, row: Row, event: str) -> None:
        """A new version is in ``bucket``: notify, and replicate it if it is pending."""
        size = row["size"] if row["action"] == "upload" else None
        self.notifier.emit(bucket, event, row["name"], row["file_id"], size)
        if row["replication"] == replication.PENDING:
            self.replicator.kick()


Handler = Callable[[Ctx, dict[str, Any]], Awaitable[dict[str, Any]]]
CALLS: dict[str, Handler] = {}


def call(fn: Handler) -> Handler:
    CALLS[fn.__name__] = fn
    return fn


# ---- helpers ------------------------------------------------------------------------


def _check_account(c: Ctx, p: dict[str, Any]) -> None:
    account = p.get("accountId")
    if account is not None and account != c.account_id:
        raise Unauthorized("accountId does not match the authorization token")


def _bucket(c: Ctx, bucket_id: Any) -> Row:
    if not isinstance(bucket_id, str) or not bucket_id:
        raise BadRequest("required field bucketId is missing")
    row = c.store.bucket(bucket_id)
    if row is None:
        raise BadRequest(f"Invalid bucketId: {bucket_id[:40]}", "bad_bucket_id")
    return row


def _file_id(value: Any, field: str = "fileId") -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"required field {field} is missing")
    if not _FILE_ID.match(value):
        raise BadRequest(f"Invalid {field}: {value[:80]}")
    return value


def _version(c: Ctx, file_id: Any, field: str = "fileId") -> Row:
    row = c.store.version(_file_id(file_id, field))
    if row is None:
        raise NotFound(f"File not present: {str(file_id)[:80]}")
    return row


def _unfinished(c: Ctx, file_id: Any) -> Row:
    row = c.store.version(_file_id(file_id))
    if row is None or row["action"] != "start":
        raise BadRequest(f"No active upload for: {str(file_id)[:80]}")
    return row


def content_type_for(name: str, content_type: str) -> str:
    if content_type == "b2/x-auto":
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    return content_type


def _content_type(p: dict[str, Any], name: str) -> str:
    ct = p.get("contentType")
    if not isinstance(ct, str) or not ct:
        raise BadRequest("required field contentType is missing")
    return content_type_for(name, ct)


def _json_field(p: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = p.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise BadRequest(f"{key} has the wrong type")
    return value


def flag(p: dict[str, Any], key: str) -> bool:
    """A boolean parameter (JSON true, or "true" in a GET query)."""
    return p.get(key) in (True, "true")


def info_limit(encryption: sse.Sse, bucket: Row) -> int:
    """B2's limit on name + file info: 7000 bytes, 2048 with SSE or in a lock-enabled bucket."""
    if encryption.mode is not None or bucket["file_lock"]:
        return validate.MAX_NAME_AND_INFO_BYTES_SSE
    return validate.MAX_NAME_AND_INFO_BYTES


def custom_timestamp(c: Ctx, value: Any) -> int | None:
    """``customUploadTimestamp`` (header or JSON): refused unless the account allows it."""
    if value is None:
        return None
    if not c.settings.custom_upload_timestamps:
        raise BadRequest(
            "Custom upload timestamps are not enabled for this account",
            "custom_timestamp_not_allowed",
        )
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("the custom upload timestamp must be milliseconds since 1970")
    if value > now_ms():
        raise BadRequest("the custom upload timestamp must not be in the future")
    return value


def _part_encryption(large: Row, given: sse.Sse | None, where: str) -> sse.Sse:
    """The parts of an SSE-C large file carry its key; other parts may repeat its mode."""
    mine = sse.Sse.from_db(large["sse"])
    if mine.mode == sse.SSE_C:
        if given is None or given.mode != sse.SSE_C:
            raise BadRequest(f"{where}: the parts of an SSE-C large file need its customer key")
        if not mine.same_key(given):
            raise BadRequest(f"{where}: the customer key is not the large file's")
    elif given is not None and given.mode != mine.mode:
        raise BadRequest(f"{where}: the large file was started with another encryption")
    return mine


# ---- listing ------------------------------------------------------------------------


def _successor(name: str) -> str:
    """The smallest string greater than every string that starts with ``name``."""
    return name[:-1] + chr(ord(name[-1]) + 1)


def _list(
    c: Ctx,
    caps: frozenset[str],
    bucket_id: str,
    prefix: str,
    delimiter: str | None,
    start_name: str,
    start_seq: int | None,
    limit: int,
    versions: bool,
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Shared by both listings; returns (entries, nextFileName, nextFileId)."""
    if start_name < prefix:
        start_name, start_seq = prefix, None
    out: list[dict[str, Any]] = []
    rows = c.store.versions_from(bucket_id, start_name, start_seq)
    last_name = None
    while True:
        restart = None
        for row in rows:
            name = row["name"]
            if not name.startswith(prefix):
                return out, None, None
            if not versions:
                if name == last_name or row["action"] == "start":
                    continue
                last_name = name
                if row["action"] == "hide":
                    continue
            if delimiter:
                i = name.find(delimiter, len(prefix))
                if i >= 0:
                    folder = name[: i + len(delimiter)]
                    if len(out) == limit:
                        return out, folder, None
                    out.append(shapes.folder(folder, bucket_id, c.account_id, c.version))
                    restart = _successor(folder)
                    break
            if len(out) == limit:
                return out, name, row["file_id"]
            out.append(shapes.file(row, c.account_id, c.version, caps))
        if restart is None:
            return out, None, None
        rows = c.store.versions_from(bucket_id, restart)


def _list_params(c: Ctx, p: dict[str, Any]) -> tuple[Principal, str, str, str | None, str, int]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    prefix = validate.optional_str(p, "prefix") or ""
    pr.require("listFiles", bucket_id=bucket_id, prefix=prefix)
    _bucket(c, bucket_id)
    delimiter = validate.optional_str(p, "delimiter") or None
    start = validate.optional_str(p, "startFileName") or ""
    limit = validate.integer(p, "maxFileCount", 100, 1, 10_000)
    return pr, bucket_id, prefix, delimiter, start, limit  # type: ignore[return-value]


@call
async def b2_list_file_names(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr, bucket_id, prefix, delimiter, start, limit = _list_params(c, p)
    files, next_name, _ = _list(
        c, pr.capabilities, bucket_id, prefix, delimiter, start, None, limit, False
    )
    return {"files": files, "nextFileName": next_name}


@call
async def b2_list_file_versions(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr, bucket_id, prefix, delimiter, start, limit = _list_params(c, p)
    start_id = validate.optional_str(p, "startFileId")
    start_seq = None
    if start_id:
        if not start:
            raise BadRequest("startFileId requires startFileName")
        row = c.store.version(_file_id(start_id, "startFileId"))
        if row is not None and row["name"] == start and row["bucket_id"] == bucket_id:
            start_seq = row["seq"]
    files, next_name, next_id = _list(
        c, pr.capabilities, bucket_id, prefix, delimiter, start, start_seq, limit, True
    )
    return {"files": files, "nextFileName": next_name, "nextFileId": next_id}


# ---- single files -------------------------------------------------------------------


@call
async def b2_get_file_info(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    row = _version(c, p.get("fileId"))
    pr.require("readFiles", bucket_id=row["bucket_id"], name=row["name"])
    return shapes.file(row, c.account_id, c.version, pr.capabilities)


@call
async def b2_hide_file(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    name = validate.file_name(p.get("fileName"))
    pr.require("writeFiles", bucket_id=bucket_id, name=name)
    bucket = _bucket(c, bucket_id)
    latest = c.store.latest(bucket_id, name)  # type: ignore[arg-type]
    if latest is None:
        raise BadRequest(f"File not present: {name}", "no_such_file")
    if latest["action"] == "hide":
        raise BadRequest(f"File already hidden: {name}", "already_hidden")
    row = c.store.add_version(
        bucket_id,
        name,
        "hide",
        0,
        None,
        "application/x-bz-hide-marker",
        {},
        [],  # type: ignore[arg-type]
    )
    c.written(bucket, row, "b2:HideMarkerCreated:Hide")
    return shapes.file(row, c.account_id, c.version, pr.capabilities)


@call
async def b2_delete_file_version(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    name = validate.required_str(p, "fileName")
    file_id = _file_id(p.get("fileId"))
    row = c.store.version(file_id)
    if row is None or row["name"] != name:
        pr.require("deleteFiles", name=name)
        raise BadRequest(f"File not present: {name} {file_id}", "file_not_present")
    pr.require("deleteFiles", bucket_id=row["bucket_id"], name=name)
    if row["action"] != "start":
        filelock.check_delete(row, pr, flag(p, "bypassGovernance"), now_ms())
    c.store.delete_version(file_id)
    if row["action"] != "start":
        bucket = c.store.bucket(row["bucket_id"])
        size = row["size"] if row["action"] == "upload" else None
        if bucket is not None:
            c.notifier.emit(bucket, "b2:ObjectDeleted:Delete", name, file_id, size)
    return {"fileId": file_id, "fileName": name}


async def _source(c: Ctx, pr: Principal, file_id: Any, field: str) -> Row:
    row = c.store.version(_file_id(file_id, field))
    if row is None:
        raise BadRequest(f"Source file not present: {str(file_id)[:80]}", "file_not_present")
    pr.require("readFiles", bucket_id=row["bucket_id"], name=row["name"])
    if row["action"] != "upload":
        raise BadRequest("the source is not a finished file")
    return row


@call
async def b2_copy_file(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    src = await _source(c, pr, p.get("sourceFileId"), "sourceFileId")
    source_key = sse.from_json(p.get("sourceServerSideEncryption"), "sourceServerSideEncryption")
    name = validate.file_name(p.get("fileName"))
    dest_bucket = p.get("destinationBucketId") or src["bucket_id"]
    pr.require("writeFiles", bucket_id=dest_bucket, name=name)
    bucket = _bucket(c, dest_bucket)
    encryption = sse.for_write(
        sse.from_json(p.get("destinationServerSideEncryption"), "destinationServerSideEncryption"),
        bucket,
    )
    now = now_ms()
    lock = filelock.for_new_version(bucket, pr, *filelock.from_json(p, now), now)
    rng = validate.copy_range(p.get("range"), src["size"]) if src["size"] else None
    length = src["size"] if rng is None else rng[1] - rng[0] + 1
    if length > validate.MAX_SMALL_FILE:
        raise BadRequest("Copy source too big: use b2_copy_part", "source_too_large")
    directive = p.get("metadataDirective") or "COPY"
    if directive == "COPY":
        if p.get("contentType") is not None or p.get("fileInfo") is not None:
            raise BadRequest("contentType and fileInfo must be absent with metadataDirective COPY")
        content_type, info = src["content_type"], json.loads(src["info"])
    elif directive == "REPLACE":
        content_type = _content_type(p, name)
        info = validate.file_info(p.get("fileInfo"), name, info_limit(encryption, bucket))
    else:
        raise BadRequest("metadataDirective must be COPY or REPLACE")
    sse.check_read(sse.Sse.from_db(src["sse"]), source_key)
    blobs = transfer.blobs_of(src)
    if rng is None or (rng[0] == 0 and rng[1] == src["size"] - 1):
        new_blobs, sha1 = transfer.link_copy(c.store, blobs), src["sha1"]
    else:
        blob, size, sha1 = await transfer.copy_range(c.store, blobs, rng[0], rng[1])
        new_blobs = [(blob, size)]
    row = c.store.add_version(
        dest_bucket, name, "upload", length, sha1, content_type, info, new_blobs, upload_ms=now,
        sse=encryption.to_db(), replication=replication.status_for_new(bucket, name), **lock,
    )  # fmt: skip
    c.written(bucket, row, "b2:ObjectCreated:Copy")
    return shapes.file(row, c.account_id, c.version, pr.capabilities, action="copy")


# ---- uploads ------------------------------------------------------------------------


@call
async def b2_get_upload_url(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    pr.require("writeFiles", bucket_id=bucket_id)
    _bucket(c, bucket_id)
    token = c.store.issue_token("upload", pr.key_id, c.auth.token_lifetime, bucket_id=bucket_id)
    nonce = secrets.token_hex(8)
    return {
        "bucketId": bucket_id,
        "uploadUrl": f"{c.base_url}/b2api/v{c.version}/b2_upload_file/{bucket_id}/{nonce}",
        "authorizationToken": token,
    }


@call
async def b2_start_large_file(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    name = validate.file_name(p.get("fileName"))
    pr.require("writeFiles", bucket_id=bucket_id, name=name)
    bucket = _bucket(c, bucket_id)
    content_type = _content_type(p, name)
    encryption = sse.for_write(sse.from_json(p.get("serverSideEncryption"), "serverSideEncryption"),
                               bucket)  # fmt: skip
    # B2 documents customUploadTimestamp; b2sdk sends custom_upload_timestamp: both work
    now = now_ms()
    custom = p.get("customUploadTimestamp", p.get("custom_upload_timestamp"))
    upload_ms = custom_timestamp(c, custom) or now
    lock = filelock.for_new_version(bucket, pr, *filelock.from_json(p, now), upload_ms)
    info = validate.file_info(p.get("fileInfo"), name, info_limit(encryption, bucket))
    row = c.store.add_version(
        bucket_id, name, "start", 0, "none", content_type, info, [],  # type: ignore[arg-type]
        upload_ms=upload_ms, sse=encryption.to_db(), **lock,
    )  # fmt: skip
    return shapes.file(row, c.account_id, c.version, pr.capabilities)


@call
async def b2_get_upload_part_url(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    row = _unfinished(c, p.get("fileId"))
    pr.require("writeFiles", bucket_id=row["bucket_id"], name=row["name"])
    token = c.store.issue_token("upload", pr.key_id, c.auth.token_lifetime, file_id=row["file_id"])
    nonce = secrets.token_hex(8)
    return {
        "fileId": row["file_id"],
        "uploadUrl": f"{c.base_url}/b2api/v{c.version}/b2_upload_part/{row['file_id']}/{nonce}",
        "authorizationToken": token,
    }


@call
async def b2_copy_part(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    src = await _source(c, pr, p.get("sourceFileId"), "sourceFileId")
    large = _unfinished(c, p.get("largeFileId"))
    pr.require("writeFiles", bucket_id=large["bucket_id"], name=large["name"])
    encryption = _part_encryption(
        large,
        sse.from_json(p.get("destinationServerSideEncryption"), "destinationServerSideEncryption"),
        "destinationServerSideEncryption",
    )
    source_key = sse.from_json(p.get("sourceServerSideEncryption"), "sourceServerSideEncryption")
    number = validate.integer(p, "partNumber", None, 1, validate.MAX_PARTS)
    if number is None:
        raise BadRequest("required field partNumber is missing")
    if src["size"] == 0:
        raise BadRequest("cannot copy a part from an empty file")
    rng = validate.copy_range(p.get("range"), src["size"]) or (0, src["size"] - 1)
    if rng[1] - rng[0] + 1 > validate.MAX_PART_SIZE:
        raise BadRequest("part too large (at most 5 GB)")
    sse.check_read(sse.Sse.from_db(src["sse"]), source_key)
    blob, size, sha1 = await transfer.copy_range(c.store, transfer.blobs_of(src), *rng)
    return shapes.part(c.store.put_part(large["file_id"], number, size, sha1, blob), encryption)


@call
async def b2_list_parts(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    row = _unfinished(c, p.get("fileId"))
    pr.require("writeFiles", bucket_id=row["bucket_id"], name=row["name"])
    start = validate.integer(p, "startPartNumber", 1, 1, validate.MAX_PARTS)
    limit = validate.integer(p, "maxPartCount", 100, 1, 1000)
    parts = c.store.parts(row["file_id"], start, limit + 1)  # type: ignore[arg-type]
    nxt = parts[limit]["part_number"] if len(parts) > limit else None  # type: ignore[index]
    encryption = sse.Sse.from_db(row["sse"])
    return {"parts": [shapes.part(r, encryption) for r in parts[:limit]], "nextPartNumber": nxt}


@call
async def b2_list_unfinished_large_files(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    prefix = validate.optional_str(p, "namePrefix") or ""
    pr.require("listFiles", bucket_id=bucket_id, prefix=prefix)
    _bucket(c, bucket_id)
    limit = validate.integer(p, "maxFileCount", 100, 1, 100)
    start_seq = 0
    start_id = validate.optional_str(p, "startFileId")
    if start_id:
        row = c.store.version(_file_id(start_id, "startFileId"))
        if row is None:
            raise BadRequest(f"Invalid startFileId: {start_id[:80]}")
        start_seq = row["seq"]
    rows = c.store.unfinished(bucket_id, prefix, start_seq, limit + 1)  # type: ignore[arg-type, operator]
    nxt = rows[limit]["file_id"] if len(rows) > limit else None  # type: ignore[index]
    files = [shapes.file(r, c.account_id, c.version, pr.capabilities) for r in rows[:limit]]
    return {"files": files, "nextFileId": nxt}


@call
async def b2_finish_large_file(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    row = _unfinished(c, p.get("fileId"))
    pr.require("writeFiles", bucket_id=row["bucket_id"], name=row["name"])
    sha1s = p.get("partSha1Array")
    if not isinstance(sha1s, list):
        raise BadRequest("required field partSha1Array is missing")
    parts = c.store.parts(row["file_id"], 1, validate.MAX_PARTS + 1)
    if len(sha1s) < 2:
        raise BadRequest("large files must have at least 2 parts")
    if len(sha1s) > validate.MAX_PARTS:
        raise BadRequest(f"large files have at most {validate.MAX_PARTS} parts")
    by_number = {r["part_number"]: r for r in parts}
    for i, sha1 in enumerate(sha1s, 1):
        part = by_number.get(i)
        if part is None:
            raise BadRequest(f"Part number {i} has not been uploaded", "missing_part")
        if validate.sha1_hex(sha1, "partSha1Array entry") != part["sha1"]:
            raise BadRequest(f"Sha1 mismatch for part number {i}", "part_sha1_mismatch")
        if i < len(sha1s) and part["size"] < c.settings.min_part_size:
            raise BadRequest(
                f"Part number {i} is smaller than the minimum part size {c.settings.min_part_size}"
            )
    if len(parts) > len(sha1s):
        raise BadRequest(f"{len(parts)} parts were uploaded but {len(sha1s)} sha1s were given")
    size = sum(r["size"] for r in parts)
    if size > validate.MAX_LARGE_FILE:
        raise BadRequest("large files are at most 10 TB")
    bucket = _bucket(c, row["bucket_id"])
    done = c.store.finish_large(row["file_id"], size, [(r["blob"], r["size"]) for r in parts],
                                replication.status_for_new(bucket, row["name"]))  # fmt: skip
    c.written(bucket, done, "b2:ObjectCreated:MultipartUpload")
    return shapes.file(done, c.account_id, c.version, pr.capabilities)


@call
async def b2_cancel_large_file(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    row = _unfinished(c, p.get("fileId"))
    pr.require("writeFiles", bucket_id=row["bucket_id"], name=row["name"])
    c.store.delete_version(row["file_id"])
    return {
        "accountId": c.account_id,
        "bucketId": row["bucket_id"],
        "fileId": row["file_id"],
        "fileName": row["name"],
    }


# ---- download authorization and keys -------------------------------------------------


@call
async def b2_get_download_authorization(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    bucket_id = p.get("bucketId")
    prefix = p.get("fileNamePrefix")
    if not isinstance(prefix, str):
        raise BadRequest("required field fileNamePrefix is missing")
    pr.require("shareFiles", bucket_id=bucket_id, prefix=prefix)
    _bucket(c, bucket_id)
    duration = validate.integer(p, "validDurationInSeconds", None, 1, 604_800)
    if duration is None:
        raise BadRequest("required field validDurationInSeconds is missing")
    token = c.store.issue_token(
        "download", pr.key_id, duration, bucket_id=bucket_id, name_prefix=prefix
    )
    return {"bucketId": bucket_id, "fileNamePrefix": prefix, "authorizationToken": token}


@call
async def b2_create_key(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("writeKeys")
    caps = p.get("capabilities")
    if not isinstance(caps, list) or not caps or not all(x in ALL_CAPABILITIES for x in caps):
        raise BadRequest("capabilities must be a non-empty list of B2's capabilities")
    name = p.get("keyName")
    if not isinstance(name, str) or not _KEY_NAME.match(name):
        raise BadRequest("keyName must be 1 to 100 letters, digits and '-'")
    duration = validate.integer(p, "validDurationInSeconds", None, 1, 86_400_000)
    bucket_ids = p.get("bucketIds")
    if bucket_ids is None and p.get("bucketId") is not None:
        bucket_ids = [p["bucketId"]]
    if bucket_ids is not None:
        if not isinstance(bucket_ids, list) or not bucket_ids:
            raise BadRequest("bucketIds must be a non-empty list")
        for bid in bucket_ids:
            _bucket(c, bid)
            if not pr.may_touch_bucket(bid):
                raise Unauthorized("application key is restricted to other buckets")
    prefix = validate.optional_str(p, "namePrefix")
    if prefix is not None and bucket_ids is None:
        raise BadRequest("namePrefix requires a bucket restriction")
    key_id = f"00{c.account_id}{secrets.token_hex(6)[:11]}"
    secret = "K00" + secrets.token_urlsafe(21).replace("-", "a").replace("_", "b")
    expires = None if duration is None else now_ms() + duration * 1000
    c.store.put_key(key_id, secret, name, caps, bucket_ids, prefix, expires)
    return shapes.key(c.store.key(key_id), c.account_id, c.version, secret)  # type: ignore[arg-type]


@call
async def b2_list_keys(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    _check_account(c, p)
    pr.require("listKeys")
    limit = validate.integer(p, "maxKeyCount", 100, 1, 10_000)
    rows = c.store.keys(validate.optional_str(p, "startApplicationKeyId"), limit + 1)  # type: ignore[operator]
    nxt = rows[limit]["key_id"] if len(rows) > limit else None  # type: ignore[index]
    keys = [shapes.key(r, c.account_id, c.version) for r in rows[:limit]]
    return {"keys": keys, "nextApplicationKeyId": nxt}


@call
async def b2_delete_key(c: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    pr = c.principal()
    pr.require("deleteKeys")
    key_id = validate.required_str(p, "applicationKeyId")
    row = c.store.key(key_id)
    if row is None:
        raise BadRequest(f"Invalid applicationKeyId: {key_id[:40]}")
    if row["master"]:
        raise BadRequest("the master application key cannot be deleted")
    c.store.delete_key(key_id)
    return shapes.key(row, c.account_id, c.version)
