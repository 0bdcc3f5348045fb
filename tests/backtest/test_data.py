"""The backtest's candle loader (actors/backtest/data.py) on real files in a temporary
directory: the steps it yields are the CSV replay's own on the same files; every bad
candle, gap, header or window is a DataError naming the file and line; the cache beside
the data is used when warm, replaced when a file changes, and a damaged one is never read
as data; ``since`` and ``until`` are inclusive."""

from __future__ import annotations

import dataclasses
import logging
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.backtest.data import CACHE_DIR, DataError, load_steps
from actors.backtest.engine import CheckedStep
from actors.market.contract import BadBar, Bar
from actors.market.data import CsvReplay, check_bar, columns_pass
from actors.market.history import CSV_HEADER

pytestmark = pytest.mark.unit

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
MIN = 60_000


def rows(n: int, *, start: int = T0, step: int = MIN, base: float = 100.0
         ) -> list[tuple[int, float, float, float, float, float]]:
    out = []
    for i in range(n):
        price = base + (i % 7) * 0.5 - (i % 3) * 0.25
        out.append((start + i * step, price, price + 1.0, price - 1.0, price + 0.5,
                    10.0 + i))
    return out


def write(directory: Path, symbol: str, data: list[tuple[object, ...]] | list[str], *,
          header: str = ",".join(CSV_HEADER)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (symbol.replace("/", "_") + ".csv")
    lines = [header] + [r if isinstance(r, str) else ",".join(str(v) for v in r)
                        for r in data]
    path.write_text("\n".join(lines) + "\n")
    return path


def flatten(steps: object) -> list[list[Bar]]:
    return [list(step) for step in steps]  # type: ignore[attr-defined]


# -- the same steps as the replay ------------------------------------------------------------


def test_steps_equal_the_replays_on_clean_data(tmp_path: Path) -> None:
    write(tmp_path, "BTC/USDT", rows(50))
    write(tmp_path, "ETH/USDT", rows(30, start=T0 + 10 * MIN, base=2000.0))  # starts later
    write(tmp_path, "SOL/USDT", rows(20, base=5.0))  # ends earlier
    data = load_steps(tmp_path, None, None)
    expected = list(CsvReplay(tmp_path).steps())
    assert flatten(data.steps()) == expected
    assert list(data) == expected  # iterating it is steps()
    assert data.symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert data.timeframe_s == 60.0
    assert data.candles == 100
    assert data.window == (T0 / 1000, (T0 + 49 * MIN) / 1000)


def test_the_loaders_bars_are_bars(tmp_path: Path) -> None:
    """Made through the slots (the fast path), each is a frozen Bar equal to Bar(...), in
    a CheckedStep."""
    write(tmp_path, "BTC/USDT", rows(3))
    step = next(iter(load_steps(tmp_path)))
    assert type(step) is CheckedStep
    (made,) = step
    t, o, h, lo, c, v = rows(1)[0]
    assert type(made) is Bar
    assert made == Bar("BTC/USDT", t / 1000, o, h, lo, c, v)
    assert hash(made) == hash(Bar("BTC/USDT", t / 1000, o, h, lo, c, v))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.close = 1.0  # type: ignore[misc]


def test_steps_off_one_grid_equal_the_replays(tmp_path: Path) -> None:
    """Two symbols on the same timeframe half a candle apart: every time is its own step,
    as in the replay."""
    write(tmp_path, "A/USDT", rows(10))
    write(tmp_path, "B/USDT", rows(10, start=T0 + MIN // 2))
    assert flatten(load_steps(tmp_path).steps()) == list(CsvReplay(tmp_path).steps())


def test_quoted_fields_and_blank_lines_read_as_the_replay_reads_them(tmp_path: Path) -> None:
    data = [",".join(str(v) for v in r) for r in rows(6)]
    data[2] = ",".join(f'"{v}"' for v in rows(6)[2])
    data.insert(4, "")
    write(tmp_path, "BTC/USDT", data)
    assert flatten(load_steps(tmp_path).steps()) == list(CsvReplay(tmp_path).steps())


def test_a_bad_candle_after_a_blank_line_is_named_by_its_own_line(tmp_path: Path) -> None:
    data: list[str] = [",".join(str(v) for v in r) for r in rows(6)]
    data.insert(1, "")  # line 3 is blank; the rows after it move down one line
    t, o, _h, lo, c, v = rows(6)[3]
    data[4] = f"{t},{o},{lo - 5},{lo},{c},{v}"  # high below low, on line 6
    path = write(tmp_path, "BTC/USDT", data)
    with pytest.raises(DataError, match=rf"^{path} row 4 \(line 6\): high_below_low"):
        load_steps(tmp_path)


# -- the column check is check_bar's rule -----------------------------------------------------

values = st.one_of(
    st.floats(min_value=0.5, max_value=2.0),  # mostly plausible, so many series pass
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e12, 1.0000001e12]),
)


@given(series=st.lists(st.tuples(values, values, values, values, values, values),
                       max_size=6),
       times=st.lists(st.sampled_from([0.0, 60.0, 120.0, 180.0, 240.0, 300.0, float("nan"),
                                       float("inf"), -float("inf")]), min_size=6,
                      max_size=6))
@settings(max_examples=800, deadline=None)
def test_columns_pass_exactly_when_check_bar_passes_every_row(
        series: list[tuple[float, ...]], times: list[float]) -> None:
    """The loader's column check says yes exactly when check_bar, row after row, would."""
    bars = [Bar("BTC/USDT", times[i] if i % 2 else float(i * 60) + (o % 1), o, h, lo, c, v)
            for i, (o, h, lo, c, v, _) in enumerate(series)]
    ok = True
    last: float | None = None
    for bar in bars:
        try:
            check_bar(bar, last)
        except BadBar:
            ok = False
            break
        last = bar.at
    columns = [array("d", (getattr(b, f) for b in bars))
               for f in ("at", "open", "high", "low", "close", "volume")]
    assert columns_pass(columns) is ok


def test_columns_pass_refuses_what_is_not_six_float_arrays() -> None:
    good = [array("d", [60.0, 120.0])] + [array("d", [1.0, 1.0]) for _ in range(5)]
    assert columns_pass(good)
    assert not columns_pass(good[:5])
    assert not columns_pass([*good[:5], array("d", [1.0])])  # lengths differ
    assert not columns_pass([*good[:5], [1.0, 1.0]])  # type: ignore[list-item]


@pytest.mark.parametrize(("field", "reason"), [
    ("true", "not_a_number: BTC/USDT close='true'"),  # JSON would read it as 1
    ("1" + "0" * 400, "not_finite"),  # an int no double holds: float() makes it inf
    ("Infinity", "not_finite"),
    ("NaN", "not_finite"),
    ("null", "not_a_number"),
])
def test_what_json_reads_differently_takes_the_careful_path(tmp_path: Path, field: str,
                                                            reason: str) -> None:
    data: list[str] = [",".join(str(v) for v in r) for r in rows(10)]
    t, o, h, lo, _c, v = rows(10)[6]
    data[6] = f"{t},{o},{h},{lo},{field},{v}"
    path = write(tmp_path, "BTC/USDT", data)
    with pytest.raises(DataError) as caught:
        load_steps(tmp_path)
    assert str(caught.value).startswith(f"{path} row 7 (line 8): ")
    assert reason in str(caught.value)


def test_numbers_json_does_not_read_are_read_as_float_reads_them(tmp_path: Path) -> None:
    """+1, .5, 5., 1_0, spaces and quotes are numbers to the replay's csv reader and
    float(): the same candles."""
    data: list[str] = [",".join(str(v) for v in r) for r in rows(10)]
    t, _o, _h, _lo, _c, _v = rows(10)[6]
    data[6] = f'{t}, +100.5,1_01.,.99e2 ,"100.",5'
    write(tmp_path, "BTC/USDT", data)
    loaded = flatten(load_steps(tmp_path).steps())
    assert loaded == list(CsvReplay(tmp_path).steps())
    assert loaded[6][0] == Bar("BTC/USDT", t / 1000, 100.5, 101.0, 99.0, 100.0, 5.0)


# -- errors name the file and line -----------------------------------------------------------


@pytest.mark.parametrize(("row", "reason"), [
    ("{t},100.0,99.0,101.0,100.0,5.0", "high_below_low: BTC/USDT high=99.0 low=101.0"),
    ("{t},100.0,101.0,99.0,100.0,-5.0", "negative_volume"),
    ("{t},0.0,101.0,0.0,100.0,5.0", "non_positive_price"),
    ("{t},nan,101.0,99.0,100.0,5.0", "not_finite"),
    ("{t},1e13,1e13,1e13,1e13,5.0", "price_too_large"),
    ("{t},100.0,101.0,99.0,abc,5.0", "not_a_number: BTC/USDT close='abc'"),
    ("{t},100.0,101.0,99.0,,5.0", "missing_field: BTC/USDT close"),
    ("{t},100.0,101.0,99.0", "4 fields, not 6"),
])
def test_a_bad_candle_names_its_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    data: list[str] = [",".join(str(v) for v in r) for r in rows(10)]
    data[6] = row.format(t=T0 + 6 * MIN)  # the 7th row: line 8
    write(tmp_path, "ETH/USDT", rows(10))
    path = write(tmp_path, "BTC/USDT", data)
    with pytest.raises(DataError) as caught:
        load_steps(tmp_path)
    assert str(caught.value).startswith(f"{path} row 7 (line 8): ")
    assert reason in str(caught.value)


def test_a_repeated_or_backward_time_is_a_bad_candle(tmp_path: Path) -> None:
    data = rows(5)
    data[3] = (data[1][0], *data[3][1:])
    path = write(tmp_path, "BTC/USDT", data)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=rf"^{path} row 4 \(line 5\): out_of_order"):
        load_steps(tmp_path)


