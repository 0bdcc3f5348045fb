"""The evaluator: runs the configured strategies on scanned bars and emits signals.

The strategy whose buy opened a symbol is the only one that may sell it. An entry is
pending from its buy signal until the position snapshot shows the symbol held; one not
seen held within ``entry_timeout_bars`` bars lapses (it no longer blocks a new buy, but
its strategy stays the owner until another buy replaces it, so a late fill can still be
sold). An owner is forgotten once its symbol has been seen held and then flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.market.contract import ScannedBars
from actors.portfolio.contract import PortfolioSnapshot
from actors.strategies.builtin import MeanReversion, MomentumBreakout
from actors.strategies.contract import Signal, Strategy
from supervisor import SupervisedActor
from supervisor.peers import Peer

__all__ = ["EvaluatorActor", "EvaluatorOwners"]


class MomentumSettings(BaseModel):
    """``momentum``: breakout of the recent high."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    lookback: int = Field(20, ge=2)
    exit_lookback: int = Field(10, ge=2)
    atr_stop: float = Field(2.0, gt=0)


class MeanReversionSettings(BaseModel):
    """``mean_reversion``: buy the dip below the band, sell at the mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    window: int = Field(30, ge=3)
    k: float = Field(2.0, gt=0)
    stop_k: float = Field(1.5, gt=0)


@dataclass(slots=True)
class _Entry:
    """Who opened (or is opening) a symbol, and how far that entry got."""

    strategy: str
    held: bool = False  # the snapshot has shown the symbol held since the buy signal
    waited: int = 0  # bars of the symbol seen while the entry was pending


@dataclass(frozen=True, slots=True)
class EvaluatorOwners:
    """Published by the evaluator: who owns each symbol, for a restarted evaluator."""

    owners: tuple[tuple[str, str, bool, int], ...]  # symbol, strategy, held, waited


class EvaluatorActor(SupervisedActor):
    """Owns one strategy instance per (strategy, symbol) and which one holds each symbol.

    A sale is signalled once: a strategy repeats its sell verdict bar after bar while it
    holds, and the snapshot shows the sale only once its fill is committed, so repeats
    would reach the executor only to find nothing left. Sell verdicts are held back while
    the position is as it was when the sale was signalled, for at most
    ``entry_timeout_bars`` bars of the symbol (then the sale is signalled again: it may
    have failed); a position that changed (filled in part) is sold at once.
    """

    accepts: ClassVar[tuple[type, ...]] = (
        ScannedBars,)
    publishes: ClassVar[type] = EvaluatorOwners

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        momentum: MomentumSettings = MomentumSettings()
        mean_reversion: MeanReversionSettings = MeanReversionSettings()
        entry_timeout_bars: int = Field(20, ge=1)  # a pending entry lapses after this
        executor: Annotated[str, Peer(accepts=(Signal,))] = "executor"
        positions: Annotated[str, Peer(publishes=PortfolioSnapshot)] = "positions"

    def __init__(self, settings: EvaluatorActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or EvaluatorActor.Settings()
        # per symbol, its strategy instances (name, instance), in the configured order
        self.strategies: dict[str, tuple[tuple[str, Strategy], ...]] = {}
        self._seen_seq: int | None = None  # the ledger seq the owners were last checked at
        self.owner: dict[str, _Entry] = {}  # symbol -> the strategy that opened it
        # symbol -> [its position when a sale was signalled, bars of it seen since]
        self.selling: dict[str, list[Any]] = {}
        self.signals = 0

    def on_start(self) -> None:
        earlier = self.ctx.peek(self.ctx.name)
        if isinstance(earlier, EvaluatorOwners):  # a restart: the owners are not forgotten
            self.owner = {sym: _Entry(strategy, held, waited)
                          for sym, strategy, held, waited in earlier.owners}

    def _update_owners(self, held: dict[str, Any]) -> bool:
        """A new ledger state: an entry seen held is confirmed; one seen held and now flat
        (closed, by an exit say) is forgotten, its symbol free for any strategy. True if
        an owner changed."""
        owner = self.owner
        changed = False
        for symbol, known in list(owner.items()):
            if symbol in held:
                changed = changed or not known.held
                known.held = True
            elif known.held:
                del owner[symbol]
                changed = True
        return changed

    def _make(self, name: str) -> Strategy:
        s = self.settings
        if name == "momentum":
            m = s.momentum
            return MomentumBreakout(m.lookback, m.exit_lookback, m.atr_stop)
        r = s.mean_reversion
        return MeanReversion(r.window, r.k, r.stop_k)

    def _enabled(self) -> list[str]:
        s = self.settings
        return [n for n, on in (("momentum", s.momentum.enabled),
                                ("mean_reversion", s.mean_reversion.enabled)) if on]

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, ScannedBars):
            return super().on_receive(message)
        snapshot = self.ctx.peek(self.settings.positions)
        held: dict[str, Any] = {}
        changed = False  # in the owners, which a restarted evaluator takes over
        if isinstance(snapshot, PortfolioSnapshot):
            held = snapshot.positions
            if snapshot.seq != self._seen_seq:  # positions change only with the ledger's seq
                self._seen_seq = snapshot.seq
                changed = self._update_owners(held)
                if self.selling:  # a sale that went through: its symbol is flat
                    self.selling = {s: v for s, v in self.selling.items() if s in held}
        owner = self.owner
        timeout = self.settings.entry_timeout_bars
        lanes = self.strategies
        selling = self.selling
        for bar in message.bars:
            symbol = bar.symbol
            sale = selling.get(symbol)
            if sale is not None:
                sale[1] += 1
            lane = lanes.get(symbol)
            if lane is None:
                lane = lanes[symbol] = tuple((name, self._make(name)) for name in self._enabled())
            entry = owner.get(symbol)
            is_held = symbol in held
            if entry is not None and not entry.held and not is_held:
                entry.waited += 1  # still pending: its fill is not in the snapshot yet
                changed = True
            owned = entry.strategy if is_held and entry is not None else None
            for name, strategy in lane:
                verdict = strategy.on_bar(bar, name == owned)
                if verdict is None:
                    continue
                side, reason, stop = verdict
                if side.value == "buy":
                    if symbol not in message.candidates or is_held:
                        continue
                    if entry is not None and not entry.held and entry.waited <= timeout:
                        continue  # an entry is pending: its fill may not be recorded yet
                    entry = owner[symbol] = _Entry(name)
                    changed = True
                elif sale is not None and sale[0] == held.get(symbol) and sale[1] <= timeout:
                    continue  # signalled already (see the class docstring)
                self.signals += 1
                sent = self.ctx.try_tell(self.settings.executor, Signal(
                    f"{name}:{symbol}:{int(bar.at)}:{side.value}", name, symbol, side,
                    bar.close, bar.at, reason, stop))
                if sent and side.value == "sell":
                    sale = selling[symbol] = [held.get(symbol), 0]
        if changed:
            self.ctx.publish(EvaluatorOwners(tuple(
                (sym, e.strategy, e.held, e.waited) for sym, e in owner.items())))
        return None
