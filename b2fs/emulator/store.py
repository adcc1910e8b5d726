"""Persistent state of the emulator: metadata in SQLite (WAL), contents as files.

Layout of the data directory: ``meta.sqlite`` (keys, tokens, buckets, file versions,
large-file parts) and ``blobs/xx/<random>`` (one file per simple upload or per
large-file part; each version owns its blobs, copies are hard links). Everything
survives a restart. Besides B2's own fields, a version keeps its server-side
encryption (``sse``: mode, SSE-C key MD5 and a hash of the key, never the key), its
retention and legal hold, and its replication status; a bucket keeps its default
retention, replication configuration and notification rules (JSON texts, checked by
the modules that own them). Data directories of older versions gain these columns
at open. This module knows nothing of HTTP or of B2's JSON shapes: ``api`` and
``transfer`` call it, ``shapes`` renders its rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys(
    key_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, name TEXT NOT NULL,
    capabilities TEXT NOT NULL, bucket_ids TEXT, name_prefix TEXT,
    expires_ms INTEGER, master INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens(
    token_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, key_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL, bucket_id TEXT, file_id TEXT, name_prefix TEXT);
CREATE TABLE IF NOT EXISTS buckets(
    bucket_id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
    info TEXT NOT NULL, cors TEXT NOT NULL, lifecycle TEXT NOT NULL,
    revision INTEGER NOT NULL, sse TEXT NOT NULL, file_lock INTEGER NOT NULL,
    default_retention TEXT, replication TEXT, notifications TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS files(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, file_id TEXT UNIQUE NOT NULL,
    bucket_id TEXT NOT NULL, name TEXT NOT NULL, action TEXT NOT NULL,
    size INTEGER NOT NULL, sha1 TEXT, md5 TEXT, content_type TEXT,
    info TEXT NOT NULL, upload_ms INTEGER NOT NULL, blobs TEXT NOT NULL,
    sse TEXT, retention TEXT, legal_hold TEXT, replication TEXT);
CREATE INDEX IF NOT EXISTS files_by_name ON files(bucket_id, name, seq);
CREATE TABLE IF NOT EXISTS parts(
    file_id TEXT NOT NULL, part_number INTEGER NOT NULL, size INTEGER NOT NULL,
    sha1 TEXT NOT NULL, upload_ms INTEGER NOT NULL, blob TEXT NOT NULL,
    PRIMARY KEY(file_id, part_number));
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS files_pending ON files(seq) WHERE replication='pending';
"""

# Columns added after the first release: (table, column, declaration). Added at open when
# missing, so a data directory of an older version keeps working.
ADDED_COLUMNS = [
    ("buckets", "default_retention", "TEXT"),
    ("buckets", "replication", "TEXT"),
    ("buckets", "notifications", "TEXT NOT NULL DEFAULT '[]'"),
    ("files", "sse", "TEXT"),
    ("files", "retention", "TEXT"),
    ("files", "legal_hold", "TEXT"),
    ("files", "replication", "TEXT"),
]
FILE_EXTRAS = ("sse", "retention", "legal_hold", "replication")

# What this server implements: the master key has exactly these, so a client that looks
# at its capabilities to decide what to try sees only what works here.
CAPABILITIES = [
    "listKeys", "writeKeys", "deleteKeys", "listBuckets", "writeBuckets", "deleteBuckets",
    "readBucketEncryption", "writeBucketEncryption", "readBucketRetentions",
    "writeBucketRetentions", "readFileRetentions", "writeFileRetentions",
    "readFileLegalHolds", "writeFileLegalHolds", "bypassGovernance", "listFiles",
    "readFiles", "shareFiles", "writeFiles", "deleteFiles", "readBucketReplications",
    "writeBucketReplications", "readBucketNotifications", "writeBucketNotifications",
]  # fmt: skip
# B2's capabilities that gate only its S3-compatible API (not served here): b2_create_key
# accepts them, as B2 does (b2 key create --all-capabilities asks for them), they gate nothing.
S3_ONLY_CAPABILITIES = ["listAllBucketNames", "readBuckets"]
ALL_CAPABILITIES = CAPABILITIES + S3_ONLY_CAPABILITIES

