"""The run view's contract: what a run leaves behind (its record and summary), as the
observer, the report and the session read it. The run view accepts no message; it reads
the other contexts' published snapshots and replies."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "BreakerMark",
    "EquityPoint",
    "OpenPosition",
    "RunRecord",
    "RunSummary",
    "SupervisionMark",
    "TradeMark",
    "format_duration",
    "format_money",
]

TRIP_STATES = ("open", "halted")


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


def format_money(value: Decimal | float, *, sign: bool = False) -> str:
    return f"{float(value):+,.2f}" if sign else f"{float(value):,.2f}"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"
