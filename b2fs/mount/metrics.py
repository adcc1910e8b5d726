"""Prometheus metrics of a mount (``-o metrics=[HOST:]PORT``), in the official client's text format.

Two kinds of figures:

- measured as they happen: every FUSE operation (count by operation and
  outcome, latency histogram, bytes of reads and writes), fed by
  ``b2fs.fs.errno_map``'s observer, the one wrapper every operation runs in;
- read at scrape time from the mount's status document (``mount/status.py``):
  B2 calls by name, billing class and outcome, retries, bytes to and from B2,
  bytes read by source (memory, disk cache, download; the kernel's page cache
  never reaches b2fs), the upload queue, uploads done and failed, the block
  cache (bytes, budget, hits, misses, evictions, free space in its
  directory), conflicts, warnings logged, bandwidth limits in force.

``Metrics.render()`` runs on the mount's trio loop (``mount/metrics_server.py``
answers HTTP there), so the collector reads the mount's state without locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from b2fs.b2.billing import billing_class

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # fmt: skip


class Metrics:
    """The registry of one mount; ``observe`` is the FUSE operations' observer."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        disable_created_metrics()  # no *_created series: noise for a mount's counters
        self.registry = CollectorRegistry(auto_describe=True)
        self.ops = Counter("b2fs_fuse_operations", "FUSE operations by outcome (ok or errno)",
                           ["op", "outcome"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("b2fs_fuse_operation_seconds", "FUSE operation latency",
                                 ["op"], buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.bytes = Counter("b2fs_fuse_bytes", "bytes returned by reads and taken by writes",
                             ["op"], registry=self.registry)  # fmt: skip
        self.registry.register(StatusCollector(status))
        ProcessCollector(registry=self.registry)

    def observe(self, op: str, outcome: str, seconds: float, nbytes: int) -> None:
        self.ops.labels(op, outcome).inc()
        self.latency.labels(op).observe(seconds)
        if nbytes:
            self.bytes.labels(op).inc(nbytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StatusCollector(Collector):
    """Metric families from the status document, made at every scrape."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def describe(self) -> list[Metric]:
        return []  # made at scrape time only

    def collect(self) -> Iterator[Metric]:
        s = self.status()
        yield from _b2(s["b2"])
        yield from _reads(s["reader"])
        yield from _cache(s["cache"], s["reader"])
        yield from _uploads(s.get("writeback"))
        yield from _sync(s.get("sync"))
        yield from _mount(s)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _b2(b2: dict[str, Any]) -> Iterator[Metric]:
    calls = CounterMetricFamily("b2fs_b2_calls", "B2 API calls answered (or failed on the "
                                "network), by name, billing class and outcome (ok, the B2 error "
                                "code, or network)", labels=["call", "class", "outcome"])  # fmt: skip
    for call, outcome, n in b2["outcomes"]:
        calls.add_metric([call, billing_class(call), outcome], n)
    yield calls
    retries = CounterMetricFamily("b2fs_b2_retries", "B2 calls retried, by name", labels=["call"])
    for call, n in b2["retries_by_call"].items():
        retries.add_metric([call], n)
    yield retries
    yield _counter("b2fs_b2_reauthorizations", "account tokens renewed", b2["reauthorizations"])
    moved = CounterMetricFamily("b2fs_b2_bytes", "bytes sent to and received from B2 (bodies)",
                                labels=["direction"])  # fmt: skip
    moved.add_metric(["upload"], b2["bytes_uploaded"])
    moved.add_metric(["download"], b2["bytes_downloaded"])
    yield moved


def _reads(reader: dict[str, Any]) -> Iterator[Metric]:
    served = CounterMetricFamily("b2fs_read_bytes", "bytes of file reads by where they came from: "
                                 "memory (decoded blocks, read-ahead included), disk (the block "
                                 "cache) or download (waited for)", labels=["source"])  # fmt: skip
    for source, n in reader["served"].items():
        served.add_metric([source], n)
    yield served
    yield _counter("b2fs_downloads", "ranged downloads started", reader["downloads"])
    yield _counter("b2fs_streamed_blocks", "downloaded blocks not written to the disk cache "
                   "(cache_admit=reuse: a first sequential pass)",
                   reader.get("streamed_blocks", 0))  # fmt: skip


def _cache(cache: dict[str, Any], reader: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("b2fs_cache_bytes", "bytes in the block cache", cache["bytes"])
    yield _gauge(
        "b2fs_cache_budget_bytes", "the block cache's budget (cache_size)", cache["budget"]
    )
    yield _gauge("b2fs_cache_blocks", "blocks in the block cache", cache["blocks"])
    yield _gauge("b2fs_cache_enabled", "1 while the block cache works (0: full or unwritable "
                 "directory, reads go uncached)", 1 if cache["enabled"] else 0)  # fmt: skip
    if cache.get("dir_free_bytes") is not None:
        yield _gauge("b2fs_cache_dir_free_bytes", "free bytes on the cache directory's file system "
                     "(staging files of pending uploads need room there)", cache["dir_free_bytes"])  # fmt: skip
    yield _counter("b2fs_cache_hits", "block cache hits", cache["hits"])
    yield _counter("b2fs_cache_misses", "block cache misses", cache["misses"])
    yield _counter(
        "b2fs_cache_evictions", "blocks evicted from the block cache", cache["evictions"]
    )
    yield _gauge("b2fs_memory_cache_bytes", "decoded blocks held in memory", reader["memory_bytes"])


def _uploads(wb: dict[str, Any] | None) -> Iterator[Metric]:
    if wb is None:  # a read-only mount
        return
    pending = wb["pending"]
    yield _gauge("b2fs_upload_queue_files", "files written and not yet in B2", len(pending))
    yield _gauge("b2fs_upload_queue_bytes", "bytes of those files", wb["pending_bytes"])
    yield _gauge("b2fs_uploads_running", "uploads in progress",
                 sum(1 for p in pending if p["state"] == "uploading"))  # fmt: skip
    yield _gauge("b2fs_upload_retrying_files", "pending files whose last upload attempt failed",
                 sum(1 for p in pending if p["attempts"]))  # fmt: skip
    yield _counter("b2fs_uploads", "file versions uploaded", wb["uploads_done"])
    yield _counter("b2fs_upload_failures", "failed upload attempts (retried)", wb["uploads_failed"])
    moved = CounterMetricFamily("b2fs_upload_bytes", "bytes of uploaded versions: sent, or copied "
                                "server-side from the previous version", labels=["how"])  # fmt: skip
    moved.add_metric(["sent"], wb["bytes_uploaded"])
    moved.add_metric(["copied"], wb["bytes_copied"])
    yield moved
    yield _counter("b2fs_conflicts", "files changed both here and elsewhere", wb["conflicts"])


def _sync(sync: dict[str, Any] | None) -> Iterator[Metric]:
    """The change log (b2fs.sync): polls and records of the other mounts, this mount's records."""
    poll = (sync or {}).get("poll")
    if poll is not None:
        yield _counter(
            "b2fs_change_polls", "polls of the other mounts' change records", poll["polls"]
        )
        yield _counter("b2fs_change_poll_failures", "polls that failed", poll["poll_failures"])
        yield _counter("b2fs_change_records_read", "change records of other mounts read",
                       poll["records_read"])  # fmt: skip
        yield _counter("b2fs_changes_applied", "changes made elsewhere this mount forgot its "
                       "caches of", poll["changes_applied"])  # fmt: skip
    written = (sync or {}).get("log")
    if written is not None:
        yield _counter("b2fs_change_records_written", "change records this mount wrote",
                       written["records_written"])  # fmt: skip


def _mount(s: dict[str, Any]) -> Iterator[Metric]:
    m = s["mount"]
    info = GaugeMetricFamily("b2fs_mount_info", "the mount (value 1)",
                             labels=["source", "mountpoint", "version"])  # fmt: skip
    info.add_metric([m["source"], m["mountpoint"], m["version"]], 1)
    yield info
    yield _gauge(
        "b2fs_mount_start_time_seconds", "when the mount started (Unix time)", m["started"]
    )
    yield _counter("b2fs_listing_fetches", "directory listings fetched", s["listings"]["fetches"])
    yield _gauge("b2fs_inodes", "inodes the mount holds", s["inodes"])
    yield _counter("b2fs_log_warnings", "warning and error lines logged", s["warnings_total"])
    limit = GaugeMetricFamily("b2fs_bandwidth_limit_bytes_per_second", "bandwidth limit in force "
                              "(0: none)", labels=["direction"])  # fmt: skip
    limit.add_metric(["upload"], s["network"]["upload_limit"] or 0)
    limit.add_metric(["download"], s["network"]["download_limit"] or 0)
    yield limit
