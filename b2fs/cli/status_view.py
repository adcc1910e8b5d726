"""The text of ``b2fs status``: a mount's status document turned into lines that fit a terminal.

Pure functions of the status (``b2fs.mount.status``) and the price sheet
(``b2fs.prices``): ``screen`` gives the full view, each line cut to ``width``
columns (80 unless the terminal is wider), with at most ``rows`` lines when
a height is given (the ``--watch`` view); ``plain_line`` gives one line per
sample for ``--watch`` into a pipe or a file.  Only ASCII, so it reads the
same over any ssh session and locale.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

from b2fs.b2.billing import CLASSES
from b2fs.cost import Cost, dollars, estimate
from b2fs.prices import Prices

BAR = 16  # progress bar cells
DAY = 86400.0


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(0, width - 3)] + "..."


def fit_path(path: str, room: int) -> str:
    """A path in ``room`` columns: its end (the file's name) is what matters."""
    return path if len(path) <= room else "..." + path[-max(1, room - 3) :]


def bar(done: int, total: int) -> str:
    filled = BAR if total <= 0 else min(BAR, done * BAR // total)
    return "[" + "#" * filled + "." * (BAR - filled) + "]"


# -- money ----------------------------------------------------------------------------------------


def since_mount(status: dict[str, Any], prices: Prices) -> Cost:
    """List price of the calls and downloads since the mount started, and of storing what it
    uploaded (sent or copied) for a month."""
    b2 = status["b2"]
    wb = status.get("writeback") or {}
    stored = wb.get("bytes_uploaded", 0) + wb.get("bytes_copied", 0)
    return estimate(b2["classes"], b2["bytes_downloaded"], stored, prices=prices)


def per_day(status: dict[str, Any], prices: Prices) -> Cost | None:
    """A day at the last minute's rate, after the day's free calls (None: no figures yet)."""
    last = status["last_minute"]
    seconds = last["seconds"]
    if seconds < 1:
        return None
    scale = DAY / seconds
    classes = {c: round(n * scale) for c, n in last["classes"].items()}
    return estimate(classes, int(last["bytes_downloaded"] * scale), prices=prices, days=1)


# -- the view ---------------------------------------------------------------------------------


def screen(status: dict[str, Any], prices: Prices, width: int = 80, rows: int | None = None,
           clock: bool = False, wrap: bool = False) -> list[str]:  # fmt: skip
    """The status in lines of at most ``width`` columns; ``rows``: at most that many (the
    pending files give way); ``clock``: the time on the first line; ``wrap``: errors and
    warnings wrapped onto more lines instead of cut (the one-shot ``b2fs status``)."""
    m = status["mount"]
    tail = f", up {duration(m['uptime'])} (pid {m['pid']})" + (
        f", as at {m['version_at']}"
        if m.get("version_at")
        else ", read-only"
        if m["read_only"]
        else ""
    )
    stamp = "  " + time.strftime("%H:%M:%S") if clock else ""
    room = width - len(m["source"]) - len(" on ") - len(tail) - len(stamp)
    head = f"{m['source']} on {fit_path(m['mountpoint'], max(12, room))}{tail}"
    head = fit(head, width - len(stamp)).ljust(width - len(stamp)) + stamp if clock else head
    top = [head]
    queue = _queue_lines(status, width, wrap)
    rest = (
        _cache_lines(status)
        + _sync_lines(status)
        + _api_lines(status)
        + _cost_lines(status, prices)
        + _network_lines(status)
        + _warning_lines(status, width, wrap)
    )
    if rows is not None:  # the queue gets what the other lines leave
        keep = max(2, rows - len(top) - len(rest) - 1)
        if len(queue) > keep:
            hidden = len(queue) - keep + 1
            queue = queue[: keep - 1] + [f"  ... and {hidden} more (--json lists them all)"]
    lines = [fit(line, width) for line in top + queue + rest]
    return lines[:rows] if rows is not None else lines


def _long(text: str, width: int, wrap: bool, indent: str) -> list[str]:
    """A line of free text (an error, a warning): wrapped under ``indent``, or left to be cut."""
    if not wrap or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)


def _queue_lines(status: dict[str, Any], width: int, wrap: bool) -> list[str]:
    wb = status.get("writeback")
    if wb is None:
        return ["read-only mount: no uploads"]
    pending = wb["pending"]
    last = status["last_minute"]
    rate = last["bytes_uploaded"] / last["seconds"] if last["seconds"] >= 1 else 0.0
    running = sum(1 for p in pending if p["state"] == "uploading")
    line = f"pending uploads: {len(pending)} file(s), {size(wb['pending_bytes'])}"
    if running:
        line += f"; {running} uploading"
    if rate > 0 and pending:
        line += f" at {size(rate)}/s"
        if wb["pending_bytes"]:
            line += f", ETA {duration(wb['pending_bytes'] / rate)}"
    out = [line]
    order = {"uploading": 0, "waiting": 1, "held": 2, "open": 3}
    for p in sorted(pending, key=lambda p: order.get(p["state"], 4)):
        out.append(_pending_line(p, width))
        if p["last_error"]:
            out += _long(f"    last error: {p['last_error']}", width, wrap, " " * 6)
    out.append(
        f"uploaded: {wb['uploads_done']} file(s), {size(wb['bytes_uploaded'])} sent, "
        f"{size(wb['bytes_copied'])} copied; {wb['uploads_failed']} failed attempt(s)"
    )
    return out


def _pending_line(p: dict[str, Any], width: int) -> str:
    if p["state"] == "uploading" and "sent" in p:
        sent, total, seconds = p["sent"], p["total"], p["seconds"]
        pct = 100 if total <= 0 else min(100, sent * 100 // total)
        speed = sent / seconds if seconds > 0 else 0.0
        eta = duration((total - sent) / speed) if speed > 0 else "?"
        head = f"  {bar(sent, total)} {pct:3d}% {size(speed) + '/s':>11} ETA {eta:>6} "
        return head + fit_path(p["path"], width - len(head))
    retry = ""
    if p["attempts"]:
        retry = f"  retry {p['attempts']}"
        if "retry_in" in p:
            retry += f" in {duration(p['retry_in'])}"
    head = f"  {p['state']:9} {size(p['bytes']):>10}{retry}  "
    return head + fit_path(p["path"], max(12, width - len(head)))


def _cache_lines(status: dict[str, Any]) -> list[str]:
    c, r = status["cache"], status["reader"]
    state = " DISABLED (full or unwritable)" if not c.get("enabled", True) else ""
    free = c.get("dir_free_bytes")
    line = f"block cache{state}: {size(c['bytes'])} of {size(c['budget'])}"
    if free is not None:
        line += f" ({size(free)} free on its disk)"
    served = r.get("served", {})
    looked = c["hits"] + c["misses"]
    hits = f"; cache hits {c['hits'] * 100 / looked:.0f}%" if looked else ""
    return [
        f"{line}, {c['evictions']:,} evicted",
        f"reads: {size(served.get('memory', 0))} memory, {size(served.get('disk', 0))} disk, "
        f"{size(served.get('download', 0))} download{hits}",
        f"  downloads: {r['downloads']:,} ({size(r['downloaded_bytes'])}"
        f"{streamed(r.get('streamed_blocks', 0))}); listings: "
        f"{status['listings']['fetches']:,}; cache lookups: {c['hits']:,} hits, "
        f"{c['misses']:,} misses",
    ]


def streamed(blocks: int) -> str:
    """', N blocks not kept' (the admission policy's first passes), or nothing."""
    return f", {blocks:,} blocks not kept" if blocks else ""


def _sync_lines(status: dict[str, Any]) -> list[str]:
    """The change log: polls of the other mounts' records, this mount's records, conflicts."""
    s = status.get("sync")
    if s is None:
        return ["other mounts: no change log (their changes show after dir_cache_time)"]
    poll, log = s.get("poll"), s.get("log")
    if poll is None:
        parts = ["not polled"]
    elif poll.get("last_error"):
        parts = [f"polling FAILS ({poll['last_error']})"]
    else:
        ago = poll["last_poll_ago"]
        parts = [f"polled every {poll['poll_interval']:g}s"
                 + (f" (last {duration(ago)} ago)" if ago is not None else "")]  # fmt: skip
    if poll is not None:
        parts.append(f"{poll['records_read']:,} record(s) read")
    parts.append(f"{log['records_written']:,} written" if log else "none written")
    return [f"other mounts: {', '.join(parts)}; conflicts: {s['conflicts']}"]


def _classes(classes: dict[str, int]) -> str:
    return "  ".join(f"{c} {classes.get(c, 0):,}" for c in CLASSES)


def _api_lines(status: dict[str, Any]) -> list[str]:
    b2, last = status["b2"], status["last_minute"]
    window = f"last {last['seconds']:.0f}s" if last["seconds"] < 59 else "last minute"
    lines = [f"API calls, {window}: {_classes(last['classes'])}; since mount: "
             f"{_classes(b2['classes'])}"]  # fmt: skip
    errors = ", ".join(
        f"{n} {code}" for code, n in sorted(b2["errors"].items(), key=lambda x: -x[1])
    )
    lines.append(f"  {size(b2['bytes_uploaded'])} up, {size(b2['bytes_downloaded'])} down; "
                 f"retries {b2['retries']}; failed: {errors or 'none'}")  # fmt: skip
    return lines


def _cost_lines(status: dict[str, Any], prices: Prices) -> list[str]:
    spent = since_mount(status, prices)
    line = f"cost (B2 list prices): {dollars(spent.total)} since mount"
    day = per_day(status, prices)
    if day is not None:
        line += f", {dollars(day.total)}/day at the {_window(status)} rate"
    return [line, f"  storing its uploads: {dollars(spent.storage_month)}/month (per day: after "
                  "the day's free calls)"]  # fmt: skip


def _window(status: dict[str, Any]) -> str:
    seconds = status["last_minute"]["seconds"]
    return "last minute's" if seconds >= 59 else f"last {seconds:.0f}s'"


def _limit(rate: float | None) -> str:
    return "no limit" if not rate else f"{size(rate)}/s"


def _network_lines(status: dict[str, Any]) -> list[str]:
    n = status["network"]
    line = f"network: up {_limit(n['upload_limit'])}, down {_limit(n['download_limit'])}"
    if n["bwlimit"] and n["next_change"]:
        line += f" until {n['next_change']}"
    parts = [line, "HTTP/2" if n["http2"] else "HTTP/1.1", f"{n['connections']} connections"]
    out = ["; ".join(parts)]
    more = [f"bwlimit {n['bwlimit']}"] if n["bwlimit"] and n["next_change"] else []
    more += [f"{k} {n[k]}" for k in ("proxy", "ca_bundle", "client_cert") if n.get(k)]
    if more:
        out.append("  " + "; ".join(more))
    metrics = status["mount"].get("metrics")
    if metrics:
        out.append(f"  metrics: {metrics}")
    return out


def _warning_lines(status: dict[str, Any], width: int, wrap: bool) -> list[str]:
    warnings = status.get("warnings") or []
    if not warnings:
        return ["last warnings: none"]
    out = [f"last warnings ({len(warnings)}, newest last):"]
    for w in warnings:
        stamp = time.strftime("%H:%M:%S", time.localtime(w["time"]))
        out += _long(f"  {stamp} {w['message']}", width, wrap, " " * 11)
    return out


def plain_line(status: dict[str, Any], prices: Prices) -> str:
    """One line for ``--watch`` into a pipe or file: the figures that change."""
    wb = status.get("writeback")
    last = status["last_minute"]
    seconds = max(last["seconds"], 1e-9)
    parts = [time.strftime("%Y-%m-%dT%H:%M:%S")]
    if wb is not None:
        running = sum(1 for p in wb["pending"] if p["state"] == "uploading")
        parts.append(f"pending {len(wb['pending'])} ({size(wb['pending_bytes'])}), "
                     f"uploading {running}, done {wb['uploads_done']}, "
                     f"failed attempts {wb['uploads_failed']}")  # fmt: skip
        if wb.get("conflicts"):
            parts.append(f"conflicts {wb['conflicts']}")
    parts.append(f"up {size(last['bytes_uploaded'] / seconds)}/s, "
                 f"down {size(last['bytes_downloaded'] / seconds)}/s")  # fmt: skip
    parts.append(f"calls/min {_classes(last['classes'])}")
    c = status["cache"]
    looked = c["hits"] + c["misses"]
    parts.append(f"cache hits {c['hits'] * 100 / looked:.0f}%" if looked else "cache unused")
    parts.append(f"retries {status['b2']['retries']}")
    day = per_day(status, prices)
    parts.append(f"cost {dollars(since_mount(status, prices).total)}"
                 + (f", {dollars(day.total)}/day" if day else ""))  # fmt: skip
    return " | ".join(parts)
