"""Starting again after a crash, and Ctrl-C at a terminal, as operators meet them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.mount.conftest import is_mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]


def test_a_dead_mount_is_named_with_its_fix(mount_factory):
    m = mount_factory()
    assert m.proc is not None
    m.proc.kill()  # a crash: the kernel mount stays, every access fails with ENOTCONN
    m.proc.wait(timeout=10)
    m.proc = None
    r = subprocess.run(m.command(), env=m.env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"mountpoint {m.path} is a dead FUSE mount" in r.stderr
    assert f"fusermount3 -uz {m.path}" in r.stderr
    subprocess.run(["fusermount3", "-uz", str(m.path)], check=True)
    m.start()  # the advice works
    assert os.listdir(m.path) == []


def test_ctrl_c_of_a_local_mount_still_uploads_what_is_pending(tmp_path, make_local_server):
    """Ctrl-C signals the whole process group: the embedded server must outlive the drain."""
    mnt, data, cache = tmp_path / "mnt", tmp_path / "data", tmp_path / "cache"
    mnt.mkdir()
    cmd = [sys.executable, "-m", "b2fs", "-v", "mount", "b2://ctrl-c-bucket", str(mnt), "-f",
           "--local", str(data), "--cache-dir", str(cache), "-o", "writeback_delay=60"]  # fmt: skip
    with open(tmp_path / "mount.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "mount.log"
            ).read_text()
            time.sleep(0.05)
        files = {f"f{i}.bin": os.urandom(1 << 20) for i in range(12)}
        for name, content in files.items():
            (mnt / name).write_bytes(content)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:  # the whole group: the mount and its embedded server
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
    assert not is_mounted(mnt)
    log = (tmp_path / "mount.log").read_text()
    assert "not done" not in log, log
    # Everything landed in B2 (the same data directory, served again).
    from tests.mount.conftest import SyncB2

    b2 = SyncB2(make_local_server(data))
    assert {n: b2.read("ctrl-c-bucket", n) for n in b2.names("ctrl-c-bucket")} == files
