"""The backtest's bar maker makes real Bars: the same type, fields, equality, hash and
frozenness as ``Bar(...)``."""

from __future__ import annotations

import dataclasses

import pytest

from actors.backtest.bar_maker import bar_maker
from actors.market.contract import Bar


def test_a_made_bar_is_a_bar_in_every_way() -> None:
    make = bar_maker()
    assert make is not Bar  # the fast way applies to Bar as it is
    made = make("BTC/USDT", 60.0, 1.0, 2.0, 0.5, 1.5, 10.0)
    plain = Bar("BTC/USDT", 60.0, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert type(made) is Bar
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    assert dataclasses.astuple(made) == ("BTC/USDT", 60.0, 1.0, 2.0, 0.5, 1.5, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.close = 3.0  # type: ignore[misc]
