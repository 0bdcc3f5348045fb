"""The benchmark scripts still run against today's code: each at a tiny scale, as a real
subprocess, printing its JSON with its headline figures. No figure is judged here (speed
lives in the benchmarks); this catches a script that an API change broke."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RUNS = {
    "runtime.py": (["--scale", "0.01"], ("tell_ratio", "restart_p99_ms", "ask_rtt_us")),
    "positions.py": (["--scale", "0.01"], ("group_commit_ratio", "recovery_100k_s",
                                           "reconcile_1000_ms")),
    "breaker.py": (["--scale", "0.01"], ("check_us", "idle_cpu_pct")),
    "indicators.py": (["--quick", "--repeat", "1"], ("indicators", "runner_us_per_candle")),
    "pipeline.py": (["--symbols", "5", "--seconds", "0.5", "--ramp", "1000",
                     "--step-seconds", "0.3", "--baseline-seconds", "0.2",
                     "--budget-seconds", "20"],
                    ("tick_to_order_p99_ms", "sustained_ticks_per_s")),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_a_benchmark_runs_and_prints_its_figures(script: str, tmp_path: Path) -> None:
    args, keys = RUNS[script]
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--json", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=110,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    missing = [k for k in keys if figures.get(k) is None]
    assert missing == [], missing
