"""The engine under ``B2Client``: HTTP session, authorization, retries, upload URLs.

``Core`` owns the one ``httpx.AsyncClient`` (keep-alive, optional HTTP/2, proxy,
CA bundle, client certificate, user agent), the account token (re-authorized
once, by whoever notices first, when B2 says it expired), the retry loop
(backoff with jitter, ``Retry-After``, bounds on attempts and time, recovery of
calls that took effect despite failing) and the pool of upload URLs (one upload
per URL at a time; a URL is dropped after any failure). The API methods are in
``b2fs.b2.client`` (JSON calls), ``b2fs.b2.uploads`` and ``b2fs.b2.downloads``.
Only anyio primitives are used, so it runs on trio and asyncio alike.
"""

from __future__ import annotations

import base64
import email.utils
import json as json_module
import logging
import platform
import random
import ssl
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any, Self, TypeVar
from urllib.parse import urlencode, urlsplit

import anyio
import httpx

from b2fs import __version__
from b2fs.b2.download_conn import DownloadConnectionError, DownloadPool, DownloadResponse
from b2fs.b2.errors import (
    B2Error,
    CertificateError,
    InternalError,
    InvalidAuthToken,
    NetworkError,
    TransientError,
    Unauthorized,
    error_from_response,
)
from b2fs.b2.events import ClientEvent, ClientStats
from b2fs.b2.models import Account, UploadUrl
from b2fs.b2.options import RetryPolicy, Timeouts, TransferOptions
from b2fs.b2.sse import ServerSideEncryption
from b2fs.b2.throttle import Throttle
from b2fs.b2.upload_conn import UploadConnection, UploadConnectionError

log = logging.getLogger("b2fs.b2")

T = TypeVar("T")

PRODUCTION_REALM = "https://api.backblazeb2.com"
REALMS = {
    "production": PRODUCTION_REALM,
    "staging": "https://api.backblaze.net",
    "dev": "http://api.backblazeb2.xyz:8180",
}
READ_SIZE = 256 * 1024  # bytes per socket read (see _bigger_reads)
LEAN_BUFFER = (
    1 << 20
)  # an upload body up to this size is sent whole (and again on a stale connection)
USER_AGENT = f"b2fs/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"


def realm_url(realm: str) -> str:
    """A realm name (production, staging, dev) or URL -> the URL, without a trailing '/'."""
    return REALMS.get(realm, realm).rstrip("/")


