"""The strategy API: what a trader subclasses to write a strategy (docs/strategies.md).

A :class:`Strategy` sees each closed candle of one symbol through :meth:`Strategy.on_candle`,
with a :class:`View`: the recent candles (the current one last) and its own position. It
returns :class:`Enter` (with the stop distance the entry is sized by), :class:`Exit`, or
None. Its parameters are a pydantic model, ``Params``, whose fields :func:`param` declares
with a default and a search range; :func:`search_space` reads the ranges back. Indicators
are a library's incremental ones: ferro_ta's streaming indicators (bounded by design), or
talipp's, registered with :meth:`Strategy.indicator` so that their history is trimmed.
Nothing here needs an actor, a thread or a clock: the runner core
(:mod:`actors.strategies.runner`) drives a strategy the same way wherever it runs.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from actors.market.contract import Bar

__all__ = [
    "Candle",
    "Decision",
    "Enter",
    "Exit",
    "ParamRange",
    "Position",
    "Strategy",
    "StrategyParams",
    "View",
    "param",
    "parameters",
    "search_space",
]

Candle = Bar  # a closed candle: symbol, at (its open time, seconds), open, high, low, close, volume

SEARCH = "search"  # the key of a field's json_schema_extra that holds its search range
TRIM_EVERY = 1024  # candles between two trims of a strategy's indicators (the runner's)


@dataclass(frozen=True, slots=True)
class Position:
    """The strategy's own open position on its symbol (long only)."""

    quantity: float
    entry_price: float


@dataclass(frozen=True, slots=True)
class Enter:
    """Buy: ``stop_distance`` is the price distance to the planned stop the entry is sized
    by (0: the executor's default stop); ``take_profit`` a price, or None."""

    stop_distance: float
    take_profit: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.stop_distance, int | float)
                and math.isfinite(self.stop_distance) and self.stop_distance >= 0):
            raise ValueError(f"Enter.stop_distance must be a finite number >= 0, "
                             f"not {self.stop_distance!r}")
        tp = self.take_profit
        if tp is not None and not (isinstance(tp, int | float) and math.isfinite(tp) and tp > 0):
            raise ValueError(f"Enter.take_profit must be a finite price > 0, not {tp!r}")


@dataclass(frozen=True, slots=True)
class Exit:
    """Sell the position this strategy opened."""

    reason: str = ""


Decision = Enter | Exit


