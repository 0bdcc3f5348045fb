"""Position sources: projections of the ledger, each an actor owning its own store.

``TradeManagerSource`` (orders and trades, ``trade_manager.json``), ``PaperWalletSource``
(cash and holdings, ``paper_wallet.yaml``), ``PositionsLogSource`` (append-only JSON lines,
``positions.log``). A source applies ledger events in seq order and remembers the last it
applied; it says ``SourceHello(last_seq)`` on start and asks again on a gap. Files are
written atomically, in batches. A store that cannot be read back is moved aside
(``<name>.damaged-<UTC time>``), alerted and rebuilt from the ledger; a torn last line of
``positions.log`` is dropped. The promises: docs/trading-bot.md ("Positions").
"""

from __future__ import annotations

import json
import logging
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict

from actors.common.messages import Alert, fill_from_json, fill_to_json
from actors.common.settings_types import StatePath
from actors.common.storage import append_durably, atomic_write
from actors.portfolio.book import PositionBook
from actors.portfolio.contract import (
    GetView,
    LedgerEvent,
    PositionView,
    ResetTo,
    SourceEvents,
    SourceHello,
    SourceView,
)
from supervisor import SupervisedActor
from supervisor.peers import Peer

log = logging.getLogger(__name__)

__all__ = [
    "DamagedStore",
    "PaperWalletSource",
    "PositionsLogSource",
    "SourceActor",
    "SourceSettings",
    "TradeManagerSource",
]


class SourceSettings(BaseModel):
    """Where a source keeps its store, and which actor is the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: StatePath
    positions: Annotated[str, Peer(accepts=(SourceHello,))] = "positions"
    starting_cash: Decimal = Decimal("10000")
    quote_currency: str = "USDT"
    keep_trades: int = 500
    # where the warning about a damaged store goes
    alerts: Annotated[str, Peer(accepts=(Alert,))] = "alerts"


class DamagedStore(ValueError):
    """A source's own file exists but cannot be read back as a state of this source."""


# What reading a damaged store can raise (beside DamagedStore): bad JSON/YAML, bad numbers,
# wrong shapes (a list where a mapping belongs), bad bytes.
_DAMAGE = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, yaml.YAMLError)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DamagedStore(f"{what} is a {type(value).__name__}, not a mapping")
    return value


@dataclass
class SourceState:
    """What every source keeps: the last seq applied, positions, cash, last change time."""

    last_seq: int = 0
    book: PositionBook = field(default_factory=lambda: PositionBook(Decimal(0)))
    updated_at: float = 0.0


