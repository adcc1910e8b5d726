"""What a mount answers on its control socket for ``b2fs versions`` and ``b2fs restore``.

The commands talk to the mount (``b2fs.mount.control``) rather than to B2 on
their own: the mount has the key, the bucket and, in an encrypted mount, the
vault's codecs (no passphrase asked again, no key leaves the process); it
knows which files have changes not uploaded yet (shown as ``pending``, and
never restored over); and after a restore it drops its cached listings and
the kernel's entries of what changed, so the mount shows the restored files
at once.

A path is relative to the mount root, as the program saw it; one in the
versions view means its file (``.b2fs-versions/a/f``: ``a/f``), and a version
leaf there means that version (``.b2fs-versions/a/f/2026-...Z``).  Each
request gets JSON documents back, one per line (``b2fs.mount.control``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from b2fs.b2.billing import billing_class
from b2fs.history.listing import VersionListings
from b2fs.history.restore import Restorer, Step, directories_of
from b2fs.history.times import format_ms, version_names
from b2fs.history.versions import Version, not_uploaded
from b2fs.posix.errors import InvalidArgument, NotFound, ReadOnly
from b2fs.posix.paths import split

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class HistoryService:
    def __init__(self, *, fs: Any, client: Any, bucket_id: str, listings: VersionListings,
                 view: Any = None, remote: Any = None, can_delete: bool = False,
                 invalidate: Callable[[list[str]], None] = lambda paths: None) -> None:  # fmt: skip
        self.fs = fs
        self.ns = fs.ns
        self.client = client
        self.bucket_id = bucket_id
        self.listings = listings  # the versions listings (the view's too)
        self.view = view  # b2fs.history.view.VersionsView, or None (-o noversions)
        self.remote = remote  # b2fs.vfs.remote.RemoteNames; None: a read-only mount
        self.can_delete = can_delete
        self.invalidate = invalidate  # the kernel forgets these paths (b2fs.fs.operations)
        self._restoring = trio.Lock()  # one restore at a time

    def handlers(self) -> dict[str, Callable[[dict[str, Any], Send], Awaitable[None]]]:
        return {"versions": self.versions, "restore": self.restore}

    # -- paths ---------------------------------------------------------------------------

    async def _target(self, raw: Any) -> tuple[str, str | None]:
        """(path below the mount root, the version a view leaf names or None)."""
        if not isinstance(raw, str):
            raise InvalidArgument("the request has no path")
        path = raw.strip("/")
        if any(s in ("", ".", "..") for s in path.split("/")) and path:
            raise InvalidArgument(f"{raw!r} is not a normalised path below the mount")
        view = self.view
        if view is None or not (path == view.name or path.startswith(view.name + "/")):
            return path, None
        path = path[len(view.name) + 1 :]
        parent, leaf = split(path)
        if not parent:
            return path, None
        versions = await self._versions_in(parent)
        for name, v in zip(_leaf_names(versions), versions, strict=True):
            if name == leaf:
                if v.hidden:
                    raise InvalidArgument(f"{leaf} is the deletion of {parent!r}, not a version")
                return parent, v.file_id
        if leaf == "pending":
            raise InvalidArgument(f"the pending version of {parent!r} is this mount's own: it "
                                  "is uploaded by itself")  # fmt: skip
        return path, None

    async def _versions_in(self, path: str) -> list[Version]:
        parent, name = split(path)
        listing = await self.listings.get(self.ns.stored_dir(parent))
        return listing.files.get(name, [])

    # -- b2fs versions -------------------------------------------------------------------

    async def versions(self, req: dict[str, Any], send: Send) -> None:
        path, _ = await self._target(req.get("path"))
        rows = []
        pending = self.ns.overlay.entry(path) if path else None
        if pending is not None and not_uploaded(pending.local):
            rows.append({"name": "pending", "time": None, "size": pending.size, "state": "pending",
                         "file_id": None, "sha1": None})  # fmt: skip
        versions = await self._versions_in(path) if path else []
        rows += _rows(versions)
        if rows:
            await send({"path": path, "kind": "file", "versions": rows})
            return
        listing = await self.listings.get(self.ns.stored_dir(path))
        local = self.ns.overlay.children(path)
        if not (listing.files or listing.folders or local):
            raise NotFound(f"B2 has no versions of {path or 'the mount root'!r}")
        entries = []
        for name in sorted(set(listing.files) | set(listing.folders) | set(local)):
            e = local.get(name)
            rows = []
            if e is not None and not_uploaded(e.local):
                rows.append({"name": "pending", "time": None, "size": e.size, "state": "pending",
                             "file_id": None, "sha1": None})  # fmt: skip
            rows += _rows(listing.files.get(name, []))
            is_dir = name in listing.folders or (e is not None and e.local is None)
            entries.append({"name": name, "dir": is_dir, "versions": rows})
        await send({"path": path, "kind": "dir", "entries": entries})

    # -- b2fs restore --------------------------------------------------------------------

    async def restore(self, req: dict[str, Any], send: Send) -> None:
        if self.remote is None:
            raise ReadOnly("this mount is read-only (or of the past): restore through a "
                           "writable mount of the bucket")  # fmt: skip
        path, leaf_version = await self._target(req.get("path"))
        version = req.get("version") or leaf_version
        at_ms = req.get("at_ms")
        if version is not None and at_ms is not None:
            raise InvalidArgument("give a time or a version, not both")
        wb = self.ns.overlay
        restorer = Restorer(self.client, self.bucket_id, self.ns, self.remote,
                            can_delete=self.can_delete,
                            pending=lambda p: _has_pending(wb, p))  # fmt: skip
        async with self._restoring:
            plan = await restorer.plan(path, at_ms=at_ms, version_id=version)
            for step in plan.steps:
                if not step.changes:
                    await send({"step": step.as_json()})
            if req.get("dry_run"):
                calls = Counter(plan.calls)
                for step in plan.steps:
                    if step.changes:
                        await send({"step": step.as_json()})
                        calls.update(step.calls(self.remote.part_size))
                await send({"summary": _summary(plan.steps, calls, dry_run=True)})
                return

            async def done(step: Step) -> None:
                await send({"step": step.as_json()})

            try:
                calls = await restorer.run(plan, done)
            finally:
                self._forget(path, plan.steps)
            await send({"summary": _summary(plan.steps, calls, dry_run=False)})

    def _forget(self, path: str, steps: list[Step]) -> None:
        """The mount's listings and the kernel's entries of what the restore changed."""
        dirs = directories_of(path, steps)
        for d in dirs:
            try:
                self.ns.listings.invalidate(self.ns.stored_dir(d))
            except Exception:  # noqa: BLE001 - a name the codec refuses: nothing cached of it
                pass
        names = {s.path.rstrip("/") for s in steps if s.changes and not s.error}
        self.invalidate(sorted(names | {d for d in dirs if d}))


def _has_pending(wb: Any, path: str) -> bool:
    """The write-back holds a version of ``path`` (a file, or a directory's marker) that is
    not in B2 yet."""
    get = getattr(wb, "get", None)
    return get is not None and not_uploaded(get(path))


def _leaf_names(versions: list[Version]) -> list[str]:
    return version_names([(v.upload_ms, v.hidden) for v in versions])


def _rows(versions: list[Version]) -> list[dict[str, Any]]:
    rows = []
    for i, (name, v) in enumerate(zip(_leaf_names(versions), versions, strict=True)):
        state = "deleted" if v.hidden else "current" if i == 0 else "old"
        rows.append({"name": name, "time": format_ms(v.upload_ms), "upload_ms": v.upload_ms,
                     "size": v.size, "stored_size": v.stored_size, "file_id": v.file_id,
                     "sha1": v.sha1, "state": state})  # fmt: skip
    return rows


def _summary(steps: list[Step], calls: Counter[str], dry_run: bool) -> dict[str, Any]:
    by_what = Counter(s.what for s in steps)
    failed = sum(1 for s in steps if s.error)
    return {
        "dry_run": dry_run,
        "steps": dict(by_what),
        "failed": failed,
        "calls": {
            name: {"count": n, "class": billing_class(name)} for name, n in sorted(calls.items())
        },
    }
