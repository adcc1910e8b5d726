"""Mounts that ask B2 for server-side encryption: ``-o sse=b2`` and
``-o sse_c_key_file=PATH``. Every upload, part, copy and download of the mount passes
the setting; the SSE-C key never shows in the log or in ``b2fs status``."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from b2fs.b2 import B2Client
from b2fs.mount.options import OptionError, parse_options
from b2fs.mount.sse import SseKeyError, read_key_file

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180)]
MB = 1 << 20


def versions(b2sync, bucket: str) -> dict[str, tuple[str | None, str | None]]:  # type: ignore[no-untyped-def]
    """Newest version of each name: (encryption mode, customer key MD5)."""

    async def run(c: B2Client) -> dict[str, tuple[str | None, str | None]]:
        b = await c.get_bucket(bucket)
        return {f.file_name: (f.encryption_mode, f.customer_key_md5)
                async for f in c.list_file_names(b.bucket_id)}  # fmt: skip

    return b2sync.run(run)  # type: ignore[no-any-return]


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_sse_c_mount(mount_factory, b2sync, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = os.urandom(32)
    key_file = tmp_path / "sse.key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    key_file.chmod(0o600)
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    opts = {"sse_c_key_file": key_file, "large_file_threshold": "10M", "part_size": "5M"}
    m = mount_factory(**opts)
    big = os.urandom(12 * MB)
    write(m.path / "small.txt", b"small and secret")
    write(m.path / "big.bin", big)
    assert m.unmount() == 0  # the uploads drain
    assert versions(b2sync, m.bucket) == {"big.bin": ("SSE-C", md5), "small.txt": ("SSE-C", md5)}
    m.start()  # now change what B2 holds: copies from SSE-C sources
    os.rename(m.path / "small.txt", m.path / "renamed.txt")  # b2_copy_file
    with open(m.path / "big.bin", "r+b") as f:  # b2_copy_part of the unchanged parts
        f.seek(6 * MB)
        f.write(b"!")
    big = big[: 6 * MB] + b"!" + big[6 * MB + 1 :]
    status = str(m.status())
    assert m.unmount() == 0
    assert versions(b2sync, m.bucket) == {"big.bin": ("SSE-C", md5), "renamed.txt": ("SSE-C", md5)}
    secrets = (base64.b64encode(key).decode(), key.hex())
    for text in (status, m.log(), " ".join(map(str, m.command()))):
        assert not any(s in text for s in secrets)
    # without the key, B2 refuses the content: EIO, with a log line
    keyless = mount_factory(m.bucket)
    with pytest.raises(OSError) as e:
        (keyless.path / "renamed.txt").read_bytes()
    assert e.value.errno == errno.EIO
    assert "renamed.txt" in keyless.log()
    keyless.unmount()
    # with it, and an empty cache: everything comes back from B2
    shutil.rmtree(m.cache_dir)
    m.start()
    assert (m.path / "renamed.txt").read_bytes() == b"small and secret"
    assert (m.path / "big.bin").read_bytes() == big


def test_sse_b2_mount(mount_factory, b2sync) -> None:  # type: ignore[no-untyped-def]
    m = mount_factory(sse="b2")
    write(m.path / "a.txt", b"at rest, encrypted by B2")
    assert m.unmount() == 0
    m.start()
    os.rename(m.path / "a.txt", m.path / "b.txt")  # b2_copy_file
    (m.path / "dir").mkdir()  # a directory marker is an upload too
    assert (m.path / "b.txt").read_bytes() == b"at rest, encrypted by B2"
    assert m.unmount() == 0
    found = versions(b2sync, m.bucket)
    assert found == {"b.txt": ("SSE-B2", None), "dir/.bzEmpty": ("SSE-B2", None)}


def test_bad_settings(mount_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for text in ("sse=aes", "sse=b2,sse_c_key_file=/k"):
        with pytest.raises(OptionError):
            parse_options(text)
    key_file = tmp_path / "k"
    for content, message in ((b"x" * 31, "256-bit"), (b"not base64 at all!", "256-bit")):
        key_file.write_bytes(content)
        key_file.chmod(0o600)
        with pytest.raises(SseKeyError, match=message):
            read_key_file(str(key_file))
    key_file.write_bytes(os.urandom(32))
    assert len(read_key_file(str(key_file))) == 32
    key_file.chmod(0o644)
    m = mount_factory(sse_c_key_file=key_file, start=False).start(expect_failure=True)
    assert m.proc is not None and m.proc.wait(10) == 1
    assert "chmod 600" in m.log()
