"""``b2fs bucket ...`` and ``b2fs key ...`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from b2fs.emulator.process import LocalServer

from .helpers import unique_bucket_name


def b2fs(srv: LocalServer | None, *args: str, env: dict[str, str] | None = None,
         home: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    e = {k: v for k, v in os.environ.items() if not k.startswith("B2_")}
    if home is not None:
        e["HOME"] = str(home)
    if srv is not None:
        e |= {
            "B2_APPLICATION_KEY_ID": srv.key_id,
            "B2_APPLICATION_KEY": srv.key,
            "B2_ENVIRONMENT": srv.realm,
        }
    e |= env or {}
    return subprocess.run([sys.executable, "-m", "b2fs", *args], capture_output=True, text=True,
                          env=e, timeout=60)  # fmt: skip


def test_bucket_commands(psrv: LocalServer) -> None:
    name = unique_bucket_name("cli")
    r = b2fs(psrv, "bucket", "create", name, "--info", "a=1", "--lifecycle-rules",
             '[{"fileNamePrefix": "", "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": null}]')  # fmt: skip
    assert r.returncode == 0, r.stderr
    bucket_id = r.stdout.strip()
    r = b2fs(psrv, "bucket", "list")
    assert r.returncode == 0 and any(line.split()[:3] == [name, bucket_id, "allPrivate"]
                                     for line in r.stdout.splitlines())  # fmt: skip
    assert r.stdout.splitlines()[0].split() == ["NAME", "ID", "TYPE", "REVISION"]
    r = b2fs(psrv, "bucket", "update", name, "--type", "allPublic", "--if-revision", "1", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert (b["bucket_type"], b["revision"], b["bucket_info"]) == ("allPublic", 2, {"a": "1"})
    r = b2fs(psrv, "bucket", "update", name, "--info", "b=2", "--if-revision", "1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "conflict" in r.stderr
    listed = json.loads(b2fs(psrv, "bucket", "list", "--json").stdout)
    assert {x["bucket_name"]: x["revision"] for x in listed}[name] == 2
    assert b2fs(psrv, "bucket", "delete", name).returncode == 0
    r = b2fs(psrv, "bucket", "delete", name)
    assert (
        r.returncode == 1
        and r.stderr.startswith("b2fs bucket delete: error:")
        and r.stderr.count("\n") == 1
    )


def test_key_commands(psrv: LocalServer, tmp_path: Path) -> None:
    r = b2fs(psrv, "key", "create", "cli-key", "--capabilities", "listBuckets,listFiles")
    assert r.returncode == 0, r.stderr
    key_id, secret = r.stdout.split()
    r = b2fs(psrv, "key", "list")
    row = next(line for line in r.stdout.splitlines() if line.startswith(key_id))
    assert "cli-key" in row and "listBuckets,listFiles" in row and secret not in r.stdout
    # the new key works, from a 0600 credentials file
    creds = tmp_path / "creds"
    creds.write_text(f"B2_APPLICATION_KEY_ID={key_id}\nB2_APPLICATION_KEY={secret}\n")
    creds.chmod(0o600)
    r = b2fs(None, "bucket", "list", "--json", "--credentials", str(creds), "--realm", psrv.realm)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)
    r = b2fs(None, "key", "list", "--credentials", str(creds), "--realm", psrv.realm)
    assert r.returncode == 1 and "unauthorized" in r.stderr  # no listKeys capability
    name = unique_bucket_name("kb")
    bucket_id = b2fs(psrv, "bucket", "create", name).stdout.strip()
    r = b2fs(psrv, "key", "create", "scoped", "--capabilities", "readFiles", "--json",
             "--bucket", name, "--name-prefix", "p/", "--duration", "600")  # fmt: skip
    scoped = json.loads(r.stdout)
    assert scoped["bucket_ids"] == [bucket_id] and scoped["name_prefix"] == "p/"
    assert scoped["application_key"] and scoped["expiration_timestamp"]
    assert json.loads(b2fs(psrv, "key", "delete", key_id, "--json").stdout)["key_id"] == key_id
    assert key_id not in b2fs(psrv, "key", "list").stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [(["bucket"], 2), (["bucket", "frob"], 2), (["key", "create", "x"], 2),
     (["bucket", "create", "x-valid-name", "--info", "novalue"], 2),
     (["bucket", "create", "x-valid-name", "--cors-rules", "{"], 2)],
)  # fmt: skip
def test_usage_errors_exit_2(psrv: LocalServer, args: list[str], code: int) -> None:
    r = b2fs(psrv, *args)
    assert r.returncode == code and r.stderr


def test_credential_errors_exit_1(tmp_path: Path, psrv: LocalServer) -> None:
    r = b2fs(None, "bucket", "list", home=tmp_path)
    assert r.returncode == 1 and "no B2 credentials" in r.stderr and r.stderr.count("\n") == 1
    creds = tmp_path / "creds"
    creds.write_text(f"B2_APPLICATION_KEY_ID={psrv.key_id}\nB2_APPLICATION_KEY={psrv.key}\n")
    creds.chmod(0o644)
    r = b2fs(None, "bucket", "list", "--credentials", str(creds), "--realm", psrv.realm)
    assert r.returncode == 1 and "chmod 600" in r.stderr and psrv.key not in r.stderr
    r = b2fs(psrv, "bucket", "list", env={"B2_APPLICATION_KEY": "wrong"})
    assert r.returncode == 1 and "refused" in r.stderr and "wrong" not in r.stderr
