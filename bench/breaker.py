"""Benchmark: what the circuit breaker costs the order path, and what it costs when idle.

1. ``check_us``: the executor's per-order question ("may this order go?") is a read of the
   breaker's published gate plus ``BreakerGate.check``: no message, no I/O. Measured as
   the time of a loop doing peek + check for N orders, minus the time of the same loop
   without them (the baseline), divided by N. Measured in each breaker state.
2. ``idle_cpu_pct``: process CPU time over a wall-clock interval with a running breaker
   actor (its psutil sampler on, at a 1 s interval) minus the same interval with a runtime
   that has no breaker, as a percent of one core.

Targets: < 50 us per check, < 1 % CPU while idle.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.portfolio.contract import TradeClosed
from actors.risk.breaker import BreakerActor
from actors.risk.contract import BreakerGate, ForceClose, ForceOpen, GetBreakerStatus, OrderIntent
from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec


class _Idle(SupervisedActor):
    """A do-nothing actor for the baseline tree."""


def _tree(directory: Path | None) -> SupervisorSpec:
    if directory is None:
        return SupervisorSpec(children=(ChildSpec("idle", factory=_Idle),))
    settings = BreakerActor.Settings(
        database=str(directory / "breaker.db"), recovery_timeout=3600,
        resources={"interval_seconds": 1.0},  # type: ignore[arg-type]
        consecutive_losses={"max_losses": 1},  # type: ignore[arg-type]
    )
    return SupervisorSpec(children=(
        ChildSpec("idle", factory=_Idle),
        ChildSpec("breaker", factory=lambda: BreakerActor(settings)),
    ))


def _loop(rt: Runtime, n: int, *, check: bool) -> float:
    intents = [OrderIntent(f"S{i % 50}", reduces_exposure=i % 4 == 0) for i in range(256)]
    peek = rt.peek
    allowed = 0
    start = time.perf_counter()
    if check:
        for i in range(n):
            gate: Any = peek("breaker")
            if isinstance(gate, BreakerGate) and gate.check(intents[i & 255]).allowed:
                allowed += 1
    else:
        for i in range(n):
            intent = intents[i & 255]
            if intent.reduces_exposure:
                allowed += 1
    return time.perf_counter() - start


def measure_check(rt: Runtime, n: int, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    for state, setup in (
        ("closed", ForceClose("bench", "closed")),
        ("open", ForceOpen("bench", "open")),
    ):
        rt.ask("breaker", setup)
        costs = []
        for _ in range(rounds):
            base = _loop(rt, n, check=False)
            with_check = _loop(rt, n, check=True)
            costs.append(max(0.0, with_check - base) / n * 1e6)
        results[state] = statistics.median(costs)
    rt.ask("breaker", ForceClose("bench", "reset"))
    return results


def measure_idle_cpu(seconds: float) -> dict[str, float]:
    def cpu_over(directory: Path | None) -> float:
        rt = Runtime()
        rt.start(_tree(directory))
        if directory is not None:
            rt.tell("breaker", TradeClosed("X", Decimal("-1")))  # it has state, and alerts
            rt.ask("breaker", GetBreakerStatus())
        try:
            done = threading.Event()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            done.wait(seconds)  # idle: nothing happens but the breaker's own sampling
            return (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
        finally:
            rt.stop()

    with tempfile.TemporaryDirectory() as tmp:
        without = [cpu_over(None)]
        with_breaker = [cpu_over(Path(tmp))]
        without.append(cpu_over(None))
    base = statistics.mean(without)
    return {"idle_cpu_pct": max(0.0, with_breaker[0] - base),
            "idle_cpu_with_pct": with_breaker[0], "idle_cpu_without_pct": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = max(1000, int(200_000 * args.scale))
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime()
        rt.start(_tree(Path(tmp)))
        try:
            checks = measure_check(rt, n, rounds=5)
        finally:
            rt.stop()
    idle = measure_idle_cpu(max(2.0, 10.0 * args.scale))
    result = {
        "check_us": max(checks.values()),
        "check_closed_us": checks["closed"],
        "check_open_us": checks["open"],
        "checks_per_round": n,
        **idle,
        "targets": {"check_us": "< 50", "idle_cpu_pct": "< 1"},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"breaker check per order     {result['check_us']:8.3f} us   (target < 50 us)")
    print(f"  closed / open             {checks['closed']:8.3f} / {checks['open']:.3f} us")
    print(f"idle CPU of the breaker     {idle['idle_cpu_pct']:8.3f} %    (target < 1 %)")
    print(f"  with / without breaker    {idle['idle_cpu_with_pct']:8.3f} / "
          f"{idle['idle_cpu_without_pct']:.3f} %")


if __name__ == "__main__":
    main()
