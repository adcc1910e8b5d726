"""Inode numbers: a stable number per path for the life of a mount, and the kernel's references.

B2 has no inodes, so a node's number is a 64-bit hash of its path (the same
path gets the same number after the kernel forgets it, and after a remount),
with a probe on the rare collision.  A node stays in the table while the
kernel holds a lookup reference to it or a handle is open on it; readdir's
entries (pyfuse3 always answers readdirplus) count as lookups too, so each
node is kept small.  Renames re-point nodes, so an open file keeps its number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from b2fs.posix.entries import Kind
from b2fs.posix.errors import Stale

ROOT_INODE = 1


@dataclass(eq=False, slots=True)
class Node:
    ino: int
    path: str  # plaintext path relative to the mount root; "" is the root
    kind: Kind
    lookups: int = 0
    opens: int = 0
    page_cache_id: str | None = None  # fileId whose pages the kernel may hold
    gone: bool = False  # unlinked or replaced: its path names something else now


class InodeTable:
    """Maps inode numbers to nodes and paths to nodes."""

    def __init__(self) -> None:
        self.root = Node(ROOT_INODE, "", Kind.DIR, lookups=1)
        self._by_ino: dict[int, Node] = {ROOT_INODE: self.root}
        self._by_path: dict[str, Node] = {"": self.root}

    def __len__(self) -> int:
        return len(self._by_ino)

    def get(self, ino: int) -> Node:
        node = self._by_ino.get(ino)
        if node is None:
            raise Stale(f"inode {ino} is not known (forgotten or never issued)")
        return node

    def by_path(self, path: str) -> Node | None:
        return self._by_path.get(path)

    def node(self, path: str, kind: Kind) -> Node:
        """The node for ``path``; a path whose kind changed gets a new number."""
        node = self._by_path.get(path)
        if node is not None:
            if node.kind is kind:
                return node
            del self._by_path[path]  # the kernel may still hold the old one: it goes stale
        ino = _hash_ino(path)
        while ino in self._by_ino or ino <= ROOT_INODE:
            ino = (ino + 1) & 0x7FFF_FFFF_FFFF_FFFF
        node = Node(ino, path, kind)
        self._by_ino[ino] = node
        self._by_path[path] = node
        return node

    def nodes_below(self, path: str) -> list[Node]:
        """The nodes at and below ``path`` (every node for "")."""
        if not path:
            return list(self._by_path.values())
        inside = path + "/"
        return [n for p, n in self._by_path.items() if p == path or p.startswith(inside)]

    def peek_ino(self, path: str) -> int:
        """The number ``path`` has, or would get, without making a node (for '..' entries)."""
        node = self._by_path.get(path)
        return node.ino if node is not None else _hash_ino(path) or ROOT_INODE

    def forget(self, ino: int, count: int) -> None:
        node = self._by_ino.get(ino)
        if node is None or node is self.root:
            return
        node.lookups = max(0, node.lookups - count)
        self.drop_if_unused(node)

    def release(self, node: Node) -> None:
        node.opens = max(0, node.opens - 1)
        self.drop_if_unused(node)

    def drop_if_unused(self, node: Node) -> None:
        """Forget a node neither the kernel nor a handle holds."""
        if node.lookups == 0 and node.opens == 0:
            self._by_ino.pop(node.ino, None)
            if self._by_path.get(node.path) is node:
                del self._by_path[node.path]

    def unlinked(self, path: str) -> None:
        """The path no longer names its node (the node lives on while referenced)."""
        node = self._by_path.pop(path, None)
        if node is not None:
            node.gone = True

    def rename(self, old: str, new: str, tree: bool = True) -> None:
        """Re-point ``old`` and, for a directory (``tree``), everything below it, to ``new``.
        A file's rename touches two paths, not the whole table (git renames every object)."""
        if not tree:
            replaced = self._by_path.pop(new, None)
            if replaced is not None:
                replaced.gone = True
            node = self._by_path.pop(old, None)
            if node is not None:
                node.path = new
                self._by_path[new] = node
            return
        for path in [p for p in self._by_path if p == new or p.startswith(new + "/")]:
            self._by_path.pop(path).gone = True  # replaced: the kernel's nodes there go stale
        moved = [(p, n) for p, n in self._by_path.items() if p == old or p.startswith(old + "/")]
        for path, _ in moved:
            del self._by_path[path]
        for path, node in moved:
            node.path = new + path[len(old) :]
            self._by_path[node.path] = node


def _hash_ino(path: str) -> int:
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
