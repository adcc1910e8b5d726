"""What to mount: ``b2://BUCKET[/PREFIX]`` (or ``BUCKET[/PREFIX]``, the fstab form)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BUCKET = re.compile(r"^[A-Za-z0-9-]{6,63}$")


class SourceError(ValueError):
    """A mount source that names no valid bucket."""


@dataclass(frozen=True)
class Source:
    bucket: str
    prefix: str  # "" or ending in "/"

    def __str__(self) -> str:
        return f"b2://{self.bucket}/{self.prefix}"


def parse_source(text: str) -> Source:
    rest = text.removeprefix("b2://")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket) or bucket.startswith("b2-"):
        raise SourceError(
            f"{text!r} does not name a B2 bucket: expected b2://BUCKET[/PREFIX], where a bucket "
            "name is 6-63 letters, digits and '-'"
        )
    prefix = prefix.strip("/")
    if "//" in prefix:
        raise SourceError(f"prefix {prefix!r} has an empty segment")
    return Source(bucket, prefix + "/" if prefix else "")
