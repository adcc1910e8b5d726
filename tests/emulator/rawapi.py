"""A deliberately thin B2 caller for the emulator's tests: raw HTTP (httpx), no retries,
no client logic, so the tests see exactly what the server answers."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from b2fs.emulator.process import LocalServer


class ApiFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body
        self.code = body.get("code")


class Raw:
    def __init__(self, server: LocalServer, version: int = 4, key_id: str | None = None,
                 key: str | None = None) -> None:  # fmt: skip
        self.realm = server.realm
        self.version = version
        self.http = httpx.Client(timeout=60)
        self.auth = self.authorize(key_id or server.key_id, key or server.key)
        self.token = self.auth["authorizationToken"]
        self.account_id = self.auth["accountId"]

    def close(self) -> None:
        self.http.close()

    def authorize(self, key_id: str, key: str) -> dict[str, Any]:
        r = self.http.get(
            f"{self.realm}/b2api/v{self.version}/b2_authorize_account", auth=(key_id, key)
        )
        return self.check(r)

    @staticmethod
    def check(r: httpx.Response) -> Any:
        body = r.json()
        if r.status_code != 200:
            raise ApiFailure(r.status_code, body)
        return body

    def call(self, name: str, token: str | None = None, **params: Any) -> Any:
        r = self.http.post(
            f"{self.realm}/b2api/v{self.version}/{name}",
            json=params,
            headers={"Authorization": token or self.token},
        )
        return self.check(r)

    def bucket(self, kind: str = "allPrivate") -> str:
        name = f"t-{uuid.uuid4().hex[:20]}"
        return self.call("b2_create_bucket", accountId=self.account_id, bucketName=name,
                         bucketType=kind)["bucketId"]  # fmt: skip

    def upload(self, bucket_id: str, name: str, data: bytes = b"x", sha1: str | None = None,
               content_type: str = "b2/x-auto", info: dict[str, str] | None = None,
               headers: dict[str, str] | None = None, encode: bool = True) -> Any:  # fmt: skip
        u = self.call("b2_get_upload_url", bucketId=bucket_id)
        h = {
            "Authorization": u["authorizationToken"],
            "X-Bz-File-Name": quote(name, safe="/") if encode else name,
            "Content-Type": content_type,
            "X-Bz-Content-Sha1": sha1 or hashlib.sha1(data).hexdigest(),
        }
        for k, v in (info or {}).items():
            h[f"X-Bz-Info-{k}"] = quote(v, safe="")
        h.update(headers or {})
        return self.check(self.http.post(u["uploadUrl"], content=data, headers=h))

    def names(self, bucket_id: str, **params: Any) -> Any:
        return self.call("b2_list_file_names", bucketId=bucket_id, **params)

    def versions(self, bucket_id: str, **params: Any) -> Any:
        return self.call("b2_list_file_versions", bucketId=bucket_id, **params)

    def get(self, path: str, token: str | None = "", **headers: str) -> httpx.Response:
        if token == "":
            token = self.token
        if token is not None:
            headers["Authorization"] = token
        return self.http.get(f"{self.realm}{path}", headers=headers)

    def by_id(self, file_id: str, **headers: str) -> httpx.Response:
        return self.get(
            f"/b2api/v{self.version}/b2_download_file_by_id?fileId={file_id}", **headers
        )
