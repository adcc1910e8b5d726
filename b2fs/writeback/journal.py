"""The write-back journal: every acknowledged change not yet in B2, durable in SQLite.

One row per pending file version (``pending``): where it goes, its staging
file, its size and attributes, the remote version it was derived from (whose
unchanged blocks may still be copied server-side), and, while a large-file
upload is under way, the large file's id and the parts done.  One row per
multi-step namespace change (``ops``: a directory rename) until it is done.

A small file's bytes are in its row (``content``: ``b2fs.writeback.inline``),
so it needs no staging file.  A row is written before ``close`` (the FUSE flush) returns, in SQLite's WAL
with ``synchronous=NORMAL``: the commit is in the kernel's page cache, so it
survives the mount process dying (``kill -9``) as the staging file does.  It
survives the machine once *synced*: every row carries a write sequence number,
and the write-back's background sync (every few seconds) fsyncs the staging
files, then records the last number written with a WAL sync (``mark_synced``):
every row up to it is on disk, with its staging file.  With ``-o sync_close``
each row is written synced at ``close`` (``synchronous=FULL`` throughout);
``fsync`` makes it moot (B2 holds the content: the row says ``uploaded``).  The journal keeps the machine's
boot id: at a mount after a reboot, a row that was never synced may point at
a staging file that lost its last writes, and is dropped with an error line
rather than uploaded (``rebooted``).  At the next mount the rows are replayed:
uploads resume, renames complete, rows whose content B2 already holds are
dropped (no duplicate upload), staging files with no row are removed.  In an encrypted mount every row is sealed by the content
codec (as a tiny object: a fresh salt per row), so the journal holds no
plaintext path; a journal with rows this mount cannot read (written with
or without encryption, or with another vault) is refused at start
(``JournalError``), never dropped.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from b2fs.codec import b64

SEALED = "sealed:"  # prefix of a row sealed by an encrypted mount
Row = tuple[str, str, Any]  # the columns of a pending row: path, record, content (or KEEP)
KEEP = object()  # a row's content as it is (only its record changed)


class JournalError(Exception):
    """A journal this mount cannot replay; the message says what to do."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    record TEXT NOT NULL,
    content BLOB,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    args TEXT NOT NULL
);
"""


@dataclass
class PendingRecord:
    """What must reach B2 for one pending file version (JSON in the ``pending`` table)."""

    path: str  # plaintext mount path, for the overlay after a restart (sealed when encrypted)
    stored: str  # B2 file name to upload to
    staging: str  # staging file name, in the staging directory
    size: int
    mtime_ns: int
    kind: str = "file"  # or "symlink", "fifo", "chr", "blk", "sock", or "dir" (a marker)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None  # None: as mtime
    ctime_ns: int | None = None  # None: as mtime
    rdev: int = 0
    long_info: dict[str, str] | None = None
    base_file_id: str | None = None  # remote version whose unfilled blocks are still valid
    base_stored_size: int = 0
    base_plain_size: int = 0
    base_limit: int = 0  # bytes of the base still part of this file
    base_info: dict[str, str] = field(default_factory=dict)
    base_type: str | None = None  # the base's content type (a copy with new file info keeps it)
    filled: list[int] = field(default_factory=list)  # blocks present in staging
    hide_after: list[str] = field(default_factory=list)  # stored names to hide once uploaded
    replaces: list[list[str]] = field(default_factory=list)  # [name, fileId] deleted once uploaded
    large: dict[str, Any] | None = None  # {"file_id":..., "parts": {n: sha1}, "plan": [...]}
    attempts: int = 0
    last_error: str | None = None
    synced: bool = False  # written synced (sync_close): staging fsynced, the row durable
    uploaded: str | None = None  # the fileId B2 holds for exactly this content (fsync did it)


def boot_id() -> str:
    """This boot of the machine (a reboot, or a crash and restart, changes it)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


