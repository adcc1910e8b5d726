"""A generated tree shaped like a source repository, as a tarball: the same bytes from the
same seed, so that runs (and machines) compare.

Used by ``bench/mount_write.py`` (its ``gen``, ``git`` and ``readback`` workloads); not a
benchmark itself.  The default shape (7,200 files in 600 directories, ~60 MB) is that of a
mid-sized project:

- directories: a tree under ``repo/`` grown one directory at a time, each under a parent
  drawn with a preference for shallow ones, at most ``max_depth`` levels deep (``repo/`` is
  level 1);
- files: spread over the directories unevenly (a few directories hold many files, as
  ``src/`` or ``tests/`` do); names with source-like extensions, 2 % executable;
- sizes: 3 % empty; most 1-20 KiB (log-normal, median 4 KiB) with a long tail up to 1 MiB;
  a few (one per 1,400 files, at least one) of 2-8 MiB;
- content: text (words from a fixed vocabulary, one line of the file's path first, so that
  no two non-empty files are alike) and, for the few large files, random bytes, as a repo's
  images and archives are.

The tarball is written straight from memory (no local tree), members in the order
``tar c`` of a real tree would have them (a directory, its files, its subdirectories), with
one fixed mtime, root ownership and modes 0755/0644.
"""

from __future__ import annotations

import io
import math
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1 << 20
MTIME = 1_700_000_000  # 2023-11-14: one fixed time for every member
_WORDS = ("static int void return if else for while struct self def class import from const "
         "let var fn pub mod use impl match None True False null nil err ok value data buf len "
         "size count index key name path file node list map set get put add remove update "
         "config options result error test assert check parse write read open close init "
         "main run start stop the a of to in is for and or not with as by on")  # fmt: skip
WORDS = _WORDS.split()
_DIR_NAMES = ("src lib include tests docs tools scripts cmd internal pkg core util utils api "
             "server client common config build assets examples vendor third_party drivers net "
             "fs mm kernel arch crypto io ui web data models views handlers plugins "
             "contrib test bench")  # fmt: skip
DIR_NAMES = _DIR_NAMES.split()
EXTS = (".c", ".h", ".py", ".go", ".rs", ".js", ".ts", ".md", ".txt", ".json", ".yml", ".sh")


@dataclass(frozen=True)
class Member:
    path: str  # under repo/, no trailing slash
    size: int  # -1 for a directory
    mode: int


@dataclass(frozen=True)
class GenTree:
    """The tree's members in tar order, and the figures a report prints."""

    members: list[Member]
    seed: int

    @property
    def files(self) -> list[Member]:
        return [m for m in self.members if m.size >= 0]

    @property
    def dirs(self) -> list[Member]:
        return [m for m in self.members if m.size < 0]

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.files)

    def describe(self) -> str:
        sizes = sorted(m.size for m in self.files)
        depth = max(m.path.count("/") + 1 for m in self.dirs)
        small = sum(KiB <= s <= 20 * KiB for s in sizes)
        return (f"{len(sizes):,} files in {len(self.dirs):,} directories, {depth} levels deep, "
                f"{self.bytes / 1e6:.0f} MB (seed {self.seed}): {sizes.count(0)} empty, "
                f"{100 * small / len(sizes):.0f} % of 1-20 KiB, median "
                f"{sizes[len(sizes) // 2] / KiB:.1f} KiB, "
                f"{sum(s >= MiB for s in sizes)} of 1 MiB or more, largest "
                f"{sizes[-1] / MiB:.1f} MiB")  # fmt: skip


def file_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.03:
        return 0
    return min(MiB, max(1, int(rng.lognormvariate(math.log(4 * KiB), 1.0))))


def generate(seed: int = 1, files: int = 7200, dirs: int = 600, max_depth: int = 8) -> GenTree:
    """The tree for ``seed``: ``files`` files in ``dirs`` directories (``repo/`` included)."""
    rng = random.Random(seed)
    depth = {"repo": 1}
    children: dict[str, list[str]] = {"repo": []}
    order = ["repo"]
    while len(order) < dirs:
        open_ = [d for d in order if depth[d] < max_depth]
        parent = rng.choices(open_, [0.55 ** depth[d] for d in open_])[0]
        base = rng.choice(DIR_NAMES)
        name = f"{parent}/{base}"
        n = 1
        while name in depth:
            n += 1
            name = f"{parent}/{base}{n}"
        depth[name] = depth[parent] + 1
        children[name] = []
        children[parent].append(name)
        order.append(name)
    weight = [rng.paretovariate(1.5) for _ in order]
    in_dir: dict[str, list[Member]] = {d: [] for d in order}
    n_large = max(1, files // 1400)
    large = set(rng.sample(range(files), n_large))
    for i in range(files):
        d = rng.choices(order, weight)[0]
        size = rng.randint(2 * MiB, 8 * MiB) if i in large else file_size(rng)
        name = f"{d}/{rng.choice(WORDS)}_{i}{rng.choice(EXTS)}"
        in_dir[d].append(Member(name, size, 0o755 if rng.random() < 0.02 else 0o644))

    members: list[Member] = []

    def walk(d: str) -> None:
        members.append(Member(d, -1, 0o755))
        members.extend(sorted(in_dir[d], key=lambda m: m.path))
        for sub in sorted(children[d]):
            walk(sub)

    walk("repo")
    return GenTree(members, seed)


def text_pool(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of source-like lines (words, indents, newlines)."""
    words = rng.choices(WORDS, k=size // 4)
    lines, line, n = [], [], 0
    for w in words:
        line.append(w)
        if len(line) >= rng.randint(3, 12):
            text = "    " * rng.randint(0, 3) + " ".join(line) + "\n"
            lines.append(text)
            n += len(text)
            line = []
            if n >= size:
                break
    return "".join(lines).encode()[:size]


def write_tarball(tree: GenTree, path: Path) -> None:
    """The tree as an uncompressed tar at ``path`` (deterministic: same seed, same bytes)."""
    rng = random.Random(tree.seed + 1)
    pool = text_pool(rng, 4 * MiB)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for m in tree.members:
            info = tarfile.TarInfo(m.path)
            info.mtime, info.mode, info.uid, info.gid = MTIME, m.mode, 0, 0
            info.uname = info.gname = "root"
            if m.size < 0:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            if m.size > MiB:
                data = rng.randbytes(m.size)
            else:
                head = f"// {m.path}\n".encode()
                start = rng.randrange(0, len(pool) - m.size)
                data = (head + pool[start : start + m.size])[: m.size]
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":  # print the default tree's shape
    import sys

    t = generate(*(int(a) for a in sys.argv[1:2]))
    print(t.describe())
