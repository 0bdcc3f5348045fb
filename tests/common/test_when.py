"""The one time-text parser: ISO 8601 (UTC unless a zone is given) or a bare number in the
command's unit; a bad text names its option; every command reads times through it."""

from __future__ import annotations

import pytest

from actors.backtest.command import UsageError
from actors.backtest.command import parse_when as backtest_when
from actors.common.when import WhenError, format_when, parse_when
from actors.market.history import parse_time

pytestmark = pytest.mark.unit

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(("text", "seconds"), [
    ("2026-01-01", T0),
    ("2026-01-01T00:01:00Z", T0 + 60),
    ("2026-01-01T01:01:00+01:00", T0 + 60),
    ("2026-01-01 00:00:30", T0 + 30),
    (" 2026-01-01T00:00:00.250Z ", T0 + 0.25),
    (str(T0), T0),
    (f"{T0}.5", T0 + 0.5),
])
def test_iso_or_epoch_seconds(text: str, seconds: float) -> None:
    assert parse_when(text, "--from") == seconds


def test_numbers_in_ms_and_iso_to_the_exact_ms() -> None:
    assert parse_when(str(T0 * 1000 + 5), "--since", numbers="ms") == T0 + 0.005
    assert parse_time(str(T0 * 1000 + 5), "--since") == T0 * 1000 + 5
    assert parse_time("2026-01-01T00:00:00.123Z", "--since") == T0 * 1000 + 123


@pytest.mark.parametrize(("text", "unit"), [("yesterday", "s"), ("2026-13-01", "s"),
                                             ("", "ms"), ("12:00", "ms")])
def test_a_bad_text_names_the_option_and_the_units(text: str, unit: str) -> None:
    words = "epoch seconds" if unit == "s" else "ms since the epoch"
    with pytest.raises(WhenError, match=f"--until {text!r} is neither {words} nor an ISO"):
        parse_when(text, "--until", numbers="s" if unit == "s" else "ms")


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_refused(text: str) -> None:
    with pytest.raises(WhenError, match=f"--from {text!r} is not a finite"):
        parse_when(text, "--from")


def test_backtest_and_download_data_read_times_through_it() -> None:
    assert backtest_when("2026-01-01", "--from") == T0
    assert parse_time("2026-01-01", "--since") == T0 * 1000
    with pytest.raises(UsageError, match="--from 'nan' is not a finite"):
        backtest_when("nan", "--from")  # the shared rule, not a copy: nan was taken before
    with pytest.raises(ValueError, match="--since 'inf' is not a finite"):
        parse_time("inf", "--since")


def test_a_time_is_shown_as_utc_iso_to_the_second_and_reads_back() -> None:
    import doctest

    from actors.common import when
    assert doctest.testmod(when).failed == 0
    assert format_when(1767225600.0) == "2026-01-01T00:00:00Z"
    assert parse_when(format_when(1767229199.9), "--from") == 1767229199.0