class SourceActor(SupervisedActor):
    """Owns one projection of the ledger and its file; subclasses choose the format."""

    accepts: ClassVar[tuple[type, ...]] = (
        SourceEvents, ResetTo, GetView)

    Settings = SourceSettings
    keeps_cash = True

    def __init__(self, settings: SourceSettings) -> None:
        super().__init__()
        self.settings = settings
        self.path = Path(settings.path)
        self.state = SourceState(book=PositionBook(settings.starting_cash, allow_short=True))
        self._dirty = False
        self.applied = 0
        self.gaps = 0
        self.damaged: str | None = None  # where a damaged store was moved aside

    # -- format, per subclass ------------------------------------------------------------------
    @abstractmethod
    def load(self) -> SourceState:
        """Read this source's own file (an empty state when there is none)."""

    @abstractmethod
    def save(self, new_events: list[LedgerEvent], reset: ResetTo | None) -> None:
        """Write the state to this source's own file, in its own format."""

    # -- lifecycle -----------------------------------------------------------------------------
    def on_start(self) -> None:
        self._pending: list[LedgerEvent] = []
        try:
            self.state = self.load()
        except _DAMAGE as exc:
            self._set_aside(exc)
        self.ctx.try_tell(self.settings.positions, SourceHello(self.ctx.name, self.state.last_seq))

    def _set_aside(self, exc: BaseException) -> None:
        """The store is damaged: keep it aside, warn naming it, start empty (the ledger
        then replays everything into a fresh store)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.ctx.clock.wall()))
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        reason = f"{type(exc).__name__}: {exc}"[:300]
        try:
            self.path.rename(aside)
            kept = f"kept as {aside}"
        except OSError as err:  # cannot move it: it is overwritten by the rebuilt state
            kept = f"could not be moved aside ({err.strerror or err}); it will be replaced"
        text = (f"{self.ctx.name}: {self.path} is damaged ({reason}); {kept}; rebuilding "
                "it from the ledger")
        log.warning("%s", text)
        self.ctx.try_tell(self.settings.alerts, Alert(
            f"source.damaged.{self.ctx.name}", "warning",
            f"{self.ctx.name}: damaged {self.path.name} rebuilt from the ledger", text))
        self.damaged = str(aside)
        self.reset_store()
        self.state = SourceState(
            book=PositionBook(self.settings.starting_cash, allow_short=True))

    def reset_store(self) -> None:
        """Forget whatever ``load`` kept besides the state (a subclass's extras)."""

    def on_stop(self) -> None:
        self._flush()

    def on_receive(self, message: Any) -> Any:
        match message:
            case SourceEvents(events):
                self._apply(events)
                if self.ctx.pending() == 0:
                    self._flush()
                return None
            case ResetTo():
                self._reset(message)
                return None
            case GetView():
                self._flush()
                return self.view()
        return super().on_receive(message)

    def _apply(self, events: tuple[LedgerEvent, ...]) -> None:
        state = self.state
        for event in events:
            if event.seq <= state.last_seq:
                continue  # already applied: replay is idempotent
            if event.seq != state.last_seq + 1:
                self.gaps += 1
                log.warning("%s: gap after seq %d (got %d); asking for a replay",
                            self.ctx.name, state.last_seq, event.seq)
                self.ctx.try_tell(self.settings.positions,
                                  SourceHello(self.ctx.name, state.last_seq))
                return
            state.book.apply(event.fill, check=False)
            state.last_seq = event.seq
            state.updated_at = max(state.updated_at, event.fill.at)
            self._pending.append(event)
            self._dirty = True
            self.applied += 1

    def _reset(self, reset: ResetTo) -> None:
        self._flush()
        book = PositionBook(reset.cash, allow_short=True)
        for symbol, pos in reset.positions.items():
            book.set_position(symbol, pos.quantity, pos.avg_price, pos.updated_at)
        self.state = SourceState(reset.seq, book, max(
            [reset.updated_at, *(p.updated_at for p in reset.positions.values())]))
        self.save([], reset)
        log.info("%s reset to the ledger at seq %d (%s)", self.ctx.name, reset.seq, reset.reason)

    def _flush(self) -> None:
        if self._dirty:
            events, self._pending = self._pending, []
            self.save(events, None)
            self._dirty = False

    def view(self) -> SourceView:
        book = self.state.book
        return SourceView(
            source=self.ctx.name,
            last_seq=self.state.last_seq,
            positions={
                s: PositionView(p.quantity, p.avg_price, p.updated_at)
                for s, p in book.positions.items()
            },
            cash=book.cash if self.keeps_cash else None,
            updated_at=self.state.updated_at,
        )

    # -- helpers for subclasses ----------------------------------------------------------------
    def _positions_json(self) -> dict[str, dict[str, Any]]:
        return {
            s: {"quantity": str(p.quantity), "avg_price": str(p.avg_price),
                "updated_at": p.updated_at}
            for s, p in sorted(self.state.book.positions.items())
        }

    def _state_from(self, data: dict[str, Any], cash: Decimal) -> SourceState:
        book = PositionBook(cash, allow_short=True)
        positions = data.get("positions")
        for symbol, raw in _mapping(positions if positions is not None else {},
                                    "positions").items():
            pos = _mapping(raw, f"position {symbol!r}")
            quantity = Decimal(str(pos["quantity"]))
            avg_price = Decimal(str(pos["avg_price"]))
            if not (quantity.is_finite() and avg_price.is_finite()):
                raise DamagedStore(f"position {symbol!r} is not a finite number")
            book.set_position(str(symbol), quantity, avg_price,
                              float(pos.get("updated_at", 0)))
        last_seq = data["last_seq"]
        if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
            raise DamagedStore(f"last_seq is {last_seq!r}, not a sequence number")
        return SourceState(last_seq, book, float(data.get("updated_at", 0)))

    def _read_whole(self) -> str | None:
        """The store's text (None when there is none); an empty one is damage: our own
        writes replace the file atomically and never leave it empty."""
        if not self.path.exists():
            return None
        text = self.path.read_bytes().decode("utf-8")
        if not text.strip():
            raise DamagedStore("the file is empty")
        return text


class TradeManagerSource(SourceActor):
    """Owns ``trade_manager.json``: open positions, recent trades and orders by client id."""

    keeps_cash = False
    _trades: list[dict[str, Any]]
    _orders: dict[str, dict[str, Any]]

    def load(self) -> SourceState:
        self.reset_store()
        text = self._read_whole()
        if text is None:
            return SourceState(book=PositionBook(self.settings.starting_cash, allow_short=True))
        data = _mapping(json.loads(text), "the file")
        trades = data.get("trades", [])
        if not isinstance(trades, list):
            raise DamagedStore(f"trades is a {type(trades).__name__}, not a list")
        orders = _mapping(data.get("orders", {}), "orders")
        state = self._state_from(data, self.settings.starting_cash)
        self._trades = list(trades)
        self._orders = dict(orders)
        return state

    def reset_store(self) -> None:
        self._trades = []
        self._orders = {}

    def save(self, new_events: list[LedgerEvent], reset: ResetTo | None) -> None:
        for event in new_events:
            fill = event.fill
            self._trades.append({"seq": event.seq, **fill_to_json(fill)})
            order = self._orders.setdefault(
                fill.client_order_id,
                {"symbol": fill.symbol, "side": fill.side.value, "filled": "0", "fills": 0},
            )
            order["filled"] = str(Decimal(order["filled"]) + fill.quantity)
            order["fills"] += 1
        keep = self.settings.keep_trades
        self._trades = self._trades[-keep:]
        if len(self._orders) > keep:
            self._orders = dict(list(self._orders.items())[-keep:])
        data = {
            "last_seq": self.state.last_seq,
            "updated_at": self.state.updated_at,
            "positions": self._positions_json(),
            "orders": self._orders,
            "trades": self._trades,
        }
        atomic_write(self.path, json.dumps(data, indent=1).encode(), self.ctx.chaos)


class PaperWalletSource(SourceActor):
    """Owns ``paper_wallet.yaml``: the cash balance and the holdings."""

    def load(self) -> SourceState:
        text = self._read_whole()
        if text is None:
            return SourceState(book=PositionBook(self.settings.starting_cash, allow_short=True))
        if not text.endswith("\n"):  # yaml.safe_dump ends every file with one
            raise DamagedStore("the file is truncated (no final newline)")
        data = _mapping(yaml.safe_load(text), "the file")
        missing = [k for k in ("balance", "holdings", "last_seq") if k not in data]
        if missing:
            raise DamagedStore(f"missing {', '.join(missing)}")
        balance = _mapping(data["balance"], "balance").get(self.settings.quote_currency)
        cash = Decimal(str(balance)) if balance is not None else self.settings.starting_cash
        if not cash.is_finite():
            raise DamagedStore(f"balance {balance!r} is not a finite number")
        return self._state_from({**data, "positions": data["holdings"]}, cash)

    def save(self, new_events: list[LedgerEvent], reset: ResetTo | None) -> None:
        data = {
            "last_seq": self.state.last_seq,
            "updated_at": self.state.updated_at,
            "balance": {self.settings.quote_currency: str(self.state.book.cash)},
            "holdings": self._positions_json(),
        }
        atomic_write(self.path, yaml.safe_dump(data, sort_keys=True).encode(), self.ctx.chaos)


class PositionsLogSource(SourceActor):
    """Owns ``positions.log``: append-only, one JSON object per line (fill or reset)."""

    def load(self) -> SourceState:
        state = SourceState(book=PositionBook(self.settings.starting_cash, allow_short=True))
        if not self.path.exists():
            return state
        raw = self.path.read_bytes()
        good = raw if raw.endswith(b"\n") else raw[: raw.rfind(b"\n") + 1]
        if len(good) != len(raw):
            log.warning("%s: dropping a torn last line (%d bytes)", self.path,
                        len(raw) - len(good))
            with open(self.path, "r+b") as handle:
                handle.truncate(len(good))
        for number, line in enumerate(good.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = _mapping(json.loads(line), "the entry")
                if entry["type"] == "reset":
                    state = self._state_from(entry, Decimal(entry["cash"]))
                elif entry["type"] != "fill":
                    raise DamagedStore(f"unknown entry type {entry['type']!r}")
                elif int(entry["seq"]) == state.last_seq + 1:
                    fill = fill_from_json(entry["fill"])
                    state.book.apply(fill, check=False)
                    state.last_seq = int(entry["seq"])
                    state.updated_at = max(state.updated_at, fill.at)
            except _DAMAGE as exc:
                raise DamagedStore(f"line {number}: {type(exc).__name__}: {exc}") from exc
        return state

    def save(self, new_events: list[LedgerEvent], reset: ResetTo | None) -> None:
        lines = []
        if reset is not None:
            lines.append({"type": "reset", "seq": reset.seq, "last_seq": reset.seq,
                          "reason": reset.reason, "cash": str(self.state.book.cash),
                          "updated_at": self.state.updated_at,
                          "positions": self._positions_json()})
        for event in new_events:
            lines.append({"type": "fill", "seq": event.seq, "fill": fill_to_json(event.fill)})
        if lines:
            payload = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
            append_durably(self.path, payload.encode(), self.ctx.chaos)
