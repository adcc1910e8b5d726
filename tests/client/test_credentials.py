"""``load_credentials``: explicit file, environment, default file, realm, file modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2fs.credentials import Credentials, CredentialsError, load_credentials, parse_environment_file

FILE = """# b2fs credentials
; also a comment
B2_APPLICATION_KEY_ID=0012ab
B2_APPLICATION_KEY = "K001secret"

B2_ENVIRONMENT='http://127.0.0.1:9'
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_file_in_systemd_syntax(tmp_path: Path) -> None:
    c = load_credentials(str(write(tmp_path / "creds", FILE)), None, environ={})
    assert c == Credentials("0012ab", "K001secret", "http://127.0.0.1:9", str(tmp_path / "creds"))
    assert "K001secret" not in repr(c)
    assert parse_environment_file("A=1\nB= 'x y' \nexport C=3") == {"A": "1", "B": "x y", "C": "3"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "creds", FILE, mode)
    with pytest.raises(CredentialsError, match=f"mode {mode:04o}.*chmod 600") as err:
        load_credentials(str(path), None, environ={})
    assert "K001secret" not in str(err.value)


def test_environment_and_realm_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"B2_APPLICATION_KEY_ID": "id", "B2_APPLICATION_KEY": "k"}
    monkeypatch.setenv("HOME", str(tmp_path))  # no default file there
    assert load_credentials(None, None, environ=env) == Credentials(
        "id", "k", "https://api.backblazeb2.com", "environment"
    )
    env["B2_ENVIRONMENT"] = "http://127.0.0.1:1"
    assert load_credentials(None, None, environ=env).realm == "http://127.0.0.1:1"
    assert load_credentials(None, "http://127.0.0.1:2/", environ=env).realm == "http://127.0.0.1:2"
    assert load_credentials(None, "staging", environ=env).realm == "https://api.backblaze.net"
    path = write(tmp_path / "f", FILE)
    assert load_credentials(str(path), None, environ=env).key_id == "0012ab"  # the file wins
    assert load_credentials(str(path), None, environ=env).realm == "http://127.0.0.1:1"
    with pytest.raises(CredentialsError, match="B2_APPLICATION_KEY is not set"):
        load_credentials(None, None, environ={"B2_APPLICATION_KEY_ID": "id"})


def test_default_file_and_nothing_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CredentialsError, match="no B2 credentials"):
        load_credentials(None, None, environ={})
    (tmp_path / ".config/b2fs").mkdir(parents=True)
    write(tmp_path / ".config/b2fs/credentials", FILE)
    assert load_credentials(None, None, environ={}).key_id == "0012ab"
    with pytest.raises(CredentialsError, match="cannot read"):
        load_credentials(str(tmp_path / "missing"), None, environ={})
    write(tmp_path / "bad", "JUNK LINE\n")
    with pytest.raises(CredentialsError, match="line 1"):
        load_credentials(str(tmp_path / "bad"), None, environ={})
    write(tmp_path / "half", "B2_APPLICATION_KEY_ID=x\n")
    with pytest.raises(CredentialsError, match="both needed"):
        load_credentials(str(tmp_path / "half"), None, environ={})
