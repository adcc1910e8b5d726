"""``B2Client``: the public face of the B2 native-API client.

It is the sum of its layers: ``Core`` (session, authorization, retries, upload
URLs), ``Calls`` (the JSON calls), ``Uploads`` and ``Downloads``. See
docs/client.md for a tour; every method is an awaitable with typed results.
"""

from __future__ import annotations

from b2fs.b2.downloads import Downloads
from b2fs.b2.uploads import Uploads


class B2Client(Uploads, Downloads):
    """An async B2 client (trio or asyncio).

    ``B2Client(key_id, key, realm="https://api.backblazeb2.com", *, retry=RetryPolicy(),
    timeouts=Timeouts(), transfer=TransferOptions(), http2=False, proxy=None,
    verify=True, ca_bundle=None, client_cert=None, upload_limit=None,
    download_limit=None, max_connections=64, user_agent=None, on_event=None,
    api_version="v4", server_side_encryption=None)``; use it as ``async with
    B2Client(...) as client:``. ``server_side_encryption`` (a ``ServerSideEncryption``)
    is the default of every upload, copy and download.
    """
