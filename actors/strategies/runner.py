"""The runner core: the configured strategies over closed candles, pure (no actor, thread
or clock), the code the evaluator actor runs and a backtest can call as it is.

It owns one strategy instance per (strategy, symbol), the :class:`View` of each symbol
(sized to the largest window of its strategies), and the ownership rules. The strategy
whose entry opened a symbol is the only one that may sell it, and the only one that sees
the position. An entry is pending from its buy signal until the positions show the symbol
held; one not seen held within ``entry_timeout_bars`` candles of its symbol lapses (it no
longer blocks a new buy, but its strategy stays the owner until another buy replaces it,
so a late fill can still be sold). An owner is forgotten once its symbol has been seen
held and then flat.

A sale is signalled once: a strategy repeats its exit candle after candle while it holds,
and the positions show the sale only once its fill is committed, so repeats would reach
the executor only to find nothing left. Exits are held back while the position is as it
was when the sale was signalled, for at most ``entry_timeout_bars`` candles of the symbol
(then the sale is signalled again: it may have failed); a position that changed (filled
in part) is sold at once.

A strategy that raises is classified by the error handler: RESUME skips that candle for
it, RESTART replaces it by a fresh instance warmed on the window up to that candle (its
decisions during the warm-up are dropped; one that raises there is switched off), STOP
(or FALLBACK) switches it off for that symbol, ESCALATE re-raises. The other strategies
go on; each failure is told to the sink.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from actors.common.messages import Side
from actors.common.when import format_when
from actors.market.contract import Bar
from actors.strategies.api import TRIM_EVERY, Enter, Exit, Position, Strategy, StrategyParams, View
from actors.strategies.contract import RunnerStats, Signal
from supervisor.error_handler import Directive, ErrorHandler, Severity

__all__ = ["Runner", "RunnerStats", "Sink", "StrategyFault", "StrategySpec"]


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """One configured strategy: its unique ``name`` (in signal ids), its class, its
    validated params, and the symbols it runs on (None: every symbol)."""

    name: str
    strategy: type[Strategy]
    params: StrategyParams
    symbols: frozenset[str] | None = None

    def make(self, symbol: str) -> Strategy:
        return self.strategy(self.params, symbol)


@dataclass(frozen=True, slots=True)
class StrategyFault:
    """A strategy raised on a candle of ``symbol``; ``directive`` is what was done."""

    strategy: str
    symbol: str
    at: float
    directive: Directive
    severity: Severity
    error: str  # "TypeName: message"
    count: int  # failures of this strategy on this symbol so far


class Sink(Protocol):
    """Where the runner's output goes: ``signal`` returns whether it was taken (a sale
    not taken is not held back), ``fault`` is told of each strategy failure."""

    def signal(self, signal: Signal) -> bool: ...

    def fault(self, fault: StrategyFault) -> None: ...


@dataclass(slots=True)
class _Entry:
    """Who opened (or is opening) a symbol, and how far that entry got."""

    strategy: str
    held: bool = False  # the positions have shown the symbol held since the buy signal
    waited: int = 0  # candles of the symbol seen while the entry was pending


class _Slot:
    """One strategy instance on one symbol (``on_candle``: its bound method)."""

    __slots__ = ("failures", "instance", "name", "off", "on_candle", "spec")

    def __init__(self, spec: StrategySpec, instance: Strategy | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.failures = 0
        self.off = instance is None
        self.instance: Strategy = instance  # type: ignore[assignment]  # None only when off
        self.on_candle: Any = None if instance is None else instance.on_candle

    def replace(self, instance: Strategy) -> None:
        self.instance = instance
        self.on_candle = instance.on_candle


class _Lane:
    """A symbol's view, its strategies (``active``: those not switched off), and the
    candles since the last trim (counted only if some indicator keeps history)."""

    __slots__ = ("active", "position", "since_trim", "slots", "source", "trims", "view")

    def __init__(self, view: View, slots: tuple[_Slot, ...]) -> None:
        self.view = view
        self.slots = slots
        self.since_trim = 0
        self.source: Any = None  # the position record ``position`` was made from
        self.position: Position | None = None
        self.active: tuple[_Slot, ...] = ()
        self.trims = False
        self.refresh()

    def refresh(self) -> None:
        """After a slot was switched off or replaced."""
        self.active = tuple(slot for slot in self.slots if not slot.off)
        self.trims = any(slot.instance.indicators for slot in self.active)


class Runner:
    """Runs ``specs`` per symbol; see the module docstring for the rules it keeps.

    ``owners`` restores who owns what (``(symbol, strategy, held, waited)``, as
    :meth:`owners` gives them), for a replacement that takes over positions."""

    def __init__(self, specs: Iterable[StrategySpec], *, entry_timeout_bars: int,
                 handler: ErrorHandler | None = None,
                 owners: Iterable[tuple[str, str, bool, int]] = ()) -> None:
        self.specs = tuple(specs)
        self.timeout = entry_timeout_bars
        self.handler = handler or ErrorHandler()
        self.owner: dict[str, _Entry] = {sym: _Entry(strategy, held, waited)
                                         for sym, strategy, held, waited in owners}
        # symbol -> [its position when a sale was signalled, candles of it seen since]
        self.selling: dict[str, list[Any]] = {}
        self.lanes: dict[str, _Lane] = {}
        self.signals = 0
        self.caught_up = 0  # entries not signalled: their candle was a catch-up one
        self.faults: Counter[tuple[str, str]] = Counter()  # (strategy, directive)
        self._seen_seq: int | None = None

    # -- positions ----------------------------------------------------------------------

    def positions(self, seq: int, held: Mapping[str, Any]) -> bool:
        """A positions state at ledger ``seq`` (symbol -> its position, with ``quantity``
        and ``avg_price``): an entry seen held is confirmed; one seen held and now flat is
        forgotten, its symbol free for any strategy. True if an owner changed."""
        if seq == self._seen_seq:  # positions change only with the ledger's seq
            return False
        self._seen_seq = seq
        owner = self.owner
        changed = False
        for symbol, known in list(owner.items()):
            if symbol in held:
                changed = changed or not known.held
                known.held = True
            elif known.held:
                del owner[symbol]
                changed = True
        if self.selling:  # a sale that went through: its symbol is flat
            self.selling = {s: v for s, v in self.selling.items() if s in held}
        return changed

    def owners(self) -> tuple[tuple[str, str, bool, int], ...]:
        """Who owns each symbol: ``(symbol, strategy, held, waited)``."""
        return tuple((sym, e.strategy, e.held, e.waited) for sym, e in self.owner.items())

    # -- candles ------------------------------------------------------------------------

    def on_candles(self, candles: Iterable[Bar], candidates: Collection[str],
                   held: Mapping[str, Any], sink: Sink, *, catch_up: bool = False) -> bool:
        """Run every strategy on each closed candle, in order; signals go to ``sink``.
        ``candidates``: the symbols an entry may open; ``held``: the positions as of the
        last :meth:`positions`; ``catch_up``: candles older than the feed's newest closed
        one, which the strategies see but no entry is signalled on (counted in
        ``RunnerStats.caught_up``; a sale is, the position is real). True if an owner
        changed."""
        owner = self.owner
        timeout = self.timeout
        lanes = self.lanes
        selling = self.selling
        changed = False
        for bar in candles:
            symbol = bar.symbol
            sale = selling.get(symbol)
            if sale is not None:
                sale[1] += 1
            lane = lanes.get(symbol)
            if lane is None:
                lane = lanes[symbol] = self._lane(symbol, bar, sink)
            view = lane.view
            view.push(bar)
            entry = owner.get(symbol)
            is_held = symbol in held
            if entry is not None and not entry.held and not is_held:
                entry.waited += 1  # still pending: its fill is not in the positions yet
                changed = True
            owned = entry.strategy if is_held and entry is not None else None
            position = self._position(lane, held[symbol]) if owned is not None else None
            view.position = None
            for slot in lane.active:
                name = slot.name
                if owned is not None:
                    view.position = position if name == owned else None
                try:
                    decision = slot.on_candle(bar, view)
                    if decision is None:
                        continue
                    kind = type(decision)
                    if kind is not Enter and kind is not Exit:
                        raise TypeError(f"on_candle returned {decision!r}, not Enter, "
                                        "Exit or None")
                except Exception as exc:
                    self._failed(slot, lane, bar, exc, sink)
                    continue
                if isinstance(decision, Enter):
                    if catch_up:
                        self.caught_up += 1
                        continue
                    if symbol not in candidates or is_held:
                        continue
                    if entry is not None and not entry.held and entry.waited <= timeout:
                        continue  # an entry is pending: its fill may not be recorded yet
                    entry = owner[symbol] = _Entry(name)
                    changed = True
                    side, stop, take_profit = Side.BUY, decision.stop_distance, \
                        decision.take_profit
                else:
                    if name != owned:
                        continue  # nothing of its own to sell
                    if sale is not None and sale[0] == held.get(symbol) and sale[1] <= timeout:
                        continue  # signalled already (see the module docstring)
                    side, stop, take_profit = Side.SELL, 0.0, None
                self.signals += 1
                sent = sink.signal(Signal(
                    f"{name}:{symbol}:{int(bar.at)}:{side.value}", name, symbol, side,
                    bar.close, bar.at, decision.reason or f"{name} {side.value}", stop,
                    take_profit))
                if sent and side is Side.SELL:
                    sale = selling[symbol] = [held.get(symbol), 0]
            if lane.trims:
                lane.since_trim += 1
                if lane.since_trim >= TRIM_EVERY:
                    lane.since_trim = 0
                    for slot in lane.active:
                        slot.instance.trim()
        return changed

    def stats(self) -> RunnerStats:
        off = tuple((slot.name, symbol) for symbol, lane in self.lanes.items()
                    for slot in lane.slots if slot.off)
        return RunnerStats(self.signals, tuple((s, d, n) for (s, d), n in self.faults.items()),
                           off, self.caught_up)

    # -- inside -------------------------------------------------------------------------

    def _lane(self, symbol: str, bar: Bar, sink: Sink) -> _Lane:
        slots = []
        size = 1
        for spec in self.specs:
            if spec.symbols is not None and symbol not in spec.symbols:
                continue
            try:
                instance = spec.make(symbol)
                size = max(size, _window(instance))
                slot = _Slot(spec, instance)
            except Exception as exc:  # its setup raised: it cannot run on this symbol
                slot = _Slot(spec, None)
                self._report(slot, bar, exc, Directive.STOP, sink)
            slots.append(slot)
        return _Lane(View(size), tuple(slots))

    @staticmethod
    def _position(lane: _Lane, record: Any) -> Position:
        if record is not lane.source:
            lane.source = record
            lane.position = Position(float(record.quantity), float(record.avg_price))
        assert lane.position is not None
        return lane.position

    def _failed(self, slot: _Slot, lane: _Lane, bar: Bar, exc: Exception, sink: Sink) -> None:
        directive = self.handler.classify(exc).directive
        if directive is Directive.RESTART:
            try:
                fresh = slot.spec.make(bar.symbol)
            except Exception:
                directive = Directive.STOP  # its setup raises: off
            else:
                if _warm(fresh, lane.view):
                    slot.replace(fresh)
                    lane.refresh()
                else:
                    directive = Directive.STOP  # it raises on the window too: off
        elif directive not in (Directive.RESUME, Directive.ESCALATE):
            directive = Directive.STOP  # STOP, or a FALLBACK a strategy has none of
        self._report(slot, bar, exc, directive, sink, lane=lane)

    def _report(self, slot: _Slot, bar: Bar, exc: Exception, directive: Directive,
                sink: Sink, *, lane: _Lane | None = None) -> None:
        """Count and tell a failure of ``slot`` on ``bar`` (ESCALATE: raise it instead)."""
        decision = self.handler.classify(exc)
        if decision.directive is Directive.ESCALATE:  # the caller's failure now
            exc.add_note(f"{_ESCALATED}strategy {slot.name} on {bar.symbol}, "
                         f"the candle at {format_when(bar.at)}")
            raise exc
        slot.failures += 1
        if directive is Directive.STOP:
            slot.off = True
            if lane is not None:
                lane.refresh()
        self.faults[(slot.name, directive.value)] += 1
        sink.fault(StrategyFault(slot.name, bar.symbol, bar.at, directive, decision.severity,
                                 f"{type(exc).__name__}: {exc}", slot.failures))


_ESCALATED = "escalated by the error handler: "


def escalated(exc: BaseException) -> str | None:
    """The strategy, symbol and candle of a failure the runner raised because the error
    handler escalates it (``strategy NAME on SYMBOL, the candle at T``); None for any
    other exception."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(_ESCALATED):
            return note[len(_ESCALATED):]
    return None


def escalation(exc: BaseException) -> str | None:
    """What a caller that ends on ``exc`` says of it, if the runner raised it because the
    error handler escalates it (``strategy NAME on SYMBOL, the candle at T raised
    TYPE: text, which the error handler escalates``); None for any other exception."""
    where = escalated(exc)
    if where is None:
        return None
    return f"{where} raised {type(exc).__name__}: {exc}, which the error handler escalates"


def _window(strategy: Strategy) -> int:
    size = strategy.window()
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise TypeError(f"{type(strategy).__name__}.window() returned {size!r}, not an int >= 1")
    return size


def _warm(strategy: Strategy, view: View) -> bool:
    """Feed ``strategy`` the candles of ``view`` before the last (the one it failed on),
    in order, on a view of its own (flat), its decisions dropped; False if it raises."""
    own = View(view.size)
    for candle in islice(view.candles, len(view.candles) - 1):
        own.push(candle)
        try:
            strategy.on_candle(candle, own)
        except Exception:
            return False
    return True

