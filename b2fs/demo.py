"""``./dev demo`` (``python -m b2fs.demo``): the local B2 server at work.

Starts ``b2fs serve`` on a data directory (default ``/var/tmp/b2fs-demo``), creates a
bucket, uploads and lists a few files, downloads one back by range, and prints the
API calls it cost. The lead turns this into a real mount later.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from b2fs.emulator.process import LocalServer


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[bytes, Any]:  # fmt: skip
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read(), r.headers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m b2fs.demo", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="data directory (default /var/tmp/b2fs-demo)"
    )
    args = ap.parse_args(argv)
    data = args.data or Path("/var/tmp/b2fs-demo")
    if args.data is None and not Path("/var/tmp").is_dir():
        data = Path(tempfile.mkdtemp(prefix="b2fs-demo-"))
    with LocalServer(data) as srv:
        print(f"local B2 server: realm {srv.realm}, key id {srv.key_id}, data in {data}")
        basic = base64.b64encode(f"{srv.key_id}:{srv.key}".encode()).decode()
        auth = json.loads(request(f"{srv.realm}/b2api/v4/b2_authorize_account",
                                  headers={"Authorization": f"Basic {basic}"})[0])  # fmt: skip
        token, api = auth["authorizationToken"], auth["apiInfo"]["storageApi"]["apiUrl"]

        def call(name: str, **params: Any) -> Any:
            body, _ = request(f"{api}/b2api/v4/{name}", json.dumps(params).encode(),
                              {"Authorization": token, "Content-Type": "application/json"})  # fmt: skip
            return json.loads(body)

        buckets = call("b2_list_buckets", accountId=auth["accountId"], bucketName="b2fs-demo")[
            "buckets"
        ]
        if buckets:
            bucket = buckets[0]
        else:
            bucket = call("b2_create_bucket", accountId=auth["accountId"], bucketName="b2fs-demo",
                          bucketType="allPrivate")  # fmt: skip
        print(f"bucket {bucket['bucketName']} ({bucket['bucketId']})")
        files = {
            "hello.txt": b"Hello from b2fs!\n",
            "docs/readme.md": b"# b2fs\nA B2 bucket as a directory.\n",
            "docs/notes/todo.txt": b"- mount it\n",
            "photos/caf\u00e9 au lait.jpg": bytes(range(256)) * 64,
        }
        for name, content in files.items():
            up = call("b2_get_upload_url", bucketId=bucket["bucketId"])
            request(up["uploadUrl"], content, {
                "Authorization": up["authorizationToken"], "X-Bz-File-Name": quote(name, safe="/"),
                "Content-Type": "b2/x-auto", "X-Bz-Content-Sha1": hashlib.sha1(content).hexdigest()})  # fmt: skip
            print(f"  uploaded {name} ({len(content)} bytes)")
        print("top level (delimiter '/'):")
        for f in call("b2_list_file_names", bucketId=bucket["bucketId"], delimiter="/")["files"]:
            print(f"  {f['action']:7} {f['fileName']}")
        print("every version:")
        for f in call("b2_list_file_versions", bucketId=bucket["bucketId"])["files"]:
            print(f"  {f['uploadTimestamp']} {f['contentLength']:6} {f['fileName']}")
        body, headers = request(f"{srv.realm}/file/b2fs-demo/hello.txt",
                                headers={"Authorization": token, "Range": "bytes=0-4"})  # fmt: skip
        print(f"ranged download of hello.txt, bytes 0-4: {body!r} ({headers.get('Content-Range')})")
        counters = srv.counters()
        print("API calls:", json.dumps(counters["calls"], sort_keys=True))
        print(
            "by class:",
            counters["classes"],
            f"bytes in {counters['bytes_in']}, out {counters['bytes_out']}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
