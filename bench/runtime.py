"""Benchmark: what supervision costs a message, an ask, and a crash.

Three figures, each next to a bare pykka baseline measured in the same process:

1. ``tell_ratio``: tells per second through a supervised actor (a ``SupervisedActor``
   under a ``Runtime``, addressed by name with ``Runtime.tell``) over tells per second
   into a bare ``pykka.ThreadingActor`` (``ActorRef.tell``). Both actors do the same
   work per message (count it, add up a field); both are sent the same prebuilt
   messages from the main thread, and a round ends when a final ask (sent after the
   last tell, so answered after it) comes back. Rounds run in pairs, one of each, back
   to back, the order alternating; ``tell_ratio`` is the median of the pairs' ratios
   (a round's rate swings 2x with GIL hand-overs and machine load; pairing cancels the
   load). For the why, ``tell_send_us`` / ``tell_handle_us`` (and ``_bare_``) are each
   side's cost per message measured apart: the receiver parked while the main thread
   sends, then the receiver alone drains its mailbox.
2. ``restart_p50_ms`` / ``restart_p99_ms``: a permanent child under one_for_one with no
   backoff (``Backoff(initial=0, jitter=0)``) and a restart intensity that is never
   reached. One restart is timed from just before the crash message is told to the
   reply of the replacement to an ask sent right behind it (it waits in the child's
   mailbox while the child restarts). The time to the supervisor's RESTARTED event
   (its monotonic stamp) is reported too. The crash is classified warning/restart by a
   rule for the bench's exception, so no traceback is formatted and logged per crash.
   ``restart_phases_p50_ms`` splits it with the supervision events' monotonic stamps:
   crash told -> CRASHED (the failing actor reported, the supervisor took the report),
   -> RESTARTED (backoff decided, new instance built, its thread started, on_start done),
   -> the replacement's answer.
   For scale, ``spawn_bare_p50_ms`` is the time to start a fresh bare pykka actor
   and get its first answer: the floor of any restart that builds a new actor thread.
3. ``ask_rtt_us``: the median round trip of ``Runtime.ask`` to an echo actor, one ask at
   a time, against ``ActorRef.ask`` to a bare echo actor. Both wait with the same
   timeout (the runtime always waits with one).

Targets: tell_ratio >= 0.90, restart p50 <= 1 ms, restart p99 <= 5 ms. The ask round
trip has no target; it is reported with its baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervisor import (
    Backoff,
    ChildSpec,
    Directive,
    ErrorHandler,
    EventKind,
    Intensity,
    Rule,
    Runtime,
    Severity,
    Strategy,
    SupervisedActor,
    SupervisionEvent,
    SupervisorSpec,
)
from supervisor.error_handler import class_name

TARGETS = {
    "tell_ratio": ">= 0.90",
    "restart_p50_ms": "<= 1",
    "restart_p99_ms": "<= 5",
}
ASK_TIMEOUT = 30.0


# -- messages and actors ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Work:
    """One unit of work: the receiver counts it and adds ``n`` to its total."""

    n: int


@dataclass(frozen=True, slots=True)
class Flush:
    """Asked after the last Work of a round; the reply (the count) ends the round."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Makes the receiver raise BenchCrash in its handler."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Answered with the receiver's incarnation (or a constant, for bare actors)."""


class BenchCrash(Exception):
    """The failure the restart bench injects."""


def _receive(actor: Any, message: Any) -> Any:
    """The same handler for the supervised and the bare actor."""
    if type(message) is Work:
        actor.count += 1
        actor.total += message.n
        return None
    if type(message) is Flush:
        return actor.count
    if type(message) is Ping:
        return actor.incarnation
    if type(message) is Crash:
        raise BenchCrash("crash requested by the bench")
    return None


