"""Passphrases for encryption: from a 0600 file, the environment, or a prompt on the terminal.

Never from a command-line argument (any user can read those in ``ps``). Used
by ``b2fs mount -o encrypt`` and ``b2fs encryption init|passwd`` (the CLI);
the vault (``b2fs.codec.vault``) turns a passphrase into keys. Order: a file
named on the command line or in ``-o passphrase_file``, then the environment
variable, then a prompt when standard input is a terminal.
"""

from __future__ import annotations

import getpass
import os
import sys

from b2fs.private_file import read_private

ENV = "B2FS_PASSPHRASE"
NEW_ENV = "B2FS_NEW_PASSPHRASE"  # the new one, for ``b2fs encryption passwd``


class PassphraseError(Exception):
    """No usable passphrase; the message says what to do (and never holds the passphrase)."""


def read_passphrase_file(path: str) -> str:
    """The first line of a file only its owner can read (mode 0600 or stricter)."""
    path = os.path.expanduser(path)
    data = read_private(path, "passphrase file", PassphraseError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseError(f"passphrase file {path} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise PassphraseError(f"passphrase file {path} is empty (the first line is the passphrase)")
    return line


def get_passphrase(*, file: str | None, env: str = ENV, prompt: str = "Passphrase: ",
                   confirm: bool = False, file_hint: str = "--passphrase-file FILE") -> str:  # fmt: skip
    """From ``file`` if given, else ``$env``, else a prompt on the terminal (asked twice
    when ``confirm``, for a new passphrase)."""
    if file:
        return read_passphrase_file(file)
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise PassphraseError(
            f"no passphrase: set {env}, or pass {file_hint} (a 0600 file), or run in a terminal"
        )
    try:
        value = getpass.getpass(prompt)
        if value and confirm and getpass.getpass("Again: ") != value:
            raise PassphraseError("the two passphrases differ")
    except EOFError:
        raise PassphraseError("no passphrase given") from None
    if not value:
        raise PassphraseError("empty passphrase")
    return value
