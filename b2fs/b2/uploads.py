"""Uploads: small files in one call, large files as parallel parts, resumable.

One path for every source (bytes, a path, an ``UploadSource``, an async byte
stream): bodies are streamed chunk by chunk from the source, hashed on the way
(``hex_digits_at_end`` when the SHA-1 is not known in advance), throttled, and
counted for progress; a failed attempt drops its upload URL, rolls back its
progress, and reads its bytes again from the source. Streams (no random access)
are buffered one part at a time. Sits on ``Calls``; used by ``B2Client``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from b2fs.b2.calls import Calls
from b2fs.b2.errors import B2Error, BadRequest, NotFound, SourceError
from b2fs.b2.models import LARGE_FILE_SHA1, FileRetention, FileVersion, LargeFileUploadState, Part
from b2fs.b2.sources import BytesSource, PathSource, StreamReader, UploadSource, as_source
from b2fs.b2.sse import ServerSideEncryption
from b2fs.b2.wire import file_info_with_mtime, upload_headers

MAX_SMALL_FILE = 5_000_000_000
MAX_PARTS = 10_000
CLEANUP_TIMEOUT = 10.0  # seconds to cancel an abandoned large file, even when cancelled

Progress = Callable[[int, int | None], None]  # (bytes done, total or None)
StateCallback = Callable[[LargeFileUploadState], Awaitable[None] | None]
UploadData = bytes | bytearray | memoryview | str | UploadSource | AsyncIterable[bytes]


class _Progress:
    """Bytes done of one transfer, reported to the caller's callback; goes back down
    when a failed attempt's bytes must be sent again."""

    def __init__(self, callback: Progress | None, total: int | None) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.callback is not None and n:
            self.callback(self.done, self.total)


class _Body:
    """An upload body: ``length`` bytes of ``source`` from ``offset``, hashed while
    sent, the 40 hex digits appended when ``sha1`` was not given."""

    def __init__(
        self,
        core: Uploads,
        source: UploadSource,
        offset: int,
        length: int,
        sha1: str | None,
        progress: _Progress,
    ) -> None:
        self.core, self.source, self.offset, self.length = core, source, offset, length
        self.given_sha1 = sha1
        self.progress = progress
        self.sent = 0
        self.sha1 = sha1

    async def __aiter__(self):  # noqa: ANN204 (httpx wants an async iterator of bytes)
        hasher = hashlib.sha1() if self.given_sha1 is None else None
        chunk = self.core.transfer.chunk_size
        throttle = self.core._up_throttle
        pos = 0
        while pos < self.length:
            n = min(chunk, self.length - pos)
            data = await self.source.read(self.offset + pos, n)
            if len(data) != n:
                raise SourceError(f"source returned {len(data)} bytes, {n} expected")
            if hasher is not None:
                hasher.update(data)
            if throttle is not None:
                await throttle.take(n)
            yield data
            pos += n
            self.sent += n
            self.core.stats.bytes_uploaded += n
            self.progress.add(n)
        if hasher is not None:
            self.sha1 = hasher.hexdigest()
            yield self.sha1.encode()

    def rollback(self) -> None:
        self.progress.add(-self.sent)
        self.sent = 0


