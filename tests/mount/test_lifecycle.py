"""Mounting and unmounting: clear errors before any mount appears, signals, fstab form, systemd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mount.conftest import MountProcess, is_mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(90)]


def run_mount(args, env, timeout=30):
    return subprocess.run([sys.executable, "-m", "b2fs", "mount", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def env_for(server, **extra):
    env = dict(os.environ)
    env.update(
        B2_APPLICATION_KEY_ID=server.key_id,
        B2_APPLICATION_KEY=server.key,
        B2_ENVIRONMENT=server.realm,
    )
    env.update(extra)
    return env


def test_bad_credentials_fail_before_mounting(server, tmp_path, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mount(
        [f"b2://{bucket}", str(mnt), "-f"], env_for(server, B2_APPLICATION_KEY="wrong-key")
    )
    assert r.returncode == 1
    assert "B2 refused the application key" in r.stderr
    assert "wrong-key" not in r.stderr + r.stdout
    assert not is_mounted(mnt)


def test_missing_bucket_fails_before_mounting(server, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mount(["b2://no-such-bucket-here", str(mnt), "-f"], env_for(server))
    assert r.returncode == 1
    assert "bucket 'no-such-bucket-here' does not exist" in r.stderr
    assert not is_mounted(mnt)


def test_key_without_capabilities_is_refused(server, tmp_path, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    key = b2sync.run(
        lambda c: c.create_key("read-only-key", ["listBuckets", "listFiles", "readFiles"])
    )
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = env_for(server, B2_APPLICATION_KEY_ID=key.key_id, B2_APPLICATION_KEY=key.application_key)
    r = run_mount([f"b2://{bucket}", str(mnt), "-f"], env)
    assert r.returncode == 1
    assert "lacks the capabilities writeFiles" in r.stderr and "-o ro" in r.stderr
    assert not is_mounted(mnt)
    # read-only works with that key
    m = MountProcess(server, bucket, tmp_path / "ro", {"ro": True})
    m.env = lambda: env  # type: ignore[method-assign]
    try:
        m.start()
        with pytest.raises(OSError):
            (m.path / "x").write_bytes(b"no")
    finally:
        m.cleanup()


def test_prefix_restricted_key_must_match_the_prefix(server, tmp_path, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    bid = b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate")).bucket_id
    caps = ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"]
    key = b2sync.run(
        lambda c: c.create_key("prefix-key", caps, bucket_ids=[bid], name_prefix="team/")
    )
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = env_for(server, B2_APPLICATION_KEY_ID=key.key_id, B2_APPLICATION_KEY=key.application_key)
    r = run_mount([f"b2://{bucket}", str(mnt), "-f"], env)
    assert r.returncode == 1 and "restricted to names starting with 'team/'" in r.stderr


@pytest.mark.parametrize("problem", ["missing", "file", "busy"])
def test_bad_mountpoints(server, tmp_path, mount_factory, problem):
    target = tmp_path / "target"
    if problem == "file":
        target.write_text("x")
    elif problem == "busy":
        target = mount_factory().path
    r = run_mount(["b2://some-bucket", str(target), "-f"], env_for(server))
    assert r.returncode == 1
    expected = {"missing": "does not exist", "file": "is not a directory", "busy": "is busy"}[
        problem
    ]
    assert expected in r.stderr


def test_bad_options_are_usage_errors(server, tmp_path):
    r = run_mount(["b2://some-bucket", str(tmp_path), "-o", "no_such_option=1"], env_for(server))
    assert r.returncode == 2 and "unknown mount option 'no_such_option'" in r.stderr
    r = run_mount(["not a bucket!", str(tmp_path)], env_for(server))
    assert r.returncode == 2 and "does not name a B2 bucket" in r.stderr


def test_sigterm_and_fusermount_unmount_cleanly(mount_factory):
    m = mount_factory()
    (m.path / "f").write_bytes(b"data")
    assert m.terminate() == 0
    assert not is_mounted(m.path)
    m.start()
    assert (m.path / "f").read_bytes() == b"data"  # the pending upload landed before exit
    assert m.unmount() == 0
    assert not is_mounted(m.path)
    assert "unmounted" in m.log()


def test_background_mode_returns_when_mounted(server, tmp_path, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "hello.txt", b"hi")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mount([f"b2://{bucket}", str(mnt), "--cache-dir", str(tmp_path / "c")], env_for(server))
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)
        assert (mnt / "hello.txt").read_bytes() == b"hi"
        # kill -USR1: every thread's stack into the log, and the mount goes on
        (pid,) = _pids_with_arg(str(mnt))
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "most recent call first" not in (tmp_path / "c" / "mount.log").read_text():
            assert time.monotonic() < deadline, "no stacks in the log after SIGUSR1"
            time.sleep(0.1)
        assert (mnt / "hello.txt").read_bytes() == b"hi"
    finally:
        _unmount_background(mnt)
    log = (tmp_path / "c" / "mount.log").read_text()
    assert "mounted b2://" in log
    assert "b2fs/cli/mount.py" in log  # the loop thread's stack, under the CLI
    assert oct(os.stat(tmp_path / "c" / "mount.log").st_mode & 0o777) == oct(0o600)


def _read_ahead_kb(mountpoint: Path) -> int:
    """The kernel's read-ahead of the mount on ``mountpoint`` (its bdi, from mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        devices = [line.split()[2] for line in f
                   if line.split()[4].replace("\\040", " ") == str(mountpoint)]  # fmt: skip
    assert devices, f"{mountpoint} is not in mountinfo"
    return int(Path(f"/sys/class/bdi/{devices[-1]}/read_ahead_kb").read_text())


