"""The emulator's ASGI application: routing, B2 error bodies, faults and counters.

Routes ``/b2api/v1..v4/<call>`` (JSON calls via ``api.CALLS``, filled by ``api``,
``api_buckets`` and ``api_lock``; authorize; upload and part URLs; download by id),
``/file/<bucket>/<name>`` (download by name) and the ``/_admin/`` endpoints (counters,
faults, token expiry; Basic auth with the master key). A path naming no B2 call
answers as B2 does: 404 ``not_found`` whose message is the path. Uploads and
downloads apply server-side encryption (``sse``), Object Lock (``filelock``) and
custom upload timestamps here. The ASGI lifespan starts and stops the background
services: event notifications (``notify``) and replication (``replication``).
Served by uvicorn from ``server``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from b2fs.emulator import (  # api_buckets, api_lock: their calls join api.CALLS
    api,
    api_buckets,  # noqa: F401
    api_lock,  # noqa: F401
    filelock,
    replication,
    shapes,
    sse,
    transfer,
    validate,
)
from b2fs.emulator.auth import Auth, DownloadGrant, Principal
from b2fs.emulator.counters import Counters
from b2fs.emulator.errors import (
    ApiError,
    BadRequest,
    InternalError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
from b2fs.emulator.faults import Fault, Faults
from b2fs.emulator.notify import Notifier
from b2fs.emulator.replication import Replicator
from b2fs.emulator.store import Row, Store, now_ms

log = logging.getLogger("b2fs.emulator")
Scope = dict[str, Any]
JSON_HEADERS = [(b"content-type", b"application/json;charset=utf-8"),
                (b"cache-control", b"max-age=0, no-cache, no-store")]  # fmt: skip
DOWNLOAD_OVERRIDES = {
    "b2ContentDisposition": "content-disposition",
    "b2ContentLanguage": "content-language",
    "b2Expires": "expires",
    "b2CacheControl": "cache-control",
    "b2ContentEncoding": "content-encoding",
    "b2ContentType": "content-type",
}
INFO_HEADERS = {
    "b2-content-disposition": "content-disposition",
    "b2-content-language": "content-language",
    "b2-expires": "expires",
    "b2-cache-control": "cache-control",
    "b2-content-encoding": "content-encoding",
}
MAX_JSON_BODY = 16 << 20


@dataclass
class Request:
    scope: Scope
    receive: Any
    method: str = ""
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    info_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, scope: Scope, receive: Any) -> Request:
        r = cls(scope, receive, scope["method"], scope["raw_path"].decode("latin-1"))
        r.query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        for k, v in scope["headers"]:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            if name.startswith("x-bz-info-"):
                r.info_headers[name[10:]] = value
            r.headers[name] = value
        return r

    def token(self) -> str | None:
        return self.headers.get("authorization") or self.query.get("Authorization")

    def base_url(self, fallback: str) -> str:
        host = self.headers.get("host")
        return f"http://{host}" if host else fallback


class Response:
    """Wraps ASGI ``send``; remembers whether the response has started."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self.started = False

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        headers = [*JSON_HEADERS, (b"content-length", str(len(data)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        await self.start(status, headers)
        await self.body(data)


def lock_headers(row: Row, caps: frozenset[str]) -> dict[str, str]:
    """A lock-enabled bucket's download headers: retention and legal hold, or the names of
    those the key may not read in ``X-Bz-Client-Unauthorized-To-Read``."""
    out, hidden = {}, []
    if "readFileRetentions" in caps:
        retention = filelock.retention_of(row)
        if retention["mode"] is not None:
            out[filelock.H_MODE] = retention["mode"]
            out[filelock.H_UNTIL] = str(retention["retainUntilTimestamp"])
    else:
        hidden += ["X-Bz-File-Retention-Mode", "X-Bz-File-Retention-Retain-Until-Timestamp"]
    if "readFileLegalHolds" in caps:
        if row["legal_hold"]:
            out[filelock.H_HOLD] = row["legal_hold"]
    else:
        hidden.append("X-Bz-File-Legal-Hold")
    if hidden:
        out["x-bz-client-unauthorized-to-read"] = ",".join(hidden)
    return out


class DropFilter(logging.Filter):
    """Hide uvicorn's traceback for connections we drop on purpose or the client left."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, transfer.DropConnection | transfer.Disconnected)


@dataclass
class Config:
    realm: str
    master_key_id: str
    master_key: str
    settings: api.Settings
    replication_delay: float = 0.0  # seconds between a new pending file and its replica


class App:
    def __init__(self, store: Store, auth: Auth, config: Config, faults: Faults) -> None:
        self.store = store
        self.auth = auth
        self.config = config
        self.faults = faults
        self.counters = Counters()
        self.notifier = Notifier(store.account_id)
        self.replicator = Replicator(store, self.notifier, config.replication_delay)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        if scope["type"] != "http":
            return
        req = Request.parse(scope, receive)
        resp = Response(send)
        try:
            await self.route(req, resp)
        except ApiError as e:
            if resp.started:
                raise
            await resp.json(e.status, e.body(), e.headers)
        except (transfer.Disconnected, transfer.DropConnection):
            if resp.started:
                raise
        except Exception:
            log.exception("internal error on %s %s", req.method, req.path.split("?")[0])
            if resp.started:
                raise
            err = InternalError("internal error")
            await resp.json(err.status, err.body())

    async def lifespan(self, receive: Any, send: Any) -> None:
        """Start the background services with the server, stop them with it."""
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self.notifier.start()
                self.replicator.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.replicator.stop()
                await self.notifier.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def route(self, req: Request, resp: Response) -> None:
        path = req.path.split("?", 1)[0]
        if path.startswith("/b2api/v") and len(path) > 10 and path[9] == "/":
            version = int(path[8]) if path[8].isdigit() else 0
            if not 1 <= version <= 4:
                raise NotFound(f"unknown API version in {path[:20]}")
            name = path[10:]
            if name == "b2_authorize_account":
                return await self.call(req, resp, name, self.authorize, version)
            if name == "b2_download_file_by_id":
                return await self.call(req, resp, name, self.download, version, None)
            if name.startswith("b2_upload_file/"):
                return await self.call(req, resp, "b2_upload_file", self.upload, version, name)
            if name.startswith("b2_upload_part/"):
                return await self.call(req, resp, "b2_upload_part", self.upload, version, name)
            if name in api.CALLS:
                return await self.call(req, resp, name, self.json_call, version, name)
            raise NotFound(path[:200])  # B2's answer to a name it does not know
        if path.startswith("/file/"):
            return await self.call(req, resp, "b2_download_file_by_name", self.download, 4, path)
        if path.startswith("/_admin/"):
            return await self.admin(req, resp, path[8:])
        raise NotFound(f"no such path {path[:80]}")

    async def call(self, req: Request, resp: Response, name: str, handler: Any, *args: Any) -> None:
        """Count the call, inject a fault if one is drawn, then run the handler."""
        self.counters.call(name)
        fault = self.faults.draw(name, req.headers.get("x-bz-test-mode"))
        if fault is not None:
            self.counters.fault(name)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.error is not None:
                if req.method in ("POST", "PUT"):
                    await transfer.discard_body(req.receive)
                raise fault.error
            if fault.drop and name not in ("b2_download_file_by_id", "b2_download_file_by_name"):
                await transfer.discard_body(req.receive)
                await resp.start(200, [(b"content-length", b"4096"), *JSON_HEADERS])
                await resp.body(b'{"partial":', more=True)
                raise transfer.DropConnection()
        await handler(req, resp, *args, fault)

    # ---- JSON calls -------------------------------------------------------------------

    def ctx(self, req: Request, version: int) -> api.Ctx:
        return api.Ctx(
            self.store,
            self.auth,
            self.config.settings,
            version,
            req.base_url(self.config.realm),
            req.headers.get("authorization"),
            self.notifier,
            self.replicator,
        )

    async def read_json(self, req: Request, any_json: bool = False) -> Any:
        chunks, size = [], 0
        while True:
            msg = await req.receive()
            if msg["type"] == "http.disconnect":
                raise transfer.Disconnected()
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_JSON_BODY:
                raise BadRequest("request body too large", "bad_json")
            if not msg.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            params = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request body is not valid JSON", "bad_json") from None
        if not isinstance(params, dict) and not any_json:
            raise BadRequest("request body must be a JSON object", "bad_json")
        return params

    async def json_call(self, req: Request, resp: Response, version: int, name: str, _f: Fault | None) -> None:  # fmt: skip
        if req.method == "POST":
            params = await self.read_json(req)
        elif req.method == "GET":
            params = dict(req.query)
        else:
            raise MethodNotAllowed(f"{req.method} is not allowed for {name}")
        result = await api.CALLS[name](self.ctx(req, version), params)
        await resp.json(200, result)

    async def authorize(self, req: Request, resp: Response, version: int, _f: Fault | None) -> None:
        if req.method not in ("GET", "POST"):
            raise MethodNotAllowed(f"{req.method} is not allowed for b2_authorize_account")
        if req.method == "POST":
            await transfer.discard_body(req.receive)
        principal, token = self.auth.login(req.headers.get("authorization"))
        limits = self.config.settings
        body = shapes.authorize(
            self.store,
            principal,
            token,
            req.base_url(self.config.realm),
            version,
            limits.recommended_part_size,
            limits.min_part_size,
        )
        await resp.json(200, body)

    # ---- uploads ----------------------------------------------------------------------

    async def upload(self, req: Request, resp: Response, version: int, route: str, fault: Fault | None) -> None:  # fmt: skip
        if req.method != "POST":
            raise MethodNotAllowed("uploads are POST")
        kind, _, rest = route.partition("/")
        target = rest.split("/", 1)[0]
        h = req.headers
        principal = self.auth.upload(h.get("authorization"), target)
        length_header = h.get("content-length")
        if length_header is None or not length_header.isdigit():
            raise BadRequest("Content-Length is required")
        length = int(length_header)
        claimed = h.get("x-bz-content-sha1")
        if claimed is None:
            raise BadRequest("X-Bz-Content-Sha1 is required")
        at_end = claimed == "hex_digits_at_end"
        verify = not (at_end or claimed == "do_not_verify" or claimed.startswith("unverified:"))
        if verify:
            claimed = validate.sha1_hex(claimed, "X-Bz-Content-Sha1")
        size = length - 40 if at_end else length
        given = sse.from_headers(h)
        if kind == "b2_upload_file":
            bucket = api._bucket(api_ctx := self.ctx(req, version), target)
            name = validate.file_name(
                validate.percent_decoded(h.get("x-bz-file-name", ""), "X-Bz-File-Name"),
                "X-Bz-File-Name",
            )
            principal.require("writeFiles", bucket_id=target, name=name)
            content_type = h.get("content-type")
            if not content_type:
                raise BadRequest("Content-Type is required")
            encryption = sse.for_write(given, bucket)
            now = now_ms()
            upload_ms = api.custom_timestamp(api_ctx, h.get("x-bz-custom-upload-timestamp")) or now
            lock = filelock.for_new_version(
                bucket, principal, *filelock.from_headers(h, now), upload_ms
            )
            info = validate.file_info(
                {
                    k: validate.percent_decoded(v, f"X-Bz-Info-{k}")
                    for k, v in req.info_headers.items()
                },
                name,
                api.info_limit(encryption, bucket),
            )
            if size > validate.MAX_SMALL_FILE:
                raise BadRequest("files over 5 GB must be uploaded as large files")
        else:
            large = api._unfinished(api_ctx := self.ctx(req, version), target)
            principal.require("writeFiles", bucket_id=large["bucket_id"], name=large["name"])
            encryption = api._part_encryption(large, given, "b2_upload_part")
            number = h.get("x-bz-part-number", "")
            if not number.isdigit() or not 1 <= int(number) <= validate.MAX_PARTS:
                raise BadRequest("X-Bz-Part-Number must be between 1 and 10000")
            if size > validate.MAX_PART_SIZE:
                raise BadRequest("parts are at most 5 GB")
        if size < 0:
            raise BadRequest("Content-Length too small for a trailing sha1")
        body = await transfer.receive_body(req.receive, self.store, at_end)
        self.counters.bytes_in += body.size + (40 if at_end else 0)
        try:
            if body.size != size:
                raise BadRequest("body length does not match Content-Length")
            if at_end:
                claimed = validate.sha1_hex(body.claimed_sha1, "trailing sha1")
                verify = True
            if verify and claimed != body.sha1:
                raise BadRequest("Checksum did not match data received")
            if fault is not None and fault.drop:
                raise transfer.DropConnection()
            blob = self.store.new_blob()
            os.rename(body.path, self.store.path(blob))
        except BaseException:
            body.path.unlink(missing_ok=True)
            raise
        sha1 = body.sha1 if verify else f"unverified:{body.sha1}"
        if kind == "b2_upload_file":
            ct = api.content_type_for(name, content_type)  # type: ignore[arg-type]
            row = self.store.add_version(
                bucket["bucket_id"], name, "upload", size, sha1, ct, info,  # type: ignore[arg-type]
                [(blob, size)], upload_ms=upload_ms, sse=encryption.to_db(),
                replication=replication.status_for_new(bucket, name), **lock,
            )  # fmt: skip
            api_ctx.written(bucket, row, "b2:ObjectCreated:Upload")
            answer = shapes.file(row, api_ctx.account_id, version, principal.capabilities)
        else:
            part = self.store.put_part(large["file_id"], int(number), size, body.sha1, blob)  # type: ignore[possibly-undefined]
            answer = shapes.part(part, encryption)
        if fault is not None and fault.hold:  # stored: a client that leaves meanwhile never
            await asyncio.sleep(fault.hold)  # hears of it
        await resp.json(200, answer)

    # ---- downloads --------------------------------------------------------------------

    async def download(self, req: Request, resp: Response, version: int, path: str | None, fault: Fault | None) -> None:  # fmt: skip
        if req.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("downloads are GET or HEAD")
        token = req.token()
        who = self.auth.download(token) if token else None
        if path is None:
            file_id = req.query.get("fileId")
            if not file_id:
                raise BadRequest("required parameter fileId is missing")
            row = self.store.version(api._file_id(file_id))
            if row is None or row["action"] != "upload":
                raise NotFound(f"File with id {file_id[:80]} not found")
            bucket = self.store.bucket(row["bucket_id"])
        else:
            bucket_name, _, raw_name = path[6:].partition("/")
            bucket = self.store.bucket_by_name(unquote(bucket_name))
            name = validate.percent_decoded(raw_name.replace("+", "%2B"), "file name")
            if bucket is None:
                if who is None:
                    raise Unauthorized("bucket not found or not public")
                raise NotFound(f"Bucket {bucket_name[:63]} does not exist")
            row = self.store.latest(bucket["bucket_id"], name) if name else None
            if row is not None and row["action"] != "upload":
                row = None
        assert bucket is not None
        if isinstance(who, DownloadGrant):
            if who.bucket_id != bucket["bucket_id"] or (
                row is not None and not row["name"].startswith(who.prefix)
            ):
                raise Unauthorized("download authorization does not cover this file")
        elif who is not None:
            who.require(
                "readFiles", bucket_id=bucket["bucket_id"], name=row["name"] if row else None
            )
        elif bucket["type"] != "allPublic":
            raise Unauthorized("this bucket is private: an authorization token is required")
        if row is None:
            raise NotFound("File not found")
        encryption = sse.Sse.from_db(row["sse"])
        given = sse.from_headers(req.headers)
        if req.method != "HEAD":  # b2sdk asks for the info by name (HEAD) with no SSE-C key
            sse.check_read(encryption, given)
        extra = encryption.headers()
        if row["replication"]:
            extra["x-bz-replication-status"] = row["replication"]
        if bucket["file_lock"] and isinstance(who, Principal):
            extra |= lock_headers(row, who.capabilities)
        await self.send_file(req, resp, row, fault, extra)

    async def send_file(self, req: Request, resp: Response, row: Row, fault: Fault | None,
                        extra: dict[str, str]) -> None:  # fmt: skip
        size = row["size"]
        rng = validate.byte_range(req.headers.get("range"), size) if size else None
        start, end = rng if rng else (0, size - 1)
        length = end - start + 1 if size else 0
        info = json.loads(row["info"])
        headers = {
            "content-type": row["content_type"] or "application/octet-stream",
            "content-length": str(length),
            "accept-ranges": "bytes",
            "x-bz-file-id": row["file_id"],
            "x-bz-file-name": quote(row["name"], safe="/"),
            "x-bz-content-sha1": row["sha1"] or "none",
            "x-bz-upload-timestamp": str(row["upload_ms"]),
            "cache-control": "max-age=0, no-cache, no-store",
            **extra,
        }
        for k, v in info.items():
            headers[f"x-bz-info-{k}"] = quote(v, safe="")
            if k in INFO_HEADERS:
                headers[INFO_HEADERS[k]] = v
        for param, header in DOWNLOAD_OVERRIDES.items():
            if param in req.query:
                headers[header] = req.query[param]
        status = 200
        if rng is not None:
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        await resp.start(
            status, [(k.encode(), v.encode("latin-1", "replace")) for k, v in headers.items()]
        )
        if req.method == "HEAD" or length == 0:
            await resp.body(b"")
            return
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(self._watch_disconnect(req, disconnected))
        try:
            limit = max(1, length // 2) if fault is not None and fault.drop else None

            async def counted(msg: dict[str, Any]) -> None:
                self.counters.bytes_out += len(msg["body"])
                await resp._send(msg)

            await transfer.send_content(
                counted, self.store, transfer.blobs_of(row), start, end, disconnected, limit
            )
            if limit is not None:
                raise transfer.DropConnection()
            await resp.body(b"")
        finally:
            watcher.cancel()

    @staticmethod
    async def _watch_disconnect(req: Request, event: asyncio.Event) -> None:
        while True:
            msg = await req.receive()
            if msg["type"] == "http.disconnect":
                event.set()
                return

    # ---- admin ------------------------------------------------------------------------

    async def admin(self, req: Request, resp: Response, what: str) -> None:
        expected = base64.b64encode(
            f"{self.config.master_key_id}:{self.config.master_key}".encode()
        ).decode()
        given = req.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Basic {expected}".encode()):
            raise Unauthorized("admin endpoints need Basic auth with the master key")
        body = await self.read_json(req, any_json=True) if req.method == "POST" else {}
        if what == "counters" and req.method == "GET":
            return await resp.json(200, self.counters.snapshot())
        if what == "counters/reset" and req.method == "POST":
            self.counters.reset()
            return await resp.json(200, self.counters.snapshot())
        if what == "faults" and req.method == "POST":
            self.faults.set(body)
            return await resp.json(200, {"rules": len(self.faults.rules)})
        if what == "faults" and req.method == "DELETE":
            self.faults.set([])
            return await resp.json(200, {"rules": 0})
        if what == "expire_tokens" and req.method == "POST":
            return await resp.json(200, {"expired": self.store.expire_tokens()})
        raise NotFound(f"no admin endpoint {req.method} {what[:40]}")
