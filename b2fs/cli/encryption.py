"""``b2fs encryption init|passwd b2://BUCKET[/PREFIX]``: start an encrypted tree, change its passphrase.

``init`` writes a new vault (``PREFIX.b2fs-vault``: a random master key
wrapped under the passphrase) into a prefix that holds nothing yet; the
tree is then mounted with ``b2fs mount ... -o encrypt``.  ``passwd``
re-wraps the same master key under a new passphrase (no file changes),
uploads it, and deletes every older version of the vault object, since
B2 keeps them and they still open with the old passphrase.  Credentials
are the mount's (``b2fs.credentials``); passphrases come from a 0600 file,
``$B2FS_PASSPHRASE`` (``$B2FS_NEW_PASSPHRASE`` for the new one), or a
prompt (``b2fs.passphrase``), never from the command line.  Neighbours:
``b2fs.codec.vault`` (the format), ``b2fs.mount.vault`` (finding the object).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

VAULT_CONTENT_TYPE = "application/json"


class CommandError(Exception):
    """The command cannot do what was asked; one line for the user."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("encryption", help="start an encrypted tree, change its passphrase",
                       description="Client-side encryption: see docs/encryption.md.")  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the vault of a new encrypted tree at b2://BUCKET[/PREFIX]",
        description="Create the vault (.b2fs-vault) of a new encrypted tree in an empty "
        "prefix. The passphrase comes from --passphrase-file, $B2FS_PASSPHRASE, or a prompt "
        "(asked twice).",
    )  # fmt: skip
    passwd = actions.add_parser(
        "passwd", help="change the passphrase of the encrypted tree at b2://BUCKET[/PREFIX]",
        description="Re-wrap the master key under a new passphrase and delete the older "
        "versions of the vault. The current passphrase comes from --passphrase-file, "
        "$B2FS_PASSPHRASE or a prompt; the new one from --new-passphrase-file, "
        "$B2FS_NEW_PASSPHRASE or a prompt (asked twice).",
    )  # fmt: skip
    for q in (init, passwd):
        q.add_argument("source", help="b2://BUCKET[/PREFIX]")
        q.add_argument("--passphrase-file", metavar="FILE",
                       help="a 0600 file whose first line is the (current) passphrase")  # fmt: skip
        q.add_argument(
            "--credentials", metavar="FILE", help="credentials file (0600, KEY=value lines)"
        )
        q.add_argument("--realm", help="B2 realm URL (default: $B2_ENVIRONMENT or production)")
    passwd.add_argument("--new-passphrase-file", metavar="FILE",
                        help="a 0600 file whose first line is the new passphrase")  # fmt: skip
    init.set_defaults(func=run_init)
    passwd.set_defaults(func=run_passwd)


def run_init(args: argparse.Namespace) -> int:
    async def act(client: Any, bucket: Any, source: Any) -> str:
        from b2fs.codec import create_vault
        from b2fs.mount.vault import find_vault
        from b2fs.passphrase import get_passphrase

        if await find_vault(client, bucket.bucket_id, source.prefix) is not None:
            raise CommandError(f"{source} already has a vault: use 'b2fs encryption passwd'")
        files, _ = await client.list_file_names_page(
            bucket.bucket_id, prefix=source.prefix or None, max_file_count=1
        )
        if files:
            raise CommandError(
                f"{source} already holds files (e.g. {files[0].file_name!r}): an encrypted tree "
                "starts in an empty prefix (existing files would stay in the clear, hidden)"
            )
        passphrase = get_passphrase(
            file=args.passphrase_file, prompt="New passphrase: ", confirm=True
        )
        blob, vault = create_vault(passphrase)
        await _upload_vault(client, bucket, source, blob)
        return (f"created the vault {vault.key_id} ({vault.kdf.name}) at {source}; mount it with:\n"
                f"  b2fs mount {source} MOUNTPOINT -o encrypt")  # fmt: skip

    return _run(args, act)


def run_passwd(args: argparse.Namespace) -> int:
    async def act(client: Any, bucket: Any, source: Any) -> str:
        from b2fs.codec import VAULT_NAME, VaultError, WrongPassphrase, open_vault, rewrap_vault
        from b2fs.mount.vault import read_vault
        from b2fs.passphrase import NEW_ENV, get_passphrase

        blob = await read_vault(client, bucket.bucket_id, source.prefix)
        if blob is None:
            raise CommandError(f"{source} has no vault: 'b2fs encryption init' makes one")
        old = get_passphrase(file=args.passphrase_file, prompt="Current passphrase: ")
        new = get_passphrase(file=args.new_passphrase_file, env=NEW_ENV, prompt="New passphrase: ",
                             confirm=True, file_hint="--new-passphrase-file FILE")  # fmt: skip
        try:
            new_blob = rewrap_vault(blob, old, new)
            open_vault(new_blob, new)  # never delete the old versions for one that does not open
        except WrongPassphrase:
            raise CommandError(f"wrong passphrase for the vault of {source}") from None
        except VaultError as e:
            raise CommandError(f"the vault of {source} cannot be used: {e}") from None
        version = await _upload_vault(client, bucket, source, new_blob)
        name = source.prefix + VAULT_NAME
        older = [v for v in await client.versions_of(bucket.bucket_id, name)
                 if v.file_id and v.file_id != version.file_id]  # fmt: skip
        try:
            for v in older:
                await client.delete_file_version(v.file_id, v.file_name)
        except Exception as e:
            raise CommandError(
                f"the passphrase is changed, but deleting the older versions of {name} failed "
                f"({type(e).__name__}: {e}): they still open with the old passphrase; delete "
                "them with a key that has deleteFiles"
            ) from None
        return f"passphrase changed for {source}; {len(older)} older vault version(s) deleted"

    return _run(args, act)


async def _upload_vault(client: Any, bucket: Any, source: Any, blob: bytes) -> Any:
    from b2fs.codec import VAULT_NAME

    return await client.upload(bucket.bucket_id, source.prefix + VAULT_NAME, blob,
                               content_type=VAULT_CONTENT_TYPE)  # fmt: skip


def _run(args: argparse.Namespace, act: Any) -> int:
    """Parse the source, load the credentials, then ``act(client, bucket, source)`` on B2."""
    import trio

    from b2fs.credentials import CredentialsError, load_credentials
    from b2fs.mount.source import SourceError, parse_source
    from b2fs.passphrase import PassphraseError

    try:
        source = parse_source(args.source)
    except SourceError as e:
        print(f"b2fs: {e}", file=sys.stderr)
        return 2
    try:
        creds = load_credentials(args.credentials, args.realm)
        print(trio.run(_act, creds, source, act))
        return 0
    except (CredentialsError, PassphraseError, CommandError) as e:
        print(f"b2fs: {e}", file=sys.stderr)
        return 1


async def _act(creds: Any, source: Any, act: Any) -> str:
    from b2fs.b2 import B2Client, B2Error, BucketNotFound

    async with B2Client(creds.key_id, creds.key, realm=creds.realm) as client:
        try:
            await client.authorize()
            bucket = await client.get_bucket(source.bucket)
            return await act(client, bucket, source)
        except BucketNotFound:
            raise CommandError(
                f"bucket {source.bucket!r} does not exist or this key cannot see it"
            ) from None
        except B2Error as e:
            raise CommandError(f"B2 refused: {type(e).__name__}: {e}") from None
