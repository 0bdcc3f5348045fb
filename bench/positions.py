"""Benchmark: what durability costs the position actor, and how fast it comes back.

All four figures come from one run, on fresh SQLite files (WAL, ``synchronous=FULL``) in
temporary directories that are removed afterwards:

1. ``fills_per_s``: durable fills per second through the position actor with group
   commit. Several producer threads each keep a window of outstanding ``RecordFill`` asks
   (``Runtime.ask_future``) and collect the replies in order; a reply means the fill is
   committed. The actor commits the fills waiting in its mailbox in one transaction (one
   fsync), so the rate is wall time from the first send to the last reply.
2. ``baseline_fills_per_s``: the naive way, in the same process: one transaction (one
   fsync) per fill, ``Ledger.record([fill], now)`` in a loop from one thread, same schema
   and settings. ``group_commit_ratio`` = ``fills_per_s / baseline_fills_per_s``.
3. ``recovery_100k_s``: start-up after ``kill -9`` with 100,000 fills in the ledger. A
   child process builds the ledger with large batches and then SIGKILLs itself, leaving
   the WAL and its index behind unclosed. The time is from a fresh ``Runtime`` to the
   position actor's first ``GetPortfolio`` reply (opening the file, WAL recovery, loading
   the projections). ``recovery_100k_clean_s`` is the same after a clean close.
4. ``reconcile_1000_ms``: one on-demand ``Reconcile()`` of the full ledger subtree
   (rest_for_one: positions, trade manager, paper wallet, positions log) holding 1,000
   open positions: three ``GetView`` asks and the comparison. Median of several runs.

For context the run also reports ``fsync_ms`` (a raw ``os.fsync`` in the temporary
directory; the baseline is bound by it) and ``group_cpu_us_per_fill`` (process CPU time per
grouped fill; the group commit is bound by it, one core under the GIL). Use ``--dir`` to
put the files on the disk of interest: on tmpfs fsync is free and the ratio meaningless.

Targets: ratio >= 10x, recovery <= 2 s, reconciliation <= 200 ms.

``--scale`` scales the counts (fills sent, rounds); the 100k-fill ledger and the 1,000
positions shrink only when ``--scale`` < 1, for smoke runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

from actors.common.messages import Fill, Side
from actors.portfolio.contract import (
    FillRecorded,
    GetPortfolio,
    PortfolioSnapshot,
    Reconcile,
    ReconcileReport,
    RecordFill,
)
from actors.portfolio.ledger import Ledger
from actors.portfolio.positions import PositionActor
from actors.portfolio.sources import (
    PaperWalletSource,
    PositionsLogSource,
    SourceSettings,
    TradeManagerSource,
)
from supervisor import ChildSpec, Runtime, Strategy, SupervisedActor, SupervisorSpec

CASH = Decimal("1000000000000")  # enough that no buy in any section is ever refused
QTY = Decimal("0.5")
TARGETS = {
    "group_commit_ratio": ">= 10",
    "recovery_100k_s": "<= 2",
    "reconcile_1000_ms": "<= 200",
}
BUILD_FLAG = "--build-crashed-ledger"


# -- helpers ----------------------------------------------------------------------------------
def symbol(i: int) -> str:
    return f"S{i:04d}/USDT"


def make_fill(tag: str, i: int, sym: str, at: float) -> Fill:
    """A buy with a unique fill id; price varies a little so average prices move."""
    price = Decimal(100 + i % 97) + Decimal(i % 13) / 100
    return Fill(f"{tag}-{i}", f"o-{tag}-{i}", sym, Side.BUY, QTY, price, Decimal("0.01"), at)


def position_settings(database: Path, **extra: Any) -> PositionActor.Settings:
    return PositionActor.Settings(
        database=str(database), starting_cash=CASH, reconcile_interval=3600, **extra
    )


def single_positions_tree(settings: PositionActor.Settings) -> SupervisorSpec:
    """Just the position actor, without sources (``sources=()``) to isolate its own cost."""
    spec = ChildSpec("positions", factory=lambda: PositionActor(settings))
    return SupervisorSpec(children=(spec,))


def fs_type(path: Path) -> str:
    """The file system holding ``path`` (tmpfs would make every fsync free)."""
    best, kind = "", "?"
    target = str(path.resolve())
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, part.fstype
    return kind


def _actor(rt: Runtime, name: str) -> Any:
    return rt.cell(name).actor


# -- 1. group commit --------------------------------------------------------------------------
def measure_group_commit(
    directory: Path, *, producers: int, per_producer: int, window: int
) -> dict[str, float]:
    settings = position_settings(directory / "group.db", sources=())
    rt = Runtime(ask_timeout=30)
    rt.start(single_positions_tree(settings))
    try:
        now = time.time()
        for i in range(100):  # warm-up, not timed: first pages, first commit
            rt.ask("positions", RecordFill(make_fill("warm", i, symbol(i % 50), now)), timeout=30)
        work = [
            [make_fill(f"p{k}", j, symbol((k * per_producer + j) % 50), now)
             for j in range(per_producer)]
            for k in range(producers)
        ]
        commits_before = _actor(rt, "positions").commits
        errors: list[BaseException] = []
        recorded = [0] * producers
        go = threading.Barrier(producers + 1)

        def produce(k: int) -> None:
            ask_future = rt.ask_future
            outstanding: deque[Any] = deque()
            ok = 0
            try:
                go.wait()
                for fill in work[k]:
                    outstanding.append(ask_future("positions", RecordFill(fill)))
                    if len(outstanding) >= window:
                        ok += isinstance(outstanding.popleft().get(timeout=30), FillRecorded)
                while outstanding:
                    ok += isinstance(outstanding.popleft().get(timeout=30), FillRecorded)
            except BaseException as exc:
                errors.append(exc)
            recorded[k] = ok

        threads = [threading.Thread(target=produce, args=(k,), daemon=True)
                   for k in range(producers)]
        for thread in threads:
            thread.start()
        go.wait()
        start, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if errors:
            raise RuntimeError(f"group commit producer failed: {errors[0]!r}") from errors[0]
        commits = _actor(rt, "positions").commits - commits_before
        total = sum(recorded)
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio(), timeout=30)
        if total != producers * per_producer or snap.seq != total + 100:
            raise RuntimeError(f"recorded {total} fills, ledger at seq {snap.seq}")
    finally:
        rt.stop()
    return {
        "fills_per_s": total / elapsed,
        "group_fills": total,
        "group_seconds": elapsed,
        "group_commits": commits,
        "group_mean_batch": total / max(commits, 1),
        "group_cpu_us_per_fill": cpu / total * 1e6,  # all threads; ~wall per fill: CPU-bound
        "group_producers": producers,
        "group_window": window,
    }


def measure_fsync(directory: Path, count: int = 200) -> float:
    """Mean latency of a small write + ``os.fsync`` in ``directory``, in ms (for context)."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 128)
            os.fsync(fd)
        return (time.perf_counter() - start) / count * 1e3
    finally:
        os.close(fd)
        path.unlink()


