"""The record of one ``botvisor run``: the time series and summary the observer collects.

Plain data and pure functions (no actors, no I/O), shared by :mod:`actors.run.observer`
(which collects and prints) and :mod:`actors.run.report` (which draws the HTML page).
Times are wall-clock seconds since the epoch; money is exact (Decimal).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from actors.alerts.alerts import AlertStats
from actors.portfolio.book import Position, PositionBook
from actors.portfolio.contract import PortfolioSnapshot
from actors.portfolio.ledger import LedgerEvent
from supervisor.events import EventKind

__all__ = [
    "BreakerMark",
    "EquityPoint",
    "OpenPosition",
    "RunRecord",
    "RunSummary",
    "SupervisionMark",
    "TradeMark",
    "alert_counts",
    "build_summary",
    "format_duration",
    "format_money",
    "open_positions",
    "replay_trades",
]

ZERO = Decimal(0)
TRIP_STATES = ("open", "halted")


# -- what a run leaves behind ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity at wall-clock time ``at`` and how far below its running peak it was."""

    at: float
    equity: float
    drawdown_pct: float


@dataclass(frozen=True, slots=True)
class TradeMark:
    """One fill of the run, dated on the wall-clock axis, with the PnL it realised."""

    at: float
    seq: int
    fill_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized: Decimal  # 0 for a fill that opened or added to a position
    closes: bool  # it reduced or closed a position


@dataclass(frozen=True, slots=True)
class BreakerMark:
    """A breaker transition seen during the run."""

    at: float
    previous: str
    state: str
    reason: str

    @property
    def trip(self) -> bool:
        """A trip: the breaker went OPEN or HALTED (stopped new exposure)."""
        return self.state in TRIP_STATES and self.previous != self.state


@dataclass(frozen=True, slots=True)
class SupervisionMark:
    """A restart, escalation or fallback in the tree, with the failure that caused it."""

    at: float
    kind: str
    actor: str
    detail: str


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position held at the end of the run."""

    symbol: str
    quantity: Decimal
    entry: Decimal
    mark: Decimal
    unrealized: Decimal


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The run in numbers. Money is exact (Decimal); PnL of this run only."""

    started_at: float
    ended_at: float
    stop_reason: str
    exit_code: int | None
    fills: int
    buys: int
    sells: int
    closed_trades: int
    wins: int
    losses: int
    start_equity: Decimal
    end_equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    total_pnl: Decimal
    return_pct: float
    max_drawdown_pct: float
    max_drawdown: float
    breaker_start: str
    breaker_end: str
    breaker_trips: int
    breaker_reasons: tuple[str, ...]
    restarts: tuple[tuple[str, int], ...]
    alerts_received: int
    alerts_sent: int
    alerts_logged_only: int
    alerts_fallback: int
    alerts_suppressed: int
    alerts_failed: int
    alerts_folded: int
    refused: tuple[tuple[str, int], ...]
    open_positions: int
    notes: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def refused_total(self) -> int:
        return sum(n for _, n in self.refused)

    @property
    def restarts_total(self) -> int:
        return sum(n for _, n in self.restarts)

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (label, value) rows: the same in the terminal and the report."""
        reasons = "; ".join(self.breaker_reasons) if self.breaker_reasons else "none"
        restarts = ", ".join(f"{a} {n}" for a, n in self.restarts) or "none"
        refused = ", ".join(f"{s} {n}" for s, n in self.refused)
        return [
            ("duration", format_duration(self.duration)),
            ("stopped because", self.stop_reason),
            ("fills", f"{self.fills} ({self.buys} buys, {self.sells} sells)"),
            ("closed trades", f"{self.closed_trades} ({self.wins} wins, {self.losses} losses)"),
            ("realised PnL", format_money(self.realized_pnl, sign=True)),
            ("unrealised PnL", format_money(self.unrealized_pnl, sign=True)),
            ("fees", format_money(self.fees)),
            ("total PnL", f"{format_money(self.total_pnl, sign=True)} (equity change, after fees)"),
            ("equity", f"{format_money(self.start_equity)} -> {format_money(self.end_equity)}"),
            ("return", f"{self.return_pct:+.2f}%"),
            ("max drawdown", f"{self.max_drawdown_pct:.2f}% ({self.max_drawdown:,.2f})"),
            ("open positions", str(self.open_positions)),
            ("breaker", f"{self.breaker_start} -> {self.breaker_end}"),
            ("breaker trips", f"{self.breaker_trips} ({reasons})"),
            ("orders refused by breaker",
             f"{self.refused_total}" + (f" ({refused})" if refused else "")),
            ("restarts", f"{self.restarts_total} ({restarts})"),
            ("alerts", f"{self.alerts_received} raised: {self.alerts_sent} sent, "
                       f"{self.alerts_failed} failed, {self.alerts_fallback} to the fallback "
                       f"file, {self.alerts_logged_only} logged only, "
                       f"{self.alerts_suppressed} suppressed, {self.alerts_folded} folded"),
        ]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything the report draws: the summary and the time series behind it."""

    title: str
    summary: RunSummary
    equity: tuple[EquityPoint, ...]
    trades: tuple[TradeMark, ...]
    breaker: tuple[BreakerMark, ...]
    supervision: tuple[SupervisionMark, ...]
    positions: tuple[OpenPosition, ...] = ()


