"""The versions view: a read-only directory at the mount root that shows the bucket's history.

``.b2fs-versions`` (hidden from ``readdir`` of the root unless ``-o
show_versions``; reachable by name; ``-o noversions`` turns it off) mirrors
the mounted tree, deleted directories included.  Each name that was ever a
file there is a directory holding its versions, named by upload time in UTC
(``b2fs.history.times``): each version a read-only file with its own size,
mtime, mode and owner (write bits dropped), read through the block cache by
its fileId (versions never change, so the kernel keeps its pages); a hide
marker (the file deleted then) is an empty ``TIME.deleted``; a version this
mount has not uploaded yet is ``pending``, the newest.  A name that was a
file and a directory shows both: its versions and its entries.  Directory
markers give a directory its attributes and are never shown.

A directory of the view costs its tree directory's versions listing
(``b2fs.history.listing``), only when browsed.  The view has inode numbers of
its own (``VIRTUAL`` set: the mount's ``InodeTable`` numbers never have that
bit), with the kernel's lookup counts and forgets, and handles likewise; the
fs edge (``b2fs.fs.operations``) routes them here and answers every change
inside it with EROFS.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from b2fs.history.listing import VersionListing, VersionListings
from b2fs.history.times import version_names
from b2fs.history.versions import Version, not_uploaded
from b2fs.posix.entries import Entry, Kind, Remote
from b2fs.posix.errors import (
    BadHandle,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotFound,
    Stale,
)
from b2fs.posix.fileinfo import read_info
from b2fs.posix.paths import check_length, join, split
from b2fs.reader import ObjectRef, ReadStream
from b2fs.vfs.filesystem import FileSystem
from b2fs.vfs.inodes import ROOT_INODE

VIRTUAL = 1 << 63  # set in the view's inode numbers and handles, never in the mount's own
VIEW_NAME = ".b2fs-versions"
PENDING = "pending"  # the leaf of a version not uploaded yet (sorts after every time)
_MASK = VIRTUAL - 1


@dataclass(eq=False, slots=True)
class VNode:
    """A node of the view (duck-typed like ``b2fs.vfs.inodes.Node`` for the fs edge)."""

    ino: int
    path: str  # below the view's root: "" is the view itself, "a/f/2026-...Z" a version of a/f
    kind: Kind
    lookups: int = 0
    opens: int = 0
    gone: bool = False
    page_cache_id: str | None = None
    tree: bool = False  # a directory of the tree (now or once)
    file: bool = False  # holds the versions of the file of its name
    version: Version | None = None  # a version (a leaf that is not ``pending``)


class ViewNodes:
    """The view's inode numbers: a hash of the path with ``VIRTUAL`` set, probed on collision,
    kept while the kernel holds a lookup or a handle is open (as ``InodeTable``)."""

    def __init__(self) -> None:
        self._by_ino: dict[int, VNode] = {}
        self._by_path: dict[str, VNode] = {}

    def __len__(self) -> int:
        return len(self._by_ino)

    def get(self, ino: int) -> VNode:
        node = self._by_ino.get(ino)
        if node is None:
            raise Stale(f"inode {ino} of the versions view is not known (forgotten)")
        return node

    def find(self, ino: int) -> VNode | None:
        return self._by_ino.get(ino)

    def by_path(self, path: str) -> VNode | None:
        return self._by_path.get(path)

    def node(self, path: str, kind: Kind) -> VNode:
        node = self._by_path.get(path)
        if node is not None and node.kind is kind:
            return node
        ino = _hash_ino(path)
        while ino in self._by_ino:
            ino = VIRTUAL | ((ino + 1) & _MASK)
        node = self._by_path[path] = self._by_ino[ino] = VNode(ino, path, kind)
        return node

    def peek_ino(self, path: str) -> int:
        node = self._by_path.get(path)
        return node.ino if node is not None else _hash_ino(path)

    def forget(self, ino: int, count: int) -> None:
        node = self._by_ino.get(ino)
        if node is not None:
            node.lookups = max(0, node.lookups - count)
            self.drop_if_unused(node)

    def release(self, node: VNode) -> None:
        node.opens = max(0, node.opens - 1)
        self.drop_if_unused(node)

    def drop_if_unused(self, node: VNode) -> None:
        if node.lookups == 0 and node.opens == 0:
            self._by_ino.pop(node.ino, None)
            if self._by_path.get(node.path) is node:
                del self._by_path[node.path]


def _hash_ino(path: str) -> int:
    digest = hashlib.blake2b(b"versions\0" + path.encode("utf-8", "surrogateescape"),
                             digest_size=8).digest()  # fmt: skip
    return VIRTUAL | (int.from_bytes(digest, "little") & _MASK)


@dataclass(slots=True)
class Found:
    """What a path of the view is."""

    kind: Kind
    tree: bool = False
    file: bool = False
    version: Version | None = None
    pending: Entry | None = None  # the pending leaf: the overlay's entry of the file


@dataclass
class _DirHandle:
    node: VNode
    entries: list[tuple[str, Found, Entry]] | None = None


@dataclass
class _FileHandle:
    node: VNode
    stream: ReadStream | None = None
    local: Any = None  # the pending version (b2fs.writeback.dirty.DirtyFile)


def dir_mode_of(file_mode: int) -> int:
    """A file's versions directory: whoever may read the file may list it (r -> r-x, no w)."""
    readable = file_mode & 0o444
    return readable | (readable >> 2)


