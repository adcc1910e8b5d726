"""``b2fs bucket list|create|update|delete|change-log-rule``: manage the account's buckets.

``change-log-rule b2://BUCKET[/PREFIX]`` adds (or with ``--remove`` drops) the
lifecycle rule that purges the change records of the mounts of that prefix
(``PREFIX.b2fs/changes/``, ``b2fs.sync``) a day after they were written: for
keys without ``deleteFiles``, whose mounts cannot delete their own records.
The bucket's other rules are kept.

Sits on ``b2fs.cli.account`` (credentials, output, exit codes) and ``b2fs.b2``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from b2fs.cli.account import (
    UsageError,
    as_json,
    common_options,
    json_arg,
    key_values,
    run,
    table,
)

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

    a = acts.add_parser(
        "change-log-rule", parents=[common],
        help="a lifecycle rule that purges the change records of the mounts of a prefix",
    )  # fmt: skip
    a.add_argument("source", metavar="b2://BUCKET[/PREFIX]", help="what the mounts mount")
    a.add_argument("--days", type=int, default=1,
                   help="days after which a record is hidden, and then deleted (default 1)")  # fmt: skip
    a.add_argument("--remove", action="store_true", help="remove the rule instead")
    a.set_defaults(func=_change_log_rule)


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


def _change_log_rule(args: argparse.Namespace) -> int:
    from b2fs.mount.source import SourceError, parse_source
    from b2fs.sync.records import log_prefix

    async def job(c: B2Client) -> Any:
        try:
            source = parse_source(args.source)
        except SourceError as e:
            raise UsageError(str(e)) from None
        if args.days < 1:
            raise UsageError("--days must be at least 1 (B2's lifecycle rules count days)")
        prefix = log_prefix(source.prefix)
        b = await c.get_bucket(source.bucket)
        rules = [r for r in b.lifecycle_rules if r.get("fileNamePrefix") != prefix]
        if not args.remove:
            rules.append({"fileNamePrefix": prefix, "daysFromUploadingToHiding": args.days,
                          "daysFromHidingToDeleting": 1})  # fmt: skip
        b = await c.update_bucket(b.bucket_id, lifecycle_rules=rules)
        if args.json:
            return as_json(b.lifecycle_rules)
        mine = [r for r in b.lifecycle_rules if r.get("fileNamePrefix") == prefix]
        print(f"{b.bucket_name}: {prefix}: " + (f"records purged after {args.days} day(s)"
                                                if mine else "no rule"))  # fmt: skip
        return None

    return run(args, job)
