"""``botvisor new-strategy`` and ``botvisor strategies``, as a user runs them (real
subprocesses): the template's files pass their own test, nothing is overwritten, bad input
exits 2 naming what is at fault; the list shows the built-ins with their parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from actors.strategies.template import strategy_source
from tests.support.bot_helpers import REPO


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _botvisor(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return _run("-m", "supervisor.host.cli", *args, cwd=cwd)


def test_new_strategy_writes_a_strategy_whose_own_test_passes(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    done = _botvisor("new-strategy", "breakout_ema", "--dir", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["breakout_ema.py", "test_breakout_ema.py"]
    assert f"wrote {out / 'breakout_ema.py'}" in done.stdout
    source = (out / "breakout_ema.py").read_text(encoding="utf-8")
    assert "class BreakoutEma(Strategy):" in source
    assert "from ferro_ta import StreamingEMA" in source
    tested = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(out), cwd=out)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


def test_new_strategy_refuses_to_overwrite_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "test_idea.py").write_text("# mine\n", encoding="utf-8")
    done = _botvisor("new-strategy", "idea", "--dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr == f"botvisor new-strategy: {tmp_path / 'test_idea.py'} exists; " \
                          "not overwritten\n"
    assert not (tmp_path / "idea.py").exists()  # nothing written
    assert (tmp_path / "test_idea.py").read_text(encoding="utf-8") == "# mine\n"


def test_new_strategy_refuses_a_name_that_is_not_a_module_name_or_a_missing_dir(
        tmp_path: Path) -> None:
    for name in ("my-idea", "Idea", "class", "1st"):
        done = _botvisor("new-strategy", name, "--dir", str(tmp_path))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"botvisor new-strategy: NAME {name!r} must be"), name
    done = _botvisor("new-strategy", "idea", "--dir", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert "is not a directory" in done.stderr and str(tmp_path / "nope") in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_strategies_lists_the_built_ins_with_their_parameters() -> None:
    done = _botvisor("strategies", "--json")
    assert done.returncode == 0, done.stderr
    listed = {s["name"]: s for s in json.loads(done.stdout)}
    assert {"momentum", "mean_reversion"} <= set(listed)
    momentum = listed["momentum"]
    assert momentum["class"] == "actors.strategies.builtin:MomentumBreakout"
    assert momentum["params"][0] == {
        "name": "lookback", "type": "int", "default": 20, "low": 2, "high": 200, "step": 1,
        "log": False, "doc": "candles whose highest high a close must break"}
    text = _botvisor("strategies")
    assert text.returncode == 0
    assert "    window: int = 30  [3, 300] step 1  closes the mean is taken over" \
        in text.stdout.splitlines()


def test_the_docs_teach_the_example_new_strategy_writes() -> None:
    docs = (REPO / "docs" / "strategies.md").read_text(encoding="utf-8")
    example = docs.split("```python\n", 1)[1].split("```\n", 1)[0]
    assert example == strategy_source("ema_cross")
