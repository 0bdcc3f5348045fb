"""The record of one ``botvisor run``: the time series and summary the observer collects.

Plain data and pure functions (no actors, no I/O), shared by :mod:`actors.run.observer`
(which collects and prints) and :mod:`actors.run.report` (which draws the HTML page).
Times are wall-clock seconds since the epoch; money is exact (Decimal).
"""

from __future__ import annotations

import bisect
from collections import Counter
from decimal import Decimal

from actors.alerts.contract import AlertStats
from actors.portfolio.contract import LedgerEvent, PortfolioSnapshot, replay_fills
from actors.run.contract import (
    BreakerMark,
    EquityPoint,
    OpenPosition,
    RunSummary,
    SupervisionMark,
    TradeMark,
)
from supervisor.events import EventKind

__all__ = [
    "alert_counts",
    "build_summary",
    "open_positions",
    "replay_trades",
]

ZERO = Decimal(0)


# -- pure helpers -----------------------------------------------------------------------------
def replay_trades(
    start: PortfolioSnapshot | None,
    events: list[LedgerEvent],
    seq_times: list[tuple[int, float]],
    end_time: float,
) -> list[TradeMark]:
    """The run's fills with the PnL each realised and the time it was first seen.

    Replays ``events`` (fills after ``start.seq``) from the positions and cash of ``start``
    with the ledger's own average-cost accounting (``replay_fills``).
    ``seq_times`` are (ledger seq, wall time first seen), ascending.
    """
    cash = start.cash if start is not None else ZERO
    positions = start.positions if start is not None else {}
    seqs = [s for s, _ in seq_times]
    marks: list[TradeMark] = []
    for event, realized, closes in replay_fills(cash, positions, events):
        fill = event.fill
        i = bisect.bisect_left(seqs, event.seq)
        at = seq_times[i][1] if i < len(seq_times) else end_time
        marks.append(TradeMark(at, event.seq, fill.fill_id, fill.symbol, fill.side.value,
                               fill.quantity, fill.price, fill.fee, realized, closes))
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




