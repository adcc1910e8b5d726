"""Backblaze's billing classes of the native-API calls (A free, B and C charged).

From Backblaze's published transaction table: class A are uploads, large-file
start/finish/cancel, upload URLs, deletes and ``b2_hide_file``; class B are
downloads and ``b2_get_file_info``; every other call is class C.  The dollars
per class live in ``b2fs.prices``; this module only says which class a call is.
"""

from __future__ import annotations

CLASSES = ("A", "B", "C")

CLASS_A = frozenset({
    "b2_cancel_large_file", "b2_delete_bucket", "b2_delete_file_version", "b2_delete_key",
    "b2_finish_large_file", "b2_get_upload_part_url", "b2_get_upload_url", "b2_hide_file",
    "b2_start_large_file", "b2_update_file_legal_hold", "b2_update_file_retention",
    "b2_upload_file", "b2_upload_part",
})  # fmt: skip
CLASS_B = frozenset({"b2_download_file_by_id", "b2_download_file_by_name", "b2_get_file_info"})


def billing_class(call: str) -> str:
    """The billing class (A, B or C) of a B2 API call name."""
    return "A" if call in CLASS_A else "B" if call in CLASS_B else "C"


def by_class(calls: dict[str, int]) -> dict[str, int]:
    """Calls by name -> calls by billing class (all three classes present)."""
    out = dict.fromkeys(CLASSES, 0)
    for name, n in calls.items():
        out[billing_class(name)] += n
    return out
