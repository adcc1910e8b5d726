"""The status document of a running mount: what ``b2fs status`` shows and /metrics exports.

One JSON-ready dict, made on demand on the mount's trio loop: the mount's
layers (upload queue, block cache, reader, listings: ``Mount.status()``), the
B2 client's counters (calls by name, billing class and outcome, retries,
bytes), the last minute's activity, the network settings in force (bandwidth
limits of the time table now, proxy, TLS files, HTTP/2, connections), the
last warnings, and what the mount is.  Served by the control socket
(``mount/control.py``) and read by the Prometheus collector (``mount/metrics.py``).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from b2fs import __version__
from b2fs.b2.billing import by_class
from b2fs.mount.activity import Activity
from b2fs.mount.bwlimit import BandwidthTable
from b2fs.mount.options import MountOptions
from b2fs.mount.recent import RecentWarnings


class StatusReport:
    def __init__(self, mount: Any, client: Any, *, source: Any, mountpoint: str, cache_dir: str,
                 opts: MountOptions, bwlimit: BandwidthTable | None,
                 warnings: RecentWarnings) -> None:  # fmt: skip
        self.mount = mount
        self.client = client
        self.source = source
        self.mountpoint = mountpoint
        self.cache_dir = cache_dir
        self.opts = opts
        self.bwlimit = bwlimit
        self.warnings = warnings
        self.activity = Activity(client)
        self.started = time.time()
        self.metrics_url: str | None = None

    def status(self) -> dict[str, Any]:
        out = self.mount.status()
        if "writeback" in out:
            out["writeback"].setdefault("conflicts", 0)
        try:
            out["cache"]["dir_free_bytes"] = _free_bytes(self.cache_dir)
        except OSError:
            out["cache"]["dir_free_bytes"] = None
        stats = self.client.stats
        errors: dict[str, int] = {}
        for (_, outcome), n in stats.outcomes.items():
            if outcome != "ok":
                errors[outcome] = errors.get(outcome, 0) + n
        out["b2"] = {
            "calls": dict(stats.calls),
            "classes": by_class(stats.calls),
            "outcomes": [[call, outcome, n] for (call, outcome), n in stats.outcomes.items()],
            "errors": errors,
            "retries": stats.retries,
            "retries_by_call": dict(stats.retries_by_call),
            "reauthorizations": stats.reauthorizations,
            "bytes_uploaded": stats.bytes_uploaded,
            "bytes_downloaded": stats.bytes_downloaded,
        }
        out["last_minute"] = self.activity.last_minute()
        out["network"] = self.network()
        out["warnings"] = self.warnings.recent()
        out["warnings_total"] = self.warnings.count
        now = time.time()
        out["mount"] = {
            "source": str(self.source),
            "mountpoint": self.mountpoint,
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started,
            "uptime": now - self.started,
            "read_only": self.opts.read_only,
            "version_at": self.opts.version_at,  # a mount of the past: the time it shows
            "encrypted": self.opts.encrypt,
            "metrics": self.metrics_url,
        }
        return out

    def network(self) -> dict[str, Any]:
        up, down = self.client.bandwidth
        o = self.opts
        return {
            "upload_limit": up,
            "download_limit": down,
            "bwlimit": self.bwlimit.text if self.bwlimit else None,
            "next_change": self.bwlimit.next_change(time.localtime()) if self.bwlimit else None,
            "proxy": hide_password(o.proxy),
            "ca_bundle": o.ca_bundle,
            "client_cert": o.client_cert,
            "http2": o.http2,
            "connections": o.connections,
        }


def hide_password(url: str | None) -> str | None:
    """A URL as it may be shown: the password of its user part replaced by ***."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url) if url else url


def _free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
