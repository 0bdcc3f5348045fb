"""What a user sees during and after ``botvisor run``: live view, summary, HTML report.

:class:`TradingObserver` is a :class:`~supervisor.host.session.SessionService` named in the
config (``runtime.observer``), so the runtime never imports it. It only reads the tree:
the snapshots the positions, breaker and alerts publish, the supervision events, and the
executor's counters asked without blocking. It draws a ``rich`` live view on a terminal (a
status line otherwise); at the end it prints a summary and, with ``--report``, writes the
page of :mod:`actors.run.report` from a :class:`~actors.run.contract.RunRecord`. Per-instance
counters are summed across restarts (docs/operations.md).
"""

from __future__ import annotations

import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pykka
from rich.console import Console, RenderableType
from rich.live import Live

from actors.alerts.contract import AlertStats
from actors.execution.contract import ExecutorStats, GetExecutorStats
from actors.portfolio.contract import GetPortfolio, GetTrades, LedgerEvent, PortfolioSnapshot
from actors.risk.contract import BreakerGate, BreakerStatus, GetBreakerStatus
from actors.run.contract import RunRecord, RunSummary, SupervisionMark
from actors.run.live_view import render_live, status_line
from actors.run.record import build_summary, open_positions, replay_trades
from actors.run.report import write_report
from actors.run.samples import Samples
from actors.run.summary_view import summary_table, summary_text
from actors.run.supervision_log import SupervisionLog
from supervisor.events import EventKind, Subscription
from supervisor.host.session import RunSession, SessionService
from supervisor.lifecycle import ChildState
from supervisor.runtime import Runtime

log = logging.getLogger("botvisor.observer")

__all__ = ["TradingObserver"]

ZERO = Decimal(0)
END_SECONDS = 5.0  # what the end of a run may spend asking the tree for its last figures
BETWEEN_SECONDS = 1.0  # of which, for one question to an actor between two instances


