"""Bad input of every shape gets a B2 error (4xx with the JSON body), never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2fs.emulator.api import CALLS
from tests.emulator.rawapi import Raw

pytestmark = pytest.mark.timeout(120)

FIELDS = [
    "accountId", "bucketId", "bucketName", "bucketType", "bucketInfo", "bucketTypes", "corsRules",
    "lifecycleRules", "ifRevisionIs", "fileName", "fileId", "startFileName", "startFileId",
    "maxFileCount", "prefix", "delimiter", "sourceFileId", "destinationBucketId", "range",
    "metadataDirective", "contentType", "fileInfo", "largeFileId", "partNumber", "startPartNumber",
    "maxPartCount", "partSha1Array", "namePrefix", "fileNamePrefix", "validDurationInSeconds",
    "capabilities", "keyName", "bucketIds", "applicationKeyId", "maxKeyCount",
    "startApplicationKeyId", "defaultServerSideEncryption",
]  # fmt: skip
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["", "4_z" + "0" * 24 + "_f00_", "bytes=5-1", "a" * 2000]),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(CALLS)), params=st.dictionaries(st.sampled_from(FIELDS), JUNK, max_size=6),
       real_bucket=st.booleans())  # fmt: skip
def test_json_calls_never_500(
    raw: Raw, bucket: str, name: str, params: dict, real_bucket: bool
) -> None:
    if real_bucket:
        params["bucketId"] = bucket
    if name in ("b2_delete_bucket", "b2_delete_key"):
        params.pop("bucketId", None)
        params.pop("applicationKeyId", None)
    r = raw.http.post(
        f"{raw.realm}/b2api/v4/{name}", json=params, headers={"Authorization": raw.token}
    )
    assert r.status_code < 500, (name, params, r.text)
    if r.status_code != 200:
        body = r.json()
        assert set(body) == {"status", "code", "message"} and body["status"] == r.status_code


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers=st.dictionaries(
    st.sampled_from(["X-Bz-File-Name", "Content-Type", "X-Bz-Content-Sha1", "X-Bz-Info-a", "X-Bz-Info-B2-x",
                     "X-Bz-Part-Number", "Range"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50).map(str.strip),
    max_size=5))  # fmt: skip
def test_upload_and_download_headers_never_500(
    raw: Raw, bucket: str, headers: dict[str, str]
) -> None:
    u = raw.call("b2_get_upload_url", bucketId=bucket)
    r = raw.http.post(
        u["uploadUrl"],
        content=b"0123456789" * 5,
        headers={"Authorization": u["authorizationToken"], **headers},
    )
    assert r.status_code < 500, (headers, r.text)
    f = raw.upload(bucket, "fixed", b"abc")
    r = raw.by_id(f["fileId"], **{k: v for k, v in headers.items() if k == "Range"})
    assert r.status_code < 500, (headers, r.text)
    r = raw.get(
        "/file/" + headers.get("X-Bz-File-Name", "x") + "/" + headers.get("Content-Type", "y")
    )
    assert r.status_code < 500
