"""The runner core (actors/strategies/runner.py), pure: the window and the position a
strategy sees, the signals and their ids, the ownership rules, and what a raising strategy
does to itself (resumed, restarted warm, switched off, escalated) and to its neighbours
(nothing: hypothesis checks that a neighbour's signals are those it gives alone)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from actors.market.contract import Bar
from actors.strategies.api import Strategy
from actors.strategies.builtin import MeanReversion, MomentumBreakout
from actors.strategies.contract import Signal
from actors.strategies.runner import Runner, StrategyFault, StrategySpec, escalated
from supervisor import Directive, ErrorHandler, Rule, Severity
from tests.strategies.scripted import BOOM, BUY_AT, SELL_AT, Raiser, Scripted, Unready, Wrong
from tests.support.standins import snapshot

pytestmark = pytest.mark.unit

A, B = "A/USDT", "B/USDT"


class Sink:
    """Keeps the signals and the faults; refuses signals while ``refuse`` is set."""

    def __init__(self) -> None:
        self.got: list[Signal] = []
        self.faults: list[StrategyFault] = []
        self.refuse = False

    def signal(self, signal: Signal) -> bool:
        if self.refuse:
            return False
        self.got.append(signal)
        return True

    def fault(self, fault: StrategyFault) -> None:
        self.faults.append(fault)

    def ids(self) -> list[str]:
        return [s.signal_id for s in self.got]


def spec(cls: type[Strategy], name: str | None = None, symbols: Sequence[str] | None = None,
         **params: Any) -> StrategySpec:
    return StrategySpec(name or cls.name, cls, cls.Params(**params),
                        None if symbols is None else frozenset(symbols))


def candles(symbol: str, *closes: float, start: int = 0) -> list[Bar]:
    return [Bar(symbol, 60.0 * (start + i), c, c + 1, c - 1, c, 1.0)
            for i, c in enumerate(closes)]


class Drive:
    """One runner, fed candle runs and positions as the evaluator feeds it."""

    def __init__(self, *specs: StrategySpec, timeout: int = 3,
                 handler: ErrorHandler | None = None) -> None:
        self.runner = Runner(specs, entry_timeout_bars=timeout, handler=handler)
        self.sink = Sink()
        self.held: dict[str, Any] = {}
        self.seq = 0
        self.minute = 0

    def hold(self, **quantities: str | None) -> None:
        """A new ledger state: ``A="1"`` holds A/USDT, ``A=None`` is flat."""
        held = {f"{k}/USDT": (q, 5.0) for k, q in quantities.items() if q is not None}
        self.seq += 1
        self.held = snapshot(self.seq, held).positions
        self.runner.positions(self.seq, self.held)

    def feed(self, symbol: str, *closes: float, candidates: Sequence[str] = (A, B)) -> None:
        bars = candles(symbol, *closes, start=self.minute)
        self.minute += len(closes)
        self.runner.on_candles(bars, frozenset(candidates), self.held, self.sink)


def _instance(drive: Drive, symbol: str, index: int = 0) -> Any:
    return drive.runner.lanes[symbol].slots[index].instance


# -- the view -------------------------------------------------------------------------------


def test_the_window_is_sized_to_the_largest_strategy_on_its_symbol_and_ends_with_the_candle(
) -> None:
    d = Drive(spec(Scripted, "small", span=2), spec(Scripted, "large", span=5),
              spec(Scripted, "other", symbols=[B], span=9))
    d.feed(A, 1, 2, 4, 5, 6, 8, 9)
    view = d.runner.lanes[A].view
    assert view.size == 5 and list(view.closes) == [4, 5, 6, 8, 9]
    assert view.candles[-1].close == 9 and list(view.highs) == [5, 6, 7, 9, 10]
    assert [s.name for s in d.runner.lanes[A].slots] == ["small", "large"]  # not "other"
    d.feed(B, 1)
    assert d.runner.lanes[B].view.size == 9


def test_only_the_owner_sees_the_position() -> None:
    d = Drive(spec(Scripted, "one"), spec(Scripted, "two"))
    d.feed(A, 1, BUY_AT)  # both enter: the first one's is signalled and owns A
    d.hold(A="2")
    d.feed(A, 1)
    assert _instance(d, A, 0).seen[-1] == (1, 2.0)
    assert _instance(d, A, 1).seen[-1] == (1, None)


# -- catch-up candles ---------------------------------------------------------------------


def test_catch_up_candles_fill_the_window_and_signal_no_entry_but_a_sale() -> None:
    d = Drive(spec(Scripted))
    bars = candles(A, 1, BUY_AT, 2)
    d.runner.on_candles(bars, frozenset((A, B)), d.held, d.sink, catch_up=True)
    assert d.sink.got == [] and d.runner.stats().caught_up == 1
    assert [c for c, _ in _instance(d, A).seen] == [1, BUY_AT, 2]  # the strategy saw them
    d.minute = 3
    d.feed(A, BUY_AT)  # the newest closed candle: the entry is signalled
    assert d.sink.ids() == ["scripted:A/USDT:180:buy"]
    d.hold(A="1")
    d.runner.on_candles(candles(A, SELL_AT, start=4), frozenset((A, B)), d.held, d.sink,
                        catch_up=True)
    assert d.sink.ids()[-1] == "scripted:A/USDT:240:sell"  # a real position is still sold


# -- signals --------------------------------------------------------------------------------


def test_signals_carry_deterministic_ids_stop_take_profit_and_reason() -> None:
    d = Drive(spec(Scripted))
    d.feed(A, 1, BUY_AT)
    (buy,) = d.sink.got
    assert buy.signal_id == f"scripted:{A}:60:buy" and buy.price == BUY_AT and buy.at == 60.0
    assert (buy.stop_distance, buy.take_profit, buy.reason) == (0.5, 9.0, "seven")
    d.hold(A="1")
    d.feed(A, SELL_AT)
    assert d.sink.ids()[-1] == f"scripted:{A}:120:sell"
    assert d.sink.got[-1].stop_distance == 0.0 and d.sink.got[-1].reason == "three"


def test_an_entry_needs_a_candidate_and_a_flat_symbol() -> None:
    d = Drive(spec(Scripted))
    d.feed(A, BUY_AT, candidates=[B])
    assert d.sink.got == []
    d.hold(A="1")  # held (by someone else's entry): no buy either
    d.feed(A, BUY_AT)
    assert d.sink.got == []


def test_a_strategy_sells_only_what_it_opened() -> None:
    d = Drive(spec(Scripted, "one"), spec(Scripted, "two"))
    d.feed(A, SELL_AT)  # flat: nothing to sell for anyone
    d.feed(A, BUY_AT)
    d.hold(A="1")
    d.feed(A, SELL_AT)
    assert [s.signal_id.split(":")[0] for s in d.sink.got] == ["one", "one"]
    assert [s.side.value for s in d.sink.got] == ["buy", "sell"]


def test_a_pending_entry_blocks_new_buys_until_it_lapses() -> None:
    d = Drive(spec(Scripted), timeout=3)
    d.feed(A, BUY_AT)  # the entry is pending: not held yet
    d.feed(A, BUY_AT, BUY_AT, BUY_AT)  # within entry_timeout_bars: held back
    assert len(d.sink.got) == 1
    d.feed(A, BUY_AT)  # lapsed: a new entry
    assert len(d.sink.got) == 2
    assert d.runner.owners() == ((A, "scripted", False, 0),)


def test_a_sale_is_signalled_once_until_the_position_changes_or_the_wait_lapses() -> None:
    d = Drive(spec(Scripted), timeout=2)
    d.feed(A, BUY_AT)
    d.hold(A="1")
    d.feed(A, SELL_AT, SELL_AT, SELL_AT, SELL_AT)  # once, held back twice, then again
    assert [s.side.value for s in d.sink.got] == ["buy", "sell", "sell"]
    d.hold(A="0.5")  # filled in part: sold at once
    d.feed(A, SELL_AT)
    assert len(d.sink.got) == 4
    d.hold(A=None)  # sold: the owner is forgotten, nothing is held back
    assert d.runner.owners() == () and d.runner.selling == {}


def test_a_refused_sale_is_not_held_back() -> None:
    d = Drive(spec(Scripted))
    d.feed(A, BUY_AT)
    d.hold(A="1")
    d.sink.refuse = True
    d.feed(A, SELL_AT)
    d.sink.refuse = False
    d.feed(A, SELL_AT)
    assert [s.side.value for s in d.sink.got] == ["buy", "sell"]


def test_owners_given_to_a_new_runner_are_kept() -> None:
    runner = Runner([spec(Scripted)], entry_timeout_bars=3, owners=[(A, "scripted", True, 0)])
    sink = Sink()
    held = snapshot(1, {A: ("1", 5.0)}).positions
    runner.positions(1, held)
    runner.on_candles(candles(A, SELL_AT), {A}, held, sink)
    assert [s.side.value for s in sink.got] == ["sell"]


# -- a strategy that raises -----------------------------------------------------------------


def test_resume_skips_the_candle_and_keeps_the_instance() -> None:
    d = Drive(spec(Raiser))  # a ValueError: RESUME by the default rules
    d.feed(A, 1, 2, BOOM, 4)
    instance = _instance(d, A)
    assert [c for c, _ in instance.seen] == [1, 2, 4]
    (fault,) = d.sink.faults
    assert (fault.strategy, fault.symbol, fault.directive, fault.count) == (
        "raiser", A, Directive.RESUME, 1)
    assert fault.error == "ValueError: close 13" and fault.severity is Severity.WARNING
    assert d.runner.stats().faults == (("raiser", "resume", 1),)


class TypeRaiser(Raiser):
    error = TypeError  # RESTART by the default rules


def test_restart_replaces_the_instance_warmed_on_the_window_without_its_signals() -> None:
    d = Drive(spec(TypeRaiser, span=3))
    d.feed(A, 1, 2)
    old = _instance(d, A)
    d.feed(A, BUY_AT, BOOM)  # the entry at 7 is signalled once, before the failure
    fresh = _instance(d, A)
    assert fresh is not old
    # warmed on the window up to the candle it failed on (2 and 7; the 1 has left it)
    assert [c for c, _ in fresh.seen] == [2, BUY_AT]
    assert len(fresh.sma.input_values) == 2
    assert d.sink.ids() == [f"raiser:{A}:120:buy"]  # the warm-up's entry is dropped
    assert [f.directive for f in d.sink.faults] == [Directive.RESTART]
    d.feed(A, 4)
    assert [c for c, _ in fresh.seen] == [2, BUY_AT, 4]


class Fussy(Raiser):
    """Raises on 13, also when warmed on a window that holds a 13."""

    error = TypeError

    def on_candle(self, candle: Any, view: Any) -> Any:
        if view.closes and BOOM in view.closes:
            raise TypeError("a 13 in the window")
        return super().on_candle(candle, view)


def test_a_restart_that_raises_in_its_warm_up_switches_the_strategy_off() -> None:
    d = Drive(spec(Fussy, span=3))
    d.feed(A, 1, BOOM, 2, 3, 4, 5)  # restarted on 13 (warmed on 1), then it raises on 2
    assert d.runner.lanes[A].slots[0].off  # and again in its warm-up (on 1, 13): off
    assert [f.directive for f in d.sink.faults] == [Directive.RESTART, Directive.STOP]
    assert d.runner.stats().off == (("raiser", A),)


def test_stop_switches_it_off_for_that_symbol_only() -> None:
    handler = ErrorHandler({"ValueError": Rule(Severity.ERROR, Directive.STOP)})
    d = Drive(spec(Raiser), spec(Scripted), handler=handler)
    d.feed(A, BOOM, BUY_AT)
    d.feed(B, BUY_AT)
    assert d.sink.ids() == [f"scripted:{A}:60:buy", f"raiser:{B}:120:buy"]
    assert d.runner.stats().off == (("raiser", A),)
    assert _instance(d, A).seen == []  # never called again on A


def test_a_strategy_whose_setup_raises_is_off_for_that_symbol() -> None:
    d = Drive(spec(Unready), spec(Scripted))
    d.feed(A, 1)
    d.feed(B, BUY_AT)
    d.feed(A, BUY_AT)
    assert d.sink.ids() == [f"scripted:{B}:60:buy", f"unready:{A}:120:buy"]
    (fault,) = d.sink.faults
    assert (fault.strategy, fault.symbol, fault.directive) == ("unready", B, Directive.STOP)
    assert fault.error == "KeyError: 'B/USDT'"
    assert d.runner.stats().off == (("unready", B),)
    d.feed("C/USDT", BUY_AT, candidates=["C/USDT"])
    assert d.sink.ids()[-1] == "scripted:C/USDT:180:buy"
    assert d.sink.faults[-1].error == (
        "TypeError: Unready.window() returned 'three', not an int >= 1")
    assert d.runner.lanes["C/USDT"].view.size == 3  # Scripted's


def test_escalate_raises_out_of_the_runner() -> None:
    handler = ErrorHandler({"ValueError": Rule(Severity.CRITICAL, Directive.ESCALATE)})
    d = Drive(spec(Raiser), handler=handler)
    with pytest.raises(ValueError, match="close 13") as raised:
        d.feed(A, BOOM)
    where = escalated(raised.value)
    assert where is not None and where.startswith(f"strategy raiser on {A}, the candle at ")
    assert escalated(ValueError("not through the runner")) is None


def test_a_return_that_is_not_a_decision_is_a_type_error() -> None:
    d = Drive(spec(Wrong))
    d.feed(A, 1, BOOM)
    (fault,) = d.sink.faults
    assert fault.directive is Directive.RESTART and fault.error.startswith("TypeError: ")


@given(st.lists(st.tuples(st.sampled_from([A, B]),
                          st.sampled_from([1.0, 2.0, BUY_AT, SELL_AT, BOOM]),
                          st.sampled_from([None, "hold", "flat"])), max_size=60),
       st.sampled_from([ValueError, TypeError, KeyError]))
def test_a_raising_neighbour_changes_no_signal_of_the_others(
        script: list[tuple[str, float, str | None]], error: type[Exception]) -> None:
    class Neighbour(Raiser):
        pass

    Neighbour.error = error

    def run(*specs: StrategySpec) -> list[str]:
        d = Drive(*specs)
        for symbol, close, ledger in script:
            if ledger == "hold":
                d.hold(**{symbol[0]: "1"})
            elif ledger == "flat":
                d.hold(**{symbol[0]: None})
            d.feed(symbol, close)
        return [i for i in d.sink.ids() if i.startswith("scripted:")]

    # the neighbour is listed after, so that a buy of its own never takes a symbol first
    assert run(spec(Scripted), spec(Neighbour, "raiser")) == run(spec(Scripted))


# -- memory ---------------------------------------------------------------------------------


def _items(state: Any) -> int:
    """How many list items a streaming indicator's saved state holds, at any depth."""
    if isinstance(state, dict):
        return sum(_items(v) for v in state.values())
    if isinstance(state, list):
        return len(state) + sum(_items(v) for v in state)
    return 0


def test_the_indicators_memory_stays_bounded() -> None:
    """A talipp indicator (it keeps its inputs) is trimmed every TRIM_EVERY candles; the
    built-ins' streaming indicators (ferro_ta) hold as much after 5,000 candles as after
    100."""
    d = Drive(spec(MomentumBreakout), spec(MeanReversion), spec(Scripted, span=3))

    def held() -> list[int]:
        return [_items(json.loads(_instance(d, A, 0).atr.to_json())),
                _items(json.loads(_instance(d, A, 1).bands.to_json()))]

    early: list[int] = []
    for i in range(5000):
        d.feed(A, 100.0 + (i % 17))
        if i == 99:
            early = held()
    assert held() == early and all(early)
    sma = _instance(d, A, 2).sma
    assert len(sma.input_values) <= 256 + 1024
    assert len(sma.output_values) == len(sma.input_values)
    assert sma.output_values[-1] is not None
