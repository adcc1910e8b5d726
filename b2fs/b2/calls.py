"""The JSON calls of the B2 native API as typed methods: buckets, file listings and
info, hide/delete/copy, the large-file primitives, download authorizations, keys.

``Calls`` sits on ``Core`` (retries, tokens) and under ``Uploads``/``Downloads``.
Calls that are not idempotent look for their own effect when a failed attempt
may have reached the server: a retried finish/copy/hide/start/delete/cancel
returns what the first attempt did instead of a second version or a false error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from b2fs.b2.core import Core
from b2fs.b2.errors import AlreadyHidden, B2Error, BadRequest, BucketNotFound, NotFound
from b2fs.b2.models import (
    ApplicationKey,
    Bucket,
    DownloadAuthorization,
    FileIdAndName,
    FileRetention,
    FileVersion,
    NewApplicationKey,
    Part,
)
from b2fs.b2.sse import ServerSideEncryption
from b2fs.b2.wire import file_info_with_mtime

# How far back (ms, server clock) a version may date and still be "ours" when a
# retried call looks for the effect of its first attempt.
RECOVERY_SLACK_MS = 2000


def _range(r: tuple[int, int] | None) -> str | None:
    return None if r is None else f"bytes={r[0]}-{r[1]}"


def _json(sse: ServerSideEncryption | None) -> dict[str, Any] | None:
    return None if sse is None else sse.json()


def _lock(retention: FileRetention | None, legal_hold: bool | None) -> dict[str, Any]:
    """``fileRetention`` / ``legalHold`` of a JSON call (None values are left out)."""
    return {
        "fileRetention": None if retention is None else retention.to_json(),
        "legalHold": None if legal_hold is None else ("on" if legal_hold else "off"),
    }


class Calls(Core):
    # -- buckets ------------------------------------------------------------------------
    async def create_bucket(
        self,
        bucket_name: str,
        bucket_type: str = "allPrivate",
        *,
        bucket_info: Mapping[str, Any] | None = None,
        cors_rules: Sequence[Mapping[str, Any]] | None = None,
        lifecycle_rules: Sequence[Mapping[str, Any]] | None = None,
        file_lock_enabled: bool | None = None,
        default_server_side_encryption: Mapping[str, Any] | None = None,
        replication_configuration: Mapping[str, Any] | None = None,
    ) -> Bucket:
        d = await self.call(
            "b2_create_bucket",
            {
                "accountId": await self._account_id(),
                "bucketName": bucket_name,
                "bucketType": bucket_type,
                "bucketInfo": bucket_info,
                "corsRules": cors_rules,
                "lifecycleRules": lifecycle_rules,
                "fileLockEnabled": file_lock_enabled,
                "defaultServerSideEncryption": default_server_side_encryption,
                "replicationConfiguration": replication_configuration,
            },
        )
        return Bucket.from_json(d)

    async def list_buckets(
        self,
        *,
        bucket_id: str | None = None,
        bucket_name: str | None = None,
        bucket_types: Sequence[str] | None = None,
    ) -> list[Bucket]:
        """Buckets visible to this key, sorted by name (one call; B2 does not page them)."""
        account = await self._authorized()
        if bucket_id is None and bucket_name is None and account.allowed_buckets is not None:
            # a bucket-restricted key must name its bucket(s)
            out: list[Bucket] = []
            for allowed in account.allowed_buckets:
                out += await self.list_buckets(
                    bucket_id=allowed.bucket_id, bucket_types=bucket_types
                )
            return sorted(out, key=lambda b: b.bucket_name)
        d = await self.call(
            "b2_list_buckets",
            {
                "accountId": account.account_id,
                "bucketId": bucket_id,
                "bucketName": bucket_name,
                "bucketTypes": list(bucket_types) if bucket_types else None,
            },
        )
        return [Bucket.from_json(b) for b in d.get("buckets", [])]

    async def get_bucket(self, bucket_name: str) -> Bucket:
        """The bucket of that name; ``BucketNotFound`` if there is none (for this key)."""
        found = await self.list_buckets(bucket_name=bucket_name)
        if not found:
            raise BucketNotFound(f"no bucket named {bucket_name!r}", call="b2_list_buckets")
        return found[0]

    async def get_bucket_by_id(self, bucket_id: str) -> Bucket:
        found = await self.list_buckets(bucket_id=bucket_id)
        if not found:
            raise BucketNotFound(f"no bucket with id {bucket_id!r}", call="b2_list_buckets")
        return found[0]

    async def update_bucket(
        self,
        bucket_id: str,
        *,
        bucket_type: str | None = None,
        bucket_info: Mapping[str, Any] | None = None,
        cors_rules: Sequence[Mapping[str, Any]] | None = None,
        lifecycle_rules: Sequence[Mapping[str, Any]] | None = None,
        default_server_side_encryption: Mapping[str, Any] | None = None,
        default_retention: Mapping[str, Any] | None = None,
        file_lock_enabled: bool | None = None,
        replication_configuration: Mapping[str, Any] | None = None,
        if_revision_is: int | None = None,
    ) -> Bucket:
        """Change what is given; ``if_revision_is`` makes it fail with ``Conflict`` when
        the bucket changed since that revision. Object Lock can be turned on, never off."""
        d = await self.call(
            "b2_update_bucket",
            {
                "accountId": await self._account_id(),
                "bucketId": bucket_id,
                "bucketType": bucket_type,
                "bucketInfo": bucket_info,
                "corsRules": cors_rules,
                "lifecycleRules": lifecycle_rules,
                "defaultServerSideEncryption": default_server_side_encryption,
                "defaultRetention": default_retention,
                "fileLockEnabled": file_lock_enabled,
                "replicationConfiguration": replication_configuration,
                "ifRevisionIs": if_revision_is,
            },
        )
        return Bucket.from_json(d)

    async def delete_bucket(self, bucket_id: str) -> Bucket:
        d = await self.call(
            "b2_delete_bucket", {"accountId": await self._account_id(), "bucketId": bucket_id}
        )
        return Bucket.from_json(d)

    async def get_bucket_notification_rules(self, bucket_id: str) -> list[dict[str, Any]]:
        """The bucket's event notification rules (B2's JSON, sorted by name)."""
        d = await self.call("b2_get_bucket_notification_rules", {"bucketId": bucket_id})
        return list(d["eventNotificationRules"])

    async def set_bucket_notification_rules(
        self, bucket_id: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace the bucket's event notification rules; returns them as B2 keeps them."""
        d = await self.call(
            "b2_set_bucket_notification_rules",
            {"bucketId": bucket_id, "eventNotificationRules": [dict(r) for r in rules]},
        )
        return list(d["eventNotificationRules"])

    # -- listings ------------------------------------------------------------------------
    async def list_file_names_page(
        self,
        bucket_id: str,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        start_file_name: str | None = None,
        max_file_count: int = 1000,
    ) -> tuple[list[FileVersion], str | None]:
        """One page of the newest visible version of each name: (files, next_file_name)."""
        d = await self.call(
            "b2_list_file_names",
            {
                "bucketId": bucket_id,
                "prefix": prefix or None,
                "delimiter": delimiter,
                "startFileName": start_file_name,
                "maxFileCount": max_file_count,
            },
        )
        return [FileVersion.from_json(f) for f in d["files"]], d.get("nextFileName")

    async def list_file_names(
        self,
        bucket_id: str,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        start_file_name: str | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[FileVersion]:
        """Every name (folders too, with a delimiter), fetching pages as they are needed."""
        start: str | None = start_file_name
        while True:
            files, start = await self.list_file_names_page(
                bucket_id,
                prefix=prefix,
                delimiter=delimiter,
                start_file_name=start,
                max_file_count=page_size,
            )
            for f in files:
                yield f
            if start is None:
                return

    async def list_file_versions_page(
        self,
        bucket_id: str,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        start_file_name: str | None = None,
        start_file_id: str | None = None,
        max_file_count: int = 1000,
    ) -> tuple[list[FileVersion], str | None, str | None]:
        """One page of every version (newest first per name, hide markers and unfinished
        large files included): (files, next_file_name, next_file_id)."""
        d = await self.call(
            "b2_list_file_versions",
            {
                "bucketId": bucket_id,
                "prefix": prefix or None,
                "delimiter": delimiter,
                "startFileName": start_file_name,
                "startFileId": start_file_id,
                "maxFileCount": max_file_count,
            },
        )
        files = [FileVersion.from_json(f) for f in d["files"]]
        return files, d.get("nextFileName"), d.get("nextFileId")

    async def list_file_versions(
        self,
        bucket_id: str,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        start_file_name: str | None = None,
        start_file_id: str | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[FileVersion]:
        name, fid = start_file_name, start_file_id
        while True:
            files, name, fid = await self.list_file_versions_page(
                bucket_id,
                prefix=prefix,
                delimiter=delimiter,
                start_file_name=name,
                start_file_id=fid,
                max_file_count=page_size,
            )
            for f in files:
                yield f
            if name is None:
                return

    async def versions_of(self, bucket_id: str, file_name: str) -> list[FileVersion]:
        """Every version of exactly ``file_name``, newest first."""
        out = []
        async for f in self.list_file_versions(
            bucket_id, prefix=file_name, start_file_name=file_name, page_size=100
        ):
            if f.file_name != file_name:
                break
            out.append(f)
        return out

    async def _newest_version(self, bucket_id: str, file_name: str) -> FileVersion | None:
        files, _, _ = await self.list_file_versions_page(
            bucket_id, prefix=file_name, start_file_name=file_name, max_file_count=1
        )
        return files[0] if files and files[0].file_name == file_name else None

    # -- one file ------------------------------------------------------------------------
    async def get_file_info(self, file_id: str) -> FileVersion:
        """``NotFound`` when there is no such version."""
        return FileVersion.from_json(await self.call("b2_get_file_info", {"fileId": file_id}))

    async def hide_file(self, bucket_id: str, file_name: str) -> FileVersion:
        """Hide a name (a hide marker becomes its newest version). ``NoSuchFile`` when
        the name has no version; ``AlreadyHidden`` when it is hidden already."""
        since = self.server_time_millis() - RECOVERY_SLACK_MS
        try:
            d = await self.call("b2_hide_file", {"bucketId": bucket_id, "fileName": file_name})
        except AlreadyHidden as e:
            if e.after_ambiguous:  # our first attempt went through
                newest = await self._newest_version(bucket_id, file_name)
                if newest and newest.action == "hide" and newest.upload_timestamp >= since:
                    self._recovered("b2_hide_file")
                    return newest
            raise
        return FileVersion.from_json(d)

    async def delete_file_version(
        self, file_id: str, file_name: str, *, bypass_governance: bool = False
    ) -> FileIdAndName:
        try:
            d = await self.call(
                "b2_delete_file_version",
                {
                    "fileId": file_id,
                    "fileName": file_name,
                    "bypassGovernance": bypass_governance or None,
                },
            )
        except (BadRequest, NotFound) as e:
            if e.after_ambiguous:  # the first attempt deleted it
                self._recovered("b2_delete_file_version")
                return FileIdAndName(file_id, file_name)
            raise
        return FileIdAndName.from_json(d)

    async def delete_all_versions(self, bucket_id: str, file_name: str) -> list[FileIdAndName]:
        """Delete every version of a name (uploads, hide markers, unfinished large files)."""
        return [
            await self.delete_file_version(f.file_id, f.file_name)
            for f in await self.versions_of(bucket_id, file_name)
            if f.file_id
        ]

    async def update_file_retention(
        self,
        file_id: str,
        file_name: str,
        retention: FileRetention,
        *,
        bypass_governance: bool = False,
    ) -> FileRetention:
        """Set a version's Object Lock retention (``FileRetention(None)`` removes it);
        shortening governance needs ``bypass_governance`` (``AccessDenied`` otherwise)."""
        d = await self.call(
            "b2_update_file_retention",
            {
                "fileId": file_id,
                "fileName": file_name,
                "fileRetention": retention.to_json(),
                "bypassGovernance": bypass_governance or None,
            },
        )
        return FileRetention.from_json(d["fileRetention"]) or retention

    async def update_file_legal_hold(self, file_id: str, file_name: str, on: bool) -> str:
        """Put a legal hold on a version, or lift it; returns "on" or "off"."""
        d = await self.call(
            "b2_update_file_legal_hold",
            {"fileId": file_id, "fileName": file_name, "legalHold": "on" if on else "off"},
        )
        return str(d["legalHold"])

    async def copy_file(
        self,
        source_file_id: str,
        new_file_name: str,
        *,
        destination_bucket_id: str | None = None,
        range: tuple[int, int] | None = None,  # noqa: A002 (B2's name)
        content_type: str | None = None,
        file_info: Mapping[str, str] | None = None,
        mtime_millis: int | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
        source_server_side_encryption: ServerSideEncryption | None = None,
        file_retention: FileRetention | None = None,
        legal_hold: bool | None = None,
    ) -> FileVersion:
        """Server-side copy (source ≤ 5 GB; above, use ``copy_part``). Metadata is kept
        unless ``content_type``, ``file_info`` or ``mtime_millis`` is given: then it is
        replaced, all of it (B2's REPLACE); a content type not given is the source's
        (one ``b2_get_file_info`` to learn it). ``range`` is inclusive. The copy is
        encrypted with ``server_side_encryption`` (default: the client's); an SSE-C
        source needs its key (``source_server_side_encryption``, default: the
        client's SSE-C key)."""
        replace = content_type is not None or file_info is not None or mtime_millis is not None
        destination_sse = self._sse(server_side_encryption)
        source_key = self._read_key(source_server_side_encryption)
        if replace and content_type is None:
            content_type = (await self.get_file_info(source_file_id)).content_type
        since = self.server_time_millis() - RECOVERY_SLACK_MS

        async def recover() -> FileVersion | None:
            source = await self.get_file_info(source_file_id)
            bucket_id = destination_bucket_id or source.bucket_id or ""
            size = source.size if range is None else range[1] - range[0] + 1
            newest = await self._newest_version(bucket_id, new_file_name)
            if (
                newest is not None
                and newest.action in ("upload", "copy")
                and newest.upload_timestamp >= since
                and newest.size == size
            ):
                return newest
            return None

        d = await self.call(
            "b2_copy_file",
            {
                "sourceFileId": source_file_id,
                "fileName": new_file_name,
                "destinationBucketId": destination_bucket_id,
                "range": _range(range),
                "metadataDirective": "REPLACE" if replace else "COPY",
                "contentType": (content_type or "b2/x-auto") if replace else None,
                "fileInfo": file_info_with_mtime(file_info, mtime_millis) if replace else None,
                "destinationServerSideEncryption": _json(destination_sse),
                "sourceServerSideEncryption": _json(source_key),
                **_lock(file_retention, legal_hold),
            },
            recover=recover,
        )
        return d if isinstance(d, FileVersion) else FileVersion.from_json(d)

    # -- large files -----------------------------------------------------------------------
    async def start_large_file(
        self,
        bucket_id: str,
        file_name: str,
        *,
        content_type: str | None = None,
        file_info: Mapping[str, str] | None = None,
        mtime_millis: int | None = None,
        server_side_encryption: ServerSideEncryption | None = None,
        file_retention: FileRetention | None = None,
        legal_hold: bool | None = None,
        custom_upload_timestamp: int | None = None,
    ) -> FileVersion:
        """Begin a large file (action "start"); its ``file_id`` names it from now on. Its
        encryption (default: the client's) is fixed here; the parts of an SSE-C large file
        carry the same key (``upload_part``, ``copy_part``)."""
        info = file_info_with_mtime(file_info, mtime_millis)
        sse = self._sse(server_side_encryption)
        since = self.server_time_millis() - RECOVERY_SLACK_MS

        async def recover() -> FileVersion | None:
            async for f in self.list_unfinished_large_files(bucket_id, name_prefix=file_name):
                if f.file_name == file_name and f.upload_timestamp >= since and f.file_info == info:
                    return f
            return None

        d = await self.call(
            "b2_start_large_file",
            {
                "bucketId": bucket_id,
                "fileName": file_name,
                "contentType": content_type or "b2/x-auto",
                "fileInfo": info,
                "serverSideEncryption": _json(sse),
                "customUploadTimestamp": custom_upload_timestamp,
                **_lock(file_retention, legal_hold),
            },
            recover=recover,
        )
        return d if isinstance(d, FileVersion) else FileVersion.from_json(d)

    async def finish_large_file(
        self, file_id: str, part_sha1s: Sequence[str] | Mapping[int, str]
    ) -> FileVersion:
        """Assemble the parts; ``part_sha1s`` in part order, or a {part number: sha1} map
        (parts may have been uploaded or copied in any order)."""
        if isinstance(part_sha1s, Mapping):
            part_sha1s = [part_sha1s[n] for n in sorted(part_sha1s)]
        try:
            d = await self.call(
                "b2_finish_large_file", {"fileId": file_id, "partSha1Array": list(part_sha1s)}
            )
        except B2Error as e:
            if e.after_ambiguous:  # perhaps our first attempt finished it
                try:
                    done = await self.get_file_info(file_id)
                except NotFound:
                    raise e from None
                if done.action == "upload":
                    self._recovered("b2_finish_large_file")
                    return done
            raise
        self._forget_upload_urls(file_id)
        return FileVersion.from_json(d)

    async def cancel_large_file(self, file_id: str) -> FileIdAndName:
        try:
            d = await self.call("b2_cancel_large_file", {"fileId": file_id})
        except (BadRequest, NotFound) as e:
            if e.after_ambiguous:  # the first attempt cancelled it (its name is not known)
                self._recovered("b2_cancel_large_file")
                return FileIdAndName(file_id, "")
            raise
        finally:
            self._forget_upload_urls(file_id)
        return FileIdAndName.from_json(d)

    async def list_parts_page(
        self, file_id: str, *, start_part_number: int | None = None, max_part_count: int = 1000
    ) -> tuple[list[Part], int | None]:
        d = await self.call(
            "b2_list_parts",
            {
                "fileId": file_id,
                "startPartNumber": start_part_number,
                "maxPartCount": max_part_count,
            },
        )
        return [Part.from_json(p) for p in d["parts"]], d.get("nextPartNumber")

    async def list_parts(self, file_id: str) -> AsyncIterator[Part]:
        start: int | None = None
        while True:
            parts, start = await self.list_parts_page(file_id, start_part_number=start)
            for p in parts:
                yield p
            if start is None:
                return

    async def list_unfinished_large_files_page(
        self,
        bucket_id: str,
        *,
        name_prefix: str | None = None,
        start_file_id: str | None = None,
        max_file_count: int = 100,
    ) -> tuple[list[FileVersion], str | None]:
        d = await self.call(
            "b2_list_unfinished_large_files",
            {
                "bucketId": bucket_id,
                "namePrefix": name_prefix or None,
                "startFileId": start_file_id,
                "maxFileCount": max_file_count,
            },
        )
        return [FileVersion.from_json(f) for f in d["files"]], d.get("nextFileId")

    async def list_unfinished_large_files(
        self, bucket_id: str, *, name_prefix: str | None = None
    ) -> AsyncIterator[FileVersion]:
        start: str | None = None
        while True:
            files, start = await self.list_unfinished_large_files_page(
                bucket_id, name_prefix=name_prefix, start_file_id=start
            )
            for f in files:
                yield f
            if start is None:
                return

    async def copy_part(
        self,
        source_file_id: str,
        large_file_id: str,
        part_number: int,
        range: tuple[int, int] | None = None,  # noqa: A002 (B2's name)
        *,
        server_side_encryption: ServerSideEncryption | None = None,
        source_server_side_encryption: ServerSideEncryption | None = None,
    ) -> Part:
        """Make part ``part_number`` from (a range of) an existing file, server-side.
        Idempotent: copying the same part number again replaces the part. The SSE-C key
        of the large file and that of the source default to the client's."""
        d = await self.call(
            "b2_copy_part",
            {
                "sourceFileId": source_file_id,
                "largeFileId": large_file_id,
                "partNumber": part_number,
                "range": _range(range),
                "destinationServerSideEncryption": _json(self._read_key(server_side_encryption)),
                "sourceServerSideEncryption": _json(self._read_key(source_server_side_encryption)),
            },
        )
        return Part.from_json(d)

    # -- download authorizations -------------------------------------------------------------
    async def get_download_authorization(
        self,
        bucket_id: str,
        file_name_prefix: str,
        valid_duration_seconds: int,
        **content_overrides: str,
    ) -> DownloadAuthorization:
        """A token for downloading names under a prefix for a while. ``content_overrides``
        are B2's optional ``b2ContentDisposition``, ``b2ContentType``... fields."""
        d = await self.call(
            "b2_get_download_authorization",
            {
                "bucketId": bucket_id,
                "fileNamePrefix": file_name_prefix,
                "validDurationInSeconds": valid_duration_seconds,
                **content_overrides,
            },
        )
        return DownloadAuthorization(d["bucketId"], d["fileNamePrefix"], d["authorizationToken"])

    # -- application keys ----------------------------------------------------------------------
    async def create_key(
        self,
        key_name: str,
        capabilities: Sequence[str],
        *,
        bucket_ids: Sequence[str] | None = None,
        name_prefix: str | None = None,
        valid_duration_seconds: int | None = None,
    ) -> NewApplicationKey:
        """A new key; its secret (``application_key``) is returned this once only."""
        d = await self.call(
            "b2_create_key",
            {
                "accountId": await self._account_id(),
                "keyName": key_name,
                "capabilities": list(capabilities),
                "bucketIds": list(bucket_ids) if bucket_ids else None,
                "namePrefix": name_prefix,
                "validDurationInSeconds": valid_duration_seconds,
            },
        )
        return NewApplicationKey.from_json(d)

    async def list_keys_page(
        self, *, max_key_count: int = 1000, start_application_key_id: str | None = None
    ) -> tuple[list[ApplicationKey], str | None]:
        d = await self.call(
            "b2_list_keys",
            {
                "accountId": await self._account_id(),
                "maxKeyCount": max_key_count,
                "startApplicationKeyId": start_application_key_id,
            },
        )
        return [ApplicationKey.from_json(k) for k in d["keys"]], d.get("nextApplicationKeyId")

    async def list_keys(self, *, page_size: int = 1000) -> AsyncIterator[ApplicationKey]:
        start: str | None = None
        while True:
            keys, start = await self.list_keys_page(
                max_key_count=page_size, start_application_key_id=start
            )
            for k in keys:
                yield k
            if start is None:
                return

    async def delete_key(self, key_id: str) -> ApplicationKey:
        return ApplicationKey.from_json(
            await self.call("b2_delete_key", {"applicationKeyId": key_id})
        )
