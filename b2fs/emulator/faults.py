"""Fault injection: rules set from the command line (``--fault``) or ``/_admin/faults``,
and the ``X-Bz-Test-Mode`` header that real B2 honours.

A rule is ``{"call": NAME|"*", "kinds": [...], "probability": p}`` or ``{"call": ...,
"sequence": [...]}`` (one entry per matching call, then calls pass); kinds are "503",
"500", "429", "408", "drop", "delay:SECONDS", "hold:SECONDS" (an upload: stored, then
answered that much later), "expire_token" (and "ok" in sequences).
Draws come from one RNG seeded with ``--seed`` (reseeded whenever rules are set), so
a run is repeatable. ``app`` asks ``Faults.draw`` once per API call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from b2fs.emulator.errors import (
    ApiError,
    BadRequest,
    ExpiredAuthToken,
    Forbidden,
    InternalError,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
)

KINDS = ("503", "500", "429", "408", "drop", "expire_token", "ok")
UPLOAD_CALLS = ("b2_upload_file", "b2_upload_part")


@dataclass
class Fault:
    """What to do to one call: sleep first, then fail with ``error`` or drop the connection."""

    kind: str
    delay: float = 0.0
    hold: float = 0.0  # an upload: seconds between storing it and answering
    error: ApiError | None = None
    drop: bool = False


@dataclass
class Rule:
    call: str
    kinds: list[str] = field(default_factory=list)
    probability: float = 0.0
    sequence: list[str] | None = None
    retry_after: int = 1
    position: int = 0

    @classmethod
    def parse(cls, spec: Any) -> Rule:
        if not isinstance(spec, dict) or not isinstance(spec.get("call"), str):
            raise BadRequest("a fault rule is an object with a 'call' name or '*'")
        kinds = spec.get("kinds", [])
        sequence = spec.get("sequence")
        for kind in [*kinds, *(sequence or [])]:
            if not isinstance(kind, str) or (kind not in KINDS and not _is_delay(kind)):
                raise BadRequest(f"unknown fault kind {kind!r}")
        if sequence is None and not kinds:
            raise BadRequest("a fault rule needs 'kinds' (with 'probability') or 'sequence'")
        probability = spec.get("probability", 1.0 if sequence is None else 0.0)
        if not isinstance(probability, int | float) or not 0 <= probability <= 1:
            raise BadRequest("probability must be between 0 and 1")
        retry_after = spec.get("retry_after", 1)
        if not isinstance(retry_after, int) or retry_after < 0:
            raise BadRequest("retry_after must be a non-negative integer")
        return cls(spec["call"], list(kinds), float(probability), sequence, retry_after)


def _is_delay(kind: str) -> bool:
    prefix, _, seconds = kind.partition(":")
    if prefix not in ("delay", "hold"):
        return False
    try:
        return float(seconds) >= 0
    except ValueError:
        return False


def make_fault(kind: str, retry_after: int = 1) -> Fault:
    if _is_delay(kind):
        prefix, _, seconds = kind.partition(":")
        return Fault(kind, **{prefix: float(seconds)})
    if kind == "drop":
        return Fault(kind, drop=True)
    error: ApiError = {
        "503": lambda: ServiceUnavailable("injected fault: service unavailable"),
        "500": lambda: InternalError("injected fault: internal error"),
        "408": lambda: RequestTimeout("injected fault: request timeout"),
        "429": lambda: TooManyRequests(
            "injected fault: too many requests", headers={"retry-after": str(retry_after)}
        ),
        "expire_token": lambda: ExpiredAuthToken("authorization token has expired"),
    }[kind]()
    return Fault(kind, error=error)


class Faults:
    def __init__(self, seed: int = 0, rules: list[Any] | None = None) -> None:
        self.seed = seed
        self.set(rules or [])

    def set(self, specs: list[Any]) -> None:
        if not isinstance(specs, list):
            raise BadRequest("fault rules are a JSON list")
        self.rules = [Rule.parse(s) for s in specs]
        self.rng = random.Random(self.seed)

    def draw(self, call: str, test_mode: str | None = None) -> Fault | None:
        if test_mode:
            fault = self._test_mode(call, test_mode)
            if fault is not None:
                return fault
        for rule in self.rules:
            if rule.call not in ("*", call):
                continue
            if rule.sequence is not None:
                if rule.position >= len(rule.sequence):
                    continue
                kind = rule.sequence[rule.position]
                rule.position += 1
            elif self.rng.random() < rule.probability:
                kind = rule.kinds[self.rng.randrange(len(rule.kinds))]
            else:
                continue
            if kind != "ok":
                return make_fault(kind, rule.retry_after)
        return None

    def _test_mode(self, call: str, mode: str) -> Fault | None:
        """Real B2's ``X-Bz-Test-Mode`` header values."""
        if mode == "fail_some_uploads" and call in UPLOAD_CALLS and self.rng.random() < 0.2:
            return make_fault("503")
        if (
            mode == "expire_some_account_authorization_tokens"
            and call != "b2_authorize_account"
            and self.rng.random() < 0.2
        ):
            return make_fault("expire_token")
        if mode == "force_cap_exceeded" and call != "b2_authorize_account":
            return Fault("cap", error=Forbidden("injected: cap exceeded", "cap_exceeded"))
        return None
