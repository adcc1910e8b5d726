"""Seeing inside a running mount: /metrics against the server's own counters, the cost of a
known workload, ``b2fs status --watch`` on a terminal and into a pipe, progress at unmount."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from b2fs.b2.billing import billing_class
from b2fs.cli.status import ENTER, HOME, LEAVE
from b2fs.cli.status_view import since_mount
from b2fs.prices import Prices
from tests.mount.conftest import is_mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]

MB = 1 << 20
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples]  # fmt: skip


def value(samples, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


def test_metrics_during_a_copy_match_the_servers_counters(mount_factory, server, tmp_path):
    m = mount_factory(start=False, metrics="127.0.0.1:0", writeback_delay=0, bwlimit="6M:off",
                      large_file_threshold="10M", part_size="5M")  # fmt: skip
    server.reset_counters()  # from here on, only this mount talks to the server
    m.start()
    url = m.status()["mount"]["metrics"]
    data = os.urandom(12 * MB)  # a large file of two parts (5 MB, 7 MB), uploaded at 6 MiB/s
    (tmp_path / "src.bin").write_bytes(data)
    copy = threading.Thread(target=shutil.copyfile, args=(tmp_path / "src.bin", m.path / "c.bin"))
    copy.start()
    uploading_seen = False
    deadline = time.monotonic() + 60
    while True:
        samples = scrape(url)
        if value(samples, "b2fs_uploads_running") == 1:
            uploading_seen = True
            assert value(samples, "b2fs_upload_queue_bytes") == len(data)
        if not copy.is_alive() and value(samples, "b2fs_upload_queue_files") == 0:
            break
        assert time.monotonic() < deadline, "the upload did not finish"
        time.sleep(0.2)
    copy.join()
    assert uploading_seen, "no scrape saw the upload running"
    assert (m.path / "c.bin").read_bytes() == data  # read back through the reader
    # a name too long for B2: one failed create, counted by outcome
    deep = m.path
    for i in range(4):
        deep = deep / (f"d{i}" + "x" * 248)
        deep.mkdir()
    with pytest.raises(OSError) as failed:
        (deep / ("f" * 250)).write_bytes(b"x")
    assert failed.value.errno == errno.ENAMETOOLONG
    deadline = time.monotonic() + 30  # the directories' markers upload in the background
    while value(scrape(url), "b2fs_upload_queue_files") != 0:
        assert time.monotonic() < deadline, "the markers did not upload"
        time.sleep(0.2)

    samples, counted = scrape(url), server.counters()
    by_call: Counter[str] = Counter()
    for name, labels, v in samples:
        if name == "b2fs_b2_calls_total":
            assert labels["class"] == billing_class(labels["call"])
            by_call[labels["call"]] += int(v)
    assert dict(by_call) == counted["calls"]  # every call the server saw, and no other
    # read back from the blocks the upload left in the cache: no download
    assert by_call["b2_upload_part"] == 2 and by_call.get("b2_download_file_by_id", 0) == 0
    up = value(samples, "b2fs_b2_bytes_total", direction="upload")
    assert up == len(data)
    # the server also counts the 40 hex digits of a SHA-1 sent after a body (hex_digits_at_end)
    tails = counted["bytes_in"] - up
    assert tails % 40 == 0 and 0 <= tails <= 40 * (
        by_call["b2_upload_part"] + by_call["b2_upload_file"]
    )
    assert value(samples, "b2fs_b2_bytes_total", direction="download") == counted["bytes_out"]
    assert value(samples, "b2fs_fuse_bytes_total", op="write") == len(data)
    # every byte read came from the reader (memory + disk + download); the kernel may read a
    # range twice (its page cache dropped on a change of attributes), so at least the file
    read = value(samples, "b2fs_fuse_bytes_total", op="read")
    assert value(samples, "b2fs_read_bytes_total") == read >= len(data)
    uploads = by_call["b2_upload_file"] + by_call["b2_finish_large_file"]  # + the directories'
    assert value(samples, "b2fs_uploads_total") == uploads and by_call["b2_finish_large_file"] == 1
    assert value(samples, "b2fs_upload_bytes_total", how="sent") == len(data)
    assert value(samples, "b2fs_fuse_operations_total", op="create", outcome="ENAMETOOLONG") == 1
    assert value(samples, "b2fs_fuse_operation_seconds_count", op="write") >= 12
    assert value(samples, "b2fs_bandwidth_limit_bytes_per_second", direction="upload") == 6 * MB
    assert value(samples, "b2fs_conflicts_total") == 0

    # the example dashboard and alert rules use only metrics the mount exports
    with urllib.request.urlopen(url, timeout=10) as r:  # families without samples yet too
        exported = set(re.findall(r"^(?:# TYPE )?(b2fs_\w+)", r.read().decode(), re.M))
    docs = Path(__file__).parents[2] / "docs"
    for example in ("grafana-dashboard.json", "prometheus-alerts.yml"):
        used = set(re.findall(r"\bb2fs_[a-z0-9_]+", (docs / example).read_text()))
        assert used and used <= exported, (example, used - exported)

    # the failed create's warning names the file and what the program got; status keeps it
    status = m.status()
    rel = str(deep.relative_to(m.path) / ("f" * 250))
    assert status["warnings"][-1]["message"].startswith(f"create {rel}: ")
    assert status["warnings"][-1]["message"].endswith("the program gets ENAMETOOLONG")

    # what status says it cost, by hand from the server's counters at B2's list prices
    classes = counted["classes"]
    by_hand = classes["B"] * 0.004 / 10_000 + classes["C"] * 0.004 / 1000
    by_hand += counted["bytes_out"] / 1e9 * 0.01
    assert status["b2"]["classes"] == classes
    assert since_mount(status, Prices()).total == pytest.approx(by_hand)
    assert since_mount(status, Prices()).storage_month == pytest.approx(len(data) / 1e12 * 6)


def _read_until(fd: int, done, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while not done(out) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError as e:  # EIO: the other side of the terminal is closed
                if e.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            out += chunk
    return out


def _status_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return env


def test_status_watch_redraws_one_screen_of_80_columns(mount_factory):
    m = mount_factory(writeback_delay=60, bwlimit="64M:off", connections=8)
    (m.path / "pending.bin").write_bytes(b"x" * 3000)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    cmd = [sys.executable, "-m", "b2fs", "status", "--watch", "-n", "0.2", str(m.path)]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=_status_env(),
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    try:
        out = _read_until(master, lambda b: b.count(HOME.encode()) >= 3, 30)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out += _read_until(master, lambda b: b.endswith(LEAVE.encode()), 10)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode()
    assert text.startswith(ENTER) and text.endswith(LEAVE)  # the terminal is given back
    frame = text.split(HOME)[-2]  # a whole frame: the last one may be cut by Ctrl-C
    lines = [ESCAPE.sub("", line) for line in frame.replace("\r", "").split("\n")]
    assert 8 <= len(lines) <= 24
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    assert lines[0].startswith(f"b2://{m.bucket}/ on ...") and ", up " in lines[0]  # path cut
    screen = "\n".join(lines)
    for expected in ("pending uploads: 1 file(s), 2.9 KiB", "waiting", "pending.bin",
                     "block cache: ", "API calls, last ", "cost (B2 list prices): $",
                     "network: up 64.0 MiB/s, down no limit; HTTP/1.1; 8 connections",
                     "last warnings: none"):  # fmt: skip
        assert expected in screen, screen


def test_status_watch_into_a_pipe_writes_plain_lines(mount_factory):
    m = mount_factory(writeback_delay=60)
    (m.path / "pending.bin").write_bytes(b"x" * 3000)
    for extra, check in (([], None), (["--json"], json.loads)):
        cmd = [sys.executable, "-m", "b2fs", "status", "--watch", "-n", "0.2", *extra, str(m.path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=_status_env())
        try:
            assert proc.stdout is not None
            out = _read_until(proc.stdout.fileno(), lambda b: b.count(b"\n") >= 2, 30)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        lines = out.decode().splitlines()[:2]
        assert len(lines) == 2 and not any("\x1b" in line for line in lines)
        if check is None:
            assert all("pending 1 (2.9 KiB), uploading 0" in line for line in lines), lines
            assert all("calls/min A " in line and "cost $" in line for line in lines), lines
        else:
            assert [check(line)["writeback"]["pending"][0]["path"] for line in lines] == [
                "pending.bin"
            ] * 2


def test_unmount_shows_what_is_left_and_the_rate(server, tmp_path, new_bucket_name, b2sync):
    """In the foreground (no -v), the drain's progress reaches the terminal every 5 s."""
    bucket = new_bucket_name()
    b2sync.run(lambda c: c.create_bucket(bucket, "allPrivate"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, B2_APPLICATION_KEY_ID=server.key_id, B2_APPLICATION_KEY=server.key,
               B2_ENVIRONMENT=server.realm)  # fmt: skip
    cmd = [sys.executable, "-m", "b2fs", "mount", f"b2://{bucket}", str(mnt), "-f", "--cache-dir",
           str(tmp_path / "cache"), "-o", "writeback_delay=60,bwlimit=384K:off"]  # fmt: skip
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=err, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        (mnt / "big.bin").write_bytes(os.urandom(2_500_000))  # ~6.5 s at 384 KiB/s
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
    lines = [ln for ln in (tmp_path / "stderr").read_text().splitlines() if "unmount:" in ln]
    assert lines[0].startswith("b2fs: unmount: 1 upload(s) left, 2.4 MiB; waiting up to 600 s")
    assert re.search(r"1 upload\(s\) left, [\d.]+ [KM]iB, at [\d.]+ KiB/s, about \d+ s", lines[1])
    assert b2sync.read(bucket, "big.bin") is not None


@pytest.mark.parametrize("crypt", ["plain", "encrypted"], indirect=True)
def test_a_warning_names_the_files_as_logs_may(mount_factory, b2sync, crypt):
    """The path in a plain mount; in an encrypted one the stored names, never the plaintext."""
    m = mount_factory()
    (m.path / "secret-plan.txt").write_bytes(b"x")
    (m.path / "secret-dir").mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    exchange = 2  # RENAME_EXCHANGE of a file and a directory: refused by b2fs
    old, new = (os.fsencode(m.path / n) for n in ("secret-plan.txt", "secret-dir"))
    assert libc.renameat2(-100, old, -100, new, exchange) == -1
    assert ctypes.get_errno() == errno.EINVAL
    message = m.status()["warnings"][-1]["message"]
    if crypt is None:
        assert message == (
            "rename secret-plan.txt -> secret-dir: RENAME_EXCHANGE of a directory and a "
            "non-directory; the program gets EINVAL"
        )
    else:
        assert "secret" not in message and "secret" not in m.log()
        src, dst = b2sync.key("secret-plan.txt"), b2sync.key("secret-dir")
        assert message == f"rename {src} -> {dst}: InvalidArgument; the program gets EINVAL"
