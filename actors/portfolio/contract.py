"""The portfolio's contract: what the position actor (the single writer of the ledger)
accepts and answers, what it publishes (``PortfolioSnapshot``) and tells the circuit
breaker (``EquitySample``, ``TradeClosed``, ``LedgerHistory``) and the alerts actor
(``RecordedFills``), and the messages between it and its sources. ``replay_fills`` is the
ledger's accounting for a reader that replays fills (the run's report)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from actors.common.messages import Fill
from actors.portfolio.book import Position, PositionBook
from supervisor.fast_init import fast_init

__all__ = [
    "Conflict",
    "EquitySample",
    "FillRecorded",
    "FillsRecorded",
    "GetLastFillTime",
    "GetLedgerSummary",
    "GetPortfolio",
    "GetTrades",
    "GetView",
    "HasOrder",
    "LedgerEvent",
    "LedgerHistory",
    "LedgerSummary",
    "MarkPrice",
    "PortfolioSnapshot",
    "PositionView",
    "Reconcile",
    "ReconcileReport",
    "RecordFill",
    "RecordFills",
    "RecordedFills",
    "ResetTo",
    "SourceEvents",
    "SourceHello",
    "SourceView",
    "TradeClosed",
    "replay_fills",
]


@fast_init
@dataclass(frozen=True, slots=True)
class RecordFill:
    """Ask the position actor to record a fill; the reply comes after it is on disk."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class RecordFills:
    """Ask the position actor to record many fills in one transaction (one fsync).

    For bulk work such as reconciling with the venue after a crash: duplicates (by fill id)
    are acknowledged and not recorded again, fills the ledger refuses are listed, and the
    reply (a :class:`FillsRecorded`) comes only after the new ones are on disk.
    """

    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class FillsRecorded:
    """Reply to RecordFills: one FillRecorded per accepted fill, in order, and the refused."""

    recorded: tuple[FillRecorded, ...]
    rejected: tuple[tuple[str, str], ...] = ()  # (fill id, reason)

    @property
    def new(self) -> int:
        """How many fills this batch added to the ledger (not already there)."""
        return sum(1 for r in self.recorded if not r.duplicate)


@dataclass(frozen=True, slots=True)
class GetLastFillTime:
    """Ask for the venue time of the newest fill in the ledger (from ``venue``, or from any
    venue when None); the reply is None when the ledger has no such fill."""

    venue: str | None = None


@dataclass(frozen=True, slots=True)
class GetLedgerSummary:
    """Ask what the ledger holds, for a venue sync: a :class:`LedgerSummary`."""


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """The venue time of the ledger's newest fill (None: no fill), how many fills it has
    from each venue, its event ``seq`` (fills and corrections), its file, and the digest of
    each venue's fill ids (``actors.common.fill_digest``; a venue left out: not known)."""

    newest: float | None
    fills: dict[str, int]
    seq: int
    database: str
    digests: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.fills.values())


@dataclass(frozen=True, slots=True)
class GetPortfolio:
    """Ask for a PortfolioSnapshot (served from memory; never waits for the disk)."""


@dataclass(frozen=True, slots=True)
class GetTrades:
    """Ask for the last ``limit`` recorded fills, oldest first."""

    limit: int = 100


@dataclass(frozen=True, slots=True)
class HasOrder:
    """Ask whether any fill of this client order id is in the ledger."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Ask the position actor to reconcile its sources now; replies a ReconcileReport."""

    reason: str = "on demand"


@dataclass(frozen=True, slots=True)
class PositionView:
    """One symbol's position as some store sees it."""

    quantity: Decimal
    avg_price: Decimal
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """Everything the breaker and the CLI need, as of ledger event ``seq``."""

    seq: int
    cash: Decimal
    starting_cash: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    gross_exposure: Decimal
    positions: dict[str, PositionView] = field(default_factory=dict)
    exposure_by_symbol: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Gauges for the metrics endpoint (see supervisor.host.metrics)."""
        return {
            "equity": float(self.equity),
            "cash": float(self.cash),
            "open_positions": float(len(self.positions)),
            "gross_exposure": float(self.gross_exposure),
            "realized_pnl": float(self.realized_pnl),
            "unrealized_pnl": float(self.unrealized_pnl),
            "fees_paid": float(self.fees),
        }


# -- between the position actor and its sources -----------------------------------------------
@dataclass(frozen=True, slots=True)
class SourceHello:
    """A source tells the position actor it started, having applied up to ``last_seq``."""

    source: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class SourceEvents:
    """Ledger events for a source to apply, in seq order."""

    events: tuple[LedgerEvent, ...]


@dataclass(frozen=True, slots=True)
class ResetTo:
    """Replace the source's whole state with the ledger's, as of ``seq``."""

    seq: int
    cash: Decimal
    positions: dict[str, PositionView]
    reason: str
    updated_at: float = 0.0  # the time of the state's last change


@dataclass(frozen=True, slots=True)
class GetView:
    """Ask a source for its SourceView."""


@dataclass(frozen=True, slots=True)
class SourceView:
    """A source's own view of the positions (and cash, if it keeps one)."""

    source: str
    last_seq: int
    positions: dict[str, PositionView]
    cash: Decimal | None
    updated_at: float = 0.0  # time of the store's last change


# -- reconciliation's report ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Conflict:
    """One disagreement between a source and the ledger."""

    source: str
    kind: str
    symbol: str | None
    ledger_value: str | None
    source_value: str | None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconciliation found and did."""

    reason: str
    seq: int
    checked: tuple[str, ...]
    unavailable: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    actions: tuple[str, ...]
    strategy: str

    @property
    def clean(self) -> bool:
        return not self.conflicts



# -- replies and facts the position actor sends ------------------------------------------------
@fast_init
@dataclass(frozen=True, slots=True)
class FillRecorded:
    """Reply to RecordFill: the fill is on disk (``seq`` is its ledger event number)."""

    fill_id: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class RecordedFills:
    """Fills just committed to the ledger, in ledger order (the position actor tells the
    alerts actor, once per commit)."""

    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """Latest price of a symbol, for unrealised PnL, equity and exposure."""

    symbol: str
    price: Decimal
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class EquitySample:
    """The account as the position actor sees it now."""

    equity: Decimal
    gross_exposure: Decimal
    exposure_by_symbol: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TradeClosed:
    """A fill that realised profit or loss (closing or reducing a position)."""

    symbol: str
    pnl: Decimal


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    """The position actor opened its ledger: its event ``seq`` (0: no fill, no correction
    ever). A breaker that found no state of its own decides from it whether this is a new
    deployment (CLOSED) or lost state (held OPEN, alerted)."""

    seq: int
    database: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A recorded fill with its ledger sequence number, as sources receive it."""

    seq: int
    fill: Fill
    realized: Decimal = Decimal(0)  # PnL this fill realised (0 when it opened or added)


def replay_fills(
    cash: Decimal, positions: Mapping[str, PositionView], events: Iterable[LedgerEvent]
) -> Iterator[tuple[LedgerEvent, Decimal, bool]]:
    """The ledger's average-cost accounting over ``events`` from a book of ``cash`` and
    ``positions``: each event with the PnL it realised and whether it traded against the
    position held (reduced or closed it)."""
    book = PositionBook(cash, allow_short=True)
    for symbol, view in positions.items():
        book.positions[symbol] = Position(symbol, view.quantity, view.avg_price)
    for event in events:
        fill = event.fill
        held = book.positions.get(fill.symbol)
        closes = held is not None and (held.quantity > 0) != (fill.signed_quantity > 0)
        book.apply(fill, check=False)
        yield event, book.last_realized, closes
