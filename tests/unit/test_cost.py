"""Dollars from calls and bytes: B2's list prices, the daily free calls, a prices file."""

from __future__ import annotations

import pytest

from b2fs.b2.billing import billing_class, by_class
from b2fs.cost import dollars, estimate
from b2fs.prices import Prices, PricesError, load_prices


def test_a_known_workload_costs_what_a_hand_computation_says():
    # 50,000 uploads (class A), 30,000 downloads (B), 5,000 listings (C), 2 GB out, 10 GB kept
    classes = by_class({"b2_upload_file": 50_000, "b2_download_file_by_id": 30_000,
                        "b2_list_file_names": 5_000})  # fmt: skip
    assert classes == {"A": 50_000, "B": 30_000, "C": 5_000}
    cost = estimate(classes, egress_bytes=2 * 10**9, stored_bytes=10 * 10**9, prices=Prices())
    # by hand: A free; B 3 x $0.004; C 5 x $0.004; egress 2 x $0.01; storage 0.01 TB x $6
    assert cost.calls == pytest.approx({"A": 0.0, "B": 0.012, "C": 0.020})
    assert cost.egress == pytest.approx(0.02)
    assert cost.total == pytest.approx(0.052)
    assert cost.storage_month == pytest.approx(0.06)
    # over one day the first 2,500 B and 2,500 C calls are free: (27,500 B, 2,500 C) billed
    day = estimate(classes, 2 * 10**9, prices=Prices(), days=1)
    assert day.calls == pytest.approx({"A": 0.0, "B": 0.011, "C": 0.010})
    assert estimate({"B": 2_000, "C": 2_500}, prices=Prices(), days=1).total == 0


def test_billing_classes_follow_backblazes_table():
    assert [
        billing_class(c) for c in ("b2_hide_file", "b2_get_upload_part_url", "b2_upload_part")
    ] == ["A"] * 3
    assert [billing_class(c) for c in ("b2_get_file_info", "b2_download_file_by_name")] == ["B"] * 2
    assert [billing_class(c) for c in ("b2_copy_file", "b2_list_buckets", "b2_authorize_account")] == ["C"] * 3  # fmt: skip


def test_a_prices_file_changes_what_it_names(tmp_path, monkeypatch):
    f = tmp_path / "prices.toml"
    f.write_text("class_c_per_1000 = 0.01\nfree_calls_per_day = 0\n")
    monkeypatch.setenv("B2FS_PRICES", str(f))
    prices = load_prices()
    assert prices.class_c_per_1000 == 0.01 and prices.class_b_per_10000 == 0.004
    assert estimate({"C": 1000}, prices=prices, days=1).total == pytest.approx(0.01)
    f.write_text("class_d = 1\n")
    with pytest.raises(PricesError, match="unknown key 'class_d'"):
        load_prices()
    monkeypatch.setenv("B2FS_PRICES", str(tmp_path / "missing.toml"))
    with pytest.raises(PricesError, match="does not exist"):
        load_prices()
    monkeypatch.delenv("B2FS_PRICES")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    assert load_prices() == Prices()  # no file: the list prices


def test_dollars_keep_three_significant_digits():
    assert [dollars(x) for x in (0, 0.052, 0.0000052, 1234.5)] == ["$0", "$0.0520", "$0.00000520", "$1,234.50"]  # fmt: skip
