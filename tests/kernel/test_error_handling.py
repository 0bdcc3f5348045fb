"""Failure classification by exception type, and the Retrier built on it.

The error handler maps an exception to (severity, directive, retryable) by the nearest class
in its MRO that has a rule, never by its message. The Retrier retries only what the handler
calls retryable, waits on the injected clock, and never repeats a call marked unsafe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from supervisor import (
    ActorNotRunning,
    Backoff,
    ChildSpec,
    ChildState,
    Directive,
    ErrorHandler,
    EventKind,
    EventRecorder,
    Intensity,
    ManualClock,
    RateLimited,
    Rule,
    Runtime,
    Severity,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.error_handler import class_name
from supervisor.retry import Retrier, is_unsafe_to_retry, unsafe_to_retry

WAIT = 10.0
R, S, E, F = Directive.RESTART, Directive.RESUME, Directive.ESCALATE, Directive.STOP
W, ERR, C = Severity.WARNING, Severity.ERROR, Severity.CRITICAL


class BadPayload(ValueError):
    """A domain error below ValueError."""


class WorseBadPayload(BadPayload):
    """Two levels below ValueError."""


class Unprintable(RuntimeError):
    """Classifying it must never need its text."""

    def __str__(self) -> str:
        raise AssertionError("the handler looked at the message text")

    def __repr__(self) -> str:
        raise AssertionError("the handler looked at the message text")


def _foreign(module: str, name: str, base: type[Exception] = Exception) -> type[Exception]:
    """An exception class that claims to live in a library that is not installed."""
    return type(name, (base,), {"__module__": module})


# -- 12: default classification ------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "severity", "directive", "retryable", "matched"),
    [
        (ConnectionError("reset"), W, R, True, "ConnectionError"),
        (ConnectionRefusedError("refused"), W, R, True, "ConnectionError"),
        (ConnectionResetError("reset"), W, R, True, "ConnectionError"),
        (TimeoutError("slow"), W, R, True, "TimeoutError"),
        (ValueError("bad"), W, S, False, "ValueError"),
        (TypeError("bug"), ERR, R, False, "TypeError"),
        (KeyError("missing"), ERR, R, False, "LookupError"),
        (IndexError("missing"), ERR, R, False, "LookupError"),
        (ZeroDivisionError("div"), ERR, R, False, "ArithmeticError"),
        (FileNotFoundError("gone"), ERR, R, False, "OSError"),
        (MemoryError(), C, E, False, "MemoryError"),
        (SystemExit(1), C, R, False, "SystemExit"),
        (KeyboardInterrupt(), C, R, False, "KeyboardInterrupt"),
        (RateLimited("slow down"), W, S, True, "supervisor.errors.RateLimited"),
        (ActorNotRunning("x", "gone"), W, S, True, "supervisor.errors.ActorNotRunning"),
        (pykka.Timeout("late"), W, S, True, "pykka.*Timeout"),
        (RuntimeError("anything"), ERR, R, False, "default"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_default_rules(
    exc: BaseException,
    severity: Severity,
    directive: Directive,
    retryable: bool,
    matched: str,
) -> None:
    decision = ErrorHandler().classify(exc)
    assert decision.severity is severity
    assert decision.directive is directive
    assert decision.retryable is retryable
    if "*" in matched:  # pykka.Timeout lives in pykka._exceptions; either name will do
        prefix, suffix = matched.split("*")
        assert decision.matched.startswith(prefix)
        assert decision.matched.endswith(suffix)
    else:
        assert decision.matched == matched


def test_subclass_uses_its_nearest_ancestors_rule() -> None:
    handler = ErrorHandler()
    # ConnectionResetError is also an OSError (error, not retryable): the nearer rule wins.
    nearest = handler.classify(ConnectionResetError())
    assert (nearest.severity, nearest.retryable, nearest.matched) == (W, True, "ConnectionError")
    assert handler.classify(WorseBadPayload()).matched == "ValueError"
    assert handler.classify(WorseBadPayload()).directive is S

    custom = ErrorHandler(rules={class_name(BadPayload): Rule(ERR, F)})
    for exc in (BadPayload(), WorseBadPayload()):
        decision = custom.classify(exc)
        assert decision.matched == class_name(BadPayload)
        assert (decision.severity, decision.directive) == (ERR, F)
    assert custom.classify(ValueError()).directive is S  # the parent keeps its own rule


def test_custom_rules_by_dotted_name_override_the_defaults() -> None:
    handler = ErrorHandler(
        rules={
            "ValueError": Rule(C, E),
            "ConnectionError": Rule(ERR, F, retryable=False),
            "ccxt.base.errors.NetworkError": Rule(W, R, retryable=True),
        }
    )
    assert (handler.classify(ValueError()).severity, handler.classify(ValueError()).directive) == (
        C,
        E,
    )
    conn = handler.classify(ConnectionRefusedError())
    assert (conn.directive, conn.retryable) == (F, False)
    # A rule can name a class of a library that is not even installed.
    network = _foreign("ccxt.base.errors", "NetworkError")
    timeout = _foreign("ccxt.base.errors", "RequestTimeout", network)
    assert handler.classify(timeout()).matched == "ccxt.base.errors.NetworkError"
    assert handler.classify(timeout()).retryable
    # Untouched defaults still apply.
    assert handler.classify(TypeError()).directive is R
    # with_rules layers on top without changing the original.
    layered = handler.with_rules({"TypeError": Rule(W, S)})
    assert layered.classify(TypeError()).directive is S
    assert layered.classify(ValueError()).directive is E
    assert handler.classify(TypeError()).directive is R


def test_include_defaults_false_and_a_custom_default() -> None:
    handler = ErrorHandler(
        rules={"KeyError": Rule(W, S)}, include_defaults=False, default=Rule(C, E)
    )
    assert handler.classify(KeyError()).directive is S
    fallthrough = handler.classify(ConnectionError())
    assert (fallthrough.directive, fallthrough.matched, fallthrough.retryable) == (
        E,
        "default",
        False,
    )


@pytest.mark.parametrize(
    "make",
    [ValueError, ConnectionError, TypeError, RuntimeError, BadPayload],
)
def test_classification_never_looks_at_the_message_text(make: Callable[..., Exception]) -> None:
    handler = ErrorHandler()
    texts = ["", "timeout", "connection refused", "ValueError", "fatal: out of memory", "42"]
    decisions = {handler.classify(make(text)) for text in texts}
    assert len(decisions) == 1
    assert ErrorHandler().classify(make("connection refused")) in decisions  # a fresh handler


def test_classification_does_not_even_render_the_exception() -> None:
    decision = ErrorHandler().classify(Unprintable())
    assert decision.matched == "default"
    assert decision.directive is R


# -- custom rules in a running tree --------------------------------------------------------
class Flaky(SupervisedActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        return self.ctx.incarnation


@pytest.fixture
def tree() -> Iterator[Callable[[ErrorHandler], tuple[Runtime, EventRecorder]]]:
    runtimes: list[Runtime] = []

    def start(handler: ErrorHandler) -> tuple[Runtime, EventRecorder]:
        rt = Runtime(clock=ManualClock(), monitor_interval=0)
        runtimes.append(rt)
        recorder = EventRecorder(rt.events)
        rt.start(
            SupervisorSpec(
                intensity=Intensity(100, 60),
                backoff=Backoff(initial=0, jitter=0),
                error_handler=handler,
                children=(ChildSpec("w", factory=Flaky),),
            )
        )
        return rt, recorder

    try:
        yield start
    finally:
        for rt in runtimes:
            rt.stop()


def test_supervisor_applies_its_custom_rules(
    tree: Callable[[ErrorHandler], tuple[Runtime, EventRecorder]],
) -> None:
    rules = {"ValueError": Rule(ERR, R), "TypeError": Rule(W, S), "KeyError": Rule(W, F)}
    rt, rec = tree(ErrorHandler(rules=rules))
    rt.tell("w", ValueError("restart me"))  # resume by default, restart here
    rec.wait_for(EventKind.RESTARTED, "w", timeout=WAIT)
    assert rt.ask("w", "who", timeout=WAIT) == 2

    rt.tell("w", TypeError("keep me"))  # restart by default, resume here
    rec.wait_for(EventKind.RESUMED, "w", timeout=WAIT)
    assert rt.ask("w", "who", timeout=WAIT) == 2

    rt.tell("w", KeyError("stop me"))  # stop: ended for good
    rec.wait_for(EventKind.STOPPED, "w", timeout=WAIT)
    assert rt.cell("w").state is ChildState.STOPPED
    with pytest.raises(ActorNotRunning):
        rt.tell("w", "who")


# -- 13: Retrier ---------------------------------------------------------------------------
class Flakey:
    """Raises ``errors`` one per call, then returns ``value``; records the clock at each call."""

    def __init__(self, clock: ManualClock, errors: list[BaseException], value: Any = "ok"):
        self.clock = clock
        self.errors = list(errors)
        self.value = value
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(self.clock.now())
        if self.errors:
            raise self.errors.pop(0)
        return (self.value, args, kwargs)


def _retrier(clock: ManualClock, attempts: int = 5, **kwargs: Any) -> Retrier:
    return Retrier(
        attempts=attempts,
        backoff=Backoff(initial=1, multiplier=2, maximum=10, jitter=0),
        clock=clock,
        **kwargs,
    )


def test_retrier_retries_connection_errors_until_success_waiting_on_the_clock() -> None:
    clock = ManualClock(start=100.0)
    fn = Flakey(clock, [ConnectionError("a"), TimeoutError("b"), ConnectionResetError("c")])
    assert _retrier(clock).call(fn, 1, key="v") == ("ok", (1,), {"key": "v"})
    assert fn.calls == [100.0, 101.0, 103.0, 107.0]  # waited 1, 2, 4 on the manual clock
    assert clock.now() == 107.0


def test_retrier_gives_up_after_attempts_and_reraises_the_last_error() -> None:
    clock = ManualClock(start=0.0)
    errors: list[BaseException] = [ConnectionError(f"try {i}") for i in range(10)]
    fn = Flakey(clock, errors)
    with pytest.raises(ConnectionError, match="try 3"):
        _retrier(clock, attempts=4).call(fn)
    assert fn.calls == [0.0, 1.0, 3.0, 7.0]
    assert clock.now() == 7.0  # no wait after the last attempt


def test_retrier_waits_are_capped_by_the_backoff_maximum() -> None:
    clock = ManualClock(start=0.0)
    fn = Flakey(clock, [ConnectionError() for _ in range(6)])
    assert _retrier(clock, attempts=7).call(fn)[0] == "ok"
    gaps = [b - a for a, b in zip(fn.calls, fn.calls[1:], strict=False)]
    assert gaps == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize("error", [ValueError("bad"), TypeError("bug"), KeyError("k")])
def test_retrier_does_not_retry_what_is_not_retryable(error: Exception) -> None:
    clock = ManualClock(start=0.0)
    fn = Flakey(clock, [error])
    with pytest.raises(type(error)):
        _retrier(clock).call(fn)
    assert len(fn.calls) == 1
    assert clock.now() == 0.0


def test_retrier_follows_its_handler() -> None:
    clock = ManualClock(start=0.0)
    handler = ErrorHandler(
        rules={"ValueError": Rule(W, S, retryable=True), "ConnectionError": Rule(W, R)}
    )
    fn = Flakey(clock, [ValueError("flaky")])
    assert _retrier(clock, handler=handler).call(fn)[0] == "ok"
    assert len(fn.calls) == 2
    fn = Flakey(clock, [ConnectionError("not retryable here")])
    with pytest.raises(ConnectionError):
        _retrier(clock, handler=handler).call(fn)
    assert len(fn.calls) == 1


def test_retrier_max_elapsed_is_measured_on_its_clock() -> None:
    clock = ManualClock(start=0.0)
    fn = Flakey(clock, [ConnectionError(f"try {i}") for i in range(20)])
    with pytest.raises(ConnectionError):
        _retrier(clock, attempts=12, max_elapsed=10).call(fn)
    # Calls at 0, 1, 3, 7, 15: the attempt at 15s is past max_elapsed, so it is the last.
    assert fn.calls == [0.0, 1.0, 3.0, 7.0, 15.0]


def test_retrier_never_retries_a_function_marked_unsafe() -> None:
    clock = ManualClock(start=0.0)
    calls: list[str] = []

    @unsafe_to_retry
    def place_order(symbol: str) -> str:
        calls.append(symbol)
        raise ConnectionError("did the order go through?")

    assert is_unsafe_to_retry(place_order)
    with pytest.raises(ConnectionError):
        _retrier(clock).call(place_order, "BTC/USDT")
    assert calls == ["BTC/USDT"]
    assert clock.now() == 0.0


class Exchange:
    def __init__(self) -> None:
        self.orders = 0
        self.quotes = 0

    @unsafe_to_retry
    def place_order(self, qty: int) -> int:
        self.orders += 1
        raise ConnectionError("timeout after send")

    def fetch_quote(self) -> int:
        self.quotes += 1
        if self.quotes < 3:
            raise ConnectionError("flaky")
        return 42


def test_retrier_never_retries_an_unsafe_bound_method() -> None:
    clock = ManualClock(start=0.0)
    exchange = Exchange()
    assert is_unsafe_to_retry(exchange.place_order)
    assert not is_unsafe_to_retry(exchange.fetch_quote)
    with pytest.raises(ConnectionError):
        _retrier(clock).call(exchange.place_order, 1)
    assert exchange.orders == 1
    assert clock.now() == 0.0
    # A safe method on the same object is retried (control).
    assert _retrier(clock).call(exchange.fetch_quote) == 42
    assert exchange.quotes == 3
    assert clock.now() == 3.0


def test_retrier_refuses_fewer_than_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Retrier(attempts=0)


def _async_retrier(clock: ManualClock, waits: list[float], **kwargs: Any) -> Retrier:
    """A retrier whose async waits are recorded and move the manual clock."""
    retrier = _retrier(clock, **kwargs)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    retrier.async_sleep = sleep
    return retrier


def test_call_async_retries_what_the_handler_says_with_the_backoffs_waits() -> None:
    clock = ManualClock(start=0.0)
    waits: list[float] = []
    fn = Flakey(clock, [ConnectionError("a"), TimeoutError("b")])

    async def fetch(x: int) -> Any:
        return fn(x)

    result = asyncio.run(_async_retrier(clock, waits).call_async(fetch, 7))
    assert result == ("ok", (7,), {})
    assert waits == [1, 2] and fn.calls == [0.0, 1.0, 3.0]
    fn = Flakey(clock, [ValueError("bad input")])
    with pytest.raises(ValueError):
        asyncio.run(_async_retrier(clock, waits := []).call_async(fetch, 1))
    assert waits == [] and len(fn.calls) == 1  # not retryable: one call, no wait


def test_call_async_never_retries_a_coroutine_marked_unsafe() -> None:
    clock = ManualClock(start=0.0)
    calls: list[str] = []

    @unsafe_to_retry
    async def place_order(symbol: str) -> str:
        calls.append(symbol)
        raise ConnectionError("did the order go through?")

    waits: list[float] = []
    with pytest.raises(ConnectionError):
        asyncio.run(_async_retrier(clock, waits).call_async(place_order, "BTC/USDT"))
    assert calls == ["BTC/USDT"] and waits == []
