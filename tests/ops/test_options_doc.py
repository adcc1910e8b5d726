"""docs/operations.md lists every mount option with the default the code has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from b2fs.mount import option_docs
from b2fs.mount.options import MountOptions

pytestmark = pytest.mark.timeout(10)

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_options_table_is_up_to_date():
    text = DOC.read_text()
    assert option_docs.updated(text) == text, (
        "run: python -m b2fs.mount.option_docs --write docs/operations.md"
    )
    for f in dataclasses.fields(MountOptions):
        assert f"| `{f.name}`" in text
    assert "| `cache_size` | size | 1G |" in text  # defaults as the code has them
    assert option_docs.main(["--check", str(DOC)]) == 0


def test_an_option_without_a_meaning_fails_the_table(monkeypatch):
    monkeypatch.delitem(option_docs.MEANINGS, "writeback_delay")
    with pytest.raises(KeyError, match="writeback_delay"):
        option_docs.table()


def test_a_stale_table_is_found(tmp_path):
    stale = tmp_path / "operations.md"
    stale.write_text(
        DOC.read_text().replace("| `cache_size` | size | 1G |", "| `cache_size` | size | 2G |")
    )
    assert option_docs.main(["--check", str(stale)]) == 1
    assert option_docs.main(["--write", str(stale)]) == 0
    assert stale.read_text() == DOC.read_text()