def test_a_gap_names_its_file_line_and_the_missing_candles(tmp_path: Path) -> None:
    data = rows(10)
    del data[4:7]  # three candles missing: the row after them is on line 6
    path = write(tmp_path, "BTC/USDT", data)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=rf"^{path} row 5 \(line 6\): gap: BTC/USDT at "
                                        r"2026-01-01T00:07:00Z is 240s after the row "
                                        r"before, the candles are 60s apart: no candle "
                                        r"from 2026-01-01T00:04Z to 2026-01-01T00:06Z "
                                        r"\(3 missing\)"):
        load_steps(tmp_path)


def test_mixed_timeframes_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "A/USDT", rows(10))
    other = write(tmp_path, "B/USDT", rows(10, step=5 * MIN))
    with pytest.raises(DataError, match=rf"^{other}: candles every 300s, but A_USDT.csv "
                                        r"has them every 60s \(mixed timeframes\)"):
        load_steps(tmp_path)
    data = rows(10)
    data[5:] = [(t + MIN // 2, *rest) for t, *rest in data[5:]]  # type: ignore[misc]
    (tmp_path / "B_USDT.csv").unlink()
    path = write(tmp_path, "C/USDT", data)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=rf"^{path} row 6 \(line 7\): C/USDT at "
                                        r"2026-01-01T00:05:30Z is 90s after the row "
                                        r"before, not a multiple of the candles' 60s"):
        load_steps(tmp_path)


def test_a_bad_header_no_csv_and_no_timeframe_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path} has no \*.csv file"):
        load_steps(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        load_steps(tmp_path / "missing")
    path = write(tmp_path, "BTC/USDT", rows(3), header="time,open,high,low,close,volume")
    with pytest.raises(DataError, match=rf"^{path} line 1: its header is "
                                        r"'time,open,high,low,close,volume', not "
                                        r"timestamp,open,high,low,close,volume"):
        load_steps(tmp_path)
    path = write(tmp_path, "BTC/USDT", rows(1))
    with pytest.raises(DataError, match=rf"^{path}: cannot infer the timeframe"):
        load_steps(tmp_path)


# -- the window ------------------------------------------------------------------------------


def test_since_and_until_are_inclusive(tmp_path: Path) -> None:
    write(tmp_path, "BTC/USDT", rows(10))
    write(tmp_path, "ETH/USDT", rows(10, start=T0 + 5 * MIN))
    since, until = (T0 + 3 * MIN) / 1000, (T0 + 6 * MIN) / 1000
    data = load_steps(tmp_path, since, until)
    times = [step[0].at for step in data.steps()]
    assert times == [since + 60 * i for i in range(4)]
    assert data.window == (since, until)
    assert data.candles == 4 + 2
    everything = list(CsvReplay(tmp_path).steps())
    assert flatten(data.steps()) == [s for s in everything if since <= s[0].at <= until]
    only_btc = load_steps(tmp_path, None, (T0 + 2 * MIN) / 1000)
    assert only_btc.symbols == ("BTC/USDT",)
    assert only_btc.candles == 3


def test_an_empty_window_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "BTC/USDT", rows(10))
    with pytest.raises(DataError, match=rf"^{tmp_path} has no candle in the window "
                                        r"\(--from 2026-02-01T00:00:00Z, --until not "
                                        r"given\); its candles run from "
                                        r"2026-01-01T00:00:00Z to 2026-01-01T00:09:00Z"):
        load_steps(tmp_path, 1_769_904_000.0, None)
    with pytest.raises(DataError, match=r"the window ends .* before it starts"):
        load_steps(tmp_path, T0 / 1000 + 120, T0 / 1000 + 60)


