"""The codec layer: plain or encrypted contents, names and staging files.

Sits between the mount's reader/writeback/cache and the ``b2`` client: block
index <-> stored byte range, encrypt/decrypt, name encryption; no network I/O
(staging files are the one local I/O, on descriptors the caller owns). The
format is specified in docs/encryption.md. A plain mount uses
``plain_codecs()``; an encrypted mount opens the vault object and asks the
``Vault`` for its three codecs. Modules: ``content``, ``names``, ``staging``,
``vault``, ``keys`` (HKDF), ``b64`` (base64url), ``errors``.
"""

from __future__ import annotations

from b2fs.codec.content import (
    HEADER_INFO_KEY,
    ContentCodec,
    EncryptedContentCodec,
    ObjectDecryptor,
    ObjectEncryptor,
    PlainContentCodec,
)
from b2fs.codec.errors import (
    CodecError,
    CorruptObject,
    CorruptStaging,
    CorruptVault,
    InvalidName,
    NameTooLong,
    NeedsLongInfo,
    SourceChanged,
    TamperedChunk,
    Truncated,
    UndecodableName,
    UnknownKey,
    UnsupportedVault,
    VaultError,
    WrongPassphrase,
)
from b2fs.codec.names import (
    CHANGES_DIR,
    LONG_INFO_KEY,
    MARKER,
    VAULT_NAME,
    EncodedName,
    EncryptedNameCodec,
    NameCodec,
    PlainNameCodec,
    is_reserved,
)
from b2fs.codec.staging import (
    EncryptedStagingCodec,
    PlainStagingCodec,
    StagingCodec,
    StagingFile,
)
from b2fs.codec.vault import (
    Argon2idParams,
    KdfParams,
    ScryptParams,
    Vault,
    argon2id_available,
    create_vault,
    default_kdf,
    open_vault,
    rewrap_vault,
)


def plain_codecs() -> tuple[PlainContentCodec, PlainNameCodec, PlainStagingCodec]:
    """The codecs of an unencrypted mount."""
    return PlainContentCodec(), PlainNameCodec(), PlainStagingCodec()


__all__ = [
    "HEADER_INFO_KEY",
    "LONG_INFO_KEY",
    "CHANGES_DIR",
    "MARKER",
    "VAULT_NAME",
    "Argon2idParams",
    "CodecError",
    "ContentCodec",
    "CorruptObject",
    "CorruptStaging",
    "CorruptVault",
    "EncodedName",
    "EncryptedContentCodec",
    "EncryptedNameCodec",
    "EncryptedStagingCodec",
    "InvalidName",
    "KdfParams",
    "NameCodec",
    "NameTooLong",
    "NeedsLongInfo",
    "ObjectDecryptor",
    "ObjectEncryptor",
    "PlainContentCodec",
    "PlainNameCodec",
    "PlainStagingCodec",
    "ScryptParams",
    "SourceChanged",
    "StagingCodec",
    "StagingFile",
    "TamperedChunk",
    "Truncated",
    "UndecodableName",
    "UnknownKey",
    "UnsupportedVault",
    "Vault",
    "VaultError",
    "WrongPassphrase",
    "argon2id_available",
    "create_vault",
    "default_kdf",
    "is_reserved",
    "open_vault",
    "plain_codecs",
    "rewrap_vault",
]
