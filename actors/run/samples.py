"""What the run's observer has collected: its samples, and the rules for keeping them.

Owns :class:`Samples`: the first, latest and last portfolio snapshots, the equity curve
(at most ``max_points`` points: past that its resolution is halved, both ends kept) with
the running peak and the deepest drawdown, the ledger seq seen at each wall-clock time, the
breaker's gate and the transitions seen, the alerts' and the executor's counters (a
restarted instance counts afresh: the previous one's are banked and summed), the run's
trades and notes. Plain data and the arithmetic on it; the observer does the reading.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from actors.alerts.contract import AlertStats
from actors.execution.contract import ExecutorStats
from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerGate
from actors.run.contract import BreakerMark, EquityPoint, TradeMark
from actors.run.record import alert_counts

__all__ = ["Samples"]


@dataclass
class Samples:
    """What the observer has collected so far (on its main thread)."""

    start: PortfolioSnapshot | None = None
    last: PortfolioSnapshot | None = None
    end: PortfolioSnapshot | None = None
    equity: list[EquityPoint] = field(default_factory=list)
    seq_times: list[tuple[int, float]] = field(default_factory=list)
    peak: float = 0.0
    max_dd_pct: float = 0.0
    max_dd: float = 0.0
    last_point_at: float = float("-inf")
    breaker: list[BreakerMark] = field(default_factory=list)
    gate: BreakerGate | None = None
    breaker_start: str = "unknown"
    breaker_transitions_at_start: int | None = None
    breaker_transitions_at_end: int | None = None
    alerts: AlertStats | None = None
    alerts_banked: Counter[str] = field(default_factory=Counter)
    executor: ExecutorStats | None = None
    refused_banked: Counter[str] = field(default_factory=Counter)
    executor_incarnation: int = 0
    trades: list[TradeMark] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def take_portfolio(self, snap: PortfolioSnapshot, *, wall: float, now: float,
                       force: bool, sample_every: float, max_points: int) -> bool:
        """Keep ``snap`` (a point of the curve when ``sample_every`` has passed, or
        ``force``); True when the curve's resolution was halved (sample half as often)."""
        if self.start is None:
            self.start = snap
        self.last = snap
        self.take_seq(snap.seq, wall)
        equity = float(snap.equity)
        self.peak = max(self.peak, equity)
        dd = self.peak - equity
        dd_pct = dd / self.peak * 100 if self.peak > 0 else 0.0
        if dd_pct > self.max_dd_pct:
            self.max_dd_pct, self.max_dd = dd_pct, dd
        if force or now - self.last_point_at >= sample_every * 0.9:
            self.last_point_at = now
            self.equity.append(EquityPoint(wall, equity, dd_pct))
            if len(self.equity) > max_points:  # halve the resolution, keep the ends
                self.equity = [*self.equity[:-1:2], self.equity[-1]]
                return True
        return False

    def take_seq(self, seq: int, wall: float) -> None:
        """Date ledger seq ``seq`` at ``wall``, if it is newer than the last one dated."""
        if not self.seq_times or seq > self.seq_times[-1][0]:
            self.seq_times.append((seq, wall))

    def take_gate(self, gate: BreakerGate, wall: float) -> None:
        """Keep the breaker's gate; a change of state (or of its since) is a transition."""
        old = self.gate
        if old is None:
            self.breaker_start = gate.state.value
        elif gate.since != old.since or gate.state is not old.state:
            self.breaker.append(BreakerMark(gate.since or wall, old.state.value,
                                            gate.state.value, gate.reason))
        self.gate = gate

    def take_alerts(self, stats: AlertStats) -> None:
        """Keep the alerts' counters; bank the previous instance's when they went back."""
        prev = self.alerts
        if prev is not None and (stats.received < prev.received or stats.sent < prev.sent):
            self.alerts_banked.update(alert_counts(prev))  # a new instance counts afresh
        self.alerts = stats

    def take_executor(self, stats: ExecutorStats, incarnation: int) -> None:
        """Keep the executor's latest counters; bank the previous instance's on a restart."""
        prev = self.executor
        if prev is not None and (incarnation != self.executor_incarnation
                                 or stats.orders < prev.orders
                                 or sum(stats.refused.values()) < sum(prev.refused.values())):
            self.refused_banked.update(prev.refused)  # a new instance counts afresh
        self.executor, self.executor_incarnation = stats, incarnation

    def refused(self) -> Counter[str]:
        """The orders the executor refused this run, by reason, across its instances."""
        refused = Counter(self.refused_banked)
        if self.executor is not None:
            refused.update(self.executor.refused)
        return refused

    def alerts_raised(self) -> Counter[str]:
        """The alerts' counters this run, across the alerts actor's instances."""
        raised = Counter(self.alerts_banked)
        if self.alerts is not None:
            raised.update(alert_counts(self.alerts))
        return raised
