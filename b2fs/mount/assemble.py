"""Putting a mount together: codecs, caches, reader, namespace, writeback and operations.

``assemble`` builds every part of a mount from an authorized client, its
bucket and its codecs (plain, or the vault's: ``mount.vault``); the
returned ``Mount`` is started in the mount's service nursery (uploads, the
change log's writer), its FUSE tasks (the change log's poller, the kernel's
cache notifications) in the FUSE loop's nursery, and it is stopped after the
FUSE loop ends (pending uploads get ``unmount_wait`` seconds, with progress
in the log, then the last change records are written).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import trio

from b2fs.cache.blocks import BlockCache
from b2fs.fs.attrs import AttrMaker
from b2fs.fs.kernel_cache import KernelCache
from b2fs.fs.operations import Operations
from b2fs.history.listing import VersionListings
from b2fs.history.past import PastListings
from b2fs.history.service import HistoryService
from b2fs.history.times import parse_time
from b2fs.history.view import VersionsView
from b2fs.mount.options import MountOptions
from b2fs.mount.source import Source
from b2fs.posix.entries import Defaults
from b2fs.reader import Reader
from b2fs.vfs.changes import Changes
from b2fs.vfs.filesystem import FileSystem
from b2fs.vfs.listing import Listings
from b2fs.vfs.namespace import Namespace
from b2fs.vfs.remote import RemoteNames
from b2fs.writeback.journal import Journal
from b2fs.writeback.manager import WriteBack
from b2fs.writeback.upload import Uploader

log = logging.getLogger("b2fs.mount")


@dataclass
class Mount:
    operations: Operations
    fs: FileSystem
    reader: Reader
    cache: BlockCache
    listings: Listings
    writeback: Any = None
    versions: Any = None  # b2fs.history.view.VersionsView (None: -o noversions)
    history: Any = None  # b2fs.history.service.HistoryService (b2fs versions, b2fs restore)
    sync: Any = None  # b2fs.sync.Sync: the change log, when the mount has one
    kernel: KernelCache = field(default_factory=KernelCache)
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self, services: trio.Nursery) -> None:
        """Downloads and uploads run in ``services``, which outlives the FUSE loop (the drain
        at unmount may still need to fetch blocks)."""
        self.reader.attach(services)
        if self.writeback is not None:
            await self.writeback.start(services)
        if self.sync is not None:
            self.sync.start(services)

    def start_fuse(self, nursery: trio.Nursery) -> None:
        """Tasks that tell the kernel things: they run in the FUSE loop's nursery, so they end
        before the kernel session is closed."""
        nursery.start_soon(self.kernel.run)
        if self.sync is not None:
            self.sync.start_polling(nursery)

    async def stop(self, wait: float) -> None:
        if self.writeback is not None:
            await self.writeback.drain(wait)
        if self.sync is not None:
            await self.sync.stop()

    async def refresh(self, path: str) -> dict[str, Any]:
        """``b2fs refresh``: what other mounts and tools changed at and below ``path``, now."""
        import unicodedata

        from b2fs.posix.errors import InvalidArgument

        segments = [p for p in str(path).split("/") if p not in ("", ".")]
        if ".." in segments:
            raise InvalidArgument(f"{path!r}: a path below the mountpoint has no '..'")
        path = "/".join(segments)
        if self.fs.ns.names.encrypted:  # as the mount stores (and is asked for) names
            path = unicodedata.normalize("NFC", path)
        if self.sync is None:
            from b2fs.vfs.refresh import Refresher

            refresher = Refresher(self.fs, [self.history.listings] if self.history else [])
            self.kernel.forget(refresher.forget(path))
            await refresher.reread(path)
            return {}
        return await self.sync.refresh(path)

    async def refresh_request(self, request: dict[str, Any], send: Any) -> None:
        """The control socket's ``refresh`` request (``b2fs refresh``)."""
        await send(await self.refresh(str(request.get("path", ""))))

    def restored(self, paths: list[str]) -> None:
        """``b2fs restore`` changed these paths in B2: the kernel forgets them, and the other
        mounts hear of them (as trees: each is forgotten with what is below it)."""
        self.operations.invalidate(paths)
        if self.sync is not None:
            for path in paths:
                self.sync.feed.tree(path)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cache": self.cache.stats(),
            "reader": self.reader.stats(),
            "listings": {"fetches": self.listings.fetches},
            "inodes": len(self.fs.inodes),
        }
        if self.writeback is not None:
            out["writeback"] = self.writeback.status()
        if self.versions is not None:
            out["versions_view"] = self.versions.status()
        if self.sync is not None:
            out["sync"] = self.sync.status()
            if "writeback" in out:
                out["writeback"]["conflicts"] = self.sync.conflicts.count
        return out