class Core:
    """Session, token, retries and upload URLs; see ``B2Client`` for the API."""

    def __init__(
        self,
        key_id: str,
        key: str,
        realm: str = PRODUCTION_REALM,
        *,
        api_version: str = "v4",
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        transfer: TransferOptions | None = None,
        http2: bool = False,
        proxy: str | None = None,
        verify: bool = True,
        ca_bundle: str | None = None,
        client_cert: str | tuple[str, str] | None = None,
        upload_limit: float | None = None,
        download_limit: float | None = None,
        max_connections: int = 64,
        user_agent: str | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> None:
        self._key_id = key_id
        self._key = key
        self.realm = realm_url(realm)
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.transfer = transfer or TransferOptions()
        self.on_event = on_event
        # the default of every upload, copy and download (an SSE-C key goes with reads too)
        self.sse = server_side_encryption
        self.stats = ClientStats()
        self._http_args: dict[str, Any] = {
            "http2": http2,
            "proxy": proxy,
            "verify": _ssl_context(verify, ca_bundle, client_cert),
            "max_connections": max_connections,
            "user_agent": f"{USER_AGENT} {user_agent}" if user_agent else USER_AGENT,
        }
        self._up_throttle = Throttle(upload_limit or None)
        self._down_throttle = Throttle(download_limit or None)
        self._http: httpx.AsyncClient | None = None
        self._auth_lock: anyio.Lock | None = None
        self._account: Account | None = None
        self._auth_generation = 0
        self._clock_skew = 0.0  # server time - local time, seconds
        self._upload_urls: dict[str, list[UploadUrl]] = defaultdict(list)
        self._upload_conns: dict[str, UploadConnection] = {}  # upload URL -> its connection
        self._closing: list[UploadConnection] = []  # of forgotten URLs, closed by aclose
        self._download_pool: DownloadPool | None = None  # kept connections of downloads
        self._lean: bool | None = None
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"<B2Client key_id={self._key_id!r} realm={self.realm!r}>"

    def _sse(self, given: ServerSideEncryption | None) -> ServerSideEncryption | None:
        """The encryption of a write: the one given, else the client's default."""
        return given if given is not None else self.sse

    def _read_key(self, given: ServerSideEncryption | None) -> ServerSideEncryption | None:
        """The SSE-C key a read sends: the one given, else the client's default (if SSE-C)."""
        sse = self._sse(given)
        return sse if sse is not None and sse.is_customer else None

    # -- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        conns = [*self._upload_conns.values(), *self._closing]
        self._upload_conns.clear()
        self._closing.clear()
        for conn in conns:
            await conn.aclose()
        if self._download_pool is not None:
            pool, self._download_pool = self._download_pool, None
            await pool.aclose()
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    def _session(self) -> httpx.AsyncClient:
        if self._http is None:
            _bigger_reads()
            a = self._http_args
            t = self.timeouts
            limits = httpx.Limits(
                max_connections=a["max_connections"],
                max_keepalive_connections=a["max_connections"],
                keepalive_expiry=30.0,
            )
            self._http = httpx.AsyncClient(
                http2=a["http2"],
                proxy=a["proxy"],
                verify=a["verify"],
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
                limits=limits,
                headers={"User-Agent": a["user_agent"]},
            )
        return self._http

    # -- bandwidth -------------------------------------------------------------------------------
    def set_bandwidth(self, upload: float | None, download: float | None) -> None:
        """Change the bandwidth limits (bytes/s; None: unlimited) of every transfer, running
        ones included (they follow the new rate from their next chunk)."""
        self._up_throttle.rate = upload or None
        self._down_throttle.rate = download or None

    @property
    def bandwidth(self) -> tuple[float | None, float | None]:
        """The (upload, download) limits in bytes/s; None is unlimited."""
        return self._up_throttle.rate, self._down_throttle.rate

    # -- events ----------------------------------------------------------------------------------
    def _emit(self, event: ClientEvent) -> None:
        if event.kind == "retry":
            self.stats.retries_by_call[event.call] += 1
        log.info(
            "%s %s attempt=%d delay=%.2fs %s",
            event.kind,
            event.call,
            event.attempt,
            event.delay,
            event.error,
        )
        if self.on_event is not None:
            self.on_event(event)

    # -- HTTP ----------------------------------------------------------------------------------------
    async def _request(
        self,
        call: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        json: Any = None,
        content: Any = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        stream: bool = False,
        auth_generation: int | None = None,
        upload: bool = False,
    ) -> httpx.Response:
        """One HTTP exchange. Returns a 2xx response (open when ``stream``); raises typed
        errors. ``auth_generation``: the account token used (so an expiry re-authorizes);
        ``upload``: an upload-URL token was used (an expiry gets a new URL)."""
        http = self._session()
        self.stats.calls[call] += 1
        try:
            with anyio.fail_after(timeout) if timeout else nullcontext():
                request = http.build_request(
                    method, url, headers=headers, json=json, content=content, params=params
                )
                resp = await http.send(request, stream=stream)
                if resp.status_code >= 300:
                    await resp.aread()
                    await resp.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            self.stats.outcomes[(call, "network")] += 1
            if _caused_by(e, ssl.SSLCertVerificationError):
                raise CertificateError(f"{type(e).__name__}: {e}", call=call, sent=False) from e
            raise NetworkError(f"{type(e).__name__}: {e}", call=call, sent=False) from e
        except httpx.TransportError as e:
            self.stats.outcomes[(call, "network")] += 1
            raise NetworkError(f"{type(e).__name__}: {e}", call=call) from e
        except TimeoutError:
            self.stats.outcomes[(call, "network")] += 1
            raise NetworkError(f"no answer within {timeout}s", call=call) from None
        log.debug("%s %s -> %d", call, method, resp.status_code)
        if resp.status_code < 300:
            self.stats.outcomes[(call, "ok")] += 1
            return resp
        try:
            body = resp.json()
        except ValueError:
            body = None
        err = error_from_response(call, resp.status_code, body, resp.headers.get("retry-after"))
        self.stats.outcomes[(call, err.code)] += 1
        if isinstance(err, InvalidAuthToken):
            err.auth_generation = auth_generation
            err.renewable = auth_generation is not None or upload
        raise err

    @staticmethod
    def _json(call: str, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise B2Error("answer is not JSON", status=resp.status_code, call=call) from None

    # -- retries ------------------------------------------------------------------------------------
    async def _retry(
        self,
        call: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        transfer: bool = False,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``attempt`` until it succeeds, a non-retryable error, or the policy's bounds.

        After an ambiguous failure (the request may have taken effect), ``recover`` is
        asked first whether the effect is there; if it returns a result, that is the
        answer and no second request is sent (no duplicate version). Errors raised
        carry ``after_ambiguous`` so that a caller can tell "already done by my first
        attempt" from a real refusal (no false error).
        """
        policy = self.retry
        limit = policy.max_transfer_attempts if transfer else policy.max_attempts
        start = anyio.current_time()
        failures = reauths = 0
        ambiguous = False
        while True:
            try:
                if ambiguous and recover is not None:
                    found = await recover()
                    if found is not None:
                        self._recovered(call, failures)
                        return found
                return await attempt()
            except B2Error as e:
                ambiguous = ambiguous or (e.retryable and e.ambiguous)
                e.after_ambiguous = ambiguous
                if isinstance(e, InvalidAuthToken) and e.renewable:
                    if reauths >= policy.max_reauthorizations:
                        raise
                    reauths += 1
                    if e.auth_generation is not None:
                        await self._reauthorize(e.auth_generation)
                    continue
                if not e.retryable:
                    raise
                failures += 1
                e.attempts = failures
                if failures >= limit:
                    raise
                delay = self._backoff(e, failures)
                if anyio.current_time() - start + delay > policy.max_total:
                    raise
                self.stats.retries += 1
                self._emit(
                    ClientEvent("retry", call, failures, delay, f"{type(e).__name__} {e.code}")
                )
                await anyio.sleep(delay)

    def _backoff(self, error: BaseException, failures: int) -> float:
        """Seconds to wait before retry number ``failures``. A dropped connection or a 500
        is tried again at once, on a fresh connection (B2's guidance: the next attempt
        usually lands on a healthy host), then with backoff; a 503, 429 or 408 backs off
        from the first (and a ``Retry-After`` is honoured)."""
        policy = self.retry
        at_once = isinstance(
            error, InternalError | NetworkError | httpx.TransportError | DownloadConnectionError
        )
        if at_once and policy.first_retry_at_once:
            if failures == 1:
                return 0.0
            failures -= 1
        retry_after = error.retry_after if isinstance(error, B2Error) else None
        return policy.delay(failures, retry_after, self._rng)

    def _recovered(self, call: str, attempt: int = 0) -> None:
        self.stats.recoveries += 1
        self._emit(ClientEvent("recovered", call, attempt))

    # -- authorization ------------------------------------------------------------------------------
    async def authorize(self) -> Account:
        """Call ``b2_authorize_account`` now (also done lazily by the first call)."""
        async with self._lock():
            return await self._authorize_locked()

    def _lock(self) -> anyio.Lock:
        if self._auth_lock is None:
            self._auth_lock = anyio.Lock()
        return self._auth_lock

    async def _authorize_locked(self) -> Account:
        call = "b2_authorize_account"
        url = f"{self.realm}/b2api/{self.api_version}/{call}"
        basic = base64.b64encode(f"{self._key_id}:{self._key}".encode()).decode()

        async def attempt() -> httpx.Response:
            try:
                return await self._request(
                    call,
                    "GET",
                    url,
                    headers={"Authorization": f"Basic {basic}"},
                    timeout=self.timeouts.call,
                )
            except InvalidAuthToken as e:
                # Basic credentials carry no token that could expire: an answer about a token
                # is the service's hiccup, retried like a 503, not a refusal of the key
                raise TransientError(
                    e.message, status=e.status, code=e.code, call=call, retry_after=e.retry_after
                ) from None

        try:
            resp = await self._retry(call, attempt)
        except Unauthorized as e:  # B2: 401 unauthorized, with an empty message
            raise Unauthorized(
                "the application key id or key was refused", status=e.status, code=e.code, call=call
            ) from None
        account = Account.from_json(self._json(call, resp))
        date = resp.headers.get("date")
        if date:
            try:
                self._clock_skew = email.utils.parsedate_to_datetime(date).timestamp() - time.time()
            except (TypeError, ValueError):
                pass
        self._account = account
        self._auth_generation += 1
        self._upload_urls.clear()  # their tokens are likely as old as the account token
        return account

    async def _authorized(self) -> Account:
        if self._account is None:
            async with self._lock():
                if self._account is None:
                    await self._authorize_locked()
        assert self._account is not None
        return self._account

    async def _reauthorize(self, seen_generation: int) -> None:
        async with self._lock():
            if self._auth_generation == seen_generation:  # nobody renewed it meanwhile
                await self._authorize_locked()
                self.stats.reauthorizations += 1
                self._emit(ClientEvent("reauthorize", "b2_authorize_account"))

    @property
    def account(self) -> Account | None:
        """The last authorization (None before the first call)."""
        return self._account

    def server_time_millis(self) -> int:
        """Now, on the server's clock (as measured from the authorize answer's Date)."""
        return int((time.time() + self._clock_skew) * 1000)

    # -- JSON API calls ------------------------------------------------------------------------------
    async def call(
        self,
        name: str,
        body: dict[str, Any] | None = None,
        *,
        recover: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        """Any JSON API call by name (``b2_list_buckets``...): POST to the API URL with
        the account token, with retries and re-authorization. Returns the JSON answer.
        Top-level ``None`` values in ``body`` are left out."""
        payload = {k: v for k, v in (body or {}).items() if v is not None}

        async def attempt() -> Any:
            account = await self._authorized()
            generation = self._auth_generation
            resp = await self._request(
                name,
                "POST",
                f"{account.api_url}/b2api/{self.api_version}/{name}",
                headers={"Authorization": account.authorization_token},
                json=payload,
                timeout=self.timeouts.call,
                auth_generation=generation,
            )
            return self._json(name, resp)

        return await self._retry(name, attempt, recover=recover)

    async def _account_id(self) -> str:
        return (await self._authorized()).account_id

    # -- upload URLs --------------------------------------------------------------------------------
    async def get_upload_url(self, bucket_id: str) -> UploadUrl:
        """A fresh upload URL for small files of a bucket (``b2_get_upload_url``)."""
        d = await self.call("b2_get_upload_url", {"bucketId": bucket_id})
        self.stats.upload_urls_fetched += 1
        return UploadUrl(d["uploadUrl"], d["authorizationToken"], bucket_id)

    async def get_upload_part_url(self, file_id: str) -> UploadUrl:
        """A fresh upload URL for parts of a large file (``b2_get_upload_part_url``)."""
        d = await self.call("b2_get_upload_part_url", {"fileId": file_id})
        self.stats.upload_urls_fetched += 1
        return UploadUrl(d["uploadUrl"], d["authorizationToken"], file_id)

    async def _post_upload(
        self,
        call: str,
        target: str,
        headers: Callable[[str], dict[str, str]],
        body: Any,
    ) -> Any:
        """One upload attempt on a pooled URL for ``target`` (bucket id for
        ``b2_upload_file``, large file id for ``b2_upload_part``). The URL goes back to
        the pool after success and is dropped after any failure."""
        pool = self._upload_urls[target]
        if pool:
            url = pool.pop()
        elif call == "b2_upload_part":
            url = await self.get_upload_part_url(target)
        else:
            url = await self.get_upload_url(target)
        try:
            if self._lean_uploads():
                result = await self._post_lean(call, url, headers(url.authorization_token), body)
            else:
                resp = await self._request(
                    call,
                    "POST",
                    url.url,
                    headers=headers(url.authorization_token),
                    content=body,
                    upload=True,
                )
                result = self._json(call, resp)
        except BaseException as e:
            self.stats.upload_urls_discarded += 1
            conn = self._upload_conns.pop(url.url, None)
            if conn is not None:
                await conn.aclose()
            if isinstance(e, B2Error):
                self._emit(
                    ClientEvent("upload_url_discarded", call, error=f"{type(e).__name__} {e.code}")
                )
            raise
        self._upload_urls[target].append(url)
        return result

    def _lean_uploads(self) -> bool:
        """Uploads on kept connections of their own (``upload_conn``): not through a proxy
        (given, or from the environment as httpx would take it) nor over HTTP/2."""
        if self._lean is None:
            a = self._http_args
            self._lean = not a["http2"] and not a["proxy"] and not _env_proxy(self.realm)
        return self._lean

    async def _post_lean(self, call: str, url: UploadUrl, headers: dict[str, str],
                         body: Any) -> Any:  # fmt: skip
        """``_request`` of an upload, on the URL's kept connection."""
        conn = self._upload_conns.get(url.url)
        if conn is None:
            t = self.timeouts
            conn = self._upload_conns[url.url] = UploadConnection(
                url.url, ssl_context=self._lean_ssl_context(), user_agent=self._http_args["user_agent"],
                connect_timeout=t.connect, read_timeout=t.read, write_timeout=t.write,
            )  # fmt: skip
        self.stats.calls[call] += 1
        length = int(headers.get("Content-Length", "0"))
        if length <= LEAN_BUFFER:  # whole: sent again as it is if a kept connection was stale
            body = b"".join([bytes(chunk) async for chunk in body])
        try:
            status, answer, raw = await conn.post(headers, body)
        except UploadConnectionError as e:
            self.stats.outcomes[(call, "network")] += 1
            if _caused_by(e, ssl.SSLCertVerificationError):
                raise CertificateError(str(e), call=call, sent=False) from e
            raise NetworkError(str(e), call=call, sent=e.sent) from e
        log.debug("%s POST -> %d", call, status)
        try:
            result = json_module.loads(raw) if raw else None
        except ValueError:
            result = None
        if status < 300:
            if result is None:
                raise B2Error("answer is not JSON", status=status, call=call)
            self.stats.outcomes[(call, "ok")] += 1
            return result
        err = error_from_response(call, status, result, answer.get("retry-after"))
        self.stats.outcomes[(call, err.code)] += 1
        if isinstance(err, InvalidAuthToken):
            err.renewable = True
        raise err

    def _lean_downloads(self) -> DownloadPool | None:
        """The pool of kept download connections (``download_conn``), when downloads may
        bypass httpx (the same conditions as uploads)."""
        if not self._lean_uploads():
            return None
        if self._download_pool is None:
            t = self.timeouts
            self._download_pool = DownloadPool(
                ssl_context=self._lean_ssl_context(), user_agent=self._http_args["user_agent"],
                connect_timeout=t.connect, read_timeout=t.read, write_timeout=t.write,
                max_idle=self._http_args["max_connections"],
            )  # fmt: skip
        return self._download_pool

    def _lean_ssl_context(self) -> ssl.SSLContext | None:
        verify = self._http_args["verify"]
        ctx = verify if isinstance(verify, ssl.SSLContext) else None
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx

    async def _get_lean(self, pool: DownloadPool, call: str, url: str, *,
                        headers: dict[str, str], params: dict[str, str] | None,
                        auth_generation: int | None) -> DownloadResponse:  # fmt: skip
        """``_request`` of a download GET on a kept connection: a 2xx response whose body
        is still to be read, or a typed error."""
        self.stats.calls[call] += 1
        if params:
            url = f"{url}?{urlencode(params)}"
        try:
            resp = await pool.get(url, headers)
            raw = b""
            if resp.status >= 300:
                try:
                    raw = await resp.read_all()
                finally:
                    await resp.aclose()
        except DownloadConnectionError as e:
            self.stats.outcomes[(call, "network")] += 1
            if _caused_by(e, ssl.SSLCertVerificationError):
                raise CertificateError(str(e), call=call, sent=False) from e
            raise NetworkError(str(e), call=call, sent=e.sent) from e
        log.debug("%s GET -> %d", call, resp.status)
        if resp.status < 300:
            self.stats.outcomes[(call, "ok")] += 1
            return resp
        try:
            body = json_module.loads(raw) if raw else None
        except ValueError:
            body = None
        err = error_from_response(call, resp.status, body, resp.headers.get("retry-after"))
        self.stats.outcomes[(call, err.code)] += 1
        if isinstance(err, InvalidAuthToken):
            err.auth_generation = auth_generation
            err.renewable = auth_generation is not None
        raise err

    def _forget_upload_urls(self, target: str) -> None:
        for url in self._upload_urls.pop(target, []):
            conn = self._upload_conns.pop(url.url, None)
            if conn is not None:
                self._closing.append(conn)


def _bigger_reads() -> None:
    """httpcore receives 64 KiB per read; at loopback or LAN rates the per-read cost
    of h11 and the event loop then bounds downloads (measured: 1 stream ≈ 550 MB/s at
    64 KiB, ≈ 700-800 MB/s at 256 KiB-1 MiB). The setting is a class attribute of
    httpcore's HTTP/1.1 connection, so it applies to the whole process; it is only a
    ceiling per read, harmless for other users."""
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection
    except ImportError:  # a future httpcore: keep its default
        return
    if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < READ_SIZE:
        AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE


def _env_proxy(realm: str) -> bool:
    """Would httpx send requests to ``realm`` through a proxy from the environment?"""
    proxies = urllib.request.getproxies()
    host = urlsplit(realm).hostname or ""
    if urllib.request.proxy_bypass(host):
        return False
    return bool(proxies.get("https") or proxies.get("http") or proxies.get("all"))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_context(
    verify: bool, ca_bundle: str | None, client_cert: str | tuple[str, str] | None
) -> bool | ssl.SSLContext:
    if ca_bundle is None and client_cert is None:
        return verify
    ctx = ssl.create_default_context(cafile=ca_bundle)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if isinstance(client_cert, tuple):
        ctx.load_cert_chain(client_cert[0], client_cert[1])
    elif client_cert:
        ctx.load_cert_chain(client_cert)
    return ctx
