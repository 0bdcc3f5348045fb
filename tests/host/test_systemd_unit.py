"""systemd/botvisor.service: it verifies, it is hardened, and the bot runs under its limits.

``systemd-analyze verify`` and ``systemd-analyze security --offline=true`` run without a
running systemd. Verify insists that ExecStart's binary exists, so it checks a copy of the
unit whose ExecStart points at this checkout's venv instead of /opt/botvisor.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.host.config import load_config
from supervisor.spec import ChildSpec
from tests.conftest import REPO

UNIT = REPO / "systemd" / "botvisor.service"
SHIPPED_BOTVISOR = "/opt/botvisor/.venv/bin/botvisor"
VENV_BOTVISOR = Path(sys.executable).parent / "botvisor"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (it comes with systemd); cannot check the unit",
)
MAX_EXPOSURE = 2.5


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in section if k == key]
    assert len(values) == 1, f"{key}= should be set exactly once, found {values}"
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min)?", value)
    assert match, f"not a plain time span: {value!r}"
    return float(match[1]) * (60 if match[2] == "min" else 1)


def shutdown_budget(spec: ChildSpec) -> float:
    """What Runtime.stop may take at worst: each actor's shutdown, summed over the tree."""
    own = spec.shutdown
    if spec.supervisor is None:
        return own
    return own + sum(shutdown_budget(c) for c in spec.supervisor.children)


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    assert f"ExecStart={SHIPPED_BOTVISOR} " in text
    assert VENV_BOTVISOR.exists(), f"no botvisor entry point at {VENV_BOTVISOR}"
    copy = tmp_path / "botvisor.service"
    copy.write_text(text.replace(f"ExecStart={SHIPPED_BOTVISOR} ", f"ExecStart={VENV_BOTVISOR} "))
    return copy


def run_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat"}
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


@needs_analyze
def test_unit_passes_systemd_analyze_verify(unit_copy: Path) -> None:
    result = run_analyze("verify", str(unit_copy))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "botvisor.service" not in output, f"verify complained:\n{output}"


@needs_analyze
def test_unit_exposure_score_is_low(unit_copy: Path) -> None:
    result = run_analyze("security", "--offline=true", str(unit_copy))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure line in:\n{output}"
    assert float(match[1]) <= MAX_EXPOSURE, output


def test_unit_has_the_settings_the_bot_relies_on() -> None:
    unit = parse_unit(UNIT.read_text())
    service, head = unit["Service"], unit["Unit"]
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "Restart") == "on-failure"
    assert one(service, "KillMode") == "mixed"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "ExecStart") == f"{SHIPPED_BOTVISOR} run --config /etc/botvisor/config.yaml"
    assert one(service, "StateDirectory") == "botvisor"
    assert one(service, "RuntimeDirectory") == "botvisor"
    assert one(service, "WorkingDirectory") == "/var/lib/botvisor"
    assert one(service, "UMask") == "0077"
    assert one(service, "MemoryDenyWriteExecute") == "yes"
    assert one(service, "RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    assert one(service, "LoadCredential").startswith("botvisor:/etc/botvisor/")
    filters = [v for k, v in service if k == "SystemCallFilter"]
    assert filters == ["@system-service", "~@privileged @resources"]
    assert seconds(one(service, "WatchdogSec")) > 0
    # the start limit can only be reached if the restarts fit in its interval
    burst = int(one(head, "StartLimitBurst"))
    assert seconds(one(head, "StartLimitIntervalSec")) > burst * seconds(
        one(service, "RestartSec"))
    # systemd must not SIGKILL a tree that is still stopping within its own budgets
    config, spec = load_config(REPO / "config.yaml")
    budget = shutdown_budget(ChildSpec(id="root", supervisor=spec,
                                       shutdown=config.tree.shutdown))
    assert budget == 95.0, "the unit's TimeoutStopSec comment names this figure; update both"
    assert seconds(one(service, "TimeoutStopSec")) > budget


def test_botvisor_runs_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes must not break CPython or the bot's C extensions.

    The kernel's own form of it, prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) (Linux 6.3+),
    is switched on before anything of the bot is imported; then the bot runs for 2 s.
    """
    script = (
        "import ctypes, mmap, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.prctl(65, 1, 0, 0, 0) != 0:\n"  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        "    sys.exit(77)\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except PermissionError:\n"
        "    pass\n"
        "else:\n"
        "    sys.exit(78)\n"
        "from supervisor.host.cli import main\n"
        "sys.exit(main(['run', '--config', 'config.yaml', '--duration', '2']))\n"
    )
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NOTIFY_SOCKET", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode != 78, "W+X memory was still allowed: MDWE is not in force"
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stopped cleanly" in result.stderr