async def assemble(client: Any, bucket: Any, source: Source, cache_dir: str, opts: MountOptions,
                   codecs: tuple[Any, Any, Any] | None = None) -> Mount:  # fmt: skip
    from b2fs.codec import CHANGES_DIR, VAULT_NAME, plain_codecs
    from b2fs.fs import errno_map

    content, names, staging = codecs or plain_codecs()
    errno_map.hide_messages(names.encrypted)  # they name files by plaintext path
    cache = BlockCache(cache_dir, opts.cache_size, opts.block_size)
    cache.open()
    reader = Reader(
        client,
        content,
        cache,
        block_size=opts.block_size,
        memory_cache=opts.memory_cache,
        max_readahead=opts.max_readahead,
        max_request=opts.max_request,
        concurrency=opts.download_concurrency,
        admit=opts.cache_admit,
    )
    listing_args: dict[str, Any] = {
        "root": source.prefix,
        "names": names,
        "content": content,
        "ttl": opts.dir_cache_time,
        "hidden": frozenset({source.prefix + VAULT_NAME, f"{source.prefix}{CHANGES_DIR}/"}),
    }
    if opts.version_at is not None:  # a mount of the past (read-only)
        listings: Listings = PastListings(
            client, bucket.bucket_id, at_ms=parse_time(opts.version_at), **listing_args
        )
    else:
        listings = Listings(client, bucket.bucket_id, **listing_args)
    namespace = Namespace(listings, names, source.prefix)
    defaults = Defaults(opts.uid, opts.gid, opts.umask, opts.keep_attrs)
    fs = FileSystem(namespace, reader, defaults)
    attrs = AttrMaker(defaults, entry_timeout=opts.entry_timeout, attr_timeout=opts.attr_timeout,
                      negative_timeout=opts.negative_timeout)  # fmt: skip
    mount = Mount(Operations(fs, attrs), fs, reader, cache, listings)
    history = VersionListings(client, bucket.bucket_id, **listing_args)
    if opts.versions:
        mount.versions = VersionsView(fs, history, shown=opts.show_versions)
        mount.operations.versions = mount.versions
    mount.history = HistoryService(fs=fs, client=client, bucket_id=bucket.bucket_id,
                                   listings=history, view=mount.versions,
                                   invalidate=mount.restored)  # fmt: skip
    remote = None
    if not opts.read_only:
        account = client.account
        journal = Journal(
            os.path.join(cache_dir, "journal.sqlite"), seal=content, sync_close=opts.sync_close
        )
        staging_dir = os.path.join(cache_dir, "staging")
        os.makedirs(staging_dir, mode=0o700, exist_ok=True)
        uploader = Uploader(
            client,
            bucket.bucket_id,
            content,
            threshold=opts.large_file_threshold or account.recommended_part_size,
            part_size=opts.part_size or account.recommended_part_size,
            min_part=account.absolute_minimum_part_size,
            concurrency=opts.upload_concurrency,
            keep_attrs=opts.keep_attrs,
            journal_id=journal.id,
        )
        wb = WriteBack(
            journal=journal,
            staging_dir=staging_dir,
            staging_codec=staging,
            reader=reader,
            uploader=uploader,
            block_size=opts.block_size,
            delay=opts.writeback_delay,
            concurrency=opts.upload_concurrency,
            sync_close=opts.sync_close,
        )
        namespace.overlay = wb
        remote = RemoteNames(
            client,
            bucket.bucket_id,
            hard_delete=opts.hard_delete,
            can_delete="deleteFiles" in account.capabilities,
            part_size=max(account.recommended_part_size, 100 << 20),
        )
        changes = Changes(fs, wb, remote)
        mount.history.remote = remote  # restores copy through it
        mount.history.can_delete = remote.can_delete
    if opts.version_at is None and (opts.poll_interval > 0 or (remote and opts.change_log)):
        from b2fs.sync import Sync

        mount.sync = Sync(client, bucket.bucket_id, source.prefix, content, fs, remote=remote,
                          poll_interval=opts.poll_interval, change_log=opts.change_log,
                          forget=mount.kernel.forget, mirrors=[history])  # fmt: skip
    if remote is not None:
        if mount.sync is not None:
            changes.feed = mount.sync.feed
        await changes.replay()
        mount.operations.changes = changes
        mount.writeback = wb
    return mount