@pytest.mark.parametrize(("option", "kb"), [(None, 1024), ("kernel_readahead=256K", 256)])
def test_kernel_readahead_is_set_on_the_mount(server, tmp_path, b2sync, new_bucket_name,
                                              option, kb):  # fmt: skip
    """Root raises the mount's read-ahead (1 MiB FUSE reads), also on a mountpoint whose
    name mountinfo escapes (a space)."""
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    mnt = tmp_path / "mount point"
    mnt.mkdir()
    args = [f"b2://{bucket}", str(mnt), "--cache-dir", str(tmp_path / "c")]
    r = run_mount(args + (["-o", option] if option else []), env_for(server))
    try:
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 10  # set right after the kernel's INIT is answered
        while _read_ahead_kb(mnt) != kb and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _read_ahead_kb(mnt) == kb
    finally:
        _unmount_background(mnt)


def _unmount_background(mnt: Path) -> None:
    """Teardown of a background-mode mount: unmount (lazily as a last resort), then end
    its daemon by pid if it has not exited by itself."""
    pids = _pids_with_arg(str(mnt))
    subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    deadline = time.monotonic() + 20
    while os.path.ismount(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        time.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def _pids_with_arg(arg: str) -> list[int]:
    """Live b2fs processes whose command line has ``arg`` (a mount's mountpoint)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = (Path("/proc") / entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in argv and any(b"b2fs" in a for a in argv):
                pids.append(int(entry))
    return pids


def test_background_mode_reports_startup_errors(server, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mount(
        ["b2://no-such-bucket-here", str(mnt), "--cache-dir", str(tmp_path / "c")], env_for(server)
    )
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_fstab_form_through_mount_fuse3(server, tmp_path, b2sync, new_bucket_name):
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2sync.upload(bucket, "docs/readme.txt", b"fstab")
    creds = tmp_path / "creds"
    creds.write_text(
        f"B2_APPLICATION_KEY_ID={server.key_id}\nB2_APPLICATION_KEY={server.key}\nB2_ENVIRONMENT={server.realm}\n"
    )
    creds.chmod(0o600)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + ":" + env.get("PATH", "")
    for k in ("B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY", "B2_ENVIRONMENT"):
        env.pop(k, None)
    opts = f"_netdev,credentials={creds},cache_dir={tmp_path / 'c'},uid=1000,gid=1000"
    # mount(8) runs mount.fuse3 with a fixed PATH; the "program#source" form names the program,
    # as an fstab line does when b2fs is not installed in /usr/bin or /usr/local/bin.
    program = os.path.join(os.path.dirname(sys.executable), "b2fs")
    r = subprocess.run(["mount", "-t", "fuse", "-o", opts, f"{program}#{bucket}/docs", str(mnt)],
                       env=env, capture_output=True, text=True, timeout=30)  # fmt: skip

    try:
        assert r.returncode == 0, r.stderr + r.stdout
        assert (mnt / "readme.txt").read_bytes() == b"fstab"
        assert os.stat(mnt / "readme.txt").st_uid == 1000
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        _wait_unmounted(mnt)


def test_credentials_file_must_be_private(server, tmp_path):
    creds = tmp_path / "creds"
    creds.write_text(f"B2_APPLICATION_KEY_ID={server.key_id}\nB2_APPLICATION_KEY={server.key}\n")
    creds.chmod(0o644)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("B2_")}
    r = run_mount(["b2://some-bucket", str(mnt), "-f", "--credentials", str(creds)], env)
    assert r.returncode == 1 and "chmod 600" in r.stderr
    assert server.key not in r.stderr


def test_systemd_readiness(mount_factory, tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    m = mount_factory(start=False)
    env = m.env()
    env["NOTIFY_SOCKET"] = str(sock_path)
    m.env = lambda: env  # type: ignore[method-assign]
    try:
        m.start()
        message = sock.recv(4096).decode()
        assert "READY=1" in message.split("\n")
        assert f"MAINPID={m.proc.pid}" in message
        m.terminate()
        assert "STOPPING=1" in sock.recv(4096).decode()
    finally:
        sock.close()


def test_local_mode_runs_its_own_server(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "b2fs", "mount", "b2://local-bucket", str(mnt), "-f", "--local", str(data),
           "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (mnt / "x.txt").write_bytes(b"local")
        assert (mnt / "x.txt").read_bytes() == b"local"
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert (data / "master-key.json").exists()
    # the embedded server ended with the mount
    out = subprocess.run(["pgrep", "-f", f"serve --data {data}"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def _wait_unmounted(path, timeout=20):
    deadline = time.monotonic() + timeout
    while is_mounted(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)