# -- pure helpers -----------------------------------------------------------------------------
def replay_trades(
    start: PortfolioSnapshot | None,
    events: list[LedgerEvent],
    seq_times: list[tuple[int, float]],
    end_time: float,
) -> list[TradeMark]:
    """The run's fills with the PnL each realised and the time it was first seen.

    Replays ``events`` (fills after ``start.seq``) through a PositionBook seeded with the
    positions and cash of ``start``, the same average-cost accounting the ledger uses.
    ``seq_times`` are (ledger seq, wall time first seen), ascending.
    """
    cash = start.cash if start is not None else ZERO
    book = PositionBook(cash, allow_short=True)
    if start is not None:
        for symbol, view in start.positions.items():
            book.positions[symbol] = Position(symbol, view.quantity, view.avg_price)
    seqs = [s for s, _ in seq_times]
    marks: list[TradeMark] = []
    for event in events:
        fill = event.fill
        held = book.positions.get(fill.symbol)
        closes = held is not None and (held.quantity > 0) != (fill.signed_quantity > 0)
        book.apply(fill, check=False)
        i = bisect.bisect_left(seqs, event.seq)
        at = seq_times[i][1] if i < len(seq_times) else end_time
        marks.append(TradeMark(at, event.seq, fill.fill_id, fill.symbol, fill.side.value,
                               fill.quantity, fill.price, fill.fee, book.last_realized, closes))
    return marks


def build_summary(
    *,
    started_at: float,
    ended_at: float,
    stop_reason: str,
    exit_code: int | None,
    start: PortfolioSnapshot | None,
    end: PortfolioSnapshot | None,
    trades: list[TradeMark],
    equity: list[EquityPoint],
    max_drawdown: tuple[float, float],
    breaker: list[BreakerMark],
    breaker_start: str,
    breaker_end: str,
    supervision: list[SupervisionMark],
    alerts: AlertStats | None,
    alerts_banked: Counter[str],
    refused: Counter[str],
    notes: list[str],
) -> RunSummary:
    """Fold what the observer collected into a :class:`RunSummary`."""
    start_equity = start.equity if start is not None else (end.starting_cash if end else ZERO)
    end_equity = end.equity if end is not None else start_equity
    realized = (end.realized_pnl if end else ZERO) - (start.realized_pnl if start else ZERO)
    fees = (end.fees if end else ZERO) - (start.fees if start else ZERO)
    total = end_equity - start_equity
    ret = float(total / start_equity * 100) if start_equity > 0 else 0.0
    closed = [t for t in trades if t.closes]
    restarts = Counter(m.actor for m in supervision if m.kind == EventKind.RESTARTED.value)
    counts = Counter(alerts_banked)
    if alerts is not None:
        counts.update(alert_counts(alerts))
    trips = [b for b in breaker if b.trip]
    return RunSummary(
        started_at=started_at, ended_at=ended_at, stop_reason=stop_reason,
        exit_code=exit_code, fills=len(trades),
        buys=sum(1 for t in trades if t.side == "buy"),
        sells=sum(1 for t in trades if t.side == "sell"),
        closed_trades=len(closed), wins=sum(1 for t in closed if t.realized > 0),
        losses=sum(1 for t in closed if t.realized < 0),
        start_equity=start_equity, end_equity=end_equity, realized_pnl=realized,
        unrealized_pnl=end.unrealized_pnl if end is not None else ZERO, fees=fees,
        total_pnl=total, return_pct=ret, max_drawdown_pct=max_drawdown[0],
        max_drawdown=max_drawdown[1], breaker_start=breaker_start, breaker_end=breaker_end,
        breaker_trips=len(trips), breaker_reasons=tuple(t.reason for t in trips),
        restarts=tuple(sorted(restarts.items())), alerts_sent=counts["sent"],
        alerts_received=counts["received"], alerts_logged_only=counts["logged_only"],
        alerts_fallback=counts["fallback_written"],
        alerts_suppressed=counts["suppressed"], alerts_failed=counts["failed"],
        alerts_folded=counts["folded"], refused=tuple(sorted(refused.items())),
        open_positions=len(end.positions) if end is not None else 0, notes=tuple(notes),
    )


def alert_counts(stats: AlertStats) -> dict[str, int]:
    """The alert counters the summary shows, by name."""
    return {"received": stats.received, "sent": stats.sent, "failed": stats.failed,
            "fallback_written": stats.fallback_written, "logged_only": stats.logged_only,
            "suppressed": stats.suppressed, "folded": stats.folded}


def open_positions(snap: PortfolioSnapshot | None) -> list[OpenPosition]:
    """The positions of ``snap`` with their mark and unrealised PnL."""
    if snap is None:
        return []
    out = []
    for symbol, view in sorted(snap.positions.items()):
        mark = snap.marks.get(symbol, view.avg_price)
        out.append(OpenPosition(symbol, view.quantity, view.avg_price, mark,
                                (mark - view.avg_price) * view.quantity))
    return out


def format_money(value: Decimal | float, *, sign: bool = False) -> str:
    return f"{float(value):+,.2f}" if sign else f"{float(value):,.2f}"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"
