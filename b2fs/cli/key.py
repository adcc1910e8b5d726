"""``b2fs key list|create|delete``: manage application keys.

``create`` prints the new key's id and secret (B2 shows the secret only once).
Sits on ``b2fs.cli.account`` and ``b2fs.b2``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from b2fs.cli.account import UsageError, as_json, common_options, run, table

if TYPE_CHECKING:
    from b2fs.b2 import B2Client


def add_parser(sub: Any) -> None:
    common = common_options()
    p = sub.add_parser("key", help="list, create or delete application keys")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = acts.add_parser("list", parents=[common], help="list application keys")
    a.set_defaults(func=_list)

    a = acts.add_parser("create", parents=[common], help="create an application key")
    a.add_argument("name", help="key name")
    a.add_argument("--capabilities", required=True, metavar="CAP,CAP",
                   help="comma-separated capabilities, e.g. listFiles,readFiles")  # fmt: skip
    a.add_argument("--bucket", action="append", metavar="NAME",
                   help="restrict the key to this bucket (repeatable)")  # fmt: skip
    a.add_argument(
        "--name-prefix", metavar="PREFIX", help="restrict the key to names with this prefix"
    )
    a.add_argument("--duration", type=int, metavar="SECONDS", help="expire the key after this long")
    a.set_defaults(func=_create)

    a = acts.add_parser("delete", parents=[common], help="delete an application key")
    a.add_argument("key_id", help="application key id")
    a.set_defaults(func=_delete)


def _when(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _list(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        keys = [k async for k in c.list_keys()]
        if args.json:
            return as_json(keys)
        table(
            [(k.key_id, k.key_name, ",".join(k.capabilities), ",".join(k.bucket_ids or ()) or None,
              k.name_prefix, _when(k.expiration_timestamp)) for k in keys],
            ("ID", "NAME", "CAPABILITIES", "BUCKETS", "PREFIX", "EXPIRES"),
        )  # fmt: skip
        return None

    return run(args, job)


def _create(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        caps = [x for x in args.capabilities.split(",") if x]
        if not caps:
            raise UsageError("--capabilities is empty")
        ids = [(await c.get_bucket(name)).bucket_id for name in args.bucket or ()]
        k = await c.create_key(args.name, caps, bucket_ids=ids or None,
                               name_prefix=args.name_prefix, valid_duration_seconds=args.duration)  # fmt: skip
        if args.json:
            return as_json(k)
        print(k.key_id, k.application_key)
        return None

    return run(args, job)


def _delete(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        k = await c.delete_key(args.key_id)
        return as_json(k) if args.json else None

    return run(args, job)
