"""The pure parts of ``download-data`` (actors/market/history.py): times, the paging plan,
and what of a fetched page is written and what is reported."""

from __future__ import annotations

import pytest

from actors.market.history import Sorter, format_row, parse_time, timeframe_ms

pytestmark = pytest.mark.unit

M = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def row(at: int, close: float = 100.0) -> list[float]:
    return [at, close, close + 1, close - 1, close, 5.0]


def test_times_and_timeframes() -> None:
    assert timeframe_ms("1m") == M and timeframe_ms("4h") == 4 * 3_600_000
    assert timeframe_ms("1d") == 86_400_000
    for bad in ("", "m", "0m", "1x", "1.5m", " 1m"):
        with pytest.raises(ValueError, match="timeframe"):
            timeframe_ms(bad)
    assert parse_time("2026-01-01", "--since") == T0
    assert parse_time("2026-01-01T00:01:00Z", "--since") == T0 + M
    assert parse_time("2026-01-01T01:01:00+01:00", "--since") == T0 + M
    assert parse_time(str(T0), "--until") == T0
    with pytest.raises(ValueError, match="--until 'yesterday'"):
        parse_time("yesterday", "--until")


def test_the_paging_plan_asks_only_for_what_is_left() -> None:
    s = Sorter("BTC/USDT", T0, T0 + 2500 * M, M)
    assert s.request(1000) == (T0, 1000)
    s.sort([row(T0 + i * M) for i in range(1000)], now=T0 + 10**9)
    assert s.request(1000) == (T0 + 1000 * M, 1000)
    s.sort([row(T0 + i * M) for i in range(1000, 2000)], now=T0 + 10**9)
    assert s.request(1000) == (T0 + 2000 * M, 500)
    page = s.sort([row(T0 + i * M) for i in range(2000, 2500)], now=T0 + 10**9)
    assert page.done and s.request(1000) is None and s.written == 2500


def test_the_resume_point_is_after_the_last_row_and_never_before_since() -> None:
    assert Sorter.resuming("X/Y", T0, T0 + 10 * M, M, None).expected == T0
    resumed = Sorter.resuming("X/Y", T0, T0 + 10 * M, M, T0 + 4 * M)
    assert resumed.expected == T0 + 5 * M and resumed.last_at == (T0 + 4 * M) / 1000
    assert Sorter.resuming("X/Y", T0 + 8 * M, T0 + 10 * M, M, T0 + 4 * M).expected == T0 + 8 * M
    # what the venue repeats from before the resume point is skipped, not written again
    page = resumed.sort([row(T0 + i * M) for i in range(3, 7)], now=T0 + 10**9)
    assert [r[0] for r in page.rows] == [T0 + 5 * M, T0 + 6 * M] and page.reports == ()


def test_a_gap_and_a_bad_candle_are_reported_not_written() -> None:
    s = Sorter("BTC/USDT", T0, T0 + 10 * M, M)
    candles = [row(T0), row(T0 + M), [T0 + 2 * M, 100.0, 99.0, 101.0, 100.0, 5.0],  # high < low
               [T0 + 3 * M, None, 101.0, 99.0, 100.0, 5.0], row(T0 + 6 * M), row(T0 + 7 * M)]
    page = s.sort(candles, now=T0 + 10**9)
    assert [r[0] for r in page.rows] == [T0, T0 + M, T0 + 6 * M, T0 + 7 * M]
    assert len(page.reports) == 3 and s.gaps == 1 and s.bad == 2
    assert "high_below_low" in page.reports[0] and "2026-01-01T00:02Z" in page.reports[0]
    assert "not_a_number" in page.reports[1]
    assert page.reports[2] == ("gap: BTC/USDT has no candle from 2026-01-01T00:04Z to "
                               "2026-01-01T00:05Z (2 missing)")
    assert not page.done and s.expected == T0 + 8 * M
    assert s.reports == list(page.reports)


def test_the_forming_candle_and_until_end_the_download() -> None:
    s = Sorter("BTC/USDT", T0, T0 + 100 * M, M)
    page = s.sort([row(T0), row(T0 + M), row(T0 + 2 * M)], now=T0 + 2 * M + 30_000)
    assert [r[0] for r in page.rows] == [T0, T0 + M] and page.done  # the third is forming
    s = Sorter("BTC/USDT", T0, T0 + 2 * M, M)
    page = s.sort([row(T0), row(T0 + M), row(T0 + 2 * M)], now=T0 + 10**9)
    assert [r[0] for r in page.rows] == [T0, T0 + M] and page.done  # until is exclusive
    empty = Sorter("BTC/USDT", T0, T0 + 100 * M, M).sort([], now=T0 + 10**9)
    assert empty.done and empty.rows == ()


def test_a_written_row_reads_back_exactly() -> None:
    line = format_row((T0, 0.1, 0.30000000000000004, 0.05, 0.2, 12.5))
    assert line == f"{T0},0.1,0.30000000000000004,0.05,0.2,12.5"
