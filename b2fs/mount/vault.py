"""The vault object in B2, and choosing a mount's codecs from it at startup.

An encrypted tree has its vault (``.b2fs-vault``, a small JSON object: the
master key wrapped under the passphrase) at the root of the mounted prefix.
``mount_codecs`` runs before anything is mounted: with ``-o encrypt`` it
reads the vault and opens it with the passphrase (the KDF's cost is paid
here, once); without, it refuses a prefix that has a vault, so ciphertext
names are never shown as files.  Every refusal is a ``StartupError``.
``find_vault``/``read_vault`` are shared with ``b2fs encryption init|passwd``.
Neighbours: ``mount.run`` calls this between authorizing and assembling;
``b2fs.codec`` holds the format and the keys.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from b2fs.codec import VAULT_NAME, VaultError, WrongPassphrase, open_vault, plain_codecs
from b2fs.mount.options import MountOptions
from b2fs.mount.source import Source

log = logging.getLogger("b2fs.mount")

Codecs = tuple[Any, Any, Any]  # content, names, staging


class VaultRefused(Exception):
    """The mount cannot use this prefix's vault (or lack of one); one line, for StartupError."""


async def find_vault(client: Any, bucket_id: str, prefix: str) -> Any | None:
    """The newest visible version of ``PREFIX.b2fs-vault``, or None (one listing call)."""
    name = prefix + VAULT_NAME
    files, _ = await client.list_file_names_page(bucket_id, prefix=name, max_file_count=1)
    return next((f for f in files if f.file_name == name), None)


async def read_vault(client: Any, bucket_id: str, prefix: str) -> bytes | None:
    found = await find_vault(client, bucket_id, prefix)
    if found is None:
        return None
    return await client.download_bytes(file_id=found.file_id)


async def mount_codecs(
    client: Any, bucket: Any, source: Source, opts: MountOptions, passphrase: str | None
) -> Codecs:
    """The codecs of this mount. Raises VaultRefused."""
    if not opts.encrypt:
        if await find_vault(client, bucket.bucket_id, source.prefix) is not None:
            raise VaultRefused(
                f"{source} is encrypted (it holds {VAULT_NAME}): mount it with -o encrypt"
            )
        return plain_codecs()
    blob = await read_vault(client, bucket.bucket_id, source.prefix)
    if blob is None:
        raise VaultRefused(
            f"{source} has no vault ({source.prefix}{VAULT_NAME}): run "
            f"'b2fs encryption init {source}' to start an encrypted tree there"
        )
    if not passphrase:
        raise VaultRefused("-o encrypt needs a passphrase")
    started = time.perf_counter()
    try:
        vault = open_vault(blob, passphrase)
    except WrongPassphrase:
        raise VaultRefused(f"wrong passphrase for the vault of {source}") from None
    except VaultError as e:
        raise VaultRefused(f"the vault of {source} cannot be used: {e}") from None
    log.info("vault %s opened (%s, %.2f s)", vault.key_id, vault.kdf.name,
             time.perf_counter() - started)  # fmt: skip
    if opts.block_size % vault.chunk_size:
        raise VaultRefused(
            f"block_size {opts.block_size} is not a multiple of the vault's chunk size "
            f"{vault.chunk_size}"
        )
    return vault.content_codec(), vault.name_codec(), vault.staging_codec()