class VersionsView:
    def __init__(self, fs: FileSystem, listings: VersionListings, *, name: str = VIEW_NAME,
                 shown: bool = False) -> None:  # fmt: skip
        self.fs = fs
        self.ns = fs.ns
        self.listings = listings
        self.name = name
        self.shown = shown  # listed by readdir of the mount root
        self.defaults = fs.defaults
        self.nodes = ViewNodes()
        self.files: dict[int, _FileHandle] = {}
        self.dirs: dict[int, _DirHandle] = {}
        self._fh = itertools.count(1)

    # -- routing (the fs edge asks) ------------------------------------------------------

    @staticmethod
    def owns(number: int) -> bool:
        """An inode number or handle of the view."""
        return bool(number & VIRTUAL)

    def is_view(self, parent_ino: int, name: str) -> bool:
        return parent_ino == ROOT_INODE and name == self.name

    def root(self) -> tuple[VNode, Entry]:
        node = self.nodes.node("", Kind.DIR)
        node.tree = True
        return node, self._root_entry(self.name)

    # -- lookups and attributes ----------------------------------------------------------

    async def lookup(self, parent: VNode, name: str) -> tuple[Any, Entry] | None:
        if parent.kind is not Kind.DIR:
            raise NotADirectory(f"{self.name}/{parent.path} is not a directory")
        if name == ".":
            return parent, await self.getattr(parent)
        if name == "..":
            if not parent.path:
                root = self.fs.inodes.root
                return root, await self.fs.entry(root)
            up = split(parent.path)[0]
            found = await self._resolve(up)
            if found is None:
                raise NotFound(f"{self.name}/{up} is gone")
            return self._node(up, found), await self._entry(up, found, fetch=True)
        check_length(name)
        found = await self._child(parent.path, parent.tree, parent.file, name)
        if found is None:
            return None
        path = join(parent.path, name)
        return self._node(path, found), await self._entry(path, found, fetch=True)

    async def getattr(self, node: VNode) -> Entry:
        if not node.path:
            return self._root_entry(self.name)
        if node.version is not None:  # a version never changes
            return self._leaf_entry(split(node.path)[1], node.version)
        found = await self._resolve(node.path)
        if found is None or found.kind is not node.kind:
            raise NotFound(f"{self.name}/{node.path} is gone")
        node.tree, node.file = found.tree, found.file
        return await self._entry(node.path, found, fetch=True)

    def _node(self, path: str, found: Found) -> VNode:
        node = self.nodes.node(path, found.kind)
        node.tree, node.file, node.version = found.tree, found.file, found.version
        return node

    async def _resolve(self, path: str) -> Found | None:
        """What ``path`` is, from its parent's node when the kernel holds it, else from the
        view's root down."""
        if not path:
            return Found(Kind.DIR, tree=True)
        parent_path, name = split(path)
        parent = self.nodes.by_path(parent_path)
        if parent is not None and parent.kind is Kind.DIR:
            return await self._child(parent_path, parent.tree, parent.file, name)
        up = await self._resolve(parent_path)
        if up is None or up.kind is not Kind.DIR:
            return None
        return await self._child(parent_path, up.tree, up.file, name)

    async def _child(self, parent: str, tree: bool, file: bool, name: str) -> Found | None:
        """``name`` in the view directory ``parent`` (a tree directory and/or a file's
        versions)."""
        if file:
            if name == PENDING:
                pending = self._pending(parent)
                if pending is not None:
                    return Found(pending.kind, pending=pending)
            versions = await self._versions_of(parent)
            for leaf, v in zip(_names(versions), versions, strict=True):
                if leaf == name:
                    return Found(_kind(v), version=v)
        if tree:
            listing = await self._listing(parent)
            path = join(parent, name)
            local = self.ns.overlay.entry(path)
            is_tree = name in listing.folders or (local is not None and local.kind is Kind.DIR)
            is_file = name in listing.files or (local is not None and not_uploaded(local.local))
            if is_tree or is_file:
                return Found(Kind.DIR, tree=is_tree, file=is_file)
        return None

    async def _listing(self, path: str) -> VersionListing:
        return await self.listings.get(self.ns.stored_dir(path))

    async def _versions_of(self, path: str) -> list[Version]:
        parent, name = split(path)
        return (await self._listing(parent)).files.get(name, [])

    def _pending(self, path: str) -> Entry | None:
        entry = self.ns.overlay.entry(path)
        return entry if entry is not None and not_uploaded(entry.local) else None

    # -- entries -------------------------------------------------------------------------

    def _root_entry(self, name: str) -> Entry:
        d = self.defaults
        return Entry(name, Kind.DIR, "", mtime_ns=self.fs.mounted_at_ns, mode=d.dir_mode & 0o555,
                     uid=d.uid, gid=d.gid)  # fmt: skip

    async def _entry(self, path: str, found: Found, fetch: bool,
                     versions: list[Version] | None = None) -> Entry:  # fmt: skip
        name = split(path)[1]
        if found.version is not None:
            return self._leaf_entry(name, found.version)
        if found.pending is not None:
            e = found.pending
            mode = e.mode if e.mode is not None else self.defaults.file_mode
            return Entry(name, e.kind, e.stored, size=e.size, mtime_ns=e.mtime_ns,
                         mode=mode & 0o555, uid=e.uid, gid=e.gid, atime_ns=e.atime_ns,
                         ctime_ns=e.ctime_ns, rdev=e.rdev)  # fmt: skip
        if found.file:
            if versions is None:
                versions = await self._versions_of(path)
            return self._file_dir_entry(name, path, versions)
        return await self._tree_entry(name, path, fetch)

    def _leaf_entry(self, name: str, v: Version) -> Entry:
        d = self.defaults
        upload_ns = v.upload_ms * 1_000_000
        if v.hidden:
            return Entry(name, Kind.FILE, v.stored, mtime_ns=upload_ns, mode=0o444, uid=d.uid,
                         gid=d.gid)  # fmt: skip
        a = read_info(v.file_info, v.upload_ms)
        mode = a.mode if a.mode is not None else d.file_mode
        return Entry(name, a.kind, v.stored, size=v.size, mtime_ns=a.mtime_ns, mode=mode & 0o555,
                     uid=a.uid, gid=a.gid, atime_ns=a.atime_ns, ctime_ns=upload_ns, rdev=a.rdev,
                     remote=Remote(v.file_id, v.stored_size, v.file_info, v.content_type))  # fmt: skip

    def _file_dir_entry(self, name: str, path: str, versions: list[Version]) -> Entry:
        """A file's versions directory: the owner and mode of its newest version, the time
        of its latest change."""
        d = self.defaults
        newest = next((v for v in versions if not v.hidden), None)
        a = read_info(newest.file_info, newest.upload_ms) if newest is not None else None
        mode = a.mode if a is not None and a.mode is not None else d.file_mode
        changed = max((v.upload_ms for v in versions), default=0) * 1_000_000
        pending = self._pending(path)
        if pending is not None:
            changed = max(changed, pending.mtime_ns)
            if pending.mode is not None:
                mode = pending.mode
        if not changed:
            changed = self.fs.mounted_at_ns
        return Entry(name, Kind.DIR, "", mtime_ns=changed, mode=dir_mode_of(mode),
                     uid=a.uid if a is not None else None,
                     gid=a.gid if a is not None else None)  # fmt: skip

    async def _tree_entry(self, name: str, path: str, fetch: bool) -> Entry:
        """A directory of the tree: its marker's owner, mode (no w) and times, when known
        (its own listing; fetched when ``fetch``), else the mount's defaults."""
        d = self.defaults
        stored = self.ns.stored_dir(path)
        listing = await self.listings.get(stored) if fetch else self.listings.cached(stored)
        marker = listing.marker if listing is not None else None
        if marker is None:
            return Entry(name, Kind.DIR, "", mtime_ns=self.fs.mounted_at_ns,
                         mode=d.dir_mode & 0o555, uid=d.uid, gid=d.gid,
                         known=listing is not None)  # fmt: skip
        a = read_info(marker.file_info, marker.upload_ms)
        mode = a.mode if a.mode is not None else d.dir_mode
        return Entry(name, Kind.DIR, "", mtime_ns=a.mtime_ns, mode=mode & 0o555, uid=a.uid,
                     gid=a.gid, atime_ns=a.atime_ns, ctime_ns=a.ctime_ns)  # fmt: skip

    # -- directories ---------------------------------------------------------------------

    def opendir(self, node: VNode) -> int:
        if node.kind is not Kind.DIR:
            raise NotADirectory(f"{self.name}/{node.path} is not a directory")
        fh = VIRTUAL | next(self._fh)
        self.dirs[fh] = _DirHandle(node)
        node.opens += 1
        return fh

    def releasedir(self, fh: int) -> None:
        handle = self.dirs.pop(fh, None)
        if handle is not None:
            self.nodes.release(handle.node)

    async def dir_entries(self, fh: int, start: int) -> Iterator[tuple[int, Any, Entry, bool]]:
        """As ``FileSystem.dir_entries``: (next offset, node, entry, counted) from ``start``,
        '.' and '..' first, offsets into a snapshot taken at the first read."""
        handle = self.dirs.get(fh)
        if handle is None:
            raise BadHandle(f"directory handle {fh} of the versions view is not open")
        if handle.entries is None or start == 0:
            handle.entries = await self._children(handle.node)
        return self._entries_from(handle.node, handle.entries, start)

    async def _children(self, node: VNode) -> list[tuple[str, Found, Entry]]:
        path = node.path
        here = self._root_entry(".") if not path else Entry(".", Kind.DIR, "", mode=0o555)
        if path:
            found = await self._resolve(path)
            if found is not None:
                here = await self._entry(path, found, fetch=False)
                here.name = "."
        up = Entry("..", Kind.DIR, "", mtime_ns=self.fs.mounted_at_ns,
                   mode=self.defaults.dir_mode & 0o555)  # fmt: skip
        out: dict[str, tuple[Found, Entry]] = {}
        if node.tree:
            listing = await self._listing(path)
            local = self.ns.overlay.children(path)
            names = set(listing.folders) | set(listing.files)
            names.update(n for n, e in local.items() if e.kind is Kind.DIR or not_uploaded(e.local))
            for name in names:
                child = join(path, name)
                e = local.get(name)
                found = Found(
                    Kind.DIR,
                    tree=name in listing.folders or (e is not None and e.kind is Kind.DIR),
                    file=name in listing.files or (e is not None and not_uploaded(e.local)),
                )
                versions = listing.files.get(name, [])
                out[name] = found, await self._entry(child, found, False, versions)
        if node.file:
            versions = await self._versions_of(path)
            for leaf, v in zip(_names(versions), versions, strict=True):
                out[leaf] = Found(_kind(v), version=v), self._leaf_entry(leaf, v)
            pending = self._pending(path)
            if pending is not None:
                found = Found(pending.kind, pending=pending)
                out[PENDING] = found, await self._entry(join(path, PENDING), found, False)
        dots = [(".", Found(Kind.DIR), here), ("..", Found(Kind.DIR), up)]
        return dots + [(name, *out[name]) for name in sorted(out)]

    def _entries_from(self, node: VNode, entries: list[tuple[str, Found, Entry]],
                      start: int) -> Iterator[tuple[int, Any, Entry, bool]]:  # fmt: skip
        for i in range(start, len(entries)):
            name, found, entry = entries[i]
            if i == 0:
                yield 1, VNode(node.ino, node.path, Kind.DIR), entry, False
            elif i == 1:
                if node.path:
                    up = split(node.path)[0]
                    yield 2, VNode(self.nodes.peek_ino(up), up, Kind.DIR), entry, False
                else:
                    yield 2, self.fs.inodes.root, entry, False
            else:
                yield i + 1, self._node(join(node.path, name), found), entry, True

    # -- files ---------------------------------------------------------------------------

    async def open(self, node: VNode, flags: int) -> tuple[int, bool]:
        """Open a version for reading; returns (fh, keep the kernel's page cache)."""
        if node.kind is Kind.DIR:
            raise IsADirectory(f"{self.name}/{node.path} is a directory")
        handle = _FileHandle(node)
        keep = False
        v = node.version
        if v is None:  # the pending leaf
            pending = self._pending(split(node.path)[0])
            if pending is None:
                raise NotFound(f"{self.name}/{node.path}: uploaded since (see its new version)")
            handle.local = pending.local
            handle.local.readers += 1
        elif not v.hidden:
            handle.stream = ReadStream(self._object(node.path, v))
            keep = node.page_cache_id == v.file_id
            node.page_cache_id = v.file_id
        fh = VIRTUAL | next(self._fh)
        self.files[fh] = handle
        node.opens += 1
        return fh, keep

    def _object(self, path: str, v: Version) -> ObjectRef:
        return ObjectRef(v.file_id, v.size, v.stored_size, v.file_info,
                         name=f"{self.fs.shown(split(path)[0])} ({v.file_id})")  # fmt: skip

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self.files.get(fh)
        if handle is None:
            raise BadHandle(f"file handle {fh} of the versions view is not open")
        if handle.local is not None:
            return await self.fs.read_pending(handle.local, offset, size)
        if handle.stream is None:
            return b""
        return await self.fs.reader.read(handle.stream, offset, size)

    def release(self, fh: int) -> None:
        handle = self.files.pop(fh, None)
        if handle is None:
            return
        self.nodes.release(handle.node)
        if handle.local is not None:
            handle.local.readers -= 1
            self.ns.overlay.reader_done(handle.local)

    async def readlink(self, node: VNode) -> str:
        entry = await self.getattr(node)
        if entry.kind is not Kind.SYMLINK:
            raise InvalidArgument(f"{self.name}/{node.path} is not a symbolic link")
        v = node.version
        if v is None:
            pending = self._pending(split(node.path)[0])
            if pending is None:
                raise NotFound(f"{self.name}/{node.path}: uploaded since")
            data = await pending.local.read(0, pending.size)  # type: ignore[attr-defined]
        else:
            data = await self.fs.reader.read(ReadStream(self._object(node.path, v)), 0, v.size)
        return bytes(data).decode("utf-8", "surrogateescape")

    def status(self) -> dict[str, Any]:
        return {"inodes": len(self.nodes), "fetches": self.listings.fetches}


def _names(versions: list[Version]) -> list[str]:
    return version_names([(v.upload_ms, v.hidden) for v in versions])


def _kind(v: Version) -> Kind:
    return Kind.FILE if v.hidden else read_info(v.file_info, v.upload_ms).kind
