"""Credentials for the CLI and the mount: the environment, or a 0600 file in EnvironmentFile syntax.

Names are the official B2 CLI's: ``B2_APPLICATION_KEY_ID``,
``B2_APPLICATION_KEY``, and the realm URL in ``B2_ENVIRONMENT`` (default
production).  A file holds the same names as ``KEY=value`` lines, as
systemd's ``EnvironmentFile=`` reads them; a file readable or writable by
group or others is refused, since it holds a secret.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

PRODUCTION_REALM = "https://api.backblazeb2.com"
DEFAULT_FILE = "~/.config/b2fs/credentials"


class CredentialsError(Exception):
    """No usable credentials; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    key_id: str
    key: str = field(repr=False)
    realm: str = PRODUCTION_REALM


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments, optional quotes, optional ``export``)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CredentialsError(f"credentials file {path} does not exist") from None
    except OSError as e:
        raise CredentialsError(f"credentials file {path}: {e.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"credentials file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"run chmod 600 {path}"
        )
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = line.removeprefix("export ").strip()
            key, sep, value = line.partition("=")
            if not sep:
                raise CredentialsError(f"{path}:{number}: expected KEY=value")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def load_credentials(path: str | None = None, realm: str | None = None) -> Credentials:
    """From ``path`` if given, else the environment, else the default file if it exists."""
    source: dict[str, str]
    where: str
    if path:
        source, where = read_env_file(os.path.expanduser(path)), path
    elif os.environ.get("B2_APPLICATION_KEY_ID") or os.environ.get("B2_APPLICATION_KEY"):
        source, where = dict(os.environ), "the environment"
    elif os.path.exists(os.path.expanduser(DEFAULT_FILE)):
        where = os.path.expanduser(DEFAULT_FILE)
        source = read_env_file(where)
    else:
        raise CredentialsError(
            "no B2 credentials: set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY, "
            f"or write them to {DEFAULT_FILE} (mode 0600), or pass --credentials FILE"
        )
    key_id = source.get("B2_APPLICATION_KEY_ID", "").strip()
    key = source.get("B2_APPLICATION_KEY", "").strip()
    if not key_id or not key:
        missing = [
            n for n, v in (("B2_APPLICATION_KEY_ID", key_id), ("B2_APPLICATION_KEY", key)) if not v
        ]
        raise CredentialsError(f"{' and '.join(missing)} missing from {where}")
    realm = (
        realm or source.get("B2_ENVIRONMENT") or os.environ.get("B2_ENVIRONMENT") or "production"
    )
    return Credentials(key_id, key, PRODUCTION_REALM if realm == "production" else realm)
