"""The daily-loss trigger's local day of a wall time, with its span kept between samples,
equals the date conversion it replaces, in zones whose midnight moves, repeats or is
skipped (property-based)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.risk.triggers import DailyLossTrigger

pytestmark = pytest.mark.unit

# UTC; a DST zone; zones whose clocks change at midnight (Havana, and Sao Paulo before
# 2019, when midnight did not exist on the day summer time began); one that skipped a day
ZONES = ["UTC", "Europe/Berlin", "America/Havana", "America/Sao_Paulo", "Pacific/Apia"]
SPAN = (1_230_000_000, 1_800_000_000)  # 2008 to 2027


def reference(wall: float, zone: str) -> str:
    return datetime.fromtimestamp(wall, ZoneInfo(zone)).date().isoformat()


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), start=st.integers(*SPAN),
       steps=st.lists(st.floats(0, 7_200, allow_nan=False), min_size=1, max_size=200))
def test_samples_in_time_order_get_their_local_date(zone: str, start: int,
                                                    steps: list[float]) -> None:
    trigger = DailyLossTrigger(5.0, zone)
    wall = float(start)
    for step in steps:
        wall += step
        assert trigger.day_of(wall) == reference(wall, zone)


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES),
       walls=st.lists(st.floats(*SPAN, allow_nan=False), min_size=1, max_size=50))
def test_samples_in_any_order_get_their_local_date(zone: str, walls: list[float]) -> None:
    trigger = DailyLossTrigger(5.0, zone)
    for wall in walls:
        assert trigger.day_of(wall) == reference(wall, zone)


@pytest.mark.parametrize("zone", ZONES)
def test_around_every_midnight_and_clock_change_of_a_year(zone: str) -> None:
    """Every 10 minutes of 2018 (Sao Paulo's midnight was skipped on 2018-11-04)."""
    trigger = DailyLossTrigger(5.0, zone)
    first = datetime(2018, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    for k in range(365 * 144):
        wall = first + k * 600.0
        assert trigger.day_of(wall) == reference(wall, zone)
