"""-o bwlimit: UP:DOWN, daily and weekly tables, the limits at a given time, bad tables refused."""

from __future__ import annotations

import time

import pytest

from b2fs.b2 import B2Client
from b2fs.mount.bwlimit import follow, parse_bwlimit
from b2fs.mount.options import OptionError, parse_options
from b2fs.mount.run import client_args

M, K = 1 << 20, 1 << 10


def at(text: str) -> time.struct_time:
    return time.strptime(text, "%Y-%m-%d %H:%M")  # 2024-01-01 is a Monday


def test_one_rate_or_up_and_down():
    assert parse_bwlimit("1M").limits_at(at("2024-01-01 12:00")) == (M, M)
    assert parse_bwlimit("512K:off").limits_at(at("2024-01-01 12:00")) == (512 * K, None)
    assert parse_bwlimit("off:2M").limits_at(at("2024-01-01 12:00")) == (None, 2 * M)


def test_a_daily_table_wraps_around_midnight():
    t = parse_bwlimit("08:00=512K;19:00=10M:off;23:00=off")
    assert t.limits_at(at("2024-01-01 07:59")) == (None, None)  # the 23:00 entry, from yesterday
    assert t.limits_at(at("2024-01-01 08:00")) == (512 * K, 512 * K)
    assert t.limits_at(at("2024-01-01 20:30")) == (10 * M, None)
    assert t.next_change(at("2024-01-01 20:30")) == "23:00"
    assert t.next_change(at("2024-01-01 23:30")) == "08:00"
    rclone = parse_bwlimit("08:00,512K 19:00,10M:off 23:00,off")  # rclone's spelling
    assert rclone.slots == t.slots


def test_a_weekly_table():
    t = parse_bwlimit("Mon-08:00=1M;Fri-19:00=off")
    assert t.limits_at(at("2024-01-03 12:00")) == (M, M)  # Wednesday
    assert t.limits_at(at("2024-01-06 12:00")) == (None, None)  # Saturday
    assert t.limits_at(at("2024-01-01 07:00")) == (None, None)  # Monday before 08:00
    assert t.next_change(at("2024-01-03 12:00")) == "Fri-19:00"


@pytest.mark.parametrize(("text", "why"), [
    ("512", "needs a unit"),
    ("08:00=1M;Mon-09:00=2M", "every entry names a day"),
    ("25:00=1M;08:00=off", "no such time"),
    ("08:00=1M;08:00=2M", "same time"),
    ("Xyz-08:00=1M", "day is one of"),
    ("08:00", "is not .DAY-.HH:MM=RATE"),
])  # fmt: skip
def test_bad_tables_are_refused_at_parse_time(text, why):
    with pytest.raises(OptionError, match="bwlimit"):
        parse_options(f"bwlimit={text}")
    with pytest.raises(OptionError, match=why):
        parse_bwlimit(text)


async def test_the_network_options_reach_the_client():
    opts = parse_options("bwlimit=3M:off,connections=5,proxy=http://proxy.example:3128,"
                         "ca_bundle=/etc/ca.pem,client_cert=/c.pem,client_key=/k.pem,http2")  # fmt: skip
    args = client_args(opts)
    assert (args["upload_limit"], args["download_limit"]) == (3 * M, None)
    assert args["max_connections"] == 5 and args["http2"] is True
    assert args["proxy"] == "http://proxy.example:3128"
    assert args["ca_bundle"] == "/etc/ca.pem" and args["client_cert"] == ("/c.pem", "/k.pem")
    client = B2Client("id", "key", realm="http://127.0.0.1:1", upload_limit=args["upload_limit"])
    assert client.bandwidth == (3 * M, None)
    await follow(parse_bwlimit("off:1M"), client)  # one entry: applied once, then done
    assert client.bandwidth == (None, M)