class View:
    """The last ``size`` closed candles of one symbol (the current one last), as candles
    and as columns of floats (``highs``, ``lows``, ``closes``: for ``max``/``min``/``sum``
    in C), and ``position``: the reading strategy's own position, None when it has none.
    The runner keeps one per symbol, sized to the largest :meth:`Strategy.window` of the
    strategies on it; a strategy reads it and never changes it."""

    __slots__ = ("candles", "closes", "highs", "lows", "position", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.candles: deque[Candle] = deque(maxlen=size)
        self.highs: deque[float] = deque(maxlen=size)
        self.lows: deque[float] = deque(maxlen=size)
        self.closes: deque[float] = deque(maxlen=size)
        self.position: Position | None = None

    def push(self, candle: Candle) -> None:
        """Append ``candle`` (the runner's, before the strategies see it)."""
        self.candles.append(candle)
        self.highs.append(candle.high)
        self.lows.append(candle.low)
        self.closes.append(candle.close)

    def __len__(self) -> int:
        return len(self.candles)


class StrategyParams(BaseModel):
    """A strategy's parameters: subclass ``Strategy.Params`` as ``Params`` inside the
    strategy, one field per parameter, declared with :func:`param`. Unknown keys and
    values out of range are refused when the config is loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ParamRange:
    """One parameter as the config and an optimiser see it. ``low``/``high`` are the
    inclusive search bounds (None: not searched), ``step`` the grid of an int, ``log`` a
    search on the log scale."""

    name: str
    type: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    doc: str = ""


def param(default: Any, *, low: float | None = None, high: float | None = None,
          step: float | None = None, log: bool = False, doc: str = "") -> Any:
    """A parameter field: its ``default`` and, for a number, its search range
    ``[low, high]`` (also the range the config must keep to), an int's ``step``, and
    ``log=True`` to search a float on the log scale."""
    if (low is None) != (high is None):
        raise ValueError("param: give both low and high, or neither")
    if low is not None and high is not None:
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise TypeError(f"param: a range needs a number default, not {default!r}")
        if not low <= default <= high:
            raise ValueError(f"param: the default {default!r} is outside [{low}, {high}]")
        if log and low <= 0:
            raise ValueError("param: a log range needs low > 0")
    if step is not None and (low is None or step <= 0):
        raise ValueError("param: step needs a range and must be > 0")
    return Field(default, ge=low, le=high, description=doc or None,
                 json_schema_extra={SEARCH: {"low": low, "high": high, "step": step,
                                             "log": log}})


def parameters(strategy: type[Strategy]) -> tuple[ParamRange, ...]:
    """Every parameter of ``strategy``, in declaration order."""
    out = []
    for name, field in strategy.Params.model_fields.items():
        extra = field.json_schema_extra
        search = extra.get(SEARCH, {}) if isinstance(extra, dict) else {}
        if not isinstance(search, dict):
            search = {}
        low, high, step = search.get("low"), search.get("high"), search.get("step")
        out.append(ParamRange(
            name, _type_name(field), field.default, _number(low), _number(high),
            _number(step), bool(search.get("log", False)), field.description or ""))
    return tuple(out)


def search_space(strategy: type[Strategy]) -> dict[str, ParamRange]:
    """The parameters of ``strategy`` that have a search range, by name."""
    return {p.name: p for p in parameters(strategy) if p.low is not None}


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) else None


def _type_name(field: FieldInfo) -> str:
    annotation = field.annotation
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


class _History(Protocol):
    """An indicator that keeps its inputs, as talipp's do: :meth:`Strategy.trim` drops the
    oldest of them."""

    input_values: Any

    def purge_oldest(self, size: int) -> None: ...


IndicatorT = TypeVar("IndicatorT")


class Strategy:
    """Subclass it: declare ``Params`` (a :class:`Params` subclass; annotate
    ``params: Params`` for type checkers), create indicators in :meth:`setup`, say how many
    candles of history :meth:`window` needs, and decide in :meth:`on_candle`.

    One instance runs per (configured strategy, symbol), so an instance's state is one
    symbol's. ``name`` is the default name in the config and in signal ids. An exception
    raised in :meth:`on_candle` is classified by the error handler: the instance skips the
    candle, is replaced by a fresh one warmed on the window, or is switched off for that
    symbol (docs/strategies.md); the other strategies go on.
    """

    name: ClassVar[str] = ""
    keep: ClassVar[int] = 256  # input values each indicator keeps at least (see trim)

    class Params(StrategyParams):
        """No parameters."""

    def __init__(self, params: StrategyParams | None = None, symbol: str = "") -> None:
        self.params = params if params is not None else type(self).Params()
        self.symbol = symbol
        self.indicators: list[_History] = []  # the registered ones that keep history
        self.setup()

    def setup(self) -> None:
        """Create the indicators (``self.x = self.indicator(SMA(...))``); the params are set."""

    def window(self) -> int:
        """How many candles :attr:`View.candles` must hold (the current one included)."""
        return 1

    def indicator(self, indicator: IndicatorT) -> IndicatorT:
        """Register an indicator and return it: one that keeps its inputs (talipp's
        ``input_values`` and ``purge_oldest``) is trimmed by :meth:`trim`; a streaming one
        with bounded state (ferro_ta's) needs nothing and is returned as it is."""
        if hasattr(indicator, "purge_oldest") and hasattr(indicator, "input_values"):
            self.indicators.append(indicator)
        return indicator

    def on_candle(self, candle: Candle, view: View) -> Enter | Exit | None:
        """Decide on the closed ``candle`` (also ``view.candles[-1]``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define on_candle")

    def trim(self) -> None:
        """Drop the oldest input values of the registered indicators that keep them
        (talipp's ``purge_oldest``), down to ``max(keep, 2 * window(), 2 * period)`` each
        (``period``: the indicator's, when it has one); the runner calls it every
        ``TRIM_EVERY`` candles. An indicator that reads further back needs a larger ``keep``."""
        floor = max(self.keep, 2 * self.window())
        for indicator in self.indicators:
            period = getattr(indicator, "period", 0)
            keep = max(floor, 2 * period) if isinstance(period, int) else floor
            extra = len(indicator.input_values) - keep
            if extra > 0:
                indicator.purge_oldest(extra)
