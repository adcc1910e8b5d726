"""First use as a new user meets it: README's steps, and errors that say what to do next."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time

import pytest

from tests.mount.conftest import MountProcess

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]


def b2fs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "b2fs", *args], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def serve_until_export(data) -> tuple[subprocess.Popen[bytes], list[str]]:
    """``b2fs serve --data DATA`` as a user runs it; its lines up to the export advice."""
    proc = subprocess.Popen([sys.executable, "-m", "b2fs", "serve", "--data", str(data)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + 30
    while b"b2fs mount --credentials" not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            out += os.read(proc.stdout.fileno(), 4096)
    return proc, out.decode().splitlines()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_serve_prints_a_ready_export_line_and_readme_steps_work(tmp_path):
    data = tmp_path / "b2data"
    proc, lines = serve_until_export(data)
    try:
        export = next(line.strip() for line in lines if line.strip().startswith("export "))
        assigned = dict(re.findall(r"(B2_\w+)=(\S+)", export))
        assert set(assigned) == {"B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY", "B2_ENVIRONMENT"}
        env = dict(os.environ, HOME=str(tmp_path), **assigned)
        # README "Using it": create a bucket, list it
        assert b2fs("bucket", "create", "my-first-bucket", env=env).returncode == 0
        assert "my-first-bucket" in b2fs("bucket", "list", env=env).stdout
    finally:
        stop(proc)
    creds = data / "credentials"
    assert creds.stat().st_mode & 0o777 == 0o600
    proc, lines = serve_until_export(data)  # a restart: the key is not shown again
    try:
        assert not any(assigned["B2_APPLICATION_KEY"] in line for line in lines)
        assert f"  export $(cat {creds})" in lines
        shell = f"export $(cat {creds}); {sys.executable} -m b2fs bucket list"
        r = subprocess.run(["sh", "-c", shell], env=dict(os.environ, HOME=str(tmp_path)),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0 and "my-first-bucket" in r.stdout, r.stderr
    finally:
        stop(proc)


def test_serve_help_says_what_it_does():
    r = b2fs("serve", "--help")
    assert r.returncode == 0 and "Run a local B2 server" in r.stdout


def test_a_missing_bucket_suggests_creating_it(server, tmp_path):
    env = dict(os.environ, B2_APPLICATION_KEY_ID=server.key_id, B2_APPLICATION_KEY=server.key,
               B2_ENVIRONMENT=server.realm)  # fmt: skip
    (tmp_path / "mnt").mkdir()
    r = b2fs("mount", "b2://no-such-bucket-yet", str(tmp_path / "mnt"), "-f", env=env)
    assert r.returncode == 1
    assert "b2fs bucket create no-such-bucket-yet" in r.stderr and "b2fs bucket list" in r.stderr


def test_a_non_empty_mountpoint_is_refused_unless_nonempty(mount_factory):
    m = mount_factory(start=False)
    (m.path / "already-here").write_text("x")
    r = subprocess.run(m.command(), env=m.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"mountpoint {m.path} is not empty" in r.stderr and "-o nonempty" in r.stderr
    m.options["nonempty"] = True
    m.start()
    assert os.listdir(m.path) == []  # the mount hides what was there
    m.unmount()
    assert os.listdir(m.path) == ["already-here"]


def test_a_second_mount_on_the_same_cache_names_the_fix(mount_factory, tmp_path):
    first = mount_factory()
    second = MountProcess(first.server, first.bucket, tmp_path / "second", {})
    second.cache_dir = first.cache_dir
    r = subprocess.run(second.command(), env=second.env(), capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert f"in use by another b2fs mount (pid {first.proc.pid})" in r.stderr  # type: ignore[union-attr]
    assert "--cache-dir DIR" in r.stderr


def test_a_busy_metrics_port_fails_before_mounting(mount_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        m = mount_factory(start=False, metrics=f"127.0.0.1:{port}")
        r = subprocess.run(m.command(), env=m.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"-o metrics=127.0.0.1:{port}: cannot listen on 127.0.0.1:{port}" in r.stderr
