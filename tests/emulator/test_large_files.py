"""Large files: start, part URLs, upload/copy parts, list parts, finish (and its
checks), cancel, list unfinished; downloads that span parts."""

from __future__ import annotations

import hashlib
import os

import pytest

from b2fs.emulator.process import LocalServer
from tests.emulator.rawapi import ApiFailure, Raw

pytestmark = pytest.mark.timeout(60)
MIN = 100_000  # --min-part-size of the private server below


@pytest.fixture(scope="module")
def small_parts(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = LocalServer(tmp_path_factory.mktemp("large"), min_part_size=MIN).start()
    raw = Raw(srv)
    yield raw
    raw.close()
    srv.stop()


def fails(fn, status: int, code: str) -> ApiFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiFailure) as e:
        fn()
    assert (e.value.status, e.value.code) == (status, code), e.value.body
    return e.value


def upload_part(raw: Raw, file_id: str, number: int, data: bytes, sha1: str | None = None) -> dict:
    u = raw.call("b2_get_upload_part_url", fileId=file_id)
    r = raw.http.post(u["uploadUrl"], content=data, headers={
        "Authorization": u["authorizationToken"], "X-Bz-Part-Number": str(number),
        "X-Bz-Content-Sha1": sha1 or hashlib.sha1(data).hexdigest()})  # fmt: skip
    return raw.check(r)


def start(raw: Raw, bucket: str, name: str = "large.bin") -> str:
    f = raw.call("b2_start_large_file", bucketId=bucket, fileName=name, contentType="b2/x-auto",
                 fileInfo={"large_file_sha1": "0" * 40})  # fmt: skip
    assert (f["action"], f["contentType"]) == ("start", "application/octet-stream")
    return f["fileId"]


def test_min_part_size_reported(small_parts: Raw) -> None:
    assert small_parts.auth["apiInfo"]["storageApi"]["absoluteMinimumPartSize"] == MIN


def test_large_file_roundtrip(small_parts: Raw) -> None:
    raw = small_parts
    bucket = raw.bucket()
    fid = start(raw, bucket)
    parts = [os.urandom(MIN), os.urandom(MIN + 7), os.urandom(1000)]
    for i, p in reversed(list(enumerate(parts, 1))):  # any order
        r = upload_part(raw, fid, i, p)
        assert (r["partNumber"], r["contentLength"], r["contentSha1"]) == (
            i,
            len(p),
            hashlib.sha1(p).hexdigest(),
        )
    # re-uploading a part replaces it
    parts[1] = os.urandom(MIN + 9)
    upload_part(raw, fid, 2, parts[1])
    listed = raw.call("b2_list_parts", fileId=fid, maxPartCount=2)
    assert [p["partNumber"] for p in listed["parts"]] == [1, 2] and listed["nextPartNumber"] == 3
    assert raw.call("b2_list_parts", fileId=fid, startPartNumber=3)["nextPartNumber"] is None
    unfinished = raw.call("b2_list_unfinished_large_files", bucketId=bucket)["files"]
    assert [f["fileId"] for f in unfinished] == [fid]
    sha1s = [hashlib.sha1(p).hexdigest() for p in parts]
    done = raw.call("b2_finish_large_file", fileId=fid, partSha1Array=sha1s)
    whole = b"".join(parts)
    assert (done["action"], done["contentLength"], done["contentSha1"]) == (
        "upload",
        len(whole),
        "none",
    )
    assert done["fileInfo"] == {"large_file_sha1": "0" * 40}
    assert raw.by_id(fid).content == whole
    # a range that spans the part boundaries
    r = raw.by_id(fid, Range=f"bytes={MIN - 5}-{2 * MIN + 20}")
    assert r.status_code == 206 and r.content == whole[MIN - 5 : 2 * MIN + 21]
    assert raw.call("b2_list_unfinished_large_files", bucketId=bucket)["files"] == []
    fails(lambda: raw.call("b2_list_parts", fileId=fid), 400, "bad_request")


def test_finish_checks(small_parts: Raw) -> None:
    raw = small_parts
    bucket = raw.bucket()
    fid = start(raw, bucket)
    a, b, c = os.urandom(MIN), os.urandom(10), os.urandom(MIN)
    upload_part(raw, fid, 1, a)
    sa, sb, sc = (hashlib.sha1(x).hexdigest() for x in (a, b, c))
    e = fails(
        lambda: raw.call("b2_finish_large_file", fileId=fid, partSha1Array=[sa]), 400, "bad_request"
    )
    assert "at least 2 parts" in e.body["message"]
    fails(
        lambda: raw.call("b2_finish_large_file", fileId=fid, partSha1Array=[sa, sb]),
        400,
        "missing_part",
    )
    upload_part(raw, fid, 2, b)
    fails(
        lambda: raw.call("b2_finish_large_file", fileId=fid, partSha1Array=[sa, sa]),
        400,
        "part_sha1_mismatch",
    )
    upload_part(raw, fid, 3, c)
    e = fails(
        lambda: raw.call("b2_finish_large_file", fileId=fid, partSha1Array=[sa, sb, sc]),
        400,
        "bad_request",
    )
    assert "smaller than the minimum part size" in e.body["message"]
    fails(lambda: upload_part(raw, fid, 4, b"x", sha1="1" * 40), 400, "bad_request")
    fails(lambda: upload_part(raw, fid, 10_001, b"x"), 400, "bad_request")
    cancelled = raw.call("b2_cancel_large_file", fileId=fid)
    assert cancelled == {
        "accountId": raw.account_id,
        "bucketId": bucket,
        "fileId": fid,
        "fileName": "large.bin",
    }
    fails(lambda: raw.call("b2_cancel_large_file", fileId=fid), 400, "bad_request")
    fails(lambda: raw.call("b2_get_upload_part_url", fileId=fid), 400, "bad_request")
    assert raw.versions(bucket)["files"] == []


def test_copy_part_and_unfinished_paging(small_parts: Raw) -> None:
    raw = small_parts
    bucket = raw.bucket()
    src_data = os.urandom(3 * MIN)
    src = raw.upload(bucket, "src", src_data)
    fid = start(raw, bucket, "assembled")
    p1 = raw.call("b2_copy_part", sourceFileId=src["fileId"], largeFileId=fid, partNumber=1,
                  range=f"bytes={MIN}-{2 * MIN - 1}")  # fmt: skip
    assert p1["contentSha1"] == hashlib.sha1(src_data[MIN : 2 * MIN]).hexdigest()
    tail = os.urandom(50)
    upload_part(raw, fid, 2, tail)
    raw.call(
        "b2_finish_large_file",
        fileId=fid,
        partSha1Array=[p1["contentSha1"], hashlib.sha1(tail).hexdigest()],
    )
    assert raw.by_id(fid).content == src_data[MIN : 2 * MIN] + tail
    ids = [start(raw, bucket, f"u/{i}") for i in range(3)]
    page = raw.call(
        "b2_list_unfinished_large_files", bucketId=bucket, maxFileCount=2, namePrefix="u/"
    )
    assert [f["fileId"] for f in page["files"]] == ids[:2] and page["nextFileId"] == ids[2]
    page = raw.call("b2_list_unfinished_large_files", bucketId=bucket, startFileId=ids[2])
    assert [f["fileId"] for f in page["files"]] == ids[2:] and page["nextFileId"] is None
    # delete_file_version also removes an unfinished large file
    raw.call("b2_delete_file_version", fileId=ids[0], fileName="u/0")
    assert len(raw.call("b2_list_unfinished_large_files", bucketId=bucket)["files"]) == 2