Row = sqlite3.Row


def now_ms() -> int:
    return int(time.time() * 1000)


def token_hash(token: str) -> str:
    """Tokens and keys are stored hashed: the database holds no usable secret."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The emulator's database and blob directory. One instance per server process."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        self.db = sqlite3.connect(
            self.root / "meta.sqlite", isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self._add_columns()
        self.db.executescript(INDEXES)
        account = self.meta("account_id")
        if account is None:
            account = secrets.token_hex(6)
            self.db.execute("INSERT INTO meta VALUES('account_id', ?)", (account,))
        self.account_id: str = account

    def _add_columns(self) -> None:
        """Bring the tables of an older data directory up to date (new columns)."""
        for table, column, decl in ADDED_COLUMNS:
            cols = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if cols and column not in cols:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: writers never interleave)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def meta(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (k,)).fetchone()
        return row[0] if row else None

    # ---- ids and blobs ------------------------------------------------------------

    def new_file_id(self, bucket_id: str, large: bool = False) -> str:
        """B2's shape: ``4_z<bucket>_f<kind><15 hex>_d<date>_m<time>_c..._v..._t..._u0<ms>``,
        where the kind digit after ``_f`` is 1 for a simple upload (or copy) and 2 for a
        large file, as on B2."""
        t = time.gmtime()
        kind = "2" if large else "1"
        return (
            f"4_z{bucket_id}_f{kind}{secrets.token_hex(8)[:15]}_d{time.strftime('%Y%m%d', t)}"
            f"_m{time.strftime('%H%M%S', t)}_c000_v0001000_t0000_u0{now_ms():013d}"
        )

    def new_blob(self) -> str:
        """A fresh relative blob path (the directory exists; the file does not)."""
        name = secrets.token_hex(16)
        sub = self.root / "blobs" / name[:2]
        sub.mkdir(exist_ok=True)
        return f"blobs/{name[:2]}/{name}"

    def tmp_path(self) -> Path:
        return self.root / "tmp" / secrets.token_hex(16)

    def path(self, blob: str) -> Path:
        return self.root / blob

    def remove_blobs(self, blobs: list[str]) -> None:
        for blob in blobs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / blob)

    # ---- keys and tokens ----------------------------------------------------------

    def put_key(
        self,
        key_id: str,
        secret: str,
        name: str,
        capabilities: list[str],
        bucket_ids: list[str] | None,
        name_prefix: str | None,
        expires_ms: int | None,
        master: bool = False,
    ) -> None:
        with self.tx() as db:
            if master:
                db.execute("DELETE FROM keys WHERE master=1")
            db.execute(
                "INSERT OR REPLACE INTO keys VALUES(?,?,?,?,?,?,?,?)",
                (
                    key_id,
                    token_hash(secret),
                    name,
                    json.dumps(capabilities),
                    None if bucket_ids is None else json.dumps(bucket_ids),
                    name_prefix,
                    expires_ms,
                    int(master),
                ),
            )

    def key(self, key_id: str) -> Row | None:
        return self.db.execute("SELECT * FROM keys WHERE key_id=?", (key_id,)).fetchone()

    def master_key(self) -> Row | None:
        return self.db.execute("SELECT * FROM keys WHERE master=1").fetchone()

    def keys(self, start_key_id: str | None, limit: int) -> list[Row]:
        return self.db.execute(
            "SELECT * FROM keys WHERE master=0 AND key_id>=? ORDER BY key_id LIMIT ?",
            (start_key_id or "", limit),
        ).fetchall()

    def delete_key(self, key_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM keys WHERE key_id=?", (key_id,))
            db.execute("DELETE FROM tokens WHERE key_id=?", (key_id,))

    def issue_token(self, kind: str, key_id: str, lifetime_s: float, **fields: Any) -> str:
        token = f"{kind[0]}{secrets.token_urlsafe(30)}"
        now = now_ms()
        with self.tx() as db:
            db.execute("DELETE FROM tokens WHERE expires_ms < ?", (now - 86_400_000,))
            db.execute(
                "INSERT INTO tokens VALUES(?,?,?,?,?,?,?)",
                (
                    token_hash(token),
                    kind,
                    key_id,
                    now + int(lifetime_s * 1000),
                    fields.get("bucket_id"),
                    fields.get("file_id"),
                    fields.get("name_prefix"),
                ),
            )
        return token

    def token(self, token: str) -> Row | None:
        return self.db.execute(
            "SELECT * FROM tokens WHERE token_hash=?", (token_hash(token),)
        ).fetchone()

    def expire_tokens(self) -> int:
        """Expire every account and upload token issued so far."""
        with self.tx() as db:
            return db.execute(
                "UPDATE tokens SET expires_ms=MIN(expires_ms, ?) WHERE kind IN ('account','upload')",
                (now_ms() - 1,),
            ).rowcount

    # ---- buckets ------------------------------------------------------------------

    def create_bucket(self, name: str, btype: str, info: dict, cors: list, lifecycle: list,
                      sse: dict, file_lock: bool, replication: dict | None = None) -> Row:  # fmt: skip
        bucket_id = secrets.token_hex(12)
        with self.tx() as db:
            db.execute(
                "INSERT INTO buckets(bucket_id,name,type,info,cors,lifecycle,revision,sse,"
                "file_lock,replication) VALUES(?,?,?,?,?,?,1,?,?,?)",
                (bucket_id, name, btype, json.dumps(info), json.dumps(cors),
                 json.dumps(lifecycle), json.dumps(sse), int(file_lock),
                 None if replication is None else json.dumps(replication)),
            )  # fmt: skip
        return self.bucket(bucket_id)  # type: ignore[return-value]

    def bucket(self, bucket_id: str) -> Row | None:
        return self.db.execute("SELECT * FROM buckets WHERE bucket_id=?", (bucket_id,)).fetchone()

    def bucket_by_name(self, name: str) -> Row | None:
        return self.db.execute("SELECT * FROM buckets WHERE name=?", (name,)).fetchone()

    def buckets(self) -> list[Row]:
        return self.db.execute("SELECT * FROM buckets ORDER BY name").fetchall()

    def update_bucket(self, bucket_id: str, changes: dict[str, Any], revision: bool = True) -> None:
        cols = ", ".join(f"{k}=?" for k in changes)
        bump = "revision=revision+1" + (", " if cols else "") if revision else ""
        if not (bump or cols):
            return
        with self.tx() as db:
            db.execute(
                f"UPDATE buckets SET {bump}{cols} WHERE bucket_id=?",
                (*changes.values(), bucket_id),
            )

    def bucket_is_empty(self, bucket_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM files WHERE bucket_id=? LIMIT 1", (bucket_id,))
        return row.fetchone() is None

    def delete_bucket(self, bucket_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM buckets WHERE bucket_id=?", (bucket_id,))

    # ---- file versions ------------------------------------------------------------

    def add_version(
        self,
        bucket_id: str,
        name: str,
        action: str,
        size: int,
        sha1: str | None,
        content_type: str | None,
        info: dict[str, str],
        blobs: list[tuple[str, int]],
        file_id: str | None = None,
        md5: str | None = None,
        upload_ms: int | None = None,
        **extras: str | None,
    ) -> Row:
        """A new version; ``extras`` are the texts of ``FILE_EXTRAS`` columns (sse,
        retention, legal_hold, replication)."""
        assert set(extras) <= set(FILE_EXTRAS), extras
        file_id = file_id or self.new_file_id(bucket_id, large=action == "start")
        cols = "".join(f",{k}" for k in extras)
        marks = ",?" * len(extras)
        with self.tx() as db:
            db.execute(
                "INSERT INTO files(file_id,bucket_id,name,action,size,sha1,md5,content_type,"
                f"info,upload_ms,blobs{cols}) VALUES(?,?,?,?,?,?,?,?,?,?,?{marks})",
                (file_id, bucket_id, name, action, size, sha1, md5, content_type,
                 json.dumps(info), upload_ms if upload_ms is not None else now_ms(),
                 json.dumps(blobs), *extras.values()),
            )  # fmt: skip
        return self.version(file_id)  # type: ignore[return-value]

    def update_version(self, file_id: str, **extras: str | None) -> Row | None:
        """Change ``FILE_EXTRAS`` columns of a version (retention, legal hold, replication)."""
        assert extras and set(extras) <= set(FILE_EXTRAS), extras
        cols = ", ".join(f"{k}=?" for k in extras)
        with self.tx() as db:
            db.execute(f"UPDATE files SET {cols} WHERE file_id=?", (*extras.values(), file_id))
        return self.version(file_id)

    def pending_replications(self, limit: int) -> list[Row]:
        return self.db.execute(
            "SELECT * FROM files WHERE replication='pending' ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()

    def version(self, file_id: str) -> Row | None:
        return self.db.execute("SELECT * FROM files WHERE file_id=?", (file_id,)).fetchone()

    def latest(self, bucket_id: str, name: str) -> Row | None:
        """The newest finished version of a name (which may be a hide marker)."""
        return self.db.execute(
            "SELECT * FROM files WHERE bucket_id=? AND name=? AND action!='start' "
            "ORDER BY seq DESC LIMIT 1",
            (bucket_id, name),
        ).fetchone()

    def versions_from(self, bucket_id: str, start_name: str, start_seq: int | None = None) -> Iterator[Row]:  # fmt: skip
        """Every version at or after (start_name, start_seq) in B2 order: name ascending
        (UTF-8 byte order, which is SQLite's BINARY collation), newest first per name."""
        if start_seq is None:
            return iter(self.db.execute(
                "SELECT * FROM files WHERE bucket_id=? AND name>=? ORDER BY name, seq DESC",
                (bucket_id, start_name),
            ))  # fmt: skip
        return iter(self.db.execute(
            "SELECT * FROM files WHERE bucket_id=? AND (name>? OR (name=? AND seq<=?)) "
            "ORDER BY name, seq DESC",
            (bucket_id, start_name, start_name, start_seq),
        ))  # fmt: skip

    def unfinished(self, bucket_id: str, prefix: str, start_seq: int, limit: int) -> list[Row]:
        return self.db.execute(
            "SELECT * FROM files WHERE bucket_id=? AND action='start' AND seq>=? "
            "AND substr(name, 1, ?)=? ORDER BY seq LIMIT ?",
            (bucket_id, start_seq, len(prefix), prefix, limit),
        ).fetchall()

    def delete_version(self, file_id: str) -> None:
        row = self.version(file_id)
        if row is None:
            return
        parts = self.parts(file_id, 1, MAX_PARTS_ROWS)
        with self.tx() as db:
            db.execute("DELETE FROM files WHERE file_id=?", (file_id,))
            db.execute("DELETE FROM parts WHERE file_id=?", (file_id,))
        self.remove_blobs([b for b, _ in json.loads(row["blobs"])] + [p["blob"] for p in parts])

    def finish_large(self, file_id: str, size: int, blobs: list[tuple[str, int]],
                     replication: str | None = None) -> Row:  # fmt: skip
        with self.tx() as db:
            db.execute(
                "UPDATE files SET action='upload', size=?, blobs=?, replication=? WHERE file_id=?",
                (size, json.dumps(blobs), replication, file_id),
            )
            db.execute("DELETE FROM parts WHERE file_id=?", (file_id,))
        return self.version(file_id)  # type: ignore[return-value]

    # ---- large-file parts ---------------------------------------------------------

    def put_part(self, file_id: str, number: int, size: int, sha1: str, blob: str) -> Row:
        old = self.db.execute(
            "SELECT blob FROM parts WHERE file_id=? AND part_number=?", (file_id, number)
        ).fetchone()
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO parts VALUES(?,?,?,?,?,?)",
                (file_id, number, size, sha1, now_ms(), blob),
            )
        if old is not None and old["blob"] != blob:
            self.remove_blobs([old["blob"]])
        return self.db.execute(
            "SELECT * FROM parts WHERE file_id=? AND part_number=?", (file_id, number)
        ).fetchone()

    def parts(self, file_id: str, start: int, limit: int) -> list[Row]:
        return self.db.execute(
            "SELECT * FROM parts WHERE file_id=? AND part_number>=? ORDER BY part_number LIMIT ?",
            (file_id, start, limit),
        ).fetchall()


MAX_PARTS_ROWS = 1_000_000
