"""Per-call counters of the emulator: calls by B2 name, by billing class, bytes of
file content in and out, faults injected. Read and reset through ``/_admin/counters``.

Billing classes follow Backblaze's published transaction table: class A (free) are
uploads, large-file start/finish/cancel, upload URLs, deletes and ``b2_hide_file``;
class B are downloads and ``b2_get_file_info``; everything else is class C.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

CLASS_A = frozenset(
    {
        "b2_cancel_large_file",
        "b2_delete_bucket",
        "b2_delete_file_version",
        "b2_delete_key",
        "b2_finish_large_file",
        "b2_get_upload_part_url",
        "b2_get_upload_url",
        "b2_hide_file",
        "b2_start_large_file",
        "b2_update_file_legal_hold",
        "b2_update_file_retention",
        "b2_upload_file",
        "b2_upload_part",
    }
)
CLASS_B = frozenset({"b2_download_file_by_id", "b2_download_file_by_name", "b2_get_file_info"})


def billing_class(call: str) -> str:
    return "A" if call in CLASS_A else "B" if call in CLASS_B else "C"


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.classes: Counter[str] = Counter({"A": 0, "B": 0, "C": 0})
        self.faults: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0

    def call(self, name: str) -> None:
        self.calls[name] += 1
        self.classes[billing_class(name)] += 1

    def fault(self, name: str) -> None:
        self.faults[name] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "classes": dict(self.classes),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "faults_injected": dict(self.faults),
        }
