"""The systemd units in systemd/: valid for systemd, and their commands work as systemd runs them.

There is no systemd running here, so ``systemd-analyze verify`` checks the unit
files against the host's systemd, and the tests run the units' command lines
the way systemd would (the EnvironmentFile, ``%`` specifiers, ``${VAR}``
words, ``$NOTIFY_SOCKET``, SIGTERM to the main process), and the ``.mount``
unit's mount(8) line in a private mount namespace where ``/usr/local/bin``
holds ``b2fs``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from b2fs.credentials import read_credentials_file
from b2fs.mount.options import MountOptions
from tests.mount.conftest import SyncB2, is_mounted

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = UNITS / "b2fs@.service"
MOUNT_UNIT = UNITS / "mnt-b2.mount"
AUTOMOUNT_UNIT = UNITS / "mnt-b2.automount"
B2FS = os.path.join(os.path.dirname(sys.executable), "b2fs")

# Settings that give a service its own mount namespace: a FUSE mount made there is
# invisible to the host, so none of them may appear in the service.
NAMESPACED = {"PrivateTmp", "PrivateMounts", "PrivateDevices", "ProtectSystem", "ProtectHome",
              "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
              "ProtectControlGroups", "ProtectProc", "ProcSubset", "ReadOnlyPaths",
              "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
              "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory",
              "RootImage", "MountFlags", "DynamicUser", "PrivateUsers", "PrivateNetwork",
              "NetworkNamespacePath"}  # fmt: skip


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file, each key with its values in order (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd_argv(command: str, env: dict[str, str], specifiers: dict[str, str]) -> list[str]:
    """A command line as systemd expands it: ``%`` specifiers, then per word ``${VAR}`` (one
    argument) and ``$$`` (a literal ``$``). Words that are ``$VAR`` alone are not used here."""
    for spec, value in specifiers.items():
        command = command.replace(f"%{spec}", value)
    command = command.replace("%%", "%")
    words = shlex.split(command)
    out = []
    for word in words:
        word = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word)
        out.append(word.replace("$$", "$"))
    return out


def seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|s|h|ms)?", value):
        total += float(number) * {"min": 60, "h": 3600, "ms": 0.001}.get(unit, 1)
    return total


# -- the unit files ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units_dir = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                      if os.path.isdir(d)), None)  # fmt: skip
    if units_dir is None:
        pytest.skip("no systemd unit directory on this machine")
    # A root that holds what the units name: the host's own units (targets), /bin/sh,
    # /usr/local/bin/b2fs and an instance's EnvironmentFile.
    root = tmp_path / "root"
    shutil.copytree(units_dir, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/b2fs").write_text("#!/bin/sh\n")
    (root / "usr/local/bin/b2fs").chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy("/bin/sh", root / "bin/sh")
    (root / "etc/b2fs").mkdir(parents=True)
    (root / "etc/b2fs/test.conf").write_text("B2FS_SOURCE=b2://some-bucket\n")
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    for unit in (SERVICE, MOUNT_UNIT, AUTOMOUNT_UNIT):
        shutil.copy(unit, system)
    r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "b2fs@test.service",
                        MOUNT_UNIT.name, AUTOMOUNT_UNIT.name],
                       cwd=system, capture_output=True, text=True, timeout=50)  # fmt: skip
    # verify exits 0 on unknown keys and bad values, but says so: nothing may be said.
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_the_service_is_a_notify_service_without_a_mount_namespace():
    unit = read_unit(SERVICE)
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["EnvironmentFile"] == ["/etc/b2fs/%i.conf"]
    assert service["Restart"] == ["on-failure"]
    assert "ExecStop" not in service  # SIGTERM is the stop
    assert service["KillMode"] == ["mixed"]  # SIGTERM to b2fs only; it ends its own children
    assert seconds(service["TimeoutStopSec"][0]) > MountOptions().unmount_wait
    assert NAMESPACED.isdisjoint(service), NAMESPACED & set(service)
    assert "/dev/fuse rw" in service["DeviceAllow"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0] == "/usr/local/bin/b2fs" and "mount" in argv and "-f" in argv
    mount = read_unit(MOUNT_UNIT)["Mount"]
    assert seconds(mount["TimeoutSec"][0]) > MountOptions().unmount_wait
    assert MOUNT_UNIT.name == "mnt-b2.mount" and mount["Where"] == ["/mnt/b2"]
    assert read_unit(AUTOMOUNT_UNIT)["Automount"]["Where"] == ["/mnt/b2"]


# -- the service's commands, run as systemd runs them --------------------------------------


@pytest.mark.mount
@pytest.mark.timeout(120)
def test_service_start_is_ready_and_stop_drains_uploads(server, tmp_path, new_bucket_name):
    bucket = new_bucket_name()
    b2 = SyncB2(server)
    b2.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2.upload(bucket, "photos/old.jpg", b"from before")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    conf = tmp_path / "photos.conf"
    conf.write_text(
        f"B2_APPLICATION_KEY_ID={server.key_id}\nB2_APPLICATION_KEY={server.key}\n"
        f"B2_ENVIRONMENT={server.realm}\nB2FS_SOURCE=b2://{bucket}/photos\n"
        f"B2FS_MOUNTPOINT={mnt}\nB2FS_OPTIONS=writeback_delay=60,uid=1000,gid=1000\n"
    )
    conf.chmod(0o600)
    service = read_unit(SERVICE)["Service"]
    env: dict[str, str] = {}
    for assignment in service["Environment"]:
        key, _, value = assignment.partition("=")
        env[key] = value
    env.update(read_credentials_file(str(conf)))  # EnvironmentFile= overrides Environment=
    notify = tmp_path / "notify.sock"
    env["NOTIFY_SOCKET"] = str(notify)
    specifiers = {"i": "photos", "C": str(tmp_path / "var-cache")}
    argv = systemd_argv(service["ExecStart"][0], env, specifiers)
    argv[0] = B2FS  # /usr/local/bin/b2fs, as installed
    base = {k: v for k, v in os.environ.items() if not k.startswith("B2")}

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(30)
        with open(tmp_path / "journal.log", "wb") as log:
            proc = subprocess.Popen(argv, env={**base, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = sock.recv(4096).decode().split("\n")
            assert "READY=1" in ready and f"MAINPID={proc.pid}" in ready
            assert is_mounted(mnt)
            assert (mnt / "old.jpg").read_bytes() == b"from before"
            assert os.stat(mnt / "old.jpg").st_uid == 1000
            (mnt / "new.jpg").write_bytes(b"written just before the stop")
            proc.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed
            assert "STOPPING=1" in sock.recv(4096).decode().split("\n")
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
    assert not is_mounted(mnt)
    assert b2.read(bucket, "photos/new.jpg") == b"written just before the stop"
    cache = tmp_path / "var-cache/b2fs/photos"
    assert (cache / "journal.sqlite").exists() and cache.stat().st_mode & 0o777 == 0o700


@pytest.mark.mount
@pytest.mark.timeout(60)
def test_start_pre_clears_a_dead_mount_and_leaves_a_live_one(mount_factory):
    command = read_unit(SERVICE)["Service"]["ExecStartPre"][0]
    assert command.startswith("-")  # its failure never stops the start
    live = mount_factory()
    dead = mount_factory()
    assert dead.proc is not None
    dead.proc.kill()
    dead.proc.wait(timeout=10)
    dead.proc = None
    for m in (live, dead):
        argv = systemd_argv(command[1:], {}, {})
        env = {**os.environ, "B2FS_MOUNTPOINT": str(m.path)}
        subprocess.run(argv, env=env, capture_output=True, timeout=20)
    assert is_mounted(live.path) and os.listdir(live.path) == []
    assert not is_mounted(dead.path)


# -- the .mount unit's line, through mount(8) ------------------------------------------------


@pytest.mark.mount
@pytest.mark.timeout(120)
def test_mount_unit_line_works_through_mount8(server, tmp_path, new_bucket_name):
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    bucket = new_bucket_name()
    b2 = SyncB2(server)
    b2.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    b2.upload(bucket, "report.txt", b"quarterly")
    mount = read_unit(MOUNT_UNIT)["Mount"]
    creds = tmp_path / "b2.conf"
    creds.write_text(f"B2_APPLICATION_KEY_ID={server.key_id}\nB2_APPLICATION_KEY={server.key}\n"
                     f"B2_ENVIRONMENT={server.realm}\n")  # fmt: skip
    creds.chmod(0o600)
    cache = tmp_path / "cache"
    options = (mount["Options"][0].replace("/etc/b2fs/b2.conf", str(creds))
               .replace("/var/cache/b2fs/b2", str(cache)))  # fmt: skip
    assert options != mount["Options"][0]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "b2fs").symlink_to(B2FS)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    what = mount["What"][0].replace("my-bucket", bucket)
    # In a private mount namespace /usr/local/bin holds b2fs (as the install step does) and the
    # mount is seen by this script only; `umount` returns at once, b2fs drains and exits.
    script = f"""
set -e
mount --bind {bindir} /usr/local/bin
mount -t {mount["Type"][0]} -o {options} {what} {mnt}
stat -c %u {mnt}/report.txt
cat {mnt}/report.txt; echo
echo -n made-here > {mnt}/new.txt
umount {mnt}
pid=$(cat {cache}/lock)
for i in $(seq 600); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.1; done
echo "b2fs $pid did not exit" >&2; exit 1
"""
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           env={k: v for k, v in os.environ.items() if not k.startswith("B2")},
                           capture_output=True, text=True, timeout=100)  # fmt: skip
    finally:
        _end_pid_in(cache / "lock")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["1000", "quarterly"]
    assert b2.read(bucket, "new.txt") == b"made-here"


def _end_pid_in(lock: Path) -> None:
    """Kill the b2fs process named in its cache lock file, if it is still alive."""
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"b2fs" not in cmdline:
            return
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
