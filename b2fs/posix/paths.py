"""Path rules: which B2 names a POSIX view can show, and which names b2fs may create.

B2 names are UTF-8 strings of up to 1,024 bytes with no control characters;
``/`` is an ordinary character that tools treat as a separator.  A POSIX view
also needs every segment to be non-empty, not ``.``/``..`` and at most 255
bytes (``NAME_MAX``).  A name of 251 to 255 bytes is stored by the name codec as a
stub with the full name in file info (B2's older rules and b2sdk cap a stored
segment at 250 bytes), so everything b2fs writes can be read back by every tool.
"""

from __future__ import annotations

from b2fs.posix.errors import InvalidName, NameTooLong

NAME_MAX = 255  # POSIX: longest name a program may pass
KEY_MAX = 1024  # longest B2 file name, in UTF-8 bytes
DIR_MARKER = ".bzEmpty"  # what the B2 web UI writes for an empty folder


def showable_segment(segment: str) -> bool:
    """Can a name segment found in B2 be shown as a directory entry?"""
    if segment in ("", ".", ".."):
        return False
    try:
        raw = segment.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(raw) <= NAME_MAX and "\0" not in segment


def decode_name(name: bytes) -> str:
    """A name from the kernel, as text; B2 only stores UTF-8."""
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName(f"name {name!r} is not valid UTF-8; B2 stores UTF-8 names") from None


def check_length(name: str) -> None:
    """ENAMETOOLONG for a name over NAME_MAX bytes (checked first, as POSIX programs expect)."""
    n = len(name.encode("utf-8", "surrogateescape"))
    if n > NAME_MAX:
        raise NameTooLong(f"name of {n} bytes is longer than {NAME_MAX}")


def check_new_segment(name: str) -> None:
    """Refuse a name b2fs should not create, with the errno POSIX programs expect."""
    check_length(name)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidName(f"name {name!r} has control characters, which B2 refuses")
    if name == DIR_MARKER:
        raise InvalidName(f"{DIR_MARKER} is reserved for B2 directory markers")


def check_key(key: str) -> None:
    """Refuse a full B2 file name over B2's length limit."""
    n = len(key.encode("utf-8"))
    if n > KEY_MAX:
        raise NameTooLong(f"the B2 name would be {n} bytes, over B2's {KEY_MAX}-byte limit")


def join(parent: str, name: str) -> str:
    """Join plaintext mount-relative paths ("" is the root)."""
    return f"{parent}/{name}" if parent else name


def split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def is_under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or below it."""
    return path == top or path.startswith(top + "/")
