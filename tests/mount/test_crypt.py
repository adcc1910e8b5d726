"""Encrypted mounts: nothing in the clear on disk, tampering is EIO, clear startup errors, the CLI.

The read and write tests of the mount run on encrypted mounts too (``CRYPT_MODES``);
these are the tests only an encrypted mount has.  Every mount here is encrypted
with the session's test vault unless the test sets ``encrypt`` itself.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import time
import unicodedata
import uuid
from pathlib import Path

import pytest

from b2fs.codec import VAULT_NAME
from tests.mount.conftest import PASSPHRASE, is_mounted, until

pytestmark = [
    pytest.mark.mount,
    pytest.mark.timeout(120),
    pytest.mark.parametrize("crypt", ["encrypted"], indirect=True),
]

KB = 1024
MB = 1024 * 1024
CHUNK = 64 * KB
STORED_CHUNK = CHUNK + 16
HEADER = 45


def b2fs(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "b2fs", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


def env_for(server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2_", "B2FS_"))}
    env.update(B2_APPLICATION_KEY_ID=server.key_id, B2_APPLICATION_KEY=server.key,
               B2_ENVIRONMENT=server.realm, **extra)  # fmt: skip
    return env


def blob_of(server, file_id: str) -> Path:
    """Where the local server keeps the bytes of a (one-part) file version."""
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        (blobs,) = db.execute("SELECT blobs FROM files WHERE file_id=?", (file_id,)).fetchone()
    finally:
        db.close()
    (blob, _size), *rest = json.loads(blobs)
    assert not rest, "a large file"
    return server.data_dir / blob


def version_of(b2sync, bucket: str, name: str):
    bid = b2sync.bucket_id(bucket)
    return b2sync.run(lambda c: c.versions_of(bid, b2sync.key(name)))[0]


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def scan(paths: list[Path], needles: list[bytes]) -> list[tuple[str, bytes]]:
    found = []
    for p in paths:
        data = p.read_bytes()
        found += [(str(p), n) for n in needles if n in data]
    return found


# -- nothing in the clear ------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_no_plaintext_name_or_content_reaches_any_disk(mount_factory, server, b2sync):
    token = uuid.uuid4().hex[:12]
    names = {
        "dir": f"secret-dir-{token}",
        "inner": f"inner-dir-{token}",
        "file": f"secret-file-{token}.txt",
        "big": f"big-file-{token}.bin",
        "long": f"long-name-{token}-" + "x" * 200,  # a stub plus long info in B2
        "longdir": f"long-dir-{token}-" + "y" * 190,
        "link": f"secret-link-{token}",
        "target": f"secret-target-{token}/somewhere",
        "pending": f"pending-file-{token}.txt",
    }
    text = f"plaintext-content-{token}|".encode()
    small = text * 300
    big = text * (11 * MB // len(text))  # a large file: parts, uploaded encrypted
    # Phase 1: write everything and let it upload (the big file as a large file of 3 parts).
    m = mount_factory(large_file_threshold="5M", part_size="5M", writeback_delay=0.2)
    p = m.path
    (p / names["dir"] / names["inner"]).mkdir(parents=True)
    (p / names["dir"] / names["inner"] / names["file"]).write_bytes(small)
    (p / names["big"]).write_bytes(big)
    (p / names["longdir"]).mkdir()
    (p / names["longdir"] / names["long"]).write_bytes(small)
    os.symlink(names["target"], p / names["dir"] / names["link"])
    assert m.unmount() == 0, m.log()
    # Phase 2: read everything (the block cache fills), change a file and leave it pending, crash.
    m.options["writeback_delay"] = 60
    m.start()
    assert (p / names["big"]).read_bytes() == big
    assert (p / names["longdir"] / names["long"]).read_bytes() == small
    assert os.readlink(p / names["dir"] / names["link"]) == names["target"]
    with open(p / names["dir"] / names["inner"] / names["file"], "r+b") as f:
        f.seek(1000)
        f.write(text)
    (p / names["dir"] / names["pending"]).write_bytes(small)
    m.kill()
    # The cache holds blocks, staging files and a journal with rows; B2 holds the tree.
    cache_files = files_under(m.cache_dir)
    assert any("blocks-" in str(f) for f in cache_files)
    # two pending files (small: their bytes in their journal rows, sealed), a marker (no bytes)
    db = sqlite3.connect(m.cache_dir / "journal.sqlite")
    try:
        rows = db.execute("SELECT content FROM pending").fetchall()
    finally:
        db.close()
    assert sum(1 for (content,) in rows if content is not None) == 2
    assert any(f.name == "journal.sqlite" for f in cache_files)
    needles = [n.encode() for n in names.values()] + [text[:24], text[-24:], big[5000:5032]]
    assert scan([m.log_path], [b"mounted b2://"])  # the scan sees what is there
    found = scan(files_under(server.data_dir, m.cache_dir) + [m.log_path], needles)
    assert found == [], found
    # Nothing was lost: the journal replays the pending changes.
    m.start()
    assert (p / names["dir"] / names["pending"]).read_bytes() == small
    changed = small[:1000] + text + small[1000 + len(text) :]
    assert (p / names["dir"] / names["inner"] / names["file"]).read_bytes() == changed
    assert sorted(os.listdir(p)) == sorted([names["dir"], names["big"], names["longdir"]])


# -- tampering, truncation, foreign objects -----------------------------------------------


def test_a_tampered_object_is_eio_naming_file_and_chunk(mount_factory, server, b2sync):
    data = os.urandom(5 * CHUNK + 1000)  # 6 chunks
    m = mount_factory(block_size="64K")
    (m.path / "victim.bin").write_bytes(data)
    (m.path / "bystander.txt").write_bytes(b"still fine")
    assert m.unmount() == 0
    victim = version_of(b2sync, m.bucket, "victim.bin")
    with open(blob_of(server, victim.file_id), "r+b") as f:
        at = HEADER + 2 * STORED_CHUNK + 100  # a byte of chunk 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    m2 = mount_factory(m.bucket, block_size="64K", max_readahead="64K", max_request="64K")
    fd = os.open(m2.path / "victim.bin", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # the kernel reads only what is asked
        assert os.pread(fd, 100, 0) == data[:100]  # the chunks before are fine
        with pytest.raises(OSError) as e:
            os.pread(fd, 100, 2 * CHUNK + 50)
        assert e.value.errno == errno.EIO
        with pytest.raises(OSError) as e:  # and stays an error: never cached
            os.pread(fd, 100, 2 * CHUNK + 50)
        assert e.value.errno == errno.EIO
        assert os.pread(fd, 100, 3 * CHUNK) == data[3 * CHUNK : 3 * CHUNK + 100]
    finally:
        os.close(fd)
    assert (m2.path / "bystander.txt").read_bytes() == b"still fine"
    log = m2.log()
    line = next(line for line in log.splitlines() if "failed to decrypt" in line)
    assert victim.file_name in line and "chunk 2 failed authentication" in line, line
    assert "victim.bin" not in log  # the log names files as stored: no plaintext names on disk


def test_a_truncated_object_is_eio_naming_file_and_chunk(mount_factory, server, b2sync):
    data = os.urandom(3 * CHUNK + 500)  # 4 chunks, the last one short
    m = mount_factory()
    (m.path / "cut-at-chunk.bin").write_bytes(data)
    (m.path / "cut-inside.bin").write_bytes(data)
    assert m.unmount() == 0
    for name, keep in (("cut-at-chunk.bin", HEADER + 3 * STORED_CHUNK), ("cut-inside.bin", -10)):
        v = version_of(b2sync, m.bucket, name)
        stored = b2sync.run(lambda c, v=v: c.download_bytes(file_id=v.file_id))
        b2sync.upload(m.bucket, v.file_name, stored[:keep], raw=True, file_info=v.file_info)
    m2 = mount_factory(m.bucket, block_size="64K", max_readahead="64K", max_request="64K")
    # Cut at a chunk boundary: a shorter but possible size; the new last chunk was not sealed as last.
    assert os.stat(m2.path / "cut-at-chunk.bin").st_size == 3 * CHUNK
    with open(m2.path / "cut-at-chunk.bin", "rb", buffering=0) as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        assert f.read(CHUNK) == data[:CHUNK]
    for name, chunk in (("cut-at-chunk.bin", 2), ("cut-inside.bin", 3)):
        with pytest.raises(OSError) as e:
            (m2.path / name).read_bytes()
        assert e.value.errno == errno.EIO
        stored_name = b2sync.key(name)
        assert any(stored_name in line and f"chunk {chunk} failed" in line
                   for line in m2.log().splitlines()), m2.log()  # fmt: skip


def test_objects_this_vault_did_not_write_are_skipped_and_reported(mount_factory, b2sync):
    m = mount_factory()
    (m.path / "mine.txt").write_bytes(b"mine")
    assert m.unmount() == 0
    b2sync.upload(m.bucket, "plain-file.txt", b"written by a plain mount", raw=True)
    b2sync.upload(m.bucket, "plain-dir/inside.txt", b"also plain", raw=True)
    b2sync.upload(m.bucket, b2sync.key("odd-size.bin"), b"x" * 50, raw=True)  # under 61 bytes
    b2sync.upload(m.bucket, b2sync.key("no-header.bin"), os.urandom(200), raw=True)
    m.options["dir_cache_time"] = 0  # every listing is fetched again
    m.start()
    assert sorted(os.listdir(m.path)) == ["mine.txt", "no-header.bin"]
    assert (m.path / "mine.txt").read_bytes() == b"mine"
    with pytest.raises(OSError) as e:  # a plausible size, but not an object of this vault
        (m.path / "no-header.bin").read_bytes()
    assert e.value.errno == errno.EIO
    log = m.log()
    assert "skipping B2 name 'plain-file.txt': its name cannot be decoded" in log
    assert "skipping B2 name 'plain-dir/': its name cannot be decoded" in log
    assert f"skipping B2 name '{b2sync.key('odd-size.bin')}': its size fits no object" in log
    assert f"{b2sync.key('no-header.bin')}: header refused" in log
    os.listdir(m.path)  # reported once per name, not on every listing
    assert m.log().count("'plain-file.txt'") == 1 and m.log().count("'plain-dir/'") == 1


# -- names ---------------------------------------------------------------------------------


def test_long_names_deep_paths_and_normalisation(mount_factory, b2sync):
    m = mount_factory()
    p = m.path
    for n in (172, 251, 255):  # past 171 (encrypted) or 250 bytes (plain) a name is a stub
        (p / ("f" * n)).write_bytes(b"%d" % n)
    with pytest.raises(OSError) as e:
        (p / ("f" * 256)).write_bytes(b"")
    assert e.value.errno == errno.ENAMETOOLONG
    long_dir = "d" * 240
    (p / long_dir / "sub").mkdir(parents=True)
    (p / long_dir / "sub" / "child.txt").write_bytes(b"child")
    (p / long_dir / ("c" * 200)).write_bytes(b"long child")
    # a long-named directory keeps its marker with children (it holds the long name)
    until(lambda: f"{long_dir}/.bzEmpty" in b2sync.names(m.bucket))
    os.rename(p / long_dir, p / ("e" * 230))
    os.rename(p / ("f" * 251), p / ("e" * 230) / ("g" * 252))
    # B2 limits a whole name to 1,024 bytes: 100-byte names cost 156 bytes a level
    deep = p
    for level in range(6):
        deep = deep / (chr(ord("a") + level) * 100)
        deep.mkdir()
    with pytest.raises(OSError) as e:
        (deep / ("z" * 100)).mkdir()
    assert e.value.errno == errno.ENAMETOOLONG
    (deep / "leaf").write_bytes(b"leaf")
    with pytest.raises(OSError) as e:  # a rename that would push "leaf" past the limit
        os.rename(p / ("a" * 100), p / ("a" * 170))
    assert e.value.errno == errno.ENAMETOOLONG
    assert os.path.isdir(p / ("a" * 100))
    # names are NFC: either form finds the file, listings show NFC
    nfd = unicodedata.normalize("NFD", "café.txt")
    (p / nfd).write_bytes(b"cafe")
    assert (p / unicodedata.normalize("NFC", "café.txt")).read_bytes() == b"cafe"
    assert m.unmount() == 0
    m.start()
    top = sorted(os.listdir(p))
    cafe = unicodedata.normalize("NFC", "café.txt")
    assert top == sorted(["a" * 100, cafe, "e" * 230, "f" * 172, "f" * 255])
    assert (p / ("f" * 255)).read_bytes() == b"255"
    assert (p / ("e" * 230) / "sub" / "child.txt").read_bytes() == b"child"
    assert (p / ("e" * 230) / ("c" * 200)).read_bytes() == b"long child"
    assert (p / ("e" * 230) / ("g" * 252)).read_bytes() == b"251"
    assert (deep / "leaf").read_bytes() == b"leaf"
    assert not any(n.startswith("d" * 240) for n in b2sync.names(m.bucket))


# -- startup -------------------------------------------------------------------------------


def refused(m) -> str:
    """Start a mount that must not come up; returns its output (stderr included)."""
    m.start(expect_failure=True)
    assert m.proc is not None and m.proc.wait(timeout=10) == 1
    m.proc = None
    assert not is_mounted(m.path)
    out = m.log()
    assert "Traceback" not in out
    return out


def test_startup_refusals(mount_factory, new_bucket_name, b2sync, tmp_path, server):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    # no vault: a hint to run init
    out = refused(mount_factory(bucket, start=False, encrypt=True, passphrase=PASSPHRASE))
    assert f"b2://{bucket}/ has no vault" in out and f"b2fs encryption init b2://{bucket}/" in out
    b2sync.put_vault(bucket, "")
    # a vault, but mounted plain: ciphertext names are never shown as files
    out = refused(mount_factory(bucket, start=False, encrypt=False))
    assert f"b2://{bucket}/ is encrypted" in out and "-o encrypt" in out
    # a wrong passphrase
    out = refused(mount_factory(bucket, start=False, encrypt=True, passphrase="not it"))
    assert f"b2fs: wrong passphrase for the vault of b2://{bucket}/\n" in out
    assert "not it" not in out
    # a passphrase file others may read
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o640)
    m = mount_factory(bucket, start=False, encrypt=True, passphrase_file=str(secret))
    out = refused(m)
    assert "is accessible by group or others (mode 0640): run chmod 600" in out
    secret.chmod(0o600)
    m.start()  # the same file, private now
    assert os.listdir(m.path) == []
    m.unmount()
    # no passphrase at all, and no terminal to ask on
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = b2fs("mount", f"b2://{bucket}", str(mnt), "-f", "-o", "encrypt", env=env_for(server))
    assert r.returncode == 1 and "no passphrase: set B2FS_PASSPHRASE" in r.stderr
    assert not is_mounted(mnt)


# -- b2fs encryption init / passwd ---------------------------------------------------------


@pytest.mark.timeout(180)
def test_init_then_passwd(mount_factory, new_bucket_name, b2sync, server, tmp_path):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "outside/plain.txt", b"not encrypted", raw=True)
    src = f"b2://{bucket}/team"
    old, new = "first passphrase", "second passphrase"
    env = env_for(server, B2FS_PASSPHRASE=old)
    r = b2fs("encryption", "init", f"b2://{bucket}/outside", env=env)
    assert r.returncode == 1 and "already holds files" in r.stderr
    r = b2fs("encryption", "init", src, env=env)
    assert r.returncode == 0, r.stderr
    assert "created the vault" in r.stdout and "-o encrypt" in r.stdout
    r = b2fs("encryption", "init", src, env=env)
    assert r.returncode == 1 and "already has a vault" in r.stderr
    vault_name = "team/" + VAULT_NAME
    assert json.loads(b2sync.read(bucket, vault_name, raw=True))["kdf"]["name"] in (
        "argon2id",
        "scrypt",
    )
    secret = tmp_path / "pass"
    secret.write_text(old + "\n")
    secret.chmod(0o600)
    m = mount_factory(bucket, prefix="team", encrypt=True, passphrase_file=str(secret))
    (m.path / "kept.txt").write_bytes(b"across the change")
    assert sorted(os.listdir(m.path)) == ["kept.txt"]  # the vault object is not shown
    assert m.unmount() == 0
    bid = b2sync.bucket_id(bucket)
    stored = b2sync.run(lambda c: _collect(c.list_file_names(bid, prefix="team/")))
    assert len(stored) == 2 and "kept" not in " ".join(f.file_name for f in stored)
    # a wrong current passphrase changes nothing
    r = b2fs(
        "encryption", "passwd", src, env=dict(env, B2FS_PASSPHRASE="wrong", B2FS_NEW_PASSPHRASE=new)
    )
    assert r.returncode == 1 and "wrong passphrase" in r.stderr
    r = b2fs("encryption", "passwd", src, env=dict(env, B2FS_NEW_PASSPHRASE=new))
    assert r.returncode == 0, r.stderr
    assert "1 older vault version(s) deleted" in r.stdout
    assert old not in r.stdout + r.stderr and new not in r.stdout + r.stderr
    assert len(b2sync.run(lambda c: c.versions_of(bid, vault_name))) == 1  # B2 keeps no old one
    out = refused(mount_factory(bucket, prefix="team", start=False, encrypt=True, passphrase=old))
    assert "wrong passphrase" in out
    m = mount_factory(bucket, prefix="team", encrypt=True, passphrase=new)
    assert (m.path / "kept.txt").read_bytes() == b"across the change"
    assert b2sync.read(bucket, "outside/plain.txt", raw=True) == b"not encrypted"


# -- uploads -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_an_interrupted_encrypted_large_upload_starts_over(mount_factory, server, b2sync):
    data = os.urandom(11 * MB)
    m = mount_factory(
        large_file_threshold="5M", part_size="5M", writeback_delay=0, upload_concurrency=1
    )
    bid = b2sync.bucket_id(m.bucket)

    async def parts_done(c):
        return [
            p
            async for f in c.list_unfinished_large_files(bid)
            async for p in c.list_parts(f.file_id)
        ]

    server.set_faults([{"call": "b2_upload_part", "kinds": ["delay:3"], "probability": 1.0}])
    try:
        (m.path / "big.bin").write_bytes(data)
        deadline = time.monotonic() + 20
        while not b2sync.run(parts_done):
            assert time.monotonic() < deadline, m.log()
            time.sleep(0.1)
        m.kill()  # a part is in B2, sealed under the key of an encryptor that is gone
    finally:
        server.clear_faults()
    m.start()  # the journal re-queues it: it starts over, as a new large file under a new key
    deadline = time.monotonic() + 60
    while m.status()["writeback"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert m.status()["writeback"]["pending"] == []
    assert b2sync.run(lambda c: _collect(c.list_unfinished_large_files(bid))) == []
    assert (m.path / "big.bin").read_bytes() == data
    assert b2sync.read(m.bucket, "big.bin") == data


async def _collect(aiter_):
    return [x async for x in aiter_]
