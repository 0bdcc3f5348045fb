"""The strategy API (actors/strategies/api.py), pure: parameters with ranges (what the
config refuses, what an optimiser reads), the decisions' own checks, the view."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from actors.market.contract import Bar
from actors.strategies.api import (
    Enter,
    Exit,
    ParamRange,
    Strategy,
    View,
    param,
    parameters,
    search_space,
)

pytestmark = pytest.mark.unit


class Example(Strategy):
    class Params(Strategy.Params):
        span: int = param(10, low=2, high=50, step=2, doc="candles")
        scale: float = param(0.01, low=1e-4, high=1.0, log=True)
        long_only: bool = param(True)


def test_params_keep_to_their_ranges_and_refuse_unknown_keys() -> None:
    assert Example.Params().span == 10
    assert Example.Params(span=50, scale=1e-4).scale == 1e-4
    for bad in ({"span": 1}, {"span": 51}, {"scale": 2.0}, {"spam": 3}, {"span": "many"}):
        with pytest.raises(ValidationError):
            Example.Params(**bad)


def test_the_search_space_is_what_param_declared() -> None:
    assert parameters(Example) == (
        ParamRange("span", "int", 10, 2, 50, 2, False, "candles"),
        ParamRange("scale", "float", 0.01, 1e-4, 1.0, None, True, ""),
        ParamRange("long_only", "bool", True),
    )
    assert list(search_space(Example)) == ["span", "scale"]  # a fixed param is not searched
    assert parameters(Strategy) == ()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"default": 5, "low": 1}, "give both low and high"),
    ({"default": 60, "low": 1, "high": 50}, "outside [1, 50]"),
    ({"default": 0.5, "low": 0.0, "high": 1.0, "log": True}, "log range needs low > 0"),
    ({"default": 5, "step": 1}, "step needs a range"),
    ({"default": 5, "low": 1, "high": 9, "step": 0}, "must be > 0"),
])
def test_a_param_that_cannot_hold_is_refused_where_it_is_declared(
        kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        param(**kwargs)


def test_a_range_needs_a_number() -> None:
    with pytest.raises(TypeError, match="needs a number default"):
        param("wide", low=1, high=2)


@pytest.mark.parametrize("stop", [-1.0, math.nan, math.inf])
def test_an_entry_needs_a_finite_stop_distance(stop: float) -> None:
    with pytest.raises(ValueError, match="stop_distance"):
        Enter(stop)


@pytest.mark.parametrize("take_profit", [0.0, -3.0, math.nan])
def test_an_entrys_take_profit_is_a_price(take_profit: float) -> None:
    with pytest.raises(ValueError, match="take_profit"):
        Enter(1.0, take_profit=take_profit)
    assert Enter(0.0, 5.0, "why").take_profit == 5.0 and Exit().reason == ""


def test_the_view_keeps_its_size_as_candles_and_columns() -> None:
    view = View(2)
    for i in range(3):
        view.push(Bar("A", float(i), 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 1.0))
    assert len(view) == 2 and [c.at for c in view.candles] == [1.0, 2.0]
    assert list(view.highs) == [3.0, 4.0] and list(view.lows) == [1.5, 2.5]
    assert list(view.closes) == [2.5, 3.5] and view.position is None


def test_a_strategy_that_does_not_define_on_candle_says_so() -> None:
    with pytest.raises(NotImplementedError, match="Example does not define on_candle"):
        Example().on_candle(Bar("A", 0.0, 1, 1, 1, 1, 1), View(1))
