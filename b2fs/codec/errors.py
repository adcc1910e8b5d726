"""The codec layer's errors, as types.

Raised by ``content`` (objects), ``names`` (path segments), ``staging`` (local
staging files) and ``vault`` (keys). The mount maps them to an errno in one
place: ``NameTooLong`` to ENAMETOOLONG, ``InvalidName`` to EINVAL, every other
``CodecError`` to EIO. No message ever holds key material or a passphrase.
"""

from __future__ import annotations


class CodecError(Exception):
    """Base of every error the codec layer raises."""


# -- objects (contents) --------------------------------------------------------


class CorruptObject(CodecError):
    """A stored object that cannot be ours: impossible size, bad header."""


class UnknownKey(CorruptObject):
    """The object's header names another key than this vault's."""


class TamperedChunk(CorruptObject):
    """A chunk failed authentication (altered, moved, truncated at a boundary,
    or read with another object's header)."""

    def __init__(self, chunk_index: int) -> None:
        super().__init__(f"chunk {chunk_index} failed authentication")
        self.chunk_index = chunk_index


class Truncated(CorruptObject):
    """The stored bytes end inside a chunk."""

    def __init__(self, chunk_index: int) -> None:
        super().__init__(f"stored bytes end inside chunk {chunk_index}")
        self.chunk_index = chunk_index


class SourceChanged(CodecError):
    """The plaintext an encryptor reads changed under it (or came back short).

    Encrypting the new bytes would reuse a (key, nonce) pair, so the encryptor
    refuses: abandon this upload and start a new one with a new encryptor.
    """


# -- names ---------------------------------------------------------------------


class NameTooLong(CodecError):
    """A name longer than the mount can store (ENAMETOOLONG)."""


class InvalidName(CodecError):
    """A name the mount cannot store: empty, '.', '..', '/', NUL, not UTF-8,
    reserved, or (plain mode) a character B2 refuses (EINVAL)."""


class UndecodableName(CodecError):
    """A stored segment that is not ours (not written by this vault here):
    report it and skip it, never show it."""


class NeedsLongInfo(CodecError):
    """A long-name stub: decode it again with the long info kept in the file
    info of the object (files) or of the directory's marker (directories)."""


# -- staging files -------------------------------------------------------------


class CorruptStaging(CodecError):
    """A local staging file whose header is not a staging header."""


# -- vault ---------------------------------------------------------------------


class VaultError(CodecError):
    """Base of the vault's errors."""


class WrongPassphrase(VaultError):
    """The passphrase does not unwrap the master key (or the wrapped key or its
    KDF parameters were altered: the two cannot be told apart)."""


class CorruptVault(VaultError):
    """The vault object is malformed, or its settings fail their MAC."""


class UnsupportedVault(VaultError):
    """A vault this version of b2fs (or this machine's cryptography) cannot use."""
