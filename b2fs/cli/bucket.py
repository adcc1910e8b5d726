"""``b2fs bucket list|create|update|delete``: manage the account's buckets.

Sits on ``b2fs.cli.account`` (credentials, output, exit codes) and ``b2fs.b2``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from b2fs.cli.account import as_json, common_options, json_arg, key_values, run, table

if TYPE_CHECKING:
    from b2fs.b2 import B2Client

TYPES = ("allPrivate", "allPublic")


def add_parser(sub: Any) -> None:
    common = common_options()
    p = sub.add_parser("bucket", help="list, create, update or delete buckets")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = acts.add_parser("list", parents=[common], help="list the buckets this key sees")
    a.set_defaults(func=_list)

    for name, helptext in (("create", "create a bucket"), ("update", "change a bucket")):
        a = acts.add_parser(name, parents=[common], help=helptext)
        a.add_argument("name", help="bucket name")
        a.add_argument("--type", choices=TYPES, default="allPrivate" if name == "create" else None)
        a.add_argument("--info", action="append", metavar="KEY=VALUE",
                       help="bucket info entry (repeatable; on update, replaces all info)")  # fmt: skip
        a.add_argument("--lifecycle-rules", metavar="JSON", help="B2 lifecycleRules (a JSON list)")
        a.add_argument("--cors-rules", metavar="JSON", help="B2 corsRules (a JSON list)")
        if name == "update":
            a.add_argument("--if-revision", type=int, metavar="N",
                           help="fail unless the bucket is at this revision")  # fmt: skip
        a.set_defaults(func=_create if name == "create" else _update)

    a = acts.add_parser("delete", parents=[common], help="delete an (empty) bucket")
    a.add_argument("name", help="bucket name")
    a.set_defaults(func=_delete)


def _list(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        buckets = await c.list_buckets()
        if args.json:
            return as_json(buckets)
        table([(b.bucket_name, b.bucket_id, b.bucket_type, b.revision) for b in buckets],
              ("NAME", "ID", "TYPE", "REVISION"))  # fmt: skip
        return None

    return run(args, job)


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bucket_info": key_values(args.info, "--info"),
        "lifecycle_rules": json_arg(args.lifecycle_rules, "--lifecycle-rules"),
        "cors_rules": json_arg(args.cors_rules, "--cors-rules"),
    }


def _create(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        b = await c.create_bucket(args.name, args.type, **_rules(args))
        if args.json:
            return as_json(b)
        print(b.bucket_id)
        return None

    return run(args, job)


def _update(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        rules = _rules(args)
        b = await c.get_bucket(args.name)
        b = await c.update_bucket(
            b.bucket_id, bucket_type=args.type, if_revision_is=args.if_revision, **rules
        )
        if args.json:
            return as_json(b)
        print(f"{b.bucket_name} revision {b.revision}")
        return None

    return run(args, job)


def _delete(args: argparse.Namespace) -> int:
    async def job(c: B2Client) -> Any:
        b = await c.delete_bucket((await c.get_bucket(args.name)).bucket_id)
        return as_json(b) if args.json else None

    return run(args, job)
