"""``b2fs.b2``: a complete async client for the Backblaze B2 native API.

``from b2fs.b2 import B2Client``. Modules: ``client`` (B2Client), ``core`` (session,
authorization, retries, upload URLs), ``calls`` (JSON calls), ``uploads``,
``downloads``, ``models`` (result dataclasses), ``errors`` (typed errors),
``options``, ``events``, ``sources`` (upload sources), ``sse`` (server-side
encryption settings), ``wire`` (encodings),
``throttle`` (bandwidth limit). It knows nothing of filesystems; the mount's
layers sit on it.
"""

from b2fs.b2.client import B2Client
from b2fs.b2.core import PRODUCTION_REALM, realm_url
from b2fs.b2.downloads import DownloadStream
from b2fs.b2.errors import *  # noqa: F403 (the typed errors are part of the API)
from b2fs.b2.errors import B2Error
from b2fs.b2.events import ClientEvent, ClientStats
from b2fs.b2.models import (
    Account,
    AllowedBucket,
    ApplicationKey,
    Bucket,
    DownloadAuthorization,
    DownloadedFile,
    FileIdAndName,
    FileRetention,
    FileVersion,
    LargeFileUploadState,
    NewApplicationKey,
    Part,
    UploadUrl,
)
from b2fs.b2.options import RetryPolicy, Timeouts, TransferOptions
from b2fs.b2.sources import BytesSource, PathSource, UploadSource
from b2fs.b2.sse import ServerSideEncryption

__all__ = [
    "PRODUCTION_REALM",
    "Account",
    "AllowedBucket",
    "ApplicationKey",
    "B2Client",
    "B2Error",
    "Bucket",
    "BytesSource",
    "ClientEvent",
    "ClientStats",
    "DownloadAuthorization",
    "DownloadStream",
    "DownloadedFile",
    "FileIdAndName",
    "FileRetention",
    "FileVersion",
    "LargeFileUploadState",
    "NewApplicationKey",
    "Part",
    "PathSource",
    "RetryPolicy",
    "ServerSideEncryption",
    "Timeouts",
    "TransferOptions",
    "UploadSource",
    "UploadUrl",
    "realm_url",
]