class SupervisedSink(SupervisedActor):
    """Counts what it receives; answers Ping with its incarnation (the kernel's)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.total = 0

    def on_receive(self, message: Any) -> Any:
        return _receive(self, message)


class BareSink(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.total = 0
        self.incarnation = 0

    def on_receive(self, message: Any) -> Any:
        return _receive(self, message)


def _tree() -> SupervisorSpec:
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=1_000_000, within_seconds=60.0),
        backoff=Backoff(initial=0.0, jitter=0.0),
        children=(
            ChildSpec("sink", factory=SupervisedSink),
            ChildSpec("echo", factory=SupervisedSink),
            ChildSpec("crashy", factory=SupervisedSink),
            ChildSpec("held", factory=HoldingSupervisedSink),
        ),
    )


def _error_handler() -> ErrorHandler:
    return ErrorHandler(
        rules={class_name(BenchCrash): Rule(Severity.WARNING, Directive.RESTART)}
    )


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


# -- 1. tell throughput ----------------------------------------------------------------------
def _round(tell: Callable[[Any], None], flush: Callable[[], int], msgs: list[Work]) -> float:
    """Tell every message of ``msgs``, then wait for the flush reply; messages per second."""
    before = flush()
    start = time.perf_counter()
    for msg in msgs:
        tell(msg)
    count = flush()
    elapsed = time.perf_counter() - start
    if count - before != len(msgs):
        raise RuntimeError(f"sent {len(msgs)} messages, {count - before} were handled")
    return len(msgs) / elapsed


def measure_tells(rt: Runtime, bare: pykka.ActorRef[Any], n: int, pairs: int
                  ) -> dict[str, Any]:
    """Concurrent rounds: the main thread tells while the actor's thread handles.

    Which actor goes first alternates from pair to pair. A round's rate swings by a factor
    of two or more with how the GIL happens to hand over between sender and receiver (and
    with the machine's load), so the ratio is taken per pair, the two rounds run back to
    back, and ``tell_ratio`` is the median of the pair ratios.
    """
    msgs = [Work(i) for i in range(n)]
    bare_tell = bare.tell

    def sup_flush() -> int:
        return int(rt.ask("sink", Flush(), timeout=ASK_TIMEOUT))

    def bare_flush() -> int:
        return int(bare.ask(Flush(), block=True, timeout=ASK_TIMEOUT))

    def sup_round() -> float:  # as _round, with rt.tell("sink", msg) inline in the loop
        rt_tell = rt.tell
        before = sup_flush()
        start = time.perf_counter()
        for msg in msgs:
            rt_tell("sink", msg)
        count = sup_flush()
        elapsed = time.perf_counter() - start
        if count - before != n:
            raise RuntimeError(f"sent {n} messages, {count - before} were handled")
        return n / elapsed

    sup_round()  # warm-up, both sides
    _round(bare_tell, bare_flush, msgs)
    sup: list[float] = []
    base: list[float] = []
    for i in range(pairs):
        gc.collect()
        if i % 2 == 0:
            base.append(_round(bare_tell, bare_flush, msgs))
            sup.append(sup_round())
        else:
            sup.append(sup_round())
            base.append(_round(bare_tell, bare_flush, msgs))
    ratios = [s / b for s, b in zip(sup, base, strict=True)]
    return {
        "tell_ratio": statistics.median(ratios),
        "tells_per_s": statistics.median(sup),
        "tells_bare_per_s": statistics.median(base),
        "tell_ratio_of_medians": statistics.median(sup) / statistics.median(base),
        "tell_ratio_p25": _pct(ratios, 25),
        "tell_ratio_p75": _pct(ratios, 75),
        "tells_per_round": n,
        "tell_pairs": pairs,
        "tells_min_per_s": min(sup),
        "tells_max_per_s": max(sup),
        "tells_bare_min_per_s": min(base),
        "tells_bare_max_per_s": max(base),
    }


@dataclass(frozen=True, slots=True)
class Hold:
    """Blocks the receiver in its handler until ``release`` is set."""

    release: threading.Event


class _Holding:
    """Mixin: a Hold message parks the actor's thread, so its mailbox fills untouched."""

    def on_receive(self, message: Any) -> Any:
        if type(message) is Hold:
            message.release.wait(ASK_TIMEOUT)
            return None
        return _receive(self, message)


class HoldingSupervisedSink(_Holding, SupervisedSink):
    pass


class HoldingBareSink(_Holding, BareSink):
    pass


def measure_tell_costs(rt: Runtime, bare: pykka.ActorRef[Any], n: int, rounds: int
                       ) -> dict[str, float]:
    """Each side's cost per message, with the other side idle (no GIL hand-overs).

    The actor is parked in a handler; the main thread tells ``n`` messages (the send
    cost); then the actor is released and the flush reply times the drain (the handling
    cost: take from the mailbox, dispatch, handle). The best round of each, in us: a
    CPU cost, which only noise (other processes, GIL hand-overs) can make look bigger.
    """
    msgs = [Work(i) for i in range(n)]

    def one(tell: Callable[[Any], None], ask: Callable[[Any], Any]) -> tuple[float, float]:
        release = threading.Event()
        tell(Hold(release))
        time.sleep(0.005)  # let the actor take the Hold and park
        start = time.perf_counter()
        for msg in msgs:
            tell(msg)
        sent = time.perf_counter()
        release.set()
        ask(Flush())
        done = time.perf_counter()
        return (sent - start) / n * 1e6, (done - sent) / n * 1e6

    def sup_tell(msg: Any) -> None:
        rt.tell("held", msg)

    def sup_ask(msg: Any) -> Any:
        return rt.ask("held", msg, timeout=ASK_TIMEOUT)

    def bare_ask(msg: Any) -> Any:
        return bare.ask(msg, timeout=ASK_TIMEOUT)

    sup: list[tuple[float, float]] = []
    base: list[tuple[float, float]] = []
    for i in range(rounds + 1):
        gc.collect()
        if i % 2 == 0:
            s = one(sup_tell, sup_ask)
            b = one(bare.tell, bare_ask)
        else:
            b = one(bare.tell, bare_ask)
            s = one(sup_tell, sup_ask)
        if i:  # the first pair is a warm-up
            sup.append(s)
            base.append(b)
    out = {
        "tell_send_us": min(s for s, _ in sup),
        "tell_handle_us": min(h for _, h in sup),
        "tell_send_bare_us": min(s for s, _ in base),
        "tell_handle_bare_us": min(h for _, h in base),
    }
    out["tell_cost_ratio"] = (out["tell_send_bare_us"] + out["tell_handle_bare_us"]) / (
        out["tell_send_us"] + out["tell_handle_us"])
    return out


# -- 2. restart latency ------------------------------------------------------------------------
def measure_restarts(rt: Runtime, restarts: int, warmup: int) -> dict[str, Any]:
    stamps: dict[int, float] = {}  # RESTARTED, by the incarnation it started
    crashed: dict[int, float] = {}  # CRASHED (the supervisor took the report), by incarnation

    def on_event(event: SupervisionEvent) -> None:
        if event.actor != "crashy":
            return
        if event.kind is EventKind.RESTARTED:
            stamps[event.incarnation] = event.monotonic
        elif event.kind is EventKind.CRASHED:
            crashed[event.incarnation] = event.monotonic

    sub = rt.events.subscribe(on_event)
    answered: list[float] = []
    restarted: list[float] = []
    phases: dict[str, list[float]] = {"to_crashed": [], "to_restarted": [], "to_answer": []}
    tell, ask = rt.tell, rt.ask
    now = time.monotonic  # the runtime's SystemClock stamps events with time.monotonic
    try:
        incarnation = int(ask("crashy", Ping(), timeout=ASK_TIMEOUT))
        for i in range(warmup + restarts):
            if i == warmup:
                gc.collect()
            start = now()
            tell("crashy", Crash())
            got = int(ask("crashy", Ping(), timeout=ASK_TIMEOUT))
            end = now()
            if got != incarnation + 1:
                raise RuntimeError(f"expected incarnation {incarnation + 1}, got {got}")
            incarnation = got
            if i >= warmup:
                answered.append((end - start) * 1e3)
                stamp = stamps.get(got)
                crash = crashed.get(got - 1)
                if stamp is not None:
                    restarted.append((stamp - start) * 1e3)
                if stamp is not None and crash is not None:
                    phases["to_crashed"].append((crash - start) * 1e3)
                    phases["to_restarted"].append((stamp - crash) * 1e3)
                    phases["to_answer"].append((end - stamp) * 1e3)
    finally:
        sub.cancel()
    return {
        "restart_p50_ms": _pct(answered, 50),
        "restart_p99_ms": _pct(answered, 99),
        "restart_max_ms": max(answered),
        "restart_mean_ms": statistics.fmean(answered),
        "restart_event_p50_ms": _pct(restarted, 50) if restarted else None,
        "restart_event_p99_ms": _pct(restarted, 99) if restarted else None,
        "restarts": len(answered),
        # where a restart's time goes (medians, ms): crash told -> supervisor has the
        # report (CRASHED); -> replacement started (RESTARTED); -> its first answer
        "restart_phases_p50_ms": {k: _pct(v, 50) for k, v in phases.items() if v},
        "restart_phases_p99_ms": {k: _pct(v, 99) for k, v in phases.items() if v},
    }


def measure_spawn(count: int) -> dict[str, float]:
    """Start a bare pykka actor and get its first answer: a restart's floor."""
    times: list[float] = []
    for _ in range(count):
        start = time.monotonic()
        ref = BareSink.start()
        ref.ask(Ping(), timeout=ASK_TIMEOUT)
        times.append((time.monotonic() - start) * 1e3)
        ref.stop()
    return {"spawn_bare_p50_ms": _pct(times, 50), "spawn_bare_p99_ms": _pct(times, 99)}


# -- 3. ask round trip -------------------------------------------------------------------------
def measure_asks(rt: Runtime, bare: pykka.ActorRef[Any], n: int, rounds: int) -> dict[str, Any]:
    def sup_round() -> list[float]:
        ask, clock = rt.ask, time.perf_counter
        out = []
        for _ in range(n):
            start = clock()
            ask("echo", Ping(), timeout=ASK_TIMEOUT)
            out.append(clock() - start)
        return out

    def bare_round() -> list[float]:
        ask, clock = bare.ask, time.perf_counter
        out = []
        for _ in range(n):
            start = clock()
            ask(Ping(), timeout=ASK_TIMEOUT)
            out.append(clock() - start)
        return out

    sup_round()  # warm-up
    bare_round()
    sup: list[float] = []
    base: list[float] = []
    for i in range(rounds):
        gc.collect()
        if i % 2 == 0:
            base.extend(bare_round())
            sup.extend(sup_round())
        else:
            sup.extend(sup_round())
            base.extend(bare_round())
    sup_us = [t * 1e6 for t in sup]
    base_us = [t * 1e6 for t in base]
    return {
        "ask_rtt_us": _pct(sup_us, 50),
        "ask_rtt_p99_us": _pct(sup_us, 99),
        "ask_rtt_bare_us": _pct(base_us, 50),
        "ask_rtt_bare_p99_us": _pct(base_us, 99),
        "ask_rtt_ratio": _pct(sup_us, 50) / _pct(base_us, 50),
        "asks": len(sup_us),
    }


# -- running -----------------------------------------------------------------------------------
def run(scale: float) -> dict[str, Any]:
    tells = max(2_000, int(20_000 * scale))
    pairs = max(5, int(25 * min(scale, 1.0) + 0.5)) | 1  # odd: a true median
    cost_tells = max(2_000, int(50_000 * min(scale, 1.0)))  # < the default mailbox limit
    restarts = max(50, int(1_000 * scale))
    asks = max(500, int(4_000 * scale))
    result: dict[str, Any] = {}
    rt = Runtime(ask_timeout=ASK_TIMEOUT, error_handler=_error_handler())
    rt.start(_tree())
    bare = BareSink.start()
    held_bare = HoldingBareSink.start()
    try:
        result.update(measure_tells(rt, bare, tells, pairs))
        result.update(measure_tell_costs(rt, held_bare, cost_tells, rounds=7))
        result.update(measure_asks(rt, bare, asks, rounds=5))
        result.update(measure_restarts(rt, restarts, warmup=max(10, restarts // 50)))
    finally:
        held_bare.stop()
        bare.stop()
        rt.stop()
    result.update(measure_spawn(max(50, restarts // 5)))
    result["targets"] = TARGETS
    result["met"] = {
        "tell_ratio": result["tell_ratio"] >= 0.90,
        "restart_p50_ms": result["restart_p50_ms"] <= 1.0,
        "restart_p99_ms": result["restart_p99_ms"] <= 5.0,
    }
    return result


def print_table(r: dict[str, Any]) -> None:
    def ok(key: str) -> str:
        return "met" if r["met"][key] else "MISSED"

    event = r["restart_event_p50_ms"]
    rows = [
        ("tells, supervised", f"{r['tells_per_s']:,.0f} /s", "",
         f"Runtime.tell by name; median of {r['tell_pairs']} rounds of "
         f"{r['tells_per_round']:,}, range {r['tells_min_per_s']:,.0f}.."
         f"{r['tells_max_per_s']:,.0f}"),
        ("tells, bare pykka", f"{r['tells_bare_per_s']:,.0f} /s", "",
         f"ActorRef.tell; range {r['tells_bare_min_per_s']:,.0f}.."
         f"{r['tells_bare_max_per_s']:,.0f}"),
        ("tell ratio", f"{r['tell_ratio']:.3f}", f">= 0.90  {ok('tell_ratio')}",
         f"median of paired rounds (p25 {r['tell_ratio_p25']:.2f}, p75 "
         f"{r['tell_ratio_p75']:.2f}); ratio of medians {r['tell_ratio_of_medians']:.2f}"),
        ("tell cost, supervised", f"{r['tell_send_us'] + r['tell_handle_us']:.2f} us", "",
         f"per message, sides apart, best of 7: send {r['tell_send_us']:.2f} + handle "
         f"{r['tell_handle_us']:.2f} us"),
        ("tell cost, bare pykka",
         f"{r['tell_send_bare_us'] + r['tell_handle_bare_us']:.2f} us", "",
         f"send {r['tell_send_bare_us']:.2f} + handle {r['tell_handle_bare_us']:.2f} us; "
         f"bare/supervised {r['tell_cost_ratio']:.3f}"),
        ("restart p50", f"{r['restart_p50_ms']:.3f} ms", f"<= 1 ms  {ok('restart_p50_ms')}",
         f"crash told -> replacement answers; {r['restarts']:,} restarts, "
         f"mean {r['restart_mean_ms']:.3f}, max {r['restart_max_ms']:.3f} ms"),
        ("restart p99", f"{r['restart_p99_ms']:.3f} ms", f"<= 5 ms  {ok('restart_p99_ms')}",
         "" if event is None else
         f"to the RESTARTED event: p50 {event:.3f} / p99 {r['restart_event_p99_ms']:.3f} ms"),
        ("  restart, by phase", "", "", "p50 (p99): " + ", ".join(
            f"{k.replace('_', ' ')} {v:.3f} ({r['restart_phases_p99_ms'][k]:.3f})"
            for k, v in r["restart_phases_p50_ms"].items()) + " ms"),
        ("spawn bare actor p50", f"{r['spawn_bare_p50_ms']:.3f} ms", "",
         f"pykka start + first answer (a restart's floor); p99 {r['spawn_bare_p99_ms']:.3f} ms"),
        ("ask rtt, supervised", f"{r['ask_rtt_us']:.1f} us", "",
         f"median of {r['asks']:,}; p99 {r['ask_rtt_p99_us']:.1f} us"),
        ("ask rtt, bare pykka", f"{r['ask_rtt_bare_us']:.1f} us", "",
         f"p99 {r['ask_rtt_bare_p99_us']:.1f} us; supervised/bare {r['ask_rtt_ratio']:.2f}"),
    ]
    print("runtime benchmark (supervised vs bare pykka, same process)")
    print(f"{'measure':<22}{'figure':>16}   {'target':<20}notes")
    for name, figure, target, notes in rows:
        print(f"{name:<22}{figure:>16}   {target:<20}{notes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the counts")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be positive")
    logging.basicConfig(level=logging.ERROR)
    result = run(args.scale)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
