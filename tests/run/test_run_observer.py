"""What a user sees during and after `botvisor run`: the observer's live view, its summary and
the HTML report, from real runs of the shipped tree (a copy of ``config.yaml`` with its state
files in a test directory and the synthetic market sped up)."""

from __future__ import annotations

import io
import signal
import threading
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from actors.portfolio.contract import PortfolioSnapshot
from actors.risk.contract import BreakerGate, BreakerState
from actors.run.observer import TradingObserver
from supervisor import EventKind, EventRecorder, Runtime
from supervisor.host.config import ConfigError, load_config, observers, parse_config
from supervisor.host.session import RunSession
from tests.conftest import BotProcess
from tests.support.bot_helpers import (
    crash,
    ledger_fills,
    redirect_state,
    settings,
    shipped_config,
    wait_until,
    write_config,
)

OBSERVER = "actors.run.observer:TradingObserver"


def _fast_config(tmp_path: Path) -> Path:
    """The shipped config with its state in ``tmp_path/state`` and the observer named.

    The synthetic market runs at 6000x (100 bars a real second instead of 10) and its crash
    comes at bar 150 instead of 300, so a run of a few seconds has fills, closed trades and
    the trip the crash causes; everything else is as shipped.
    """
    raw = shipped_config()
    redirect_state(raw, tmp_path / "state")
    settings(raw, "market").update(speed=6000.0, crash_at_bar=150)
    raw["runtime"]["observer"] = OBSERVER
    return write_config(raw, tmp_path / "config.yaml")