class Uploads(Calls):
    async def upload(
        self,
        bucket_id: str,
        file_name: str,
        data: UploadData,
        *,
        size: int | None = None,
        content_type: str | None = None,
        file_info: Mapping[str, str] | None = None,
        mtime_millis: int | None = None,
        sha1: str | None = None,
        large_file_sha1: str | None = None,
        progress: Progress | None = None,
        large_file_threshold: int | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
        resume: LargeFileUploadState | None = None,
        on_state: StateCallback | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
        file_retention: FileRetention | None = None,
        legal_hold: bool | None = None,
        custom_upload_timestamp: int | None = None,
    ) -> FileVersion:
        """Upload ``data`` (bytes, a path, an ``UploadSource`` or an async iterable of
        bytes) as ``file_name``; a large file when its size reaches the threshold.

        ``size`` is only needed for a stream (to choose small/large up front).
        ``sha1``: hex SHA-1 of the whole content if the caller knows it (else computed
        while sending). ``resume``: a state saved from ``on_state`` to continue a large
        upload. ``on_state`` (sync or async) is called after the large file starts and
        after each part; without it, a failed large upload is cancelled on B2.
        ``server_side_encryption`` defaults to the client's (resuming an SSE-C upload
        needs the same key); ``file_retention``/``legal_hold`` need an Object Lock
        bucket; ``custom_upload_timestamp`` (ms) an account that allows it.
        """
        source = as_source(data)
        extras = _Extras(self._sse(server_side_encryption), file_retention, legal_hold,
                         custom_upload_timestamp)  # fmt: skip
        try:
            return await self._upload(
                bucket_id,
                file_name,
                source,
                size=size,
                content_type=content_type,
                file_info=file_info_with_mtime(file_info, mtime_millis),
                sha1=sha1,
                large_file_sha1=large_file_sha1,
                progress=progress,
                threshold=large_file_threshold,
                part_size=part_size,
                concurrency=concurrency or self.transfer.concurrency,
                resume=resume,
                on_state=on_state,
                extras=extras,
            )
        finally:
            if isinstance(source, PathSource) and source is not data:
                source.close()

    async def upload_bytes(
        self, bucket_id: str, file_name: str, data: bytes, **kw: Any
    ) -> FileVersion:
        return await self.upload(bucket_id, file_name, data, **kw)

    async def upload_file(
        self, bucket_id: str, file_name: str, path: str | Any, **kw: Any
    ) -> FileVersion:
        """Upload a local file (a path); the keywords are those of ``upload``."""
        return await self.upload(bucket_id, file_name, os.fspath(path), **kw)

    async def upload_stream(
        self, bucket_id: str, file_name: str, stream: AsyncIterable[bytes], **kw: Any
    ) -> FileVersion:
        return await self.upload(bucket_id, file_name, stream, **kw)

    # -- planning -------------------------------------------------------------------------------
    async def _part_size(self, size: int | None, requested: int | None) -> int:
        account = await self._authorized()
        part = max(requested or self.transfer.part_size or account.recommended_part_size, 1)
        part = max(part, account.absolute_minimum_part_size)
        if size is not None:
            part = max(part, math.ceil(size / MAX_PARTS))
            if size <= part:  # at least two parts
                part = max(math.ceil(size / 2), account.absolute_minimum_part_size)
        return part

    async def _is_large(self, size: int, threshold: int | None) -> bool:
        account = await self._authorized()
        if size < 2 * account.absolute_minimum_part_size:
            return False
        limit = threshold or self.transfer.large_file_threshold or account.recommended_part_size
        return size >= limit or size > MAX_SMALL_FILE

    async def _upload(
        self,
        bucket_id: str,
        file_name: str,
        source: UploadSource | StreamReader,
        *,
        size: int | None,
        content_type: str | None,
        file_info: dict[str, str],
        sha1: str | None,
        large_file_sha1: str | None,
        progress: Progress | None,
        threshold: int | None,
        part_size: int | None,
        concurrency: int,
        resume: LargeFileUploadState | None,
        on_state: StateCallback | None,
        extras: _Extras,
    ) -> FileVersion:
        if isinstance(source, StreamReader):
            if resume is not None:
                part = resume.part_size
                source = _Prefetched(b"", source)
            else:
                part = await self._part_size(size, part_size)
                first = await source.read(part)
                if await source.at_eof() and len(first) <= MAX_SMALL_FILE:
                    return await self._upload_small(
                        bucket_id,
                        file_name,
                        BytesSource(first),
                        content_type,
                        file_info,
                        sha1,
                        progress,
                        extras,
                    )
                source = _Prefetched(first, source)
            return await self._upload_large(
                bucket_id, file_name, source, size, part, content_type, file_info,
                large_file_sha1 or sha1, progress, concurrency, resume, on_state, extras,
            )  # fmt: skip
        if resume is None and not await self._is_large(source.size, threshold):
            if sha1 is None and isinstance(source, BytesSource):
                sha1 = await source.sha1()
            return await self._upload_small(
                bucket_id, file_name, source, content_type, file_info, sha1, progress, extras
            )
        # B2 keeps no SHA-1 of a large file: store one so whole downloads can be checked
        hashable = isinstance(source, BytesSource) or (
            isinstance(source, PathSource) and self.transfer.hash_large_files
        )
        if large_file_sha1 is None and sha1 is None and resume is None and hashable:
            large_file_sha1 = await source.sha1()  # type: ignore[union-attr]
        part = resume.part_size if resume else await self._part_size(source.size, part_size)
        return await self._upload_large(
            bucket_id, file_name, source, source.size, part, content_type, file_info,
            large_file_sha1 or sha1, progress, concurrency, resume, on_state, extras,
        )  # fmt: skip

    # -- small files ------------------------------------------------------------------------------
    async def _upload_small(
        self,
        bucket_id: str,
        file_name: str,
        source: UploadSource,
        content_type: str | None,
        file_info: dict[str, str],
        sha1: str | None,
        progress: Progress | None,
        extras: _Extras,
    ) -> FileVersion:
        prog = _Progress(progress, source.size)

        async def attempt() -> Any:
            body = _Body(self, source, 0, source.size, sha1, prog)
            headers = lambda token: upload_headers(  # noqa: E731
                token,
                source.size,
                sha1,
                file_name=file_name,
                content_type=content_type,
                file_info=file_info,
                sse=extras.sse,
                file_retention=extras.file_retention,
                legal_hold=extras.legal_hold,
                custom_upload_timestamp=extras.custom_upload_timestamp,
            )
            try:
                return await self._post_upload("b2_upload_file", bucket_id, headers, body)
            except BaseException:
                body.rollback()
                raise

        return FileVersion.from_json(await self._retry("b2_upload_file", attempt, transfer=True))

    # -- parts ---------------------------------------------------------------------------------------
    async def upload_part(
        self,
        large_file_id: str,
        part_number: int,
        data: bytes | UploadSource,
        *,
        offset: int = 0,
        length: int | None = None,
        sha1: str | None = None,
        progress: Progress | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
    ) -> Part:
        """Upload one part (``length`` bytes of ``data`` from ``offset``; all by default),
        on a pooled part URL, retried on a fresh URL after a failure. Uploading a part
        number again replaces that part. Returns the part with its SHA-1 for finish.
        A part of an SSE-C large file carries its key (default: the client's)."""
        source = data if isinstance(data, UploadSource) else BytesSource(data)
        length = source.size - offset if length is None else length
        return await self._upload_part(
            large_file_id, part_number, source, offset, length, sha1, _Progress(progress, length),
            self._read_key(server_side_encryption),
        )  # fmt: skip

    async def _upload_part(
        self,
        file_id: str,
        part_number: int,
        source: UploadSource,
        offset: int,
        length: int,
        sha1: str | None,
        prog: _Progress,
        sse: ServerSideEncryption | None,
    ) -> Part:
        async def attempt() -> Part:
            body = _Body(self, source, offset, length, sha1, prog)
            headers = lambda token: upload_headers(  # noqa: E731
                token, length, sha1, part_number=part_number, sse=sse
            )
            try:
                d = await self._post_upload("b2_upload_part", file_id, headers, body)
            except BaseException:
                body.rollback()
                raise
            assert body.sha1 is not None
            if d.get("contentSha1") not in (body.sha1, None):
                raise B2Error("part SHA-1 differs from what was sent", call="b2_upload_part")
            return Part(part_number, length, body.sha1, file_id)

        return await self._retry("b2_upload_part", attempt, transfer=True)

    # -- large files ---------------------------------------------------------------------------------
    async def _upload_large(
        self,
        bucket_id: str,
        file_name: str,
        source: UploadSource | _Prefetched,
        size: int | None,
        part_size: int,
        content_type: str | None,
        file_info: dict[str, str],
        large_file_sha1: str | None,
        progress: Progress | None,
        concurrency: int,
        resume: LargeFileUploadState | None,
        on_state: StateCallback | None,
        extras: _Extras,
    ) -> FileVersion:
        part_key = extras.sse if extras.sse is not None and extras.sse.is_customer else None
        if resume is not None:
            state = resume.copy()
            if (state.bucket_id, state.file_name) != (bucket_id, file_name):
                raise ValueError("resume state is for another bucket or file name")
            if size is not None and state.size is not None and state.size != size:
                raise SourceError(f"source is {size} bytes, the resumed upload {state.size}")
            finished = await self._resume_parts(state)
            if finished is not None:
                return finished
        else:
            if large_file_sha1:
                file_info = {**file_info, LARGE_FILE_SHA1: large_file_sha1}
            started = await self.start_large_file(
                bucket_id,
                file_name,
                content_type=content_type,
                file_info=file_info,
                server_side_encryption=extras.sse,
                file_retention=extras.file_retention,
                legal_hold=extras.legal_hold,
                custom_upload_timestamp=extras.custom_upload_timestamp,
            )
            assert started.file_id is not None
            state = LargeFileUploadState(started.file_id, bucket_id, file_name, size, part_size)
        prog = _Progress(progress, size)
        lock = anyio.Lock()

        async def report() -> None:
            if on_state is not None:
                r = on_state(state.copy())
                if inspect.isawaitable(r):
                    await r

        async def one_part(n: int, src: UploadSource, offset: int, length: int) -> None:
            try:
                part = await self._upload_part(
                    state.file_id, n, src, offset, length, None, prog, part_key
                )
                async with lock:
                    state.parts[n] = part.sha1
                    await report()
            finally:
                slots.release()

        slots = anyio.Semaphore(concurrency)
        try:
            await report()
            async with _first_error(), anyio.create_task_group() as tg:
                if isinstance(source, _Prefetched):
                    count = await self._dispatch_stream(source, state, prog, slots, tg, one_part)
                else:
                    assert size is not None
                    count = math.ceil(size / part_size)
                    for n in range(1, count + 1):
                        offset = (n - 1) * part_size
                        length = min(part_size, size - offset)
                        if n in state.parts:
                            prog.add(length)
                            continue
                        await slots.acquire()
                        tg.start_soon(one_part, n, source, offset, length)
            missing = [n for n in range(1, count + 1) if n not in state.parts]
            if missing:
                raise SourceError(f"parts {missing[:5]} were never uploaded")
            return await self.finish_large_file(state.file_id, state.parts)
        except BaseException:
            if on_state is None and resume is None:  # nobody can resume it: clean up
                with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                    try:
                        await self.cancel_large_file(state.file_id)
                    except B2Error:
                        pass
            raise

    async def _dispatch_stream(
        self,
        source: _Prefetched,
        state: LargeFileUploadState,
        prog: _Progress,
        slots: anyio.Semaphore,
        tg: anyio.abc.TaskGroup,
        one_part: Callable[[int, UploadSource, int, int], Awaitable[None]],
    ) -> int:
        """Read a stream part by part (at most ``concurrency`` parts buffered) and start
        each part's upload; returns the part count."""
        n = 0
        while True:
            await slots.acquire()
            data = await source.read(state.part_size)
            if not data:
                slots.release()
                return n
            n += 1
            if n in state.parts:  # resumed: this part is on B2 already
                slots.release()
                prog.add(len(data))
            else:
                tg.start_soon(one_part, n, BytesSource(data), 0, len(data))
            if len(data) < state.part_size:
                return n

    async def _resume_parts(self, state: LargeFileUploadState) -> FileVersion | None:
        """Keep the parts of ``state`` that B2 has with the same SHA-1. If the large file
        is gone because it was finished (a crash after finish), return that file."""
        try:
            on_b2 = {p.part_number: p.sha1 async for p in self.list_parts(state.file_id)}
        except (BadRequest, NotFound):
            try:
                done = await self.get_file_info(state.file_id)
            except NotFound:
                raise B2Error(
                    "the large file to resume no longer exists (cancelled?)", code="not_found"
                ) from None
            if done.action == "upload":
                return done
            raise
        state.parts = {n: s for n, s in state.parts.items() if on_b2.get(n) == s}
        return None


@dataclass(frozen=True)
class _Extras:
    """What an upload asks of B2 beyond the content: encryption, Object Lock, upload time."""

    sse: ServerSideEncryption | None = None
    file_retention: FileRetention | None = None
    legal_hold: bool | None = None
    custom_upload_timestamp: int | None = None


@contextlib.asynccontextmanager
async def _first_error() -> AsyncIterator[None]:
    """Raise the first real error of a task group rather than the group itself."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves: list[BaseException] = []

        def walk(g: BaseExceptionGroup) -> None:
            for e in g.exceptions:
                walk(e) if isinstance(e, BaseExceptionGroup) else leaves.append(e)

        walk(group)
        cancelled = anyio.get_cancelled_exc_class()
        real = [e for e in leaves if not isinstance(e, cancelled)]
        raise (real or leaves)[0] from None


class _Prefetched:
    """A stream whose first part was read already (to decide small or large)."""

    def __init__(self, first: bytes, rest: StreamReader) -> None:
        self._first: bytes | None = first
        self._rest = rest

    async def read(self, n: int) -> bytes:
        if self._first is not None:
            data, self._first = self._first, None
            if len(data) == n:
                return data
            return data + await self._rest.read(n - len(data))
        return await self._rest.read(n)
