"""Names: one path segment (a file or directory name) <-> its stored form.

The mount stores a path segment by segment (B2's tree shape is kept, so
listings with ``delimiter="/"`` and prefixes work unchanged). ``PlainNameCodec``
stores names as they are, after checking that B2 takes them;
``EncryptedNameCodec`` stores AES-SIV(NFC name, AD = the parent's stored path)
as unpadded base64url.  Either one stores a segment that would pass 250 bytes
(B2's older limit, which the local server keeps) as a fixed-length stub plus
"long info" the mount keeps in file info (docs/encryption.md): a plain stub is
the hash of the name, so every other name stays browsable as it is. The reserved names the mount hides live here too.
Neighbours: the vault builds the encrypted codec; the mount's vfs calls it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from b2fs.codec import b64
from b2fs.codec.errors import InvalidName, NameTooLong, NeedsLongInfo, UndecodableName

SEGMENT_MAX = 250  # bytes of one stored segment (B2's own limit, which b2fs keeps)
NAME_MAX = 255  # bytes of a name (POSIX NAME_MAX), for encrypted names
MARKER = ".bzEmpty"  # directory marker leaf, in every directory, never encrypted
VAULT_NAME = ".b2fs-vault"  # the vault object, at the root of the mounted prefix
CHANGES_DIR = ".b2fs"  # the change log's folder (b2fs.sync), at the root of the mounted prefix
LONG_INFO_KEY = "b2fs-n"  # file info key holding the full encrypted name of a stub
STUB_MARK = "~"  # not in the base64url alphabet: a stub is never a normal encoding
STUB_LEN = len(STUB_MARK) + b64.encoded_len(hashlib.sha256().digest_size)  # 44


class EncodedName(NamedTuple):
    segment: str
    long_info: dict[str, str] | None  # to keep in the file info when not None


class NameCodec(Protocol):
    encrypted: bool

    def encode(self, parent_stored: str, name: str) -> EncodedName:
        """The stored segment of ``name`` in the directory whose stored path
        (relative to the mounted prefix, "" for its root) is ``parent_stored``.
        Raises NameTooLong / InvalidName."""
        ...

    def decode(
        self, parent_stored: str, segment: str, long_info: dict[str, str] | None = None
    ) -> str:
        """The name of a stored segment. Raises UndecodableName (not ours:
        report and skip) / NeedsLongInfo (a stub: pass the long info)."""
        ...

    def is_long_stub(self, segment: str) -> bool: ...


def is_reserved(parent_stored: str, segment: str) -> bool:
    """A stored segment the mount hides: the marker anywhere, the vault and the change log's
    folder at the root."""
    return segment == MARKER or (parent_stored == "" and segment in (VAULT_NAME, CHANGES_DIR))


def _check(name: str) -> bytes:
    """The UTF-8 of a name any mount may hold; InvalidName otherwise."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidName(f"invalid name {name!r}")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"name {name!r} is not UTF-8") from None


class PlainNameCodec:
    encrypted = False

    def encode(self, parent_stored: str, name: str) -> EncodedName:
        raw = _check(name)
        if len(raw) > NAME_MAX:
            raise NameTooLong(f"name of {len(raw)} bytes (at most {NAME_MAX})")
        if any(c < 0x20 or c == 0x7F for c in raw):
            raise InvalidName(f"B2 refuses control characters in names: {name!r}")
        if is_reserved(parent_stored, name):
            raise InvalidName(f"{name!r} is reserved")
        if len(raw) > SEGMENT_MAX:
            return EncodedName(_stub(raw), {LONG_INFO_KEY: name})
        return EncodedName(name, None)

    def decode(
        self, parent_stored: str, segment: str, long_info: dict[str, str] | None = None
    ) -> str:
        """A stub with its matching long info is the long name; anything else (a name of
        another tool's that only looks like a stub too) is itself."""
        if self.is_long_stub(segment) and long_info and LONG_INFO_KEY in long_info:
            name = long_info[LONG_INFO_KEY]
            try:
                if _stub(_check(name)) == segment:
                    return name
            except InvalidName:
                pass
        return segment

    def is_long_stub(self, segment: str) -> bool:
        return len(segment) == STUB_LEN and segment.startswith(STUB_MARK)


class EncryptedNameCodec:
    encrypted = True

    def __init__(self, names_key: bytes) -> None:
        self._siv = AESSIV(names_key)

    def __repr__(self) -> str:
        return "EncryptedNameCodec()"

    def encode(self, parent_stored: str, name: str) -> EncodedName:
        raw = _check(unicodedata.normalize("NFC", name))
        if len(raw) > NAME_MAX:
            raise NameTooLong(f"name of {len(raw)} bytes (at most {NAME_MAX})")
        sealed = self._siv.encrypt(raw, [parent_stored.encode("utf-8")])
        segment = b64.encode(sealed)
        if len(segment) <= SEGMENT_MAX:
            return EncodedName(segment, None)
        return EncodedName(_stub(sealed), {LONG_INFO_KEY: segment})

    def decode(
        self, parent_stored: str, segment: str, long_info: dict[str, str] | None = None
    ) -> str:
        try:
            if self.is_long_stub(segment):
                if not long_info or LONG_INFO_KEY not in long_info:
                    raise NeedsLongInfo(f"{segment} is a long-name stub")
                sealed = b64.decode(long_info[LONG_INFO_KEY])
                if _stub(sealed) != segment:
                    raise UndecodableName(f"long info does not match {segment}")
            else:
                sealed = b64.decode(segment)
            raw = self._siv.decrypt(sealed, [parent_stored.encode("utf-8")])
            return raw.decode("utf-8")
        except (ValueError, InvalidTag):  # bad base64url, bad tag, bad UTF-8
            raise UndecodableName(f"{segment!r} is not a name of this vault here") from None

    def is_long_stub(self, segment: str) -> bool:
        return len(segment) == STUB_LEN and segment.startswith(STUB_MARK)


def _stub(raw: bytes) -> str:
    """The stored stub of a long name: ``~`` and the base64url SHA-256 of its bytes (the
    sealed name when encrypted, the UTF-8 name when plain)."""
    return STUB_MARK + b64.encode(hashlib.sha256(raw).digest())
