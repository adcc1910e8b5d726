"""Downloads: by id or by name, whole or a byte range, as a stream, bytes, or a file.

A ``DownloadStream`` checks what the server sent against what was asked (206 and
``Content-Range``, or a 200 whose body it trims), resumes from the byte it got to
after a broken connection (pinned to the file id it started on), throttles,
reports progress, and verifies the SHA-1 when it served the whole file.
``download_file`` writes to a hidden partial file renamed into place only when
complete and verified, and continues an earlier partial file. Sits on ``Calls``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx

from b2fs.b2.calls import Calls
from b2fs.b2.download_conn import DownloadConnectionError, DownloadResponse
from b2fs.b2.errors import (
    B2Error,
    NetworkError,
    RangeNotSatisfiable,
    Sha1Mismatch,
    UnexpectedResponse,
)
from b2fs.b2.events import ClientEvent
from b2fs.b2.models import DownloadAuthorization, DownloadedFile
from b2fs.b2.sse import ServerSideEncryption
from b2fs.b2.wire import downloaded_file, encode, parse_content_range

CHUNK = 256 * 1024  # the most bytes of one chunk of ``async for chunk in stream``
Progress = Callable[[int, int | None], None]
Authorization = DownloadAuthorization | str | None


def _token(authorization: Authorization) -> str | None:
    if isinstance(authorization, DownloadAuthorization):
        return authorization.authorization_token
    return authorization


def _tag(file_id: str, range: tuple[int, int | None] | None) -> str:  # noqa: A002
    """Names the partial file of one version (and range) of a download."""
    return hashlib.sha1(f"{file_id}:{range}".encode()).hexdigest()[:12]


class _HttpxBody:
    """An httpx response as a body: the same ``readinto``/``receive`` as a kept connection's
    ``DownloadResponse`` (used through proxies and over HTTP/2)."""

    def __init__(self, resp: httpx.Response) -> None:
        self.resp = resp
        self.status = resp.status_code
        self.headers = resp.headers
        self._chunks = resp.aiter_raw()
        self._pending = memoryview(b"")

    async def _fill(self) -> bool:
        if not self._pending:
            try:
                self._pending = memoryview(await self._chunks.__anext__())
            except StopAsyncIteration:
                return False
        return True

    async def readinto(self, view: memoryview) -> int:
        if not len(view) or not await self._fill():
            return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    async def receive(self, limit: int) -> bytes | memoryview:
        if not await self._fill():
            return b""
        data, self._pending = self._pending[:limit], self._pending[limit:]
        return data

    async def aclose(self) -> None:
        await self.resp.aclose()


Body = _HttpxBody | DownloadResponse
TRANSPORT_ERRORS = (httpx.TransportError, NetworkError, DownloadConnectionError)


class DownloadStream:
    """One download: ``file`` (what B2 says about it), then its bytes, either as chunks
    (``async for chunk in stream``) or into the caller's buffers (``await
    stream.readinto(buffer)``: no copy between the socket and the buffer on a kept
    connection).

    The bytes are exactly those of the range asked for. A broken connection is
    resumed from the next byte (the same file version, by id). After the last
    byte of a whole-file download the SHA-1 is checked: ``Sha1Mismatch`` if it
    differs; ``sha1_verified`` tells whether a check was possible.
    """

    def __init__(
        self,
        client: Downloads,
        *,
        file_id: str | None,
        bucket_name: str | None,
        file_name: str | None,
        range: tuple[int, int | None] | None,  # noqa: A002
        authorization: Authorization,
        progress: Progress | None,
        offset: int = 0,
        hasher: Any = None,
        key: ServerSideEncryption | None = None,
    ) -> None:
        if (file_id is None) == (bucket_name is None or file_name is None):
            raise ValueError("give file_id, or bucket_name and file_name")
        self._client = client
        self._file_id = file_id
        self._by_name = (bucket_name, file_name)
        self._start, self._end = range if range is not None else (0, None)
        if self._start < 0 or (self._end is not None and self._end < self._start):
            raise ValueError(f"bad range {range!r}")
        self._token = _token(authorization)
        self._key = key  # an SSE-C key: sent with every (re)open
        self._progress = progress
        self._body: Body | None = None
        self._skip = 0  # bytes to drop at the head of a 200 that ignored our Range
        self._received = offset  # bytes of the range already held by the caller
        self._hasher: Any = hasher  # has hashed those bytes (whole-file downloads)
        self._failures = 0  # transfer failures since the last byte received
        self._finished = False
        self.file: DownloadedFile | None = None
        self.sha1_verified = False

    @property
    def _call(self) -> str:
        return "b2_download_file_by_id" if self._file_id else "b2_download_file_by_name"

    @property
    def length(self) -> int:
        """Bytes this stream yields in all (the range, clipped to the file)."""
        assert self.file is not None
        return self.file.range_end - self.file.range_start + 1

    async def _open(self) -> None:
        """(Re)open the response at the next byte to receive, with retries."""
        await self.aclose()
        self._body = await self._client._retry(self._call, self._open_once, transfer=True)

    async def _open_once(self) -> Body:
        client = self._client
        account = await client._authorized()
        generation = client._auth_generation
        if self._file_id:
            url = f"{account.download_url}/b2api/{client.api_version}/b2_download_file_by_id"
            params = {"fileId": self._file_id}
        else:
            bucket, name = self._by_name
            url = f"{account.download_url}/file/{encode(bucket or '')}/{encode(name or '')}"
            params = None
        first = self._start + self._received
        headers = {"Authorization": self._token or account.authorization_token}
        if self._key is not None:
            headers |= self._key.read_headers()
        if first > 0 or self._end is not None:
            headers["Range"] = f"bytes={first}-{'' if self._end is None else self._end}"
        auth_generation = None if self._token else generation
        pool = client._lean_downloads()
        body: Body
        if pool is not None:
            body = await client._get_lean(pool, self._call, url, headers=headers, params=params,
                                          auth_generation=auth_generation)  # fmt: skip
        else:
            resp = await client._request(self._call, "GET", url, headers=headers, params=params,
                                         stream=True, auth_generation=auth_generation)  # fmt: skip
            body = _HttpxBody(resp)
        try:
            self._check(body.status, body.headers, first, "Range" in headers)
        except BaseException:
            await body.aclose()
            raise
        return body

    def _check(self, status: int, h: Mapping[str, str], first: int, ranged: bool) -> None:
        if status == 206:
            start, end, total = parse_content_range(h.get("content-range"))
            wanted = (
                None
                if total is None
                else total - 1
                if self._end is None
                else min(self._end, total - 1)
            )
            if start != first or end != wanted:
                raise UnexpectedResponse(
                    f"asked for bytes {first}-{self._end}, got {h.get('content-range')}"
                )
            self._skip = 0
        elif status == 200:
            total = int(h.get("content-length", "-1"))
            if total < 0:
                raise UnexpectedResponse("no Content-Length")
            self._skip = first  # a server or proxy that ignores Range: trim it ourselves
        else:
            raise UnexpectedResponse(f"status {status}")
        assert total is not None
        if self.file is None:
            end = total - 1 if self._end is None else min(self._end, total - 1)
            if self._start >= total and (self._start > 0 or self._end is not None):
                raise RangeNotSatisfiable(f"range starts at {self._start}, file has {total} bytes")
            self.file = downloaded_file(h, self._start, end, total)
            self._file_id = self.file.file_id or self._file_id  # resume the same version
            if self._start == 0 and end == total - 1:
                self._hasher = self._hasher or hashlib.sha1()
            else:
                self._hasher = None
        elif h.get("x-bz-file-id") not in (None, self.file.file_id):
            raise UnexpectedResponse("the file changed while resuming the download")

    async def aclose(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            await body.aclose()

    async def readinto(self, buffer: Any) -> int:
        """Receive the next bytes of the range into ``buffer`` (a writable buffer): as many as
        have come, at least one; 0 at the end. Broken connections are resumed meanwhile."""
        assert self.file is not None, "use `async with client.download_stream(...)`"
        view = memoryview(buffer).cast("B")[: self.length - self._received]
        if not len(view):
            if self._received >= self.length:
                await self._complete()
            return 0
        n = await self._next(lambda body: body.readinto(view))
        await self._account(view[:n])
        return n  # type: ignore[return-value]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert self.file is not None, "use `async with client.download_stream(...)`"
        while self._received < self.length:
            limit = min(self.length - self._received, CHUNK)
            chunk = await self._next(lambda body, n=limit: body.receive(n))
            await self._account(chunk)  # type: ignore[arg-type]
            yield chunk  # type: ignore[misc]
        await self._complete()

    async def _next(self, take: Callable[[Body], Awaitable[int | bytes | memoryview]],
                    ) -> int | bytes | memoryview:  # fmt: skip
        """``take`` from the open body (opening or resuming it first), with the transfer's
        retries: a broken connection resumes from the next byte."""
        client = self._client
        while True:
            try:
                if self._body is None:
                    await self._open()
                body = self._body
                assert body is not None
                while self._skip:  # a 200 (Range ignored) sends the whole file from its start
                    dropped = await body.receive(min(self._skip, CHUNK))
                    if not dropped:
                        raise NetworkError("connection closed early", call=self._call)
                    self._skip -= len(dropped)
                got = await take(body)
                if not (got if isinstance(got, int) else len(got)):
                    raise NetworkError("connection closed early", call=self._call)
                return got
            except TRANSPORT_ERRORS as e:
                await self.aclose()
                self._failures += 1
                policy = client.retry
                if self._failures >= policy.max_transfer_attempts:
                    raise (
                        e if isinstance(e, B2Error) else NetworkError(str(e), call=self._call)
                    ) from e
                delay = client._backoff(e, self._failures)
                client.stats.retries += 1
                client._emit(
                    ClientEvent("retry", self._call, self._failures, delay, type(e).__name__)
                )
                await anyio.sleep(delay)

    async def _account(self, data: bytes | memoryview) -> None:
        """Bytes received: count, hash, report; at the end of the range, close and verify."""
        n = len(data)
        throttle = self._client._down_throttle
        if throttle.rate is not None:
            await throttle.take(n)
        if self._hasher is not None:
            self._hasher.update(data)
        self._received += n
        self._client.stats.bytes_downloaded += n
        self._failures = 0
        if self._progress is not None:
            self._progress(self._received, self.length)
        if self._received >= self.length:
            await self._complete()

    async def _complete(self) -> None:
        """The whole range is here: close the body (a kept connection whose body is complete
        is back in its pool already) and check the SHA-1 of a whole file."""
        if not self._finished:
            self._finished = True
            await self.aclose()
            self._verify()

    def _verify(self) -> None:
        assert self.file is not None
        if self._hasher is None or self.file.sha1 is None:
            return
        got = self._hasher.hexdigest()
        if got != self.file.sha1:
            raise Sha1Mismatch(
                f"{self.file.file_name}: content SHA-1 {got} is not {self.file.sha1}",
                call=self._call,
            )
        self.sha1_verified = True

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class Downloads(Calls):
    @contextlib.asynccontextmanager
    async def download_stream(
        self,
        *,
        file_id: str | None = None,
        bucket_name: str | None = None,
        file_name: str | None = None,
        range: tuple[int, int | None] | None = None,  # noqa: A002
        authorization: Authorization = None,
        progress: Progress | None = None,
        offset: int = 0,
        hasher: Any = None,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> AsyncIterator[DownloadStream]:
        """Open a download (by ``file_id``, or ``bucket_name`` + ``file_name``), of the
        whole file or of ``range`` = (first, last) inclusive bytes (last None: to the
        end). ``authorization``: a download authorization instead of the account token.
        ``offset``: resume, skipping that many bytes of the range (the caller has them;
        ``hasher``, a ``hashlib.sha1()`` fed with them, keeps the whole-file check).
        ``server_side_encryption``: the SSE-C key of the file (default: the client's).
        """
        stream = DownloadStream(
            self,
            file_id=file_id,
            bucket_name=bucket_name,
            file_name=file_name,
            range=range,
            authorization=authorization,
            progress=progress,
            offset=offset,
            hasher=hasher,
            key=self._read_key(server_side_encryption),
        )
        try:
            await stream._open()
            yield stream
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def download_range(
        self,
        file_id: str,
        start: int,
        end_inclusive: int,
        *,
        progress: Progress | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> bytes:
        """Bytes ``start..end_inclusive`` of a file version, in one ranged GET (fewer
        only when the file ends sooner; ``RangeNotSatisfiable`` past the end)."""
        async with self.download_stream(
            file_id=file_id,
            range=(start, end_inclusive),
            progress=progress,
            server_side_encryption=server_side_encryption,
        ) as s:
            return await s.read_all()

    async def download_bytes(
        self,
        *,
        file_id: str | None = None,
        bucket_name: str | None = None,
        file_name: str | None = None,
        authorization: Authorization = None,
        progress: Progress | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> bytes:
        """A whole file in memory, SHA-1 checked."""
        async with self.download_stream(
            file_id=file_id,
            bucket_name=bucket_name,
            file_name=file_name,
            authorization=authorization,
            progress=progress,
            server_side_encryption=server_side_encryption,
        ) as s:
            return await s.read_all()

    async def download_file(
        self,
        path: str | os.PathLike[str],
        *,
        file_id: str | None = None,
        bucket_name: str | None = None,
        file_name: str | None = None,
        range: tuple[int, int | None] | None = None,  # noqa: A002
        authorization: Authorization = None,
        progress: Progress | None = None,
        resume: bool = True,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> DownloadedFile:
        """Download to ``path``. Bytes go to a hidden ``.<name>.<id>.b2fs-part`` beside it,
        renamed to ``path`` once complete (and SHA-1 checked for a whole file). A
        partial file left by an earlier failure is continued when ``resume``; on a
        SHA-1 mismatch it is removed and ``Sha1Mismatch`` raised."""
        path = Path(path)
        pattern = f".{glob.escape(path.name)}.*.b2fs-part"
        if file_id is None and resume and any(path.parent.glob(pattern)):
            # an earlier attempt left a partial file: find which version it belongs to
            assert bucket_name is not None and file_name is not None
            file_id = (
                await self.get_file_info_by_name(
                    bucket_name, file_name, server_side_encryption=server_side_encryption
                )
            ).file_id
        partial = (
            path.with_name(f".{path.name}.{_tag(file_id, range)}.b2fs-part") if file_id else None
        )
        have, hasher = 0, None
        if partial is not None and resume and partial.exists():
            have, hasher = partial.stat().st_size, hashlib.sha1()
            with partial.open("rb") as f:
                while block := f.read(1 << 20):
                    hasher.update(block)
        try:
            return await self._download_to(
                path, partial, have, hasher, file_id, bucket_name, file_name, range,
                authorization, progress, resume, server_side_encryption,
            )  # fmt: skip
        except RangeNotSatisfiable:
            if not have:
                raise
        # the partial file was longer than the file: start over
        assert partial is not None
        partial.unlink(missing_ok=True)
        return await self._download_to(
            path, partial, 0, None, file_id, bucket_name, file_name, range,
            authorization, progress, resume, server_side_encryption,
        )  # fmt: skip

    async def _download_to(
        self,
        path: Path,
        partial: Path | None,
        have: int,
        hasher: Any,
        file_id: str | None,
        bucket_name: str | None,
        file_name: str | None,
        range: tuple[int, int | None] | None,  # noqa: A002
        authorization: Authorization,
        progress: Progress | None,
        resume: bool,
        server_side_encryption: ServerSideEncryption | None,
    ) -> DownloadedFile:
        async with self.download_stream(
            file_id=file_id,
            bucket_name=None if file_id else bucket_name,
            file_name=None if file_id else file_name,
            range=range,
            authorization=authorization,
            progress=progress,
            offset=have,
            hasher=hasher,
            server_side_encryption=server_side_encryption,
        ) as stream:
            assert stream.file is not None
            if partial is None:
                partial = path.with_name(
                    f".{path.name}.{_tag(stream.file.file_id, range)}.b2fs-part"
                )
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(partial, flags, 0o600)
            try:
                os.ftruncate(fd, have)
                os.lseek(fd, have, os.SEEK_SET)
                async for chunk in stream:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            except Sha1Mismatch:
                partial.unlink(missing_ok=True)
                raise
            except BaseException:
                if not resume:
                    partial.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
            os.replace(partial, path)
            for stale in path.parent.glob(f".{glob.escape(path.name)}.*.b2fs-part"):
                stale.unlink(missing_ok=True)  # partials of other versions
            return stream.file

    async def get_file_info_by_name(
        self,
        bucket_name: str,
        file_name: str,
        *,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> DownloadedFile:
        """What B2 knows of the newest version of a name (a HEAD request; no body). An
        SSE-C file needs its key (default: the client's)."""
        call = "b2_download_file_by_name"
        key = self._read_key(server_side_encryption)

        async def attempt() -> httpx.Response:
            account = await self._authorized()
            url = f"{account.download_url}/file/{encode(bucket_name)}/{encode(file_name)}"
            headers = {"Authorization": account.authorization_token}
            if key is not None:
                headers |= key.read_headers()
            return await self._request(
                call, "HEAD", url, headers=headers, auth_generation=self._auth_generation
            )

        resp = await self._retry(call, attempt)
        size = int(resp.headers.get("content-length", "0"))
        return downloaded_file(resp.headers, 0, size - 1, size)

    def download_url_by_name(
        self, bucket_name: str, file_name: str, authorization: Authorization = None
    ) -> str:
        """A URL for a browser or curl; with ``authorization`` it carries the token in
        ``?Authorization=`` (so the URL itself is a secret)."""
        account = self._account
        if account is None:
            raise B2Error("authorize() first", call="download_url_by_name")
        url = f"{account.download_url}/file/{encode(bucket_name)}/{encode(file_name)}"
        token = _token(authorization)
        return f"{url}?Authorization={encode(token)}" if token else url
