"""``./dev demo`` (``python -m b2fs.demo``): a real mount, used, and unmounted cleanly.

Each test runs the demo as a user would (``--once``, or interactively with a
Ctrl-C to its process group), then checks that nothing is left mounted or
running and that what it wrote through the mount is in B2.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mount.conftest import SyncB2, is_mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]

WRITTEN = {"notes/today.txt", "projects/plan.txt", "data/random.bin"}


def demo_cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "b2fs.demo", "--data", str(tmp_path / "data"),
            "--mountpoint", str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "cache"),
            *extra]  # fmt: skip


def no_account_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("B2_")}


def pids_in(output: str) -> list[int]:
    """The server and mount pids the demo printed."""
    return [int(p) for p in re.findall(r"\bpid (\d+)", output)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def clean_up(output: str, mnt: Path) -> None:
    """Teardown: end the processes the demo started, if it left any (by pid), and any mount."""
    for pid in pids_in(output):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)


def run_demo_once(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``demo --once``; if it hangs, what it started (printed pids, the mount) is ended too."""
    try:
        return subprocess.run(demo_cmd(tmp_path, "--once"), env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=100)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        clean_up(out or "", tmp_path / "mnt")
        raise


def stuck(proc: subprocess.Popen[bytes], output: str, tmp_path: Path) -> str:
    """What a demo that does not end is doing: the stacks of the demo and of its mount
    (SIGUSR1: their faulthandlers write them to the demo's output and the mount's log)."""
    for pid in [proc.pid, *map(int, re.findall(r"mount process pid (\d+)", output))]:
        if alive(pid):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(1)
    assert proc.stdout is not None
    out = b""
    while select.select([proc.stdout], [], [], 0.2)[0]:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    log = tmp_path / "data" / "mount.log"
    return (f"--- the demo's output since, with its stacks:\n{out.decode(errors='replace')}\n"
            f"--- mount.log:\n{log.read_text(errors='replace') if log.exists() else '(none)'}")  # fmt: skip


def assert_nothing_left(output: str, mnt: Path) -> None:
    assert not is_mounted(mnt)
    pids = pids_in(output)
    assert len(pids) >= 1
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_demo_once_on_the_local_server(tmp_path, make_local_server):
    r = run_demo_once(tmp_path, no_account_env())
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert "No B2 account configured" in out
        assert "café au lait.jpg" in out and "Hello from b2fs!" in out  # ls -lR and cat
        assert "read data/random.bin back: identical" in out
        assert "pending uploads: 0 file(s)" in out  # after fsync
        assert re.search(r"class A \d+, class B \d+, class C \d+", out)
        assert "unmounted (b2fs exit 0)" in out
        assert_nothing_left(out, tmp_path / "mnt")
    finally:
        clean_up(r.stdout, tmp_path / "mnt")
    b2 = SyncB2(make_local_server(tmp_path / "data"))
    names = set(b2.names("b2fs-demo"))
    assert names >= WRITTEN and "notes/draft.txt" not in names
    assert len(b2.read("b2fs-demo", "data/random.bin")) == 4 << 20


def test_ctrl_c_unmounts_after_the_pending_uploads(tmp_path, make_local_server):
    mnt = tmp_path / "mnt"
    # Started with SIGINT ignored, as a shell without job control starts a background
    # command (and as CI may run us): the demo must still answer Ctrl-C.
    proc = subprocess.Popen(demo_cmd(tmp_path), env=no_account_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    assert proc.stdout is not None
    output = ""
    try:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output
            if select.select([proc.stdout], [], [], 0.5)[0]:
                output += os.read(proc.stdout.fileno(), 65536).decode()
        (mnt / "after-the-demo.txt").write_bytes(b"written by another program")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the demo did not end 60 s after Ctrl-C\n{output}\n{stuck(proc, output, tmp_path)}"
            )
        output += rest.decode()
        assert proc.returncode == 0, output
        assert "unmounted (b2fs exit 0)" in output
        assert "API calls of the whole mount" in output
        assert_nothing_left(output, mnt)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        clean_up(output, mnt)
    b2 = SyncB2(make_local_server(tmp_path / "data"))
    assert b2.read("b2fs-demo", "after-the-demo.txt") == b"written by another program"


def test_demo_with_an_account_works_in_its_own_directory(server, tmp_path, new_bucket_name):
    bucket = new_bucket_name()
    b2 = SyncB2(server)
    b2.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2.upload(bucket, "mine.txt", b"the user's own file")
    env = dict(no_account_env(), B2_APPLICATION_KEY_ID=server.key_id,
               B2_APPLICATION_KEY=server.key, B2_ENVIRONMENT=server.realm, B2_BUCKET=bucket)  # fmt: skip
    r = run_demo_once(tmp_path, env)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"mounting bucket {bucket}" in r.stdout
        assert_nothing_left(r.stdout, tmp_path / "mnt")
    finally:
        clean_up(r.stdout, tmp_path / "mnt")
    names = b2.names(bucket)
    assert {"b2fs-demo/" + n for n in WRITTEN} <= set(names)
    assert [n for n in names if not n.startswith("b2fs-demo/")] == ["mine.txt"]
    assert b2.read(bucket, "mine.txt") == b"the user's own file"


@pytest.mark.timeout(30)
def test_an_account_key_for_many_buckets_needs_b2_bucket(server, tmp_path):
    env = dict(no_account_env(), B2_APPLICATION_KEY_ID=server.key_id,
               B2_APPLICATION_KEY=server.key, B2_ENVIRONMENT=server.realm)  # fmt: skip
    r = subprocess.run(demo_cmd(tmp_path, "--once"), env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=25)  # fmt: skip
    assert r.returncode == 1 and "set B2_BUCKET" in r.stderr
    assert not is_mounted(tmp_path / "mnt")
