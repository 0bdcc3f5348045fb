"""bench/reliability.py: its JSON has the figures the issue names, and a section whose part
is missing says "not available" instead of counting as zero faults found.

Only the quick sections run here (the torture and chaos sections are the subject of
tests/system/test_rel_torture_process.py and the chaos load's own tests).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

KEYS = ("violations", "faults_injected", "kills", "fills_checked", "fuzz_cases",
        "recovery_p50_s", "recovery_p99_s")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "bench" / "reliability.py"), *args],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)


def test_json_has_every_figure_and_missing_parts_say_so() -> None:
    done = bench("--json", "--skip", "torture", "--faults", "0", "--fuzz", "10")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in KEYS:
        assert key in result, key
    assert result["kills"] == 0 and result["recovery_p50_s"] is None  # no kill: no figure
    for name in ("chaos", "fuzz"):
        section = result["sections"][name]
        assert isinstance(section["available"], bool), name
        if not section["available"]:
            assert section["why"], name
    assert result["targets"] == {"faults_injected": 10_000, "kills": 100, "violations": 0,
                                 "recovery_p99_s": 3.0}


def test_the_table_prints_targets_beside_the_figures() -> None:
    done = bench("--skip", "torture", "--skip", "chaos", "--fuzz", "10")
    assert done.returncode == 0, done.stderr
    for words in ("faults injected", ">= 10,000", "kills survived", ">= 100",
                  "invariant violations", "recovery after kill p99", "<= 3 s",
                  "fuzz cases tried"):
        assert words in done.stdout, (words, done.stdout)


def test_bad_flags_are_refused_without_a_traceback() -> None:
    done = bench("--kills", "-1")
    assert done.returncode == 2
    assert "--kills" in done.stderr and "Traceback" not in done.stderr
