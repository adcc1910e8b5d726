"""rclone 1.60 (Debian's, B2 API v1) drives the server: mkdir, copy with a large file,
ls/lsd, cat, check --download, delete (hide), versions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("rclone") is None, reason="rclone is not installed (./dev setup installs it)"
    ),
]


def test_rclone(server: LocalServer, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RCLONE_CONFIG": str(tmp_path / "none.conf"),
           "RCLONE_CONFIG_EMU_TYPE": "b2", "RCLONE_CONFIG_EMU_ACCOUNT": server.key_id,
           "RCLONE_CONFIG_EMU_KEY": server.key, "RCLONE_CONFIG_EMU_ENDPOINT": server.realm}  # fmt: skip

    def rclone(*args: str) -> str:
        r = subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        return r.stdout

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello rclone\n")
    (src / "sub" / "big.bin").write_bytes(os.urandom(11_000_000))
    rclone("mkdir", "emu:rclone-bucket")
    rclone(
        "copy",
        "--b2-upload-cutoff",
        "5M",
        "--b2-chunk-size",
        "5M",
        str(src),
        "emu:rclone-bucket/data",
    )
    assert server.counters()["calls"]["b2_upload_part"] >= 3
    assert rclone("ls", "emu:rclone-bucket").split() == [
        "13",
        "data/a.txt",
        "11000000",
        "data/sub/big.bin",
    ]
    assert rclone("lsd", "emu:rclone-bucket/data").split()[-1] == "sub"
    assert rclone("cat", "emu:rclone-bucket/data/a.txt") == "hello rclone\n"
    rclone("check", "--download", str(src), "emu:rclone-bucket/data")
    rclone("delete", "emu:rclone-bucket/data/a.txt")
    assert "data/a.txt" not in rclone("ls", "emu:rclone-bucket")
    assert "data/a-v" in rclone("ls", "--b2-versions", "emu:rclone-bucket")
    rclone("purge", "emu:rclone-bucket")
