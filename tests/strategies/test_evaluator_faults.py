"""A strategy that raises inside the real evaluator: its neighbour's signals still reach
the executor, the failure is told to the alerts actor and counted, and the child's
configured error handler decides what happens to the raising strategy. Real actors: the
evaluator, stand-ins for the position actor, the executor and the alerts actor."""

from __future__ import annotations

from typing import Any

from pykka.messages import ProxyGetAttr

from actors.common.messages import Alert
from actors.market.contract import Bar, ScannedBars
from actors.strategies.contract import GetEvaluatorStats, RunnerStats, Signal
from actors.strategies.evaluator import EvaluatorActor
from supervisor import ChildSpec, Directive, ErrorHandler, Rule, Runtime, Severity, SupervisorSpec
from tests.strategies.scripted import BOOM, BUY_AT
from tests.support.standins import Collector, Ledger, Publish, snapshot

A, B = "A/USDT", "B/USDT"


def _start(first: str, handler: ErrorHandler | None = None) -> Runtime:
    """The evaluator runs ``first``, then Scripted (which buys a close of 7)."""
    settings = EvaluatorActor.Settings(strategies=(
        {"class": f"tests.strategies.scripted:{first}"},
        {"class": "tests.strategies.scripted:Scripted"},
    ))
    rt = Runtime(ask_timeout=10)
    rt.start(SupervisorSpec(children=(
        ChildSpec("positions", factory=Ledger),
        ChildSpec("executor", factory=lambda: Collector(Signal)),
        ChildSpec("alerts", factory=lambda: Collector(Alert)),
        ChildSpec("pipeline", supervisor=SupervisorSpec(children=(  # its handler: the
            ChildSpec("evaluator", factory=lambda: EvaluatorActor(settings)),  # child's
        ), error_handler=handler)),
    )))
    rt.ask("positions", Publish(snapshot(1)))
    return rt


def _tell(rt: Runtime, *bars: tuple[str, int, float]) -> None:
    for symbol, minute, close in bars:
        bar = Bar(symbol, 60.0 * minute, close, close + 1, close - 1, close, 1.0)
        rt.tell("evaluator", ScannedBars((bar,), frozenset({A, B})))


def _got(rt: Runtime, name: str) -> list[Any]:
    rt.ask("evaluator", GetEvaluatorStats())  # every bar told before is handled
    got: list[Any] = rt.ask(name, ProxyGetAttr(attr_path=("got",)))
    return got


def test_a_raising_strategy_does_not_stop_its_neighbours_signals() -> None:
    rt = _start("Broken")  # a ValueError on every bar: RESUME, by the default rules
    try:
        _tell(rt, (A, 0, 1.0), (A, 1, BUY_AT), (B, 2, BUY_AT))
        signals = _got(rt, "executor")
        alerts = _got(rt, "alerts")
        stats = rt.ask("evaluator", GetEvaluatorStats())
    finally:
        rt.stop()
    assert [s.signal_id for s in signals] == [
        f"scripted:{A}:60:buy", f"scripted:{B}:120:buy"], signals
    # one alert per symbol for the first failure (then at the 10th, 100th, 1000th)
    assert [(a.key, a.severity) for a in alerts] == [
        ("evaluator.strategy_failed.broken", "warning")] * 2
    assert A in alerts[0].title and "ValueError: broken on 1" in alerts[0].body
    assert isinstance(stats, RunnerStats) and stats.faults == (("broken", "resume", 3),)


def test_the_childs_error_handler_decides_and_the_others_go_on() -> None:
    handler = ErrorHandler({"ValueError": Rule(Severity.ERROR, Directive.STOP)})
    rt = _start("Raiser", handler)
    try:
        _tell(rt, (A, 0, BOOM), (A, 1, BUY_AT), (B, 2, BUY_AT))
        signals = _got(rt, "executor")
        alerts = _got(rt, "alerts")
        stats = rt.ask("evaluator", GetEvaluatorStats())
        told = rt.ask("evaluator", ProxyGetAttr(attr_path=("signals",)))
    finally:
        rt.stop()
    # switched off on A: the neighbour buys A; on B the raiser still runs and buys
    assert [s.signal_id for s in signals] == [
        f"scripted:{A}:60:buy", f"raiser:{B}:120:buy"], signals
    assert stats.off == (("raiser", A),) and told == 2  # the evaluator's signal count
    assert [a.severity for a in alerts] == ["error"]
    assert "switched off for that symbol" in alerts[0].body
