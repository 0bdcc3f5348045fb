"""The HTML report (actors/backtest/report.py): the page a real file holds parses with
``html.parser`` (its tags balanced), holds every trade and breaker trip, loads nothing
from outside and runs no script; its charts keep at most MAX_POINTS points yet show the
deepest one-step dip of a long curve; hostile symbols and reasons are escaped; a path
that cannot be written raises ReportError naming it, and the old report stays whole."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from actors.backtest.contract import BacktestResult, BreakerTrip, EquityCurve, TradeRecord
from actors.backtest.metrics import summarize
from actors.backtest.report import (
    MAX_POINTS,
    ReportError,
    downsample,
    drawdown_points,
    write_report,
)

HOSTILE = '<script>alert("x")</script>&"\''


class _Page(HTMLParser):
    """What the page holds: tag counts (opened, closed), the text, the charts' points."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.opened: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.text: list[str] = []
        self.polylines: list[int] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened[tag] += 1
        values = dict(attrs)
        if tag == "polyline":
            self.polylines.append(len((values["points"] or "").split()))
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.closed[tag] += 1

    def handle_endtag(self, tag: str) -> None:
        self.closed[tag] += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _result(steps: int, trades: int, symbol: str = "BTC/USDT", reason: str = "stop_loss",
            dip_at: int | None = None) -> BacktestResult:
    times = [1.7e9 + 60.0 * i for i in range(steps)]
    equity = [1000.0 + (i % 7) for i in range(steps)]
    if dip_at is not None:
        equity[dip_at] = 10.0
    records = tuple(TradeRecord(symbol if i % 2 else "ETH/USDT", "breakout", times[i],
                                times[i + 1], Decimal("100.5"), Decimal(101), Decimal("0.1"),
                                Decimal(i - trades // 2), Decimal("0.01"),
                                reason if i % 3 == 0 else "take_profit")
                    for i in range(trades))
    return BacktestResult(records, EquityCurve(times, equity), Decimal(1000), 60.0,
                          (times[0], times[-1] + 60.0), (symbol, "ETH/USDT"), ("breakout",),
                          (BreakerTrip(times[1], reason),), candles=steps)


def test_the_page_parses_and_holds_every_trade(tmp_path: Path) -> None:
    result = _result(steps=500, trades=120)
    path = tmp_path / "out" / "report.html"
    write_report(result, summarize(result), path)
    page = _parse(path)
    for tag in ("html", "body", "table", "tr", "td", "th", "svg"):
        assert page.opened[tag] == page.closed[tag] > 0, tag
    assert page.opened["svg"] == 2 and page.polylines == [500, 500]
    text = " ".join(page.text)
    assert text.count("take_profit") + text.count("stop_loss") == 120 + 1  # + the trip
    # one header row per table, one row per figure, breakdown, trip and trade
    rows = page.opened["tr"]
    assert rows == 17 + (1 + 2) + (1 + 1) + (1 + 1) + (1 + 120)
    assert page.opened["script"] == 0 and page.links == []
    assert "Trades (120)" in text and "Breaker trips (1)" in text


def test_a_long_curve_is_drawn_with_bounded_points_and_its_dip(tmp_path: Path) -> None:
    steps, dip = 300_001, 123_457
    result = _result(steps=steps, trades=3, dip_at=dip)
    path = tmp_path / "report.html"
    write_report(result, summarize(result), path)
    page = _parse(path)
    assert len(page.polylines) == 2
    assert all(0 < points <= MAX_POINTS for points in page.polylines)
    # the charts' lowest labels: the dip's equity and its drawdown from the peak 1006
    assert "10" in page.text and f"{10 / 1006 - 1:.4g}" in page.text


def test_hostile_symbols_and_reasons_are_escaped(tmp_path: Path) -> None:
    result = _result(steps=10, trades=6, symbol=HOSTILE, reason=HOSTILE)
    path = tmp_path / "report.html"
    write_report(result, summarize(result), path)
    raw = path.read_text(encoding="utf-8")
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    page = _parse(path)
    assert page.opened["script"] == 0
    assert sum(chunk.count(HOSTILE) for chunk in page.text) >= 3 + 3 + 1  # trades, trip


def test_a_path_that_cannot_be_written_names_itself(tmp_path: Path) -> None:
    result = _result(steps=10, trades=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for path in (blocker / "report.html", tmp_path):
        with pytest.raises(ReportError, match=str(path)) as caught:
            write_report(result, summarize(result), path)
        assert caught.value.path == path
    with pytest.raises(ReportError) as caught:
        write_report(result, summarize(result), blocker / "report.html")
    assert str(caught.value).endswith(f": {blocker} is not a directory")
    assert blocker.read_text() == "not a directory"


def test_a_rewrite_replaces_the_old_report_whole(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    small, large = _result(steps=10, trades=2), _result(steps=50, trades=30)
    write_report(large, summarize(large), path)
    write_report(small, summarize(small), path)
    assert _parse(path).polylines == [10, 10]
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.unit
def test_downsample_keeps_each_buckets_extremes_in_order() -> None:
    times = [float(i) for i in range(100_000)]
    values = [0.0] * 100_000
    values[4321], values[77_777] = -5.0, 9.0
    points = downsample(times, values, max_points=200)
    assert len(points) <= 200
    assert (4321.0, -5.0) in points and (77_777.0, 9.0) in points
    assert [t for t, _ in points] == sorted({t for t, _ in points})
    assert downsample(times[:150], values[:150], max_points=200) == list(
        zip(times[:150], values[:150], strict=True))
    assert downsample([], [], max_points=200) == []


@pytest.mark.unit
def test_drawdown_points_fall_from_the_running_peak_including_the_start_cash() -> None:
    curve = EquityCurve([60.0, 120.0, 180.0, 240.0], [90.0, 120.0, 60.0, 130.0])
    assert drawdown_points(curve, 100.0) == [
        (60.0, pytest.approx(-0.1)), (120.0, 0.0), (180.0, pytest.approx(-0.5)), (240.0, 0.0)]
    long = EquityCurve([float(i) for i in range(50_000)],
                       [100.0 if i != 31_000 else 25.0 for i in range(50_000)])
    points = drawdown_points(long, 100.0, max_points=100)
    assert len(points) <= 100 and min(v for _, v in points) == pytest.approx(-0.75)
