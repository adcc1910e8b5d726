"""Server-side restores: a file or a whole tree brought back to a version, nothing downloaded.

``plan`` lists the versions of the path (``b2_list_file_versions`` of the
file's name, and of everything below it as a directory) and decides, name
by name, which version should be current:

- by default (undelete), the newest version of each name that is deleted
  now (its newest version a hide marker); names that show a version are
  left alone;
- ``at_ms``: the version each name showed at that time; names that did not
  exist then are left as they are (reported ``newer``);
- ``version_id``: that version of one file.

A name comes back by deleting the hide markers above its version when that
version is the newest upload and the key may delete (free: class A, and
the name shows the very same version again), else by ``b2_copy_file`` of the
version to its own name (a new version with the same bytes and file info:
an encrypted file stays ciphertext, its header and long name travel in the
file info; over 5 GB, ``b2_copy_part``s).  Names with changes this mount has
not uploaded yet are skipped (their upload would undo the restore).
``run`` carries a plan out, 8 names at a time, and counts the calls it
makes; a dry run stops after ``plan`` and says which calls ``run`` would make.
"""

from __future__ import annotations

import errno
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import trio

from b2fs.codec import VAULT_NAME
from b2fs.codec.names import LONG_INFO_KEY
from b2fs.history.listing import grouped
from b2fs.history.versions import Version, current, visible_at
from b2fs.posix.errors import FsError, NotFound
from b2fs.posix.paths import DIR_MARKER
from b2fs.vfs.remote import COPY_FILE_MAX

log = logging.getLogger(__name__)

AT_ONCE = 8  # names restored at the same time

# What a step does: copy and unhide change B2; the others are reported and skipped.
COPY, UNHIDE = "copy", "unhide"
PENDING = "pending"  # the mount has changes of it not uploaded yet
NEWER = "newer"  # did not exist at the time asked for: left as it is
UNCHANGED = "unchanged"  # shows that version already
UNDECODABLE = "undecodable"  # not a name of this mount (another vault's, another tool's)


class RestoreError(FsError):
    """A restore that cannot be done as asked; the message says why."""

    errno = errno.EINVAL