class _Page(HTMLParser):
    """Collects every start tag with its attributes, and which elements hold a <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.stack: list[dict[str, str]] = []
        self.titled: list[dict[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        found["<tag>"] = tag
        self.tags.append((tag, found))
        if tag == "title" and self.stack:
            self.titled.append(self.stack[-1])
        if tag not in ("meta", "br", "img", "input"):
            self.stack.append(found)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        found["<tag>"] = tag
        self.tags.append((tag, found))

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1]["<tag>"] == tag:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, *classes: str) -> list[dict[str, str]]:
        return [a for _, a in self.tags if set(classes) <= set(a.get("class", "").split())]


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _assert_self_contained(page: _Page) -> None:
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href"):
            value = attrs.get(key, "")
            assert not value.lower().startswith(("http:", "https:", "//")), (tag, value)
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        assert not (tag == "script" and "src" in attrs), attrs


def test_summary_and_report_from_a_real_run(tmp_path: Path) -> None:
    path = _fast_config(tmp_path)
    config, spec = load_config(path)
    runtime = Runtime(error_handler=config.error_handler(),
                      ask_timeout=config.runtime.ask_timeout,
                      monitor_interval=config.runtime.monitor_interval,
                      event_history=config.runtime.event_history)
    recorder = EventRecorder(runtime.events)
    report = tmp_path / "out" / "report.html"
    out = io.StringIO()  # not a terminal: status lines and a plain summary
    plain = TradingObserver(report, out=out)
    screen = Console(file=io.StringIO(), force_terminal=True, width=120)
    live = TradingObserver(console=screen)  # the rich live view
    assert not plain.live_enabled and live.live_enabled
    session = RunSession(config, spec, runtime, config_path=path)
    session.services += [plain, live]
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(session.run()), daemon=True)
    runner.start()
    try:
        def portfolio() -> PortfolioSnapshot | None:
            snap = runtime.peek("positions") if runtime.has("positions") else None
            return snap if isinstance(snap, PortfolioSnapshot) else None

        # fills, at least one of them closing a trade, and the breaker tripped by the crash
        wait_until(lambda: (p := portfolio()) is not None and p.seq >= 4
                   and p.realized_pnl != 0, timeout=20, what="closed trades")
        wait_until(lambda: isinstance(g := runtime.peek("breaker"), BreakerGate)
                   and g.state is BreakerState.OPEN, timeout=20, what="a breaker trip")
        def refused() -> int:
            stats = plain.samples.executor
            return sum(stats.refused.values()) if stats is not None else 0

        refused_before = wait_until(lambda: refused() or None, timeout=20,
                                    what="the observer to see orders the breaker refused")
        crash(runtime, "scanner")  # a restart (rest_for_one: the actors after it too)
        recorder.wait_for(EventKind.RESTARTED, "scanner", timeout=10)
        wait_until(lambda: plain.samples.breaker and live.samples.breaker, timeout=10,
                   what="the observers to see the trip")
    finally:
        session.request_stop("test finished")
        runner.join(timeout=30)
    assert codes == [0]

    record = plain.record
    assert record is not None
    summary = record.summary
    end = plain.samples.end
    assert end is not None
    # the summary's numbers are the ledger's: every fill up to the final snapshot, in order
    ledger = ledger_fills(tmp_path / "state" / "ledger.db")
    assert [t.fill_id for t in record.trades] == [f.fill_id for f in ledger[: end.seq]]
    assert summary.fills == end.seq >= 4
    assert summary.buys + summary.sells == summary.fills
    assert summary.realized_pnl == end.realized_pnl != 0  # the position actor's own total
    assert sum((t.realized for t in record.trades), Decimal(0)) == end.realized_pnl
    assert summary.closed_trades == summary.wins + summary.losses >= 1
    assert summary.total_pnl == end.equity - Decimal(10000)
    assert summary.breaker_trips >= 1
    # The crash trips it: by volatility, or by the stop-losses it sets off (loss streak,
    # drawdown), whichever comes first on this machine's timing.
    trigger = summary.breaker_reasons[0].split(":")[0]
    assert trigger in {"volatility", "consecutive_losses", "drawdown", "daily_loss"}, trigger
    restarted = Counter(e.actor for e in recorder.of(EventKind.RESTARTED))
    assert dict(summary.restarts) == dict(restarted) and restarted["scanner"] == 1
    assert summary.refused_total >= refused_before >= 1  # summed across executor restarts
    assert summary.max_drawdown_pct > 0
    assert [n.split(":")[0] for n in summary.notes] == ["the executor restarted"]

    # the plain summary on the (non-terminal) output, with the same numbers
    text = out.getvalue()
    assert "== botvisor run summary ==" in text
    assert f"{summary.fills} ({summary.buys} buys, {summary.sells} sells)" in text
    assert f"{float(summary.realized_pnl):+,.2f}" in text
    assert "stopped because" in text and "test finished" in text
    # the live view drew the tree, the account, the breaker and the restart; then a table
    drawn = screen.file.getvalue()  # type: ignore[attr-defined]
    for expected in ("tree:", "equity", "breaker", "OPEN", "restarts: ", "scanner",
                     "botvisor run summary"):
        assert expected in drawn, expected

    # the report: one self-contained page
    html_text = report.read_text(encoding="utf-8")
    page = _parse(html_text)
    _assert_self_contained(page)
    curve = page.with_class("equity-curve")
    assert curve and curve[0]["<tag>"] == "path" and curve[0]["d"].count("L") >= 2
    assert page.with_class("drawdown-area")
    trades = page.with_class("marker", "trade")
    assert len(trades) == summary.fills
    assert sorted(int(t["data-seq"]) for t in trades) == [t.seq for t in record.trades]
    assert len(page.with_class("marker", "buy")) == summary.buys
    trips = page.with_class("marker", "breaker-trip")
    assert len(trips) == summary.breaker_trips
    restarts = page.with_class("marker", "supervision-mark", "restarted")
    assert len(restarts) == sum(restarted.values())
    for marker in [*trades, *trips, *restarts]:
        assert any(marker is t for t in page.titled), f"no tooltip on {marker}"
    body = "".join(page.text)
    assert f"{summary.fills} ({summary.buys} buys, {summary.sells} sells)" in body
    assert f"{float(summary.realized_pnl):+,.2f}" in body
    assert summary.breaker_reasons[0] in body
    assert "restarted scanner" in body


def test_botvisor_run_prints_a_summary_and_writes_the_report(
    bot_process: type[BotProcess], tmp_path: Path
) -> None:
    path = _fast_config(tmp_path)
    report = tmp_path / "report.html"
    bot = bot_process("run", "--config", str(path), "--duration", "4", "--report", str(report),
                      cwd=tmp_path)
    assert bot.wait(timeout=40) == 0
    out = bot.stdout()
    assert out.startswith("[0:00:00] | equity 10,000.00")  # stdout is a pipe: plain lines
    assert "== botvisor run summary ==" in out
    assert "--duration 4s reached" in out
    assert "\x1b[" not in out  # no terminal control codes
    fills = next(line for line in out.splitlines() if line.startswith("fills "))
    assert int(fills.split()[1]) > 0
    assert f"report written to {report}" in out
    page = _parse(report.read_text(encoding="utf-8"))
    _assert_self_contained(page)
    assert page.with_class("equity-curve")


def test_sigterm_prints_the_summary_too(bot_process: type[BotProcess], tmp_path: Path) -> None:
    bot = bot_process("run", "--config", str(_fast_config(tmp_path)), cwd=tmp_path)
    bot.wait_for_line(r"tree is up")
    bot.signal(signal.SIGTERM)
    assert bot.wait(timeout=30) == 0
    out = bot.stdout()
    assert "== botvisor run summary ==" in out
    assert "received SIGTERM" in out
    assert "report written" not in out  # no --report, no page


def test_observer_key_is_validated_and_optional() -> None:
    config, _ = parse_config({"runtime": {"observer": OBSERVER}})
    services = observers(config.runtime, report=None)
    assert [type(s) for s in services] == [TradingObserver]
    assert observers(parse_config({})[0].runtime, report="x.html") == []
    for bad in ("actors.run.observer", "actors.no_such_module:X",
                "actors.run.observer:replay_trades"):
        with pytest.raises(ConfigError) as err:
            parse_config({"runtime": {"observer": bad}})
        assert [key for key, _ in err.value.problems] == ["runtime.observer"]