# -- 2. baseline: one transaction per fill ------------------------------------------------------
def measure_baseline(directory: Path, *, count: int, max_seconds: float) -> dict[str, float]:
    ledger = Ledger(directory / "baseline.db", starting_cash=CASH)
    ledger.open()
    try:
        now = time.time()
        fills = [make_fill("b", i, symbol(i % 50), now) for i in range(count + 20)]
        for fill in fills[:20]:  # warm-up, as for the group commit
            ledger.record([fill], now)
        done = 0
        start = time.perf_counter()
        deadline = start + max_seconds
        for fill in fills[20:]:
            results, _ = ledger.record([fill], time.time())
            if not isinstance(results[0], FillRecorded):
                raise RuntimeError(f"baseline fill refused: {results[0]}")
            done += 1
            if (done & 63) == 0 and time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - start
    finally:
        ledger.close()
    return {
        "baseline_fills_per_s": done / elapsed,
        "baseline_fills": done,
        "baseline_seconds": elapsed,
    }


# -- 3. recovery after kill -9 ------------------------------------------------------------------
def build_crashed_ledger(path: Path, fills: int, symbols: int, batch: int) -> None:
    """In a child process: record ``fills`` fills, then SIGKILL ourselves (no close)."""
    ledger = Ledger(path, starting_cash=CASH)
    ledger.open()
    now = time.time()
    start = time.perf_counter()
    for first in range(0, fills, batch):
        chunk = [make_fill("r", i, symbol(i % symbols), now + i * 1e-3)
                 for i in range(first, min(first + batch, fills))]
        ledger.record(chunk, now)
    wal = Path(f"{path}-wal")
    info = {"build_seconds": time.perf_counter() - start, "seq": ledger.seq,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0}
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9: nothing is closed or checkpointed