@dataclass
class Step:
    path: str  # plaintext, below the mount root; a directory's marker is "DIR/"
    stored: str
    what: str
    version: Version | None = None  # the version brought back
    hides: list[Any] = field(default_factory=list)  # hide markers to delete (unhide)
    error: str | None = None

    @property
    def changes(self) -> bool:
        return self.what in (COPY, UNHIDE)

    def calls(self, part_size: int) -> Counter[str]:
        """The B2 calls carrying the step out takes."""
        if self.what == UNHIDE:
            return Counter({"b2_delete_file_version": len(self.hides)})
        if self.what != COPY:
            return Counter()
        assert self.version is not None
        size = self.version.stored_size
        if size <= COPY_FILE_MAX:
            return Counter({"b2_copy_file": 1})
        step = max(part_size, -(-size // 10_000))
        return Counter({"b2_get_file_info": 1, "b2_start_large_file": 1,
                        "b2_copy_part": -(-size // step), "b2_finish_large_file": 1})  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        from b2fs.history.times import format_ms

        v = self.version
        out: dict[str, Any] = {"path": self.path, "what": self.what}
        if v is not None:
            out.update(version=v.file_id, time=format_ms(v.upload_ms), size=v.size)
        if self.hides:
            out["hide_markers"] = [h.file_id for h in self.hides]
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Plan:
    path: str
    steps: list[Step]
    calls: Counter[str]  # made while planning (listings)


class Restorer:
    def __init__(self, client: Any, bucket_id: str, ns: Any, remote: Any, *,
                 can_delete: bool, pending: Callable[[str], bool]) -> None:  # fmt: skip
        self.client = client
        self.bucket_id = bucket_id
        self.ns = ns  # b2fs.vfs.namespace.Namespace: stored names of paths, and back
        self.remote = remote  # b2fs.vfs.remote.RemoteNames (copies of any size)
        self.can_delete = can_delete  # the key has deleteFiles
        self.pending = pending  # path -> the mount has changes of it not uploaded yet
        self.content = ns.listings.content  # plaintext sizes

    # -- planning ------------------------------------------------------------------------

    async def plan(self, path: str, *, at_ms: int | None = None,
                   version_id: str | None = None) -> Plan:  # fmt: skip
        calls: Counter[str] = Counter()
        names: dict[str, tuple[str, list[Version]]] = {}  # stored -> (path, versions)
        if path:
            stored, _ = self.ns.encode(path)
            versions = await self._versions_of(stored, calls)
            if versions:
                names[stored] = (path, versions)
        if version_id is None:
            await self._tree(path, names, calls)
        elif not names:
            raise RestoreError(f"{path or 'the mount root'!r} has no versions as a file: "
                               "--version names a version of one file")  # fmt: skip
        if not names:
            raise NotFound(f"B2 has no versions of {path or 'the mount root'!r} or below it")
        steps = []
        for stored, (p, versions) in sorted(names.items()):
            if stored == self.ns.root_stored + VAULT_NAME:
                continue
            step = self._decide(p, stored, versions, at_ms, version_id)
            if step is not None:
                steps.append(step)
        return Plan(path, steps, calls)

    async def _versions_of(self, stored: str, calls: Counter[str]) -> list[Version]:
        async with aclosing(grouped(self.client, self.bucket_id, stored, start=stored,
                                    calls=calls, page=100)) as names:  # fmt: skip
            async for name, _, versions in names:
                return self._slim(versions) if name == stored else []
        return []

    def _slim(self, versions: list[Any]) -> list[Version]:
        """What a plan keeps of each version (a tree may have millions): its plaintext size
        (0 when the mount's codec knows no such size) and only the long name of its info."""
        out = []
        for f in versions:
            try:
                size = 0 if f.action == "hide" else self.content.plain_size(f.size)
            except Exception:  # noqa: BLE001 - not an object of this mount's codec
                size = 0
            v = Version.of(f, size)
            v.file_info = {k: x for k, x in v.file_info.items() if k == LONG_INFO_KEY}
            out.append(v)
        return out

    async def _tree(self, path: str, names: dict[str, tuple[str, list[Version]]],
                    calls: Counter[str]) -> None:  # fmt: skip
        """Every name below the directory ``path``, with its plaintext path ("": not a name
        this mount can show)."""
        prefix = self.ns.stored_dir(path)
        found: list[tuple[str, list[Version]]] = []
        markers: dict[str, dict[str, str]] = {}  # stored directory -> its marker's long name
        async for stored, _, versions in grouped(self.client, self.bucket_id, prefix, calls=calls):
            slim = self._slim(versions)
            found.append((stored, slim))
            if stored.endswith("/" + DIR_MARKER):
                info = next((v.file_info for v in slim if v.file_info), None)
                if info:
                    markers[stored[: -len(DIR_MARKER)]] = info
        for stored, versions in found:
            names[stored] = (self._decode(path, prefix, stored, versions, markers), versions)

    def _decode(self, path: str, prefix: str, stored: str, versions: list[Version],
                markers: dict[str, dict[str, str]]) -> str:  # fmt: skip
        """The plaintext path of a stored name below ``prefix`` (the stored directory of
        ``path``); "" when the codec cannot decode it."""
        segments = stored[len(prefix) :].split("/")
        out, parent = [path] if path else [], prefix
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            if last and segment == DIR_MARKER:
                return "/".join(out) + "/"
            if last:
                info = next((v.file_info for v in versions if v.file_info), None)
            else:
                info = markers.get(parent + segment + "/")
            try:
                name = self.ns.names.decode(self.ns.relative(parent), segment, info)
            except Exception:  # noqa: BLE001 - another tool's or vault's name: not restored
                return ""
            out.append(name)
            parent += segment + "/"
        return "/".join(out)

    def _decide(self, path: str, stored: str, versions: list[Version], at_ms: int | None,
                version_id: str | None) -> Step | None:  # fmt: skip
        """What restoring one name means; None when there is nothing to say of it."""
        if not path:
            return Step(stored, stored, UNDECODABLE)
        now = current(versions)
        if version_id is not None:
            target = next((v for v in versions if v.file_id == version_id), None)
            if target is None or target.hidden:
                raise RestoreError(f"{version_id} is not a version of {path!r}")
        elif at_ms is not None:
            target = visible_at(versions, at_ms)
            if target is None:
                if now is None or path.endswith("/"):  # a marker replaced since: its directory
                    return None  # was there if its names were (they say so themselves)
                return Step(path, stored, NEWER)
        else:
            if now is not None:
                return None  # shows a version: nothing to undelete
            target = next((v for v in versions if not v.hidden), None)
            if target is None:
                return None  # nothing but hide markers
        if self._is_pending(path):  # its upload would undo the restore
            return Step(path, stored, PENDING, target)
        if now is not None and now.file_id == target.file_id:
            return Step(path, stored, UNCHANGED, target)
        above = versions[: versions.index(target)]
        if above and self.can_delete and all(v.hidden for v in above):
            return Step(path, stored, UNHIDE, target, above)
        return Step(path, stored, COPY, target)

    def _is_pending(self, path: str) -> bool:
        return self.pending(path.rstrip("/"))

    # -- carrying it out -----------------------------------------------------------------

    async def run(self, plan: Plan, done: Callable[[Step], Awaitable[None]]) -> Counter[str]:
        """Carry out the steps that change B2 (``done`` is told of each, failed ones with
        their error); returns the calls made, the plan's listings included."""
        calls = Counter(plan.calls)
        limiter = trio.CapacityLimiter(AT_ONCE)

        async def one(step: Step) -> None:
            async with limiter:
                try:
                    await self._carry_out(step)
                    calls.update(step.calls(self.remote.part_size))
                except Exception as e:  # noqa: BLE001 - one name failing does not stop the rest
                    step.error = f"{type(e).__name__}: {e}"
                    log.warning("restore of %s failed: %s", self._shown(step), step.error)
                await done(step)

        async with trio.open_nursery() as nursery:
            for step in plan.steps:
                if step.changes:
                    nursery.start_soon(one, step)
        return calls

    async def _carry_out(self, step: Step) -> None:
        if step.what == UNHIDE:
            for hide in step.hides:
                await self.client.delete_file_version(hide.file_id, step.stored)
        else:
            v = step.version
            await self.remote.copy(v.file_id, step.stored, None, size=v.stored_size)

    def _shown(self, step: Step) -> str:
        return step.stored if self.ns.names.encrypted else step.path


def directories_of(path: str, steps: list[Step]) -> list[str]:
    """The directories whose listings a restore below ``path`` changed: each restored name's
    parents up to ``path``'s parent (a directory that was gone comes back in its parent)."""
    top = path.rpartition("/")[0] if path else ""
    out = {top}
    for step in steps:
        if not step.changes or step.error:
            continue
        d = step.path.rstrip("/").rpartition("/")[0]
        while d != top and d not in out:
            out.add(d)
            d = d.rpartition("/")[0]
    return sorted(out)
