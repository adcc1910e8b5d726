"""B2 credentials for the CLI and the mount: from the environment or a 0600 file.

``load_credentials(path, realm)`` looks, in order, at an explicit file (``--credentials``),
the environment (``B2_APPLICATION_KEY_ID``, ``B2_APPLICATION_KEY``, the names the
official ``b2`` CLI uses), then ``~/.config/b2fs/credentials``. Files use systemd
``EnvironmentFile`` syntax (``KEY=value`` lines, ``#``/``;`` comments, optional quotes)
with the same names, and are refused when their mode grants any group/other bit.
The realm comes from the ``realm`` argument (``--realm``), else ``B2_ENVIRONMENT``
(environment, then file), else production. Used by ``b2fs.cli`` and the mount; the
key never appears in a repr or an error.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from b2fs.b2.core import PRODUCTION_REALM, realm_url

KEY_ID = "B2_APPLICATION_KEY_ID"
KEY = "B2_APPLICATION_KEY"
ENVIRONMENT = "B2_ENVIRONMENT"
DEFAULT_PATH = "~/.config/b2fs/credentials"


class CredentialsError(Exception):
    """No usable credentials (the message says what to do)."""


@dataclass(frozen=True)
class Credentials:
    key_id: str
    key: str = field(repr=False)
    realm: str = PRODUCTION_REALM
    source: str = ""  # "environment" or the file's path


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines as systemd reads them (comments, blank lines, quotes; a
    shell-style ``export`` prefix is accepted too, so the file can be sourced)."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise CredentialsError(f"line {number}: expected KEY=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name] = value
    return out


def read_credentials_file(path: str | os.PathLike[str]) -> dict[str, str]:
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise CredentialsError(f"cannot read credentials file {p}: {e.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsError(f"credentials file {p} is not a regular file")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise CredentialsError(
                f"credentials file {p} has mode {mode:04o}: it must not be readable by "
                f"group or others (chmod 600 {p})"
            )
        try:
            return parse_environment_file(f.read())
        except CredentialsError as e:
            raise CredentialsError(f"credentials file {p}: {e}") from None


def load_credentials(
    path: str | None = None,
    realm: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Credentials from ``path``, else the environment, else the default file."""
    env = os.environ if environ is None else environ
    values: Mapping[str, str]
    if path is not None:
        values, source = read_credentials_file(path), str(Path(path).expanduser())
    elif env.get(KEY_ID) or env.get(KEY):
        if not (env.get(KEY_ID) and env.get(KEY)):
            missing = KEY if env.get(KEY_ID) else KEY_ID
            raise CredentialsError(f"{missing} is not set (set both {KEY_ID} and {KEY})")
        values, source = env, "environment"
    elif Path(DEFAULT_PATH).expanduser().exists():
        values, source = read_credentials_file(DEFAULT_PATH), str(Path(DEFAULT_PATH).expanduser())
    else:
        raise CredentialsError(
            f"no B2 credentials: set {KEY_ID} and {KEY}, or write them to {DEFAULT_PATH} "
            "(mode 0600), or pass --credentials FILE"
        )
    key_id, key = values.get(KEY_ID, ""), values.get(KEY, "")
    if not key_id or not key:
        raise CredentialsError(f"{source}: {KEY_ID} and {KEY} are both needed")
    chosen = realm or env.get(ENVIRONMENT) or values.get(ENVIRONMENT) or PRODUCTION_REALM
    return Credentials(key_id, key, realm_url(chosen), source)
