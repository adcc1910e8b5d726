"""Bandwidth limits of a mount: ``-o bwlimit=UP:DOWN``, or a time table of them (as rclone's).

Forms (rates are bytes per second with a K, M, G or T suffix, powers of 1024;
``off`` or ``0`` is no limit; one rate alone limits both directions)::

    bwlimit=1M                      1 MiB/s up and 1 MiB/s down
    bwlimit=512K:off                uploads at 512 KiB/s, downloads unlimited
    bwlimit=08:00=512K;19:00=10M:off;23:00=off            a daily table
    bwlimit=Mon-08:00=1M;Fri-19:00=off                    a weekly table

Table entries are separated by ``;`` or spaces, and ``TIME=RATE`` may also be
spelled ``TIME,RATE`` as rclone's ``--bwlimit`` has it (outside ``-o``, where
commas separate options).  An entry applies from its time (local) until the
next one; before the first entry of the day (or week), the last one applies.
Either every entry names a day or none does.  ``follow`` keeps the client's
limits in step with the table while the mount runs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import trio

from b2fs.mount.options import OptionError, parse_size

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(?:(?P<day>[A-Za-z]{3})-)?(?P<h>\d{1,2}):(?P<m>\d{2})$")

Rate = float | None  # bytes per second, None: no limit


@dataclass(frozen=True)
class Slot:
    minute: int  # of the day, or of the week (Monday 00:00 is 0) in a weekly table
    up: Rate
    down: Rate


@dataclass(frozen=True)
class BandwidthTable:
    slots: tuple[Slot, ...]
    weekly: bool
    text: str

    def limits_at(self, when: time.struct_time) -> tuple[Rate, Rate]:
        """(upload, download) limits at local time ``when``."""
        slot = self._slot(_minute(when, self.weekly))
        return slot.up, slot.down

    def _slot(self, minute: int) -> Slot:
        current = self.slots[-1]  # wraps around from the previous day (week)
        for slot in self.slots:
            if slot.minute <= minute:
                current = slot
        return current

    def next_change(self, when: time.struct_time) -> str | None:
        """When the limits change next, as the table spells it ("19:00", "Fri-19:00")."""
        if len(self.slots) < 2:
            return None
        minute = _minute(when, self.weekly)
        nxt = next((s for s in self.slots if s.minute > minute), self.slots[0])
        return _spell(nxt.minute, self.weekly)


def _minute(when: time.struct_time, weekly: bool) -> int:
    m = when.tm_hour * 60 + when.tm_min
    return when.tm_wday * 1440 + m if weekly else m


def _spell(minute: int, weekly: bool) -> str:
    day, m = divmod(minute, 1440)
    hhmm = f"{m // 60:02d}:{m % 60:02d}"
    return f"{DAYS[day].capitalize()}-{hhmm}" if weekly else hhmm


def parse_rate(text: str) -> Rate:
    t = text.strip().lower()
    if t in ("off", "0"):
        return None
    if not t or t[-1] not in "kmgt" and not t.endswith(("b", "ib")):
        raise OptionError(f"bwlimit rate {text!r} needs a unit: K, M, G or T (per second), or off")
    value = parse_size(text)
    return float(value) if value > 0 else None


def _pair(text: str) -> tuple[Rate, Rate]:
    up, sep, down = text.partition(":")
    u = parse_rate(up)
    return (u, parse_rate(down)) if sep else (u, u)


def parse_bwlimit(text: str) -> BandwidthTable:
    """``UP:DOWN`` or a time table; OptionError says what is wrong."""
    entries = [e for e in re.split(r"[;\s]+", text.strip()) if e]
    if not entries:
        raise OptionError("bwlimit needs a rate, UP:DOWN, or a time table")
    if len(entries) == 1 and not re.match(r"^([A-Za-z]{3}-)?\d{1,2}:\d{2}([=,]|$)", entries[0]):
        up, down = _pair(entries[0])
        return BandwidthTable((Slot(0, up, down),), False, text.strip())
    slots = []
    days = set()
    for entry in entries:
        parts = re.split(r"[=,]", entry, maxsplit=1)
        m = _TIME.match(parts[0]) if len(parts) == 2 else None
        if m is None:
            raise OptionError(f"bwlimit entry {entry!r} is not [DAY-]HH:MM=RATE[:RATE]")
        h, mi = int(m["h"]), int(m["m"])
        if h > 23 or mi > 59:
            raise OptionError(f"bwlimit entry {entry!r}: no such time of day")
        day = m["day"]
        days.add(day is not None)
        minute = h * 60 + mi
        if day is not None:
            if day.lower() not in DAYS:
                raise OptionError(f"bwlimit entry {entry!r}: day is one of Mon, Tue, ... Sun")
            minute += DAYS.index(day.lower()) * 1440
        up, down = _pair(parts[1])
        slots.append(Slot(minute, up, down))
    if len(days) > 1:
        raise OptionError("bwlimit: either every entry names a day (Mon-08:00) or none does")
    slots.sort(key=lambda s: s.minute)
    if len({s.minute for s in slots}) != len(slots):
        raise OptionError("bwlimit: two entries at the same time")
    return BandwidthTable(tuple(slots), days == {True}, text.strip())


def describe(rate: Rate) -> str:
    if rate is None:
        return "no limit"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if rate >= size:
            return f"{rate / size:g} {unit}/s"
    return f"{rate:g} B/s"


async def follow(table: BandwidthTable, client: Any) -> None:
    """Apply the table's limits to the client now and at every minute from now on."""
    while True:
        client.set_bandwidth(*table.limits_at(time.localtime()))
        if len(table.slots) == 1:
            return
        await trio.sleep(60.05 - time.time() % 60)  # just after the next minute starts
