"""Uploading one pending file version: whole, as a large file, or rebuilt around its base.

Small versions go up in one ``b2_upload_file``.  Versions at or above the
large-file threshold go up as large files whose parts are planned from what
changed: a run of blocks still equal to the base version (same offsets, never
written) becomes ``b2_copy_part`` of the base (server-side, nothing travels),
and everything else is uploaded from staging, so appending 10 MB to a 5 GB
file uploads about 10 MB.  Every part but the last is at least the
account's minimum part size; a run too short to stand alone is uploaded with
its neighbour.  With encryption every rewrite is a new object under a new
per-file key, so the whole file is uploaded (no copies).

The plan and the parts done are kept in the journal record after each part,
so after a crash the same large file resumes where it stopped (plain mounts;
an encrypted one starts it over under a new key, see ``_large``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import trio

from b2fs.posix.entries import Kind
from b2fs.posix.fileinfo import write_info
from b2fs.writeback.dirty import DirtyFile

log = logging.getLogger(__name__)

MAX_COPY_PART = 1 << 30  # server-side copies: big parts, few calls
COPY_FILE_MAX = 5 * 1000**3  # b2_copy_file's limit
KEEP_ON_COPY = ("b2fs-h",)
REPLACED = (
    "large_file_sha1",
    "src_last_modified_millis",
    "b2fs-journal",
)  # an encrypted object's header stays valid when only metadata changes

MAX_PARTS = 10_000


@dataclass(frozen=True)
class PlannedPart:
    copy: bool
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def plan_parts(
    size: int, clean: list[tuple[int, int]], part_size: int, min_part: int
) -> list[PlannedPart]:
    """Parts for a file of ``size`` bytes where ``clean`` (sorted, disjoint [a, b) runs)
    may be copied from the base and the rest must be uploaded."""
    segments: list[list[Any]] = []  # [copy, start, end]
    pos = 0
    for a, b in clean:
        if a > pos:
            segments.append([False, pos, a])
        segments.append([True, a, b])
        pos = b
    if pos < size:
        segments.append([False, pos, size])
    # A clean run too short to be a part of its own is uploaded instead.
    for s in segments:
        if s[0] and s[2] - s[1] < min_part:
            s[0] = False
    segments = _merge(segments)
    # An upload run too short (and not the file's end) borrows from the clean run after it.
    i = 0
    while i < len(segments) - 1:
        s, nxt = segments[i], segments[i + 1]
        if not s[0] and s[2] - s[1] < min_part:
            need = min_part - (s[2] - s[1])
            if nxt[2] - nxt[1] - need >= min_part:
                s[2] += need
                nxt[1] += need
            else:
                s[2] = nxt[2]
                del segments[i + 1]
                segments = _merge(segments)
                continue
        i += 1
    parts: list[PlannedPart] = []
    for copy, a, b in segments:
        step = MAX_COPY_PART if copy else part_size
        pos = a
        while pos < b:
            end = min(pos + step, b)
            if b - end < min_part and end < b:
                end = b  # no short tail inside a run
            parts.append(PlannedPart(copy, pos, end))
            pos = end
    return parts


def _merge(segments: list[list[Any]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for s in segments:
        if out and out[-1][0] == s[0] and out[-1][2] == s[1]:
            out[-1][2] = s[2]
        else:
            out.append(list(s))
    return out


class StagingSource:
    """The plaintext in staging, for the client (plain mounts)."""

    def __init__(self, dirty: DirtyFile) -> None:
        self.dirty = dirty
        self.size = dirty.size

    async def read(self, offset: int, length: int) -> bytes:
        return self.read_sync(offset, length)

    def read_sync(self, offset: int, length: int) -> bytes:
        data = self.dirty.staging.pread(offset, length)
        if len(data) < length:
            data += bytes(length - len(data))  # a sparse tail
        return data


class EncryptingSource:
    """The object to store, encrypted chunk by chunk from the plaintext in staging."""

    def __init__(self, dirty: DirtyFile, encryptor: Any) -> None:
        self.dirty = dirty
        self.encryptor = encryptor
        self.plain_size = dirty.size
        self.size = encryptor.stored_size(dirty.size)

    def _plain(self, offset: int, length: int) -> bytes:
        data = self.dirty.staging.pread(offset, length)
        return data + bytes(length - len(data)) if len(data) < length else data

    async def read(self, offset: int, length: int) -> bytes:
        return self.read_sync(offset, length)

    def read_sync(self, offset: int, length: int) -> bytes:
        """The stored bytes at ``offset``: the same each time (a chunk's nonce is its index;
        a chunk whose plaintext changed since it was sealed is refused, SourceChanged)."""
        return self.encryptor.read_stored(self._plain, self.plain_size, offset, offset + length)


class UploadProgress:
    """Bytes of one running upload done so far (sent from staging, or parts copied
    server-side) out of ``total`` (the object's size), for ``b2fs status``."""

    def __init__(self) -> None:
        self.total = 0
        self.started = trio.current_time()
        self.finished = 0  # bytes of the parts done
        self.running: dict[int, int] = {}  # part number -> bytes of it sent so far
        self.whole = False  # the object goes up in one request (its body counted in running)
        self.committing = False  # a request that makes the version is sent (copy, finish...)

    def may_land(self) -> bool:
        """Whether B2 may have received all it needs to make the version: cancelling the
        upload then does not stop it (a body cut short never lands)."""
        return self.committing or (self.whole and self.done >= self.total)

    def report(self, part: int = 0) -> Any:
        """A ``progress(done, total)`` callback for the client, for one part (or the file)."""
        return lambda done, total: self.running.__setitem__(part, done)

    def part_done(self, part: int, size: int) -> None:
        self.running.pop(part, None)
        self.finished += size

    @property
    def done(self) -> int:
        return self.finished + sum(self.running.values())


class Uploader:
    """Uploads pending versions for one mount."""

    def __init__(self, client: Any, bucket_id: str, content: Any, *, threshold: int, part_size: int,
                 min_part: int, concurrency: int, keep_attrs: bool, journal_id: str) -> None:  # fmt: skip
        self.client = client
        self.bucket_id = bucket_id
        self.content = content
        self.threshold = threshold
        self.part_size = part_size
        self.min_part = min_part
        self.concurrency = concurrency
        self.keep_attrs = keep_attrs
        self.journal_id = journal_id
        self.bytes_uploaded = 0
        self.bytes_copied = 0
        self.progress: dict[DirtyFile, UploadProgress] = {}  # the uploads running

    def file_info(self, d: DirtyFile, extra: dict[str, str] | None = None) -> dict[str, str]:
        r = d.record
        # Metadata others set (b2-cache-control, ...) stays; what described the old bytes goes.
        info = {
            k: v for k, v in r.base_info.items() if not k.startswith("b2fs-") and k not in REPLACED
        }
        info.update(write_info(d.attrs(), keep_owner=self.keep_attrs))
        if r.long_info:
            info.update(r.long_info)
        if extra:
            info.update(extra)
        return info

    async def upload(self, d: DirtyFile, save: Any) -> Any:
        """Upload ``d``'s current content to ``d.record.stored``; returns the FileVersion.

        ``save(record)`` persists the journal record (called as a large upload progresses).
        """
        d.uploaded_source = None
        progress = self.progress[d] = UploadProgress()
        try:
            return await self._upload(d, save, progress)
        finally:
            if self.progress.get(d) is progress:
                del self.progress[d]

    async def _upload(self, d: DirtyFile, save: Any, progress: UploadProgress) -> Any:
        r = d.record
        if d.kind is Kind.DIR:  # a directory marker: empty and never encrypted (as B2's web UI)
            progress.committing = True
            return await self.client.upload(
                self.bucket_id, r.stored, b"", file_info=self.file_info(d)
            )
        if self._metadata_only(d) and r.base_stored_size <= COPY_FILE_MAX:
            # Same bytes, new attributes: a server-side copy with the new file info.
            kept = {k: v for k, v in r.base_info.items() if k in KEEP_ON_COPY}
            progress.committing = True
            return await self.client.copy_file(
                r.base_file_id,
                r.stored,
                file_info={**self.file_info(d), **kept},
                content_type=r.base_type,  # when known, B2 need not be asked for it
            )
        if self.content.encrypted:
            await d.fill_range(0, r.size)
            encryptor = self.content.encryptor()
            source: Any = EncryptingSource(d, encryptor)
            info = self.file_info(d, encryptor.file_info)
            clean: list[tuple[int, int]] = []
        else:
            source = StagingSource(d)
            info = self.file_info(d)
            clean = self._clean_runs(d) if r.size >= self.threshold else []
        progress.total = source.size
        d.uploaded_source = source  # what B2 holds, to keep in the block cache afterwards
        if source.size < self.threshold:
            await d.fill_range(0, r.size)
            progress.whole = True
            version = await self.client.upload(
                self.bucket_id, r.stored, source, file_info=info, progress=progress.report()
            )
            self.bytes_uploaded += source.size
            return version
        return await self._large(d, source, info, clean, save, progress)

    @staticmethod
    def _metadata_only(d: DirtyFile) -> bool:
        r = d.record
        return (
            r.base_file_id is not None
            and r.size > 0  # an empty file is uploaded again: free (class A), a copy is not
            and not d.filled
            and r.base_limit == r.size == r.base_plain_size
            and r.large is None
        )

    def _clean_runs(self, d: DirtyFile) -> list[tuple[int, int]]:
        r = d.record
        if r.base_file_id is None:
            return []
        bs = d.block_size
        runs: list[tuple[int, int]] = []
        limit = min(r.base_limit, r.size)
        for index in range((limit + bs - 1) // bs):
            if not d.from_base(index):
                continue
            a, b = index * bs, min((index + 1) * bs, limit)
            if runs and runs[-1][1] == a:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
        return runs

    async def _large(self, d: DirtyFile, source: Any, info: dict[str, str], clean: list[tuple[int, int]],
                     save: Any, progress: UploadProgress) -> Any:  # fmt: skip
        r = d.record
        part_size = max(self.part_size, -(-source.size // MAX_PARTS), self.min_part)
        state = r.large
        if state is not None and (state.get("size") != source.size or self.content.encrypted):
            # An encrypted upload never resumes: its parts were sealed under the key of an
            # encryptor that is gone (each attempt has a new one), so it starts over.
            await self.cancel_large(state["file_id"])
            state = None
        if state is None:
            plan = plan_parts(source.size, clean, part_size, self.min_part)
            if len(plan) < 2:
                await d.fill_range(0, r.size)
                progress.whole = True
                return await self.client.upload(
                    self.bucket_id, r.stored, source, file_info=info, progress=progress.report()
                )
            info = {**info, "b2fs-journal": self.journal_id}
            started = await self.client.start_large_file(self.bucket_id, r.stored, file_info=info)
            state = {
                "file_id": started.file_id,
                "size": source.size,
                "plan": [[p.copy, p.start, p.end] for p in plan],
                "parts": {},
                "base": r.base_file_id,
            }
            r.large = state
            save(r)
        else:
            state["parts"] = await self._verified_parts(state)
        plan = [PlannedPart(bool(c), a, b) for c, a, b in state["plan"]]
        # Blocks that go up from staging must be there first (downloads from the base as needed).
        for p in plan:
            if not p.copy:
                await d.fill_range(p.start, p.end)
        parts: dict[str, str] = state["parts"]
        progress.finished = sum(p.size for n, p in enumerate(plan, start=1) if str(n) in parts)
        limiter = trio.CapacityLimiter(self.concurrency)

        async def one(number: int, p: PlannedPart) -> None:
            async with limiter:
                if p.copy:
                    part = await self.client.copy_part(
                        state["base"], state["file_id"], number, (p.start, p.end - 1)
                    )
                    self.bytes_copied += p.size
                else:
                    part = await self.client.upload_part(
                        state["file_id"], number, source, offset=p.start, length=p.size,
                        progress=progress.report(number),
                    )  # fmt: skip
                    self.bytes_uploaded += p.size
            progress.part_done(number, p.size)
            parts[str(number)] = part.sha1
            save(r)

        async with trio.open_nursery() as nursery:
            for number, p in enumerate(plan, start=1):
                if str(number) not in parts:
                    nursery.start_soon(one, number, p)
        progress.committing = True
        version = await self.client.finish_large_file(
            state["file_id"], {int(n): s for n, s in parts.items()}
        )
        r.large = None
        return version

    async def _verified_parts(self, state: dict[str, Any]) -> dict[str, str]:
        """Parts B2 holds for a resumed large file (what the journal says may be behind)."""
        have = {}
        async for part in self.client.list_parts(state["file_id"]):
            have[str(part.part_number)] = part.sha1
        return have

    async def cancel_large(self, file_id: str) -> None:
        try:
            await self.client.cancel_large_file(file_id)
        except Exception as e:  # already gone is fine
            log.debug("cancel of large file %s: %s", file_id, e)

    async def abandon(self, d: DirtyFile) -> None:
        """Cancel the large file of a superseded upload, so none is left behind."""
        if d.record.large is not None:
            with trio.CancelScope(shield=True):
                await self.cancel_large(d.record.large["file_id"])
            d.record.large = None