def _time_start(settings: PositionActor.Settings) -> tuple[float, PortfolioSnapshot]:
    start = time.perf_counter()
    rt = Runtime(ask_timeout=30)
    try:
        rt.start(single_positions_tree(settings))
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio(), timeout=30)
        elapsed = time.perf_counter() - start
    finally:
        rt.stop()  # closes the ledger cleanly (checkpoints the WAL): not timed
    return elapsed, snap


def measure_recovery(directory: Path, *, fills: int, symbols: int) -> dict[str, float]:
    path = directory / "crashed.db"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), BUILD_FLAG, str(path), str(fills),
         str(symbols)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != -signal.SIGKILL or not proc.stdout.strip():
        raise RuntimeError(f"ledger builder ended with {proc.returncode}: {proc.stderr[-2000:]}")
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    wal = Path(f"{path}-wal")
    wal_left = wal.stat().st_size if wal.exists() else 0
    settings = position_settings(path, sources=())
    crashed_s, snap = _time_start(settings)
    if snap.seq != fills or len(snap.positions) != min(symbols, fills):
        raise RuntimeError(f"recovered seq {snap.seq}, {len(snap.positions)} positions")
    clean_s, snap = _time_start(settings)  # the previous stop closed it cleanly
    if snap.seq != fills:
        raise RuntimeError(f"reopened at seq {snap.seq}")
    return {
        "recovery_100k_s": crashed_s,
        "recovery_100k_clean_s": clean_s,
        "recovery_fills": fills,
        "recovery_positions": len(snap.positions),
        "recovery_wal_bytes": wal_left,
        "recovery_build_s": float(built["build_seconds"]),
    }


# -- 4. reconciliation of 1,000 positions -------------------------------------------------------
class _Sink(SupervisedActor):
    """Stands in for the breaker and the alerts actor: takes what it is told, keeps nothing."""

    def on_receive(self, message: Any) -> Any:
        return None


def ledger_tree(directory: Path) -> SupervisorSpec:
    ps = position_settings(directory / "ledger.db")

    def source(cls: type[Any], filename: str) -> Callable[[], SupervisedActor]:
        ss = SourceSettings(path=str(directory / filename), starting_cash=CASH)
        return lambda: cls(ss)

    ledger = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=(
            ChildSpec("positions", factory=lambda: PositionActor(ps)),
            ChildSpec("trade_manager", factory=source(TradeManagerSource, "trade_manager.json")),
            ChildSpec("paper_wallet", factory=source(PaperWalletSource, "paper_wallet.yaml")),
            ChildSpec("positions_log", factory=source(PositionsLogSource, "positions.log")),
        ),
    )
    return SupervisorSpec(children=(
        ChildSpec("alerts", factory=_Sink),
        ChildSpec("breaker", factory=_Sink),
        ChildSpec("ledger", supervisor=ledger),
    ))


def measure_reconcile(directory: Path, *, positions: int, rounds: int) -> dict[str, float]:
    rt = Runtime(ask_timeout=60)
    rt.start(ledger_tree(directory))
    try:
        now = time.time()
        outstanding: deque[Any] = deque()
        for i in range(positions):  # one buy per symbol: ``positions`` open positions
            fill = make_fill("rc", i, symbol(i), now + i * 1e-3)
            outstanding.append(rt.ask_future("positions", RecordFill(fill)))
            if len(outstanding) >= 256:
                outstanding.popleft().get(timeout=60)
        while outstanding:
            outstanding.popleft().get(timeout=60)
        first: ReconcileReport = rt.ask("positions", Reconcile("bench warm-up"), timeout=60)
        times: list[float] = []
        conflicts = 0
        for _ in range(rounds):
            start = time.perf_counter()
            report: ReconcileReport = rt.ask("positions", Reconcile("bench"), timeout=60)
            times.append(time.perf_counter() - start)
            conflicts += len(report.conflicts)
        snap: PortfolioSnapshot = rt.ask("positions", GetPortfolio(), timeout=60)
        if len(snap.positions) != positions or len(report.checked) != 3:
            raise RuntimeError(f"{len(snap.positions)} positions, checked {report.checked}")
    finally:
        rt.stop()
    return {
        "reconcile_1000_ms": statistics.median(times) * 1e3,
        "reconcile_min_ms": min(times) * 1e3,
        "reconcile_max_ms": max(times) * 1e3,
        "reconcile_rounds": rounds,
        "reconcile_positions": positions,
        "reconcile_first_conflicts": len(first.conflicts),
        "reconcile_conflicts": conflicts,
    }


