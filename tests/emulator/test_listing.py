"""Listings: prefix, delimiter folders, start name/id, maxFileCount and paging edge
cases, unicode and spaces; checked against a model with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(120)


def all_pages(
    raw: Raw, bucket: str, versions: bool = False, **params: object
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    start: dict[str, object] = {}
    while True:
        page = (raw.versions if versions else raw.names)(bucket, **params, **start)
        out += [(f["fileName"], f["action"]) for f in page["files"]]
        if page["nextFileName"] is None:
            return out
        start = {"startFileName": page["nextFileName"]}
        if versions and page.get("nextFileId"):
            start["startFileId"] = page["nextFileId"]


def test_exactly_max_file_count(raw: Raw, bucket: str) -> None:
    for n in "abc":
        raw.upload(bucket, n)
    page = raw.names(bucket, maxFileCount=3)
    assert [f["fileName"] for f in page["files"]] == ["a", "b", "c"] and page[
        "nextFileName"
    ] is None
    page = raw.names(bucket, maxFileCount=2)
    assert [f["fileName"] for f in page["files"]] == ["a", "b"] and page["nextFileName"] == "c"
    page = raw.names(bucket, maxFileCount=2, startFileName="c")
    assert [f["fileName"] for f in page["files"]] == ["c"] and page["nextFileName"] is None
    for bad in (0, 10_001, -1):
        with pytest.raises(ApiFailure) as e:
            raw.names(bucket, maxFileCount=bad)
        assert e.value.code == "bad_request"


def test_delimiter_folders(raw: Raw, bucket: str) -> None:
    for n in ["a/1", "a/2", "a/b/3", "a0", "b", "c/d/e", "c d/f", "ü/x"]:
        raw.upload(bucket, n)
    top = raw.names(bucket, delimiter="/")["files"]
    assert [(f["fileName"], f["action"]) for f in top] == [
        ("a/", "folder"), ("a0", "upload"), ("b", "upload"), ("c d/", "folder"),
        ("c/", "folder"), ("ü/", "folder")]  # fmt: skip
    assert top[0]["fileId"] is None
    sub = raw.names(bucket, prefix="a/", delimiter="/")["files"]
    assert [f["fileName"] for f in sub] == ["a/1", "a/2", "a/b/"]
    # paging through folders one entry at a time gives the same list
    assert all_pages(raw, bucket, delimiter="/", maxFileCount=1) == [
        (f["fileName"], f["action"]) for f in top
    ]
    assert all_pages(raw, bucket, True, delimiter="/", maxFileCount=1) == [
        (f["fileName"], f["action"]) for f in top
    ]


def test_folders_of_hidden_files_disappear(raw: Raw, bucket: str) -> None:
    raw.upload(bucket, "d/only")
    raw.upload(bucket, "e/x")
    raw.call("b2_hide_file", bucketId=bucket, fileName="d/only")
    assert [f["fileName"] for f in raw.names(bucket, delimiter="/")["files"]] == ["e/"]
    assert [f["fileName"] for f in raw.versions(bucket, delimiter="/")["files"]] == ["d/", "e/"]


def test_versions_paging_with_file_id(raw: Raw, bucket: str) -> None:
    ids = [raw.upload(bucket, "same", str(i).encode())["fileId"] for i in range(5)]
    raw.upload(bucket, "zzz")
    page = raw.versions(bucket, maxFileCount=2)
    assert [f["fileId"] for f in page["files"]] == ids[::-1][:2]
    assert (page["nextFileName"], page["nextFileId"]) == ("same", ids[2])
    page = raw.versions(bucket, maxFileCount=3, startFileName="same", startFileId=ids[2])
    assert [f["fileId"] for f in page["files"]] == [ids[2], ids[1], ids[0]]
    assert page["nextFileName"] == "zzz"
    with pytest.raises(ApiFailure):
        raw.versions(bucket, startFileId=ids[0])
    assert [f["fileId"] for f in raw.names(bucket)["files"]][0] == ids[-1]


def test_unfinished_large_files_in_versions_only(raw: Raw, bucket: str) -> None:
    raw.upload(bucket, "big")
    started = raw.call(
        "b2_start_large_file", bucketId=bucket, fileName="big", contentType="b2/x-auto"
    )
    assert [f["action"] for f in raw.names(bucket)["files"]] == ["upload"]
    actions = [f["action"] for f in raw.versions(bucket)["files"]]
    assert actions == ["start", "upload"]
    raw.call("b2_cancel_large_file", fileId=started["fileId"])


def test_start_name_before_prefix(raw: Raw, bucket: str) -> None:
    for n in ["a", "p/1", "p/2", "q"]:
        raw.upload(bucket, n)
    assert [f["fileName"] for f in raw.names(bucket, prefix="p/", startFileName="a")["files"]] == [
        "p/1",
        "p/2",
    ]
    assert [
        f["fileName"] for f in raw.names(bucket, prefix="p/", startFileName="p/2")["files"]
    ] == ["p/2"]


NAMES = st.lists(
    st.text(alphabet=st.sampled_from("ab/ é日"), min_size=1, max_size=6).filter(
        lambda s: not s.startswith("/") and not s.endswith("/") and "//" not in s and s.strip() == s
    ),
    min_size=1,
    max_size=12,
    unique=True,
)


def model(names: list[str], prefix: str, delimiter: str | None) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for n in sorted(names, key=lambda s: s.encode()):
        if not n.startswith(prefix):
            continue
        i = n.find(delimiter, len(prefix)) if delimiter else -1
        if i >= 0:
            out.setdefault(n[: i + 1], "folder")
        else:
            out[n] = "upload"
    return list(out.items())


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=NAMES, prefix=st.sampled_from(["", "a", "a/", "é"]), delimiter=st.sampled_from([None, "/"]),
       page=st.integers(1, 4))  # fmt: skip
def test_listing_matches_model(
    raw: Raw, names: list[str], prefix: str, delimiter: str | None, page: int
) -> None:
    bucket = raw.bucket()
    for n in names:
        raw.upload(bucket, n)
    params: dict[str, object] = {"prefix": prefix, "maxFileCount": page}
    if delimiter:
        params["delimiter"] = delimiter
    expected = model(names, prefix, delimiter)
    assert all_pages(raw, bucket, **params) == expected
    assert all_pages(raw, bucket, True, **params) == expected
    raw.call("b2_list_buckets", accountId=raw.account_id)