class Journal:
    def __init__(self, path: str, seal: Any = None, sync_close: bool = False) -> None:
        self.path = path
        self.seal = seal if seal is not None and seal.encrypted else None  # a content codec
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if sync_close else 'NORMAL'}")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(pending)")}
        if "content" not in columns:  # a journal of an earlier b2fs
            self.db.execute("ALTER TABLE pending ADD COLUMN content BLOB")
            self.db.execute("ALTER TABLE pending ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
        self._seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM pending").fetchone()[0]
        row = self.db.execute("SELECT value FROM meta WHERE key='synced'").fetchone()
        self._synced = int(row[0]) if row else 0  # rows written up to here survive a power cut
        row = self.db.execute("SELECT value FROM meta WHERE key='id'").fetchone()
        if row is None:
            self.id = uuid.uuid4().hex
            self.db.execute("INSERT INTO meta VALUES ('id', ?)", (self.id,))
        else:
            self.id = row[0]
        self._check()
        booted = boot_id()
        row = self.db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
        self.rebooted = row is not None and row[0] != booted  # since the last mount wrote here
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (booted,))
        # A second connection for what may be lost in a power cut without losing data (a
        # finished upload's row: at worst it is uploaded again; parts done: at worst re-sent).
        self.quick = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.quick.execute("PRAGMA synchronous=OFF")
        # A third one whose commits sync the WAL, and with it every commit before them.
        self.durable = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.durable.execute("PRAGMA synchronous=FULL")
        for db in (self.db, self.quick, self.durable):
            db.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.Lock()  # rows are written from the loop and from worker threads

    def close(self) -> None:
        self.db.close()
        self.quick.close()
        self.durable.close()

    # -- sealing (encrypted mounts) ------------------------------------------------------

    def _dump(self, value: Any) -> str:
        text = json.dumps(value, separators=(",", ":"))
        if self.seal is None:
            return text
        return SEALED + b64.encode(self._seal(text.encode()))

    def _load(self, text: str) -> Any:
        sealed = text.startswith(SEALED)
        if sealed != (self.seal is not None):
            raise ValueError("sealed" if sealed else "not sealed")
        if not sealed:
            return json.loads(text)
        return json.loads(self._unseal(b64.decode(text[len(SEALED) :])))

    def _seal(self, raw: bytes) -> bytes:
        """``raw`` as a tiny object of the content codec (a fresh salt, so a fresh key)."""
        enc = self.seal.encryptor()
        return enc.read_stored(lambda o, n: raw[o : o + n], len(raw), 0, enc.stored_size(len(raw)))

    def _unseal(self, blob: bytes) -> bytes:
        n = self.seal.header_size()
        return self.seal.decryptor(blob[:n]).decode(0, blob[n:], self.seal.plain_size(len(blob)))

    def _check(self) -> None:
        """Refuse a journal whose rows this mount cannot read (before anything is replayed)."""
        rows = self.db.execute("SELECT record FROM pending UNION ALL SELECT args FROM ops")
        for (text,) in rows.fetchall():
            try:
                self._load(text)
            except Exception:  # noqa: BLE001 - any failure means: not ours to replay
                how = "without encryption" if self.seal else "with encryption"
                raise JournalError(
                    f"the journal {self.path} holds pending changes this mount cannot read "
                    f"(written {how}, or with another vault): mount as before so they "
                    "upload, or use another cache directory"
                ) from None

    def _exec(self, sql: str, args: tuple[Any, ...] = (), durable: bool | None = True
              ) -> sqlite3.Cursor:  # fmt: skip
        """Run one statement (``durable`` None: with a WAL sync); a full disk is ENOSPC for
        the caller, like a failed write."""
        db = self.durable if durable is None else self.db if durable else self.quick
        try:
            with self._lock:
                return db.execute(sql, args)
        except sqlite3.OperationalError as e:
            if "full" in str(e):
                raise OSError(errno.ENOSPC, f"journal {self.path}: disk full") from None
            raise OSError(errno.EIO, f"journal {self.path}: {e}") from None

    # -- pending uploads -----------------------------------------------------------------

    def put(self, row_id: int | None, record: PendingRecord, content: Any = None,
            durable: bool | None = True) -> int:  # fmt: skip
        """Write a row (with the file's bytes when they are staged inline); ``durable=False``
        for progress whose loss only repeats work, ``None`` with a WAL sync (it and every row
        before it then survive a power cut)."""
        return self.put_encoded(row_id, self.encode(record, content), durable=durable)

    def encode(self, record: PendingRecord, content: Any = None) -> Row:
        """The row's columns: computed on the loop, written anywhere (``content``: the bytes of
        an inline file, None, or KEEP: as the row has them already)."""
        if content is not None and content is not KEEP and self.seal is not None:
            content = self._seal(content)
        # vars(): the record's own dict (asdict's deep copy costs more than the JSON)
        return (record.path if self.seal is None else ""), self._dump(vars(record)), content

    def put_encoded(self, row_id: int | None, row: Row, durable: bool | None = True) -> int:
        path, data, content = row
        with self._lock:
            self._seq += 1
            seq = self._seq
        if row_id is None:
            cur = self._exec("INSERT INTO pending (path, record, content, seq) VALUES (?, ?, ?, ?)",
                             (path, data, None if content is KEEP else content, seq))  # fmt: skip
            return int(cur.lastrowid or 0)
        if content is KEEP:
            self._exec("UPDATE pending SET path=?, record=?, seq=? WHERE id=?",
                       (path, data, seq, row_id), durable)  # fmt: skip
        else:
            self._exec("UPDATE pending SET path=?, record=?, content=?, seq=? WHERE id=?",
                       (path, data, content, seq, row_id), durable)  # fmt: skip
        return row_id

    @property
    def last_seq(self) -> int:
        """The sequence number of the last row written."""
        return self._seq

    def mark_synced(self, seq: int) -> None:
        """Every row written up to ``seq`` is on disk with its staging file: say so, with a WAL
        sync (which makes those rows' own commits durable too)."""
        self._exec("INSERT OR REPLACE INTO meta VALUES ('synced', ?)", (str(seq),), durable=None)
        self._synced = max(self._synced, seq)

    def delete(self, row_id: int) -> None:
        """Forget a row (its upload is done): not synced, see ``quick``."""
        self._exec("DELETE FROM pending WHERE id=?", (row_id,), durable=False)

    def pending(self) -> list[tuple[int, PendingRecord, bytes | None, bool]]:
        """(row id, record, inline bytes or None, synced) of every row, oldest first."""
        rows = self._exec("SELECT id, record, content, seq FROM pending ORDER BY id").fetchall()
        out = []
        for rid, data, content, seq in rows:
            if content is not None and self.seal is not None:
                content = self._unseal(content)
            record = PendingRecord(**self._load(data))
            out.append((rid, record, content, record.synced or seq <= self._synced))
        return out

    # -- multi-step operations -----------------------------------------------------------

    def add_op(self, kind: str, args: dict[str, Any]) -> int:
        cur = self._exec("INSERT INTO ops (kind, args) VALUES (?, ?)", (kind, self._dump(args)))
        return int(cur.lastrowid or 0)

    def update_op(self, op_id: int, args: dict[str, Any]) -> None:
        """Record how far a multi-step operation got (its next step after a crash)."""
        self._exec("UPDATE ops SET args=? WHERE id=?", (self._dump(args), op_id))

    def done_op(self, op_id: int) -> None:
        self._exec("DELETE FROM ops WHERE id=?", (op_id,))

    def ops(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._exec("SELECT id, kind, args FROM ops ORDER BY id").fetchall()
        return [(rid, kind, self._load(args)) for rid, kind, args in rows]