# -- the service ------------------------------------------------------------------------------
class TradingObserver(SessionService):
    """Owns the live view, the end-of-run summary and the report of one ``botvisor run``.

    ``report``: where to write the HTML page (None: no page). ``live``: force the rich live
    view on or off (default: when ``out`` is a terminal). ``console`` and ``out`` are where
    the live view / summary and the plain lines go (default: stdout).
    """

    name = "observer"

    def __init__(
        self,
        report: str | Path | None = None,
        *,
        live: bool | None = None,
        console: Console | None = None,
        out: TextIO | None = None,
        status_every: float = 10.0,
        refresh_every: float = 0.5,
        sample_every: float = 0.2,
        max_points: int = 4000,
        max_trades: int = 10_000,
        poll_every: float = 0.5,
        positions: str = "positions",
        breaker: str = "breaker",
        alerts: str = "alerts",
        executor: str = "executor",
    ) -> None:
        self.report = Path(report) if report is not None else None
        self.out: TextIO = out if out is not None else sys.stdout
        self.console = console or Console(file=self.out)
        self.live_enabled = live if live is not None else (
            self.console.is_terminal and not self.console.is_dumb_terminal)
        self.status_every = status_every
        self.refresh_every = refresh_every
        self.sample_every = sample_every
        self.max_points = max_points
        self.max_trades = max_trades
        self.poll_every = poll_every
        self.names = {"positions": positions, "breaker": breaker, "alerts": alerts,
                      "executor": executor}
        self.samples = Samples()
        self.record: RunRecord | None = None
        self._session: RunSession | None = None
        self._supervision = SupervisionLog()
        self._sub: Subscription | None = None
        self._live: Live | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._started_at = 0.0
        self._last_status = float("-inf")
        self._last_refresh = float("-inf")
        self._last_poll = float("-inf")
        self._poll: pykka.Future[Any] | None = None
        self._stop_reason = "the tree ended"

    # -- hooks ----------------------------------------------------------------------------------
    def start(self, session: RunSession) -> None:
        self._session = session
        runtime = session.runtime
        self._started_at = runtime.clock.wall()
        self._sub = runtime.events.subscribe(self._supervision.on_event)
        s = self.samples
        snap = self._peek(self.names["positions"])
        if isinstance(snap, PortfolioSnapshot):
            s.start = snap
        gate = self._peek(self.names["breaker"])
        if isinstance(gate, BreakerGate):
            s.gate = gate
            s.breaker_start = gate.state.value
        status = self._ask(self.names["breaker"], GetBreakerStatus(), 2.0)
        if isinstance(status, BreakerStatus):
            s.breaker_transitions_at_start = status.transitions
        self._sample(runtime.clock.now())
        if self.live_enabled:
            self._start_live()

    def tick(self, now: float) -> None:
        self._sample(now)
        self._poll_executor(now)
        if self._live is not None:
            if now - self._last_refresh >= self.refresh_every:
                self._last_refresh = now
                self._live.update(self.render_live(), refresh=True)
        elif now - self._last_status >= self.status_every:
            self._last_status = now
            self._print(self.status_line())

    def stopping(self, reason: str) -> None:
        self._stop_reason = reason
        runtime = self._runtime()
        self._sample(runtime.clock.now(), force=True)
        self._stop_live()
        self._collect_end()

    def stopped(self, exit_code: int) -> None:
        record = self.build_record(exit_code)
        self.print_summary(record.summary)
        if self.report is not None:
            write_report(record, self.report)
            self._print(f"report written to {self.report}")

    def stop(self) -> None:
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None
        self._stop_live()

    # -- collecting -----------------------------------------------------------------------------
    def _runtime(self) -> Runtime:
        assert self._session is not None, "the observer has not been started"
        return self._session.runtime

    def _peek(self, name: str) -> Any:
        runtime = self._runtime()
        return runtime.peek(name) if runtime.has(name) else None

    def _ask(self, name: str, message: Any, timeout: float) -> Any:
        runtime = self._runtime()
        if not runtime.has(name):
            return None
        try:
            return runtime.ask(name, message, timeout=timeout)
        except Exception as exc:  # the tree may be ending; the observer makes do
            log.debug("observer: %s did not answer %s: %s", name, type(message).__name__, exc)
            return None

    def supervision(self) -> list[SupervisionMark]:
        """The restarts, escalations and fallbacks seen so far."""
        return self._supervision.marks()

    def _sample(self, now: float, *, force: bool = False) -> None:
        runtime = self._runtime()
        wall = runtime.clock.wall()
        s = self.samples
        snap = self._peek(self.names["positions"])
        if isinstance(snap, PortfolioSnapshot) and s.take_portfolio(
                snap, wall=wall, now=now, force=force, sample_every=self.sample_every,
                max_points=self.max_points):
            self.sample_every *= 2
        gate = self._peek(self.names["breaker"])
        if isinstance(gate, BreakerGate):
            s.take_gate(gate, wall)
        stats = self._peek(self.names["alerts"])
        if isinstance(stats, AlertStats):
            s.take_alerts(stats)

    def _poll_executor(self, now: float) -> None:
        """Ask the executor for its counters without blocking: send, then read a tick later."""
        if self._poll is not None:
            try:
                reply = self._poll.get(timeout=0)
            except pykka.Timeout:
                return
            except Exception:
                reply = None
            self._poll = None
            if isinstance(reply, ExecutorStats):
                self._take_executor(reply)
        name = self.names["executor"]
        runtime = self._runtime()
        if now - self._last_poll < self.poll_every or not runtime.has(name):
            return
        self._last_poll = now
        try:
            self._poll = runtime.ask_future(name, GetExecutorStats())
        except Exception:
            self._poll = None

    def _take_executor(self, stats: ExecutorStats) -> None:
        """Keep the executor's latest counters; bank the previous instance's on a restart."""
        s = self.samples
        cell = self._runtime().cell_or_none(self.names["executor"])
        incarnation = cell.incarnation if cell is not None else s.executor_incarnation
        s.take_executor(stats, incarnation)

    def _ask_at_end(self, name: str, message: Any, deadline: float) -> Any:
        """:meth:`_ask` within what is left of the end's one ``deadline`` (monotonic). An
        actor between two instances (crashed, restarting, starting) is given at most
        :data:`BETWEEN_SECONDS`: a brief restart still answers, one that keeps failing
        (a read-only disk, say) does not hold the stop back for the whole timeout. One
        that has ended is not asked. What is not answered is noted in the record."""
        runtime = self._runtime()
        cell = runtime.cell_or_none(name)
        left = deadline - runtime.clock.now()
        what = type(message).__name__
        if cell is None or left <= 0 or cell.state in (ChildState.STOPPED,
                                                       ChildState.TERMINATED):
            why = "time was up" if cell is not None and left <= 0 else (
                "it is not in the tree" if cell is None else f"it was {cell.state.value}")
            self.samples.notes.append(f"at the end {name} was not asked for {what}: {why}")
            return None
        running = cell.state is ChildState.RUNNING
        reply = self._ask(name, message, left if running else min(left, BETWEEN_SECONDS))
        if reply is None and not running:
            self.samples.notes.append(f"at the end {name} did not answer {what}: it was "
                                      f"{cell.state.value}")
        return reply

    def _collect_end(self) -> None:
        s = self.samples
        deadline = self._runtime().clock.now() + min(END_SECONDS, self._runtime().ask_timeout)
        snap = self._ask_at_end(self.names["positions"], GetPortfolio(), deadline)
        s.end = snap if isinstance(snap, PortfolioSnapshot) else s.last
        if s.end is not None:
            s.take_seq(s.end.seq, self._runtime().clock.wall())
        start_seq = s.start.seq if s.start is not None else 0
        events: list[LedgerEvent] = []
        if s.end is not None and s.end.seq > start_seq:
            limit = s.end.seq - start_seq  # seq counts fills and adjustments: enough
            if limit > self.max_trades:
                s.notes.append(f"the report marks only the last {self.max_trades} fills")
                limit = self.max_trades
            reply = self._ask_at_end(self.names["positions"], GetTrades(limit), deadline)
            if isinstance(reply, list):
                events = [e for e in reply if isinstance(e, LedgerEvent) and e.seq > start_seq]
            else:
                s.notes.append("the position actor did not list the run's fills")
        s.trades = replay_trades(s.start, events, s.seq_times, self._runtime().clock.wall())
        if s.end is not None and s.start is not None and len(s.trades) == s.end.seq - s.start.seq:
            replayed = sum((t.realized for t in s.trades), ZERO)
            if replayed != s.end.realized_pnl - s.start.realized_pnl:
                s.notes.append("realised PnL per fill was recomputed from the fills and "
                               "differs from the ledger's total (adjustments?)")
        stats = self._ask_at_end(self.names["executor"], GetExecutorStats(), deadline)
        if isinstance(stats, ExecutorStats):
            self._take_executor(stats)
        status = self._ask_at_end(self.names["breaker"], GetBreakerStatus(), deadline)
        if isinstance(status, BreakerStatus):
            s.breaker_transitions_at_end = status.transitions
            self._sample(self._runtime().clock.now(), force=True)

    # -- results --------------------------------------------------------------------------------
    def build_record(self, exit_code: int | None = None) -> RunRecord:
        """Fold the samples into the run's :class:`RunRecord` (kept in ``self.record``)."""
        s = self.samples
        runtime = self._runtime()
        ended = runtime.clock.wall()
        notes = list(s.notes)
        if (s.breaker_transitions_at_start is not None
                and s.breaker_transitions_at_end is not None):
            made = s.breaker_transitions_at_end - s.breaker_transitions_at_start
            if made > len(s.breaker):
                notes.append(f"the breaker made {made} transitions; {len(s.breaker)} were "
                             "seen (some were quicker than a tick)")
        supervision = self.supervision()
        if any(m.actor == self.names["executor"] and m.kind == EventKind.RESTARTED.value
               for m in supervision):
            notes.append("the executor restarted: orders it refused after the observer's "
                         f"last look (every {self.poll_every:g} s) before a crash are missing")
        refused = s.refused()
        summary = build_summary(
            started_at=self._started_at, ended_at=ended, stop_reason=self._stop_reason,
            exit_code=exit_code, start=s.start, end=s.end or s.last, trades=s.trades,
            equity=s.equity, max_drawdown=(s.max_dd_pct, s.max_dd), breaker=s.breaker,
            breaker_start=s.breaker_start,
            breaker_end=s.gate.state.value if s.gate is not None else "unknown",
            supervision=supervision, alerts=s.alerts, alerts_banked=s.alerts_banked,
            refused=refused, notes=notes,
        )
        title = "botvisor run"
        if self._session is not None:
            title = f"botvisor run - {self._session.config_path.name}"
        self.record = RunRecord(title, summary, tuple(s.equity), tuple(s.trades),
                                tuple(s.breaker), tuple(supervision),
                                tuple(open_positions(s.end or s.last)))
        return self.record

    def print_summary(self, summary: RunSummary) -> None:
        """The summary: a table on a terminal, plain ``label: value`` lines otherwise."""
        if self.console.is_terminal:
            self.console.print(summary_table(summary))
            for note in summary.notes:
                self.console.print(f"note: {note}", style="dim")
            return
        self._print(summary_text(summary))

    # -- the live view and status lines --------------------------------------------------------
    def status_line(self) -> str:
        """One plain line: elapsed, equity, PnL, positions, breaker, restarts, alerts."""
        runtime = self._runtime()
        return status_line(self.samples, elapsed=runtime.clock.wall() - self._started_at,
                           supervision=self.supervision(), tree=runtime.tree())

    def render_live(self) -> RenderableType:
        """The live view: tree health, account, positions, breaker, restarts, alerts."""
        runtime = self._runtime()
        tree = runtime.tree()
        return render_live(self.samples, elapsed=runtime.clock.wall() - self._started_at,
                           supervision=self.supervision(), tree=tree)

    def _start_live(self) -> None:
        redirect = self.console.file is sys.stdout
        self._live = Live(self.render_live(), console=self.console, auto_refresh=False,
                          redirect_stdout=redirect, redirect_stderr=redirect)
        self._live.start(refresh=True)
        if redirect and _is_terminal(sys.__stderr__):
            # Log records go to stderr: on the same terminal they would tear the live view,
            # so while it shows, the handlers write through rich's proxy (above the view).
            for handler in logging.getLogger().handlers:
                if (isinstance(handler, logging.StreamHandler)
                        and handler.stream is sys.__stderr__):
                    self._handlers.append((handler, handler.setStream(sys.stderr)))

    def _stop_live(self) -> None:
        if self._live is None:
            return
        live, self._live = self._live, None
        live.update(self.render_live(), refresh=True)
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()
        live.stop()

    def _print(self, text: str) -> None:
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):  # a closed pipe must not break the run
            log.debug("observer: could not write to its output")


def _is_terminal(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
