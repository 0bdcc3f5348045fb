"""Issue 15, item 8 (other escapes) in market data: values and CSV files that used to
raise out of ``check_bar`` or the CSV replay (so the market restart-looped) are rejected
bars with a reason, counted, and never reach a subscriber."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from actors.market.contract import BadBar, Bar
from actors.market.data import CsvReplay, check_bar
from tests.support.fuzz_cases import _market_actor_run


def test_an_int_too_large_for_a_float_is_not_finite() -> None:
    for field in range(6):
        values: list[object] = [60.0, 1.0, 2.0, 0.5, 1.5, 3.0]
        values[field] = 10**400
        with pytest.raises(BadBar) as caught:
            check_bar(Bar("X", *values), None)  # type: ignore[arg-type]
        assert caught.value.reason == "not_finite"


def _rows(tmp_path: Path, data: bytes) -> list[Bar | BadBar]:
    (tmp_path / "BTC_USDT.csv").write_bytes(b"timestamp,open,high,low,close,volume\n" + data)
    return list(CsvReplay(tmp_path))


def test_bytes_that_are_not_utf8_make_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    items = _rows(tmp_path, b"60000,1,2,0.5,1.5,10\n120000,1,2,0.5,1\xff5,10\n"
                            b"180000,1,2,0.5,1.5,10\n")
    assert [type(i).__name__ for i in items] == ["Bar", "BadBar", "Bar"]
    assert isinstance(items[1], BadBar) and items[1].reason == "not_a_number"


def test_a_field_the_csv_module_cannot_read_is_a_bad_row(tmp_path: Path) -> None:
    huge = b"9" * (csv.field_size_limit() + 10)
    items = _rows(tmp_path, b"60000,1,2,0.5,1.5,10\n120000,1,2,0.5," + huge + b",10\n"
                            b"180000,1,2,0.5,1.5,10\n")
    reasons = [i.reason for i in items if isinstance(i, BadBar)]
    assert reasons == ["unreadable_row"]
    assert [i.at for i in items if isinstance(i, Bar)] == [60.0, 180.0]


def test_a_hostile_csv_replays_in_a_real_market_without_a_restart(tmp_path: Path) -> None:
    data = (b"timestamp,open,high,low,close,volume\n60000,1,2,0.5,1.5,10\n"
            b"120000,1,2,0.5,1\xff5,10\n120000,nan,2,0.5,1.5,10\n60000,1,2,0.5,1.5,10\n"
            b"180000,1,2,0.5," + b"9" * (csv.field_size_limit() + 1) + b",10\n"
            b"240000,1,2,0.5,1.5,10\n")
    (tmp_path / "BTC_USDT.csv").write_bytes(data)
    assert _market_actor_run(tmp_path, items=6, good=2) is None
