"""The ``-o`` string as fstab lines and systemd units spell it."""

from __future__ import annotations

import pytest

from b2fs.mount.options import OptionError, parse_options

pytestmark = pytest.mark.timeout(10)


def test_fstab_and_systemd_options_are_accepted_and_ignored():
    opts = parse_options(
        "_netdev,nofail,x-systemd.automount,x-systemd.idle-timeout=15min,"
        "x-systemd.mount-timeout=2min,comment=systemd.automount,defaults,noatime"
    )
    assert opts == parse_options("")


def test_rw_after_ro_makes_the_mount_writable():
    assert parse_options("ro").read_only
    assert not parse_options("ro,rw").read_only


def test_dashes_still_spell_underscores():
    assert parse_options("writeback-delay=2").writeback_delay == 2.0
    with pytest.raises(OptionError, match="unknown mount option 'no_such'"):
        parse_options("no-such=1")