# -- running ------------------------------------------------------------------------------------
def run(scale: float, producers: int, window: int, parent: str | None) -> dict[str, Any]:
    small = min(scale, 1.0)
    per_producer = max(50, int(12_000 * scale))
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-positions-", dir=parent) as tmp:
        base = Path(tmp)
        result["fs"] = fs_type(base)
        result["fsync_ms"] = measure_fsync(base)
        for name in ("group", "baseline", "recovery", "reconcile"):
            (base / name).mkdir()
        result.update(measure_group_commit(
            base / "group", producers=producers, per_producer=per_producer, window=window))
        result.update(measure_baseline(
            base / "baseline", count=max(100, int(10_000 * scale)), max_seconds=10.0))
        result["group_commit_ratio"] = result["fills_per_s"] / result["baseline_fills_per_s"]
        result.update(measure_recovery(
            base / "recovery", fills=max(1000, int(100_000 * small)),
            symbols=max(10, int(1000 * small))))
        result.update(measure_reconcile(
            base / "reconcile", positions=max(10, int(1000 * small)),
            rounds=max(3, int(9 * scale))))
    result["targets"] = TARGETS
    result["met"] = {
        "group_commit_ratio": result["group_commit_ratio"] >= 10,
        "recovery_100k_s": result["recovery_100k_s"] <= 2,
        "reconcile_1000_ms": result["reconcile_1000_ms"] <= 200,
    }
    return result


def print_table(r: dict[str, Any]) -> None:
    def ok(key: str) -> str:
        return "met" if r["met"][key] else "MISSED"

    rows = [
        ("group commit", f"{r['fills_per_s']:,.0f} fills/s", "",
         f"{r['group_fills']:,} fills, {r['group_producers']} producers x window "
         f"{r['group_window']}, {r['group_commits']:,} commits "
         f"(mean batch {r['group_mean_batch']:.1f}), "
         f"{r['group_cpu_us_per_fill']:.1f} us CPU/fill"),
        ("baseline (1 tx/fill)", f"{r['baseline_fills_per_s']:,.0f} fills/s", "",
         f"{r['baseline_fills']:,} fills in {r['baseline_seconds']:.2f} s; "
         f"raw fsync {r['fsync_ms']:.3f} ms"),
        ("group commit ratio", f"{r['group_commit_ratio']:.1f} x",
         f">= 10 x  {ok('group_commit_ratio')}", ""),
        ("recovery, kill -9", f"{r['recovery_100k_s']:.3f} s",
         f"<= 2 s  {ok('recovery_100k_s')}",
         f"{r['recovery_fills']:,} fills, {r['recovery_positions']:,} positions, "
         f"WAL left {r['recovery_wal_bytes'] / 1e6:.1f} MB"),
        ("recovery, clean close", f"{r['recovery_100k_clean_s']:.3f} s", "", ""),
        ("reconcile", f"{r['reconcile_1000_ms']:.1f} ms",
         f"<= 200 ms  {ok('reconcile_1000_ms')}",
         f"median of {r['reconcile_rounds']}, {r['reconcile_positions']:,} positions x 3 "
         f"sources, min {r['reconcile_min_ms']:.1f} / max {r['reconcile_max_ms']:.1f} ms"),
    ]
    print(f"position actor benchmark (temp files on {r['fs']})")
    print(f"{'measure':<24}{'figure':>18}   {'target':<20}notes")
    for name, figure, target, notes in rows:
        print(f"{name:<24}{figure:>18}   {target:<20}{notes}")
    if r["reconcile_conflicts"]:
        print(f"warning: timed reconciliations found {r['reconcile_conflicts']} conflicts")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == BUILD_FLAG:  # the crash child of section 3
        fills, symbols = int(sys.argv[3]), int(sys.argv[4])
        build_crashed_ledger(Path(sys.argv[2]), fills, symbols, batch=5000)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the counts")
    parser.add_argument("--producers", type=int, default=8, help="group-commit producers")
    parser.add_argument("--window", type=int, default=64, help="outstanding asks per producer")
    parser.add_argument("--dir", default=None, help="where to make the temporary directories")
    args = parser.parse_args()
    if args.scale <= 0 or args.producers < 1 or args.window < 1:
        parser.error("--scale, --producers and --window must be positive")
    logging.basicConfig(level=logging.WARNING)
    result = run(args.scale, args.producers, args.window, args.dir)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