# -- the cache -------------------------------------------------------------------------------


def test_the_cache_is_used_when_warm(tmp_path: Path) -> None:
    write(tmp_path, "BTC/USDT", rows(40))
    write(tmp_path, "ETH/USDT", rows(40, base=2000.0))
    cold = load_steps(tmp_path)
    assert not cold.from_cache and cold.cached_files == 0
    entries = sorted(p.name for p in (tmp_path / CACHE_DIR).iterdir())
    assert len(entries) == 2 and all(e.endswith(".bin") for e in entries)
    warm = load_steps(tmp_path)
    assert warm.from_cache and warm.cached_files == 2 and warm.warnings == ()
    assert flatten(warm.steps()) == flatten(cold.steps()) == list(CsvReplay(tmp_path).steps())
    assert (warm.symbols, warm.timeframe_s, warm.candles, warm.window) == \
        (cold.symbols, cold.timeframe_s, cold.candles, cold.window)


def test_a_changed_file_is_parsed_again_and_its_stale_entry_replaced(tmp_path: Path) -> None:
    path = write(tmp_path, "BTC/USDT", rows(10))
    write(tmp_path, "ETH/USDT", rows(10))
    load_steps(tmp_path)
    write(tmp_path, "BTC/USDT", rows(12))
    changed = load_steps(tmp_path)
    assert not changed.from_cache and changed.cached_files == 1  # ETH still from the cache
    assert changed.window[1] == (T0 + 11 * MIN) / 1000
    assert flatten(changed.steps()) == list(CsvReplay(tmp_path).steps())
    btc = [p for p in (tmp_path / CACHE_DIR).iterdir() if p.name.startswith("BTC_USDT.")]
    assert len(btc) == 1 and btc[0].name.startswith(f"BTC_USDT.{path.stat().st_size}.")
    # A file made bad after it was cached is refused, not read from the old entry.
    data: list[str] = [",".join(str(v) for v in r) for r in rows(12)]
    data[3] = f"{T0 + 3 * MIN},1.0,0.5,2.0,1.0,1.0"
    write(tmp_path, "BTC/USDT", data)
    with pytest.raises(DataError, match=rf"^{path} row 4 \(line 5\): high_below_low"):
        load_steps(tmp_path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_damaged_cache_file_is_ignored_and_replaced(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    write(tmp_path, "BTC/USDT", rows(30))
    expected = list(CsvReplay(tmp_path).steps())
    load_steps(tmp_path)
    (entry,) = (tmp_path / CACHE_DIR).iterdir()
    raw = bytearray(entry.read_bytes())
    if damage == "flip":  # same size, one price changed: only the checksum tells
        raw[40] ^= 0x40
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw = bytearray(b"not a cache file at all")
    entry.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="actors.backtest.data"):
        data = load_steps(tmp_path)
    assert not data.from_cache
    assert flatten(data.steps()) == expected
    assert len(data.warnings) == 1 and "damaged cache file ignored" in data.warnings[0]
    assert str(entry) in caplog.text
    again = load_steps(tmp_path)  # the entry was written afresh
    assert again.from_cache and flatten(again.steps()) == expected


def test_an_unwritable_cache_is_skipped_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "BTC/USDT", rows(10))
    write(tmp_path, "ETH/USDT", rows(10))
    (tmp_path / CACHE_DIR).write_text("a file where the cache directory would be")
    with caplog.at_level(logging.WARNING, logger="actors.backtest.data"):
        data = load_steps(tmp_path)
    assert not data.from_cache
    assert flatten(data.steps()) == list(CsvReplay(tmp_path).steps())
    assert len(data.warnings) == 1 and "cannot be written" in data.warnings[0]
    assert caplog.text.count("cannot be written") == 1
