"""What the account commands (``b2fs bucket``, ``b2fs key``) share: the credential
options, running one client call, printing tables or ``--json``, and turning
errors into one line on stderr with exit status 1 (argparse uses 2 for usage).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b2fs.b2 import B2Client

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument found after parsing (exit status 2)."""


def common_options() -> argparse.ArgumentParser:
    """Options every account command takes (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--credentials", metavar="FILE",
                   help="KEY=value file with B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY "
                   "(mode 0600; default: the environment, then ~/.config/b2fs/credentials)")  # fmt: skip
    p.add_argument("--realm", metavar="URL",
                   help="B2 API realm URL or name (default: $B2_ENVIRONMENT, else production)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    return p


def run(args: argparse.Namespace, job: Callable[[B2Client], Awaitable[Any]]) -> int:
    """Run ``job`` with a client made from the command's credentials; print its result
    (a table is printed by ``job`` itself when it returns None)."""
    import anyio  # here, so that building the parser stays light

    from b2fs.b2 import B2Client, B2Error
    from b2fs.credentials import CredentialsError, load_credentials

    prog = f"b2fs {args.command} {args.action}"
    try:
        creds = load_credentials(args.credentials, args.realm)

        async def main() -> Any:
            async with B2Client(creds.key_id, creds.key, creds.realm) as client:
                return await job(client)

        result = anyio.run(main)
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (B2Error, CredentialsError, OSError) as e:
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    if result is not None:
        print(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def as_json(obj: Any) -> Any:
    """A result dataclass as plain JSON (secrets only where the command means them)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: as_json(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name != "raw"
        }
    if isinstance(obj, list | tuple):
        return [as_json(x) for x in obj]
    return obj


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def key_values(pairs: Sequence[str] | None, what: str) -> dict[str, str] | None:
    if pairs is None:
        return None
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise UsageError(f"{what} takes KEY=VALUE, not {pair!r}")
        out[k] = v
    return out


def json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"{what} is not JSON: {e}") from None
