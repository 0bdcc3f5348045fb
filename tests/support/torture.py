"""Process torture: ``botvisor run`` as a real subprocess, hurt the ways a host hurts it.

A :class:`Rig` is a directory with a copy of the shipped config (market sped up, breaker
recovery shortened, as in test_run_kill9) and the ``state/`` the runs leave. A
:class:`Bot` is one ``botvisor run`` on it: stderr read line by line with the time each
line came, and :meth:`Bot.wait_serving` measuring *recovery*: process start to serving,
which is the control socket answering ``status`` and the executor's start-up venue sync
having checked the ledger (its ``venue sync:`` line).

Each scenario is a function of a rig (and a seed, and a scale) returning a
:class:`Outcome`: what was injected, the recovery times, the runs' exit codes, and the
offline audit (:func:`actors.reliability.audit.audit_state`) of what the runs left. The tests
(tests/test_rel_torture_*.py) run the short versions; bench/reliability.py runs them at a
scale set by flags.

Faults: SIGKILL at random moments (during start-up too); SIGSTOP then SIGCONT; the state
directory a tmpfs that is filled up, or remounted read-only while the bot runs; state
files deleted or damaged between runs; a second instance started beside a running one.
A fault that needs ``mount`` (root, CAP_SYS_ADMIN) raises :class:`MountUnavailable` when
it is not permitted, so a test can skip cleanly.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actors.common.polling import poll_until
from actors.common.raw_config import child_node
from actors.reliability.audit import AuditReport, audit_state
from supervisor.host.control_protocol import ControlClient, ControlError, socket_path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config.yaml"
SYNC_LINE = re.compile(r"venue sync: ")
POLL = 0.01  # seconds between looks at a subprocess's progress
START_TIMEOUT = 60.0  # a start on a loaded machine (the target is 3 s: see the bench)
TRADE_TIMEOUT = 20.0  # for a fill once serving (a few are made every second)
SOURCE_FILES = ("trade_manager.json", "paper_wallet.yaml", "positions.log")
STATE_FILES = ("ledger.db", "paper_exchange.db", "breaker.db", *SOURCE_FILES)


class MountUnavailable(Exception):
    """``mount`` is not permitted here (not root, or no CAP_SYS_ADMIN)."""


# -- the rig -----------------------------------------------------------------------------------
def _settings(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = child_node(raw, name).setdefault("settings", {})
    return found


@dataclass
class Rig:
    """A directory with ``config.yaml`` and the ``state/`` its runs share."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @classmethod
    def create(cls, directory: Path, *, speed: int = 6000) -> Rig:
        """The shipped config with these changes, so that every run trades at once and
        keeps trading across restarts: ``market.speed`` (6000: 100 bars a real second); the
        breaker's recovery 120 s -> 1 s (at most 2 s), and its triggers that hold for the
        rest of a run or a day once tripped off (drawdown from a peak that survives
        restarts, daily loss, volatility: the built-in market starts again with its crash
        in every process). The loss-streak, API-error, exposure, liquidity and resource
        triggers stay, so the breaker still opens and closes during the runs."""
        raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
        _settings(raw, "market")["speed"] = speed
        breaker = _settings(raw, "breaker")
        breaker.update(recovery_timeout=1, max_recovery_timeout=2)
        for trigger in ("drawdown", "daily_loss", "volatility"):
            breaker[trigger] = {**breaker.get(trigger, {}), "enabled": False}
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "state").mkdir(exist_ok=True)
        (directory / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False),
                                               encoding="utf-8")
        return cls(directory)

    def audit(self) -> AuditReport:
        return audit_state(self.config, self.directory)

    def copy_state_from(self, other: Rig) -> None:
        for item in other.state.iterdir():
            if item.is_file():
                shutil.copy2(item, self.state / item.name)

    def venue_fill_count(self) -> int:
        import sqlite3

        path = self.state / "paper_exchange.db"
        if not path.exists():
            return 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                return int(db.execute("SELECT COUNT(*) FROM fills").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return 0


# -- one run -----------------------------------------------------------------------------------
class Bot:
    """One ``botvisor run --config`` of a rig, as a real subprocess (its own process group)."""

    def __init__(self, rig: Rig, *args: str) -> None:
        env = dict(os.environ)
        env.pop("RUNTIME_DIRECTORY", None)  # the control socket goes beside the config
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self.rig = rig
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.host.cli", "run", "--config", str(rig.config),
             *args],
            cwd=rig.directory, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace")
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(text for _, text in self.lines)

    def line_time(self, pattern: re.Pattern[str]) -> float | None:
        with self._lock:
            for at, text in self.lines:
                if pattern.search(text):
                    return at
        return None

    def hold(self, seconds: float) -> None:
        """Let the run go on for ``seconds``, or until it ends by itself."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=seconds)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_serving(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds from process start to serving: the control socket answers ``status`` and
        the venue sync has checked the ledger. Raises AssertionError (with the output) if
        the process ends or the timeout passes first."""
        client = ControlClient(socket_path(self.rig.config, {}), timeout=2.0)
        answered: float | None = None
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"the bot exited {self.proc.returncode} before serving:"
                                     f"\n{self.tail()}")
            if answered is None:
                with contextlib.suppress(ControlError, OSError):
                    if client.request("status").get("ok", False):
                        answered = time.monotonic()
            synced = self.line_time(SYNC_LINE)
            if answered is not None and synced is not None:
                return max(answered, synced) - self.started
            time.sleep(POLL)
        raise AssertionError(f"not serving within {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        with self._lock:
            return "\n".join(text for _, text in self.lines[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL and reap; the exit status (-9 unless it had already ended)."""
        self.signal(signal.SIGKILL)
        return self.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (continuing it first if stopped) and reap; its exit status."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {timeout}s of SIGTERM:\n{self.tail()}"
                                 ) from None

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def wait_for(check: Callable[[], bool], timeout: float, what: str, bot: Bot | None = None
             ) -> None:
    try:
        poll_until(check, timeout=timeout, what=what, poll=POLL,
                   give_up=None if bot is None else lambda: not bot.alive())
    except TimeoutError:
        raise AssertionError(f"{what} not within {timeout}s" +
                             (f"\n{bot.tail()}" if bot is not None else "")) from None


# -- what a scenario reports -------------------------------------------------------------------
@dataclass
class Outcome:
    """What one scenario did and found. ``ok``: after its runs the ledger, the sources and
    the exchange record agree (``audit.clean``), or the bot refused to trade and its output
    says why."""

    name: str
    faults: int = 0  # faults injected other than kills
    kills: int = 0
    runs: int = 0
    recoveries: list[float] = field(default_factory=list)  # start to serving, each run
    after_kill: list[float] = field(default_factory=list)  # those of runs after a SIGKILL
    exit_codes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what went wrong beyond the audit
    audit: AuditReport | None = None  # the last audit
    fills_checked: int = 0  # over every audit made (after each kill, and the last)
    orders_checked: int = 0
    output: str = ""  # the last run's stderr

    def audit_of(self, rig: Rig) -> AuditReport:
        report = self.audit = rig.audit()
        self.fills_checked += report.fills_checked
        self.orders_checked += report.orders_checked
        return report

    @property
    def violations(self) -> int:
        """Invariant violations: the last audit's (unless the bot refused and said why),
        and every problem beyond it; 0 when ``ok``."""
        if self.ok:
            return 0
        audit = 0 if self.audit is None or self.refused_and_said_why else len(
            self.audit.violations) + len(self.audit.missing)
        return max(1, audit + len(self.problems))

    @property
    def refused_and_said_why(self) -> bool:
        reason = self.audit.refused_to_trade if self.audit else None
        if reason is None:
            return False
        why = reason.split(": ", 1)[-1]
        return why[:40] in self.output

    @property
    def ok(self) -> bool:
        if self.problems or self.audit is None:
            return False
        return self.audit.clean or self.refused_and_said_why

    def describe(self) -> str:
        audit = self.audit
        lines = [f"{self.name}: runs {self.runs}, kills {self.kills}, faults {self.faults}, "
                 f"exit codes {self.exit_codes}"]
        lines += [f"  problem: {p}" for p in self.problems]
        if audit is not None:
            lines.append(f"  audit clean={audit.clean} refused={audit.refused_to_trade}")
            lines += [f"  violation: {v}" for v in audit.violations[:10]]
            lines += [f"  missing: {m}" for m in audit.missing]
        lines.append("  last output:\n" + "\n".join(self.output.splitlines()[-25:]))
        return "\n".join(lines)


def _finish(rig: Rig, outcome: Outcome, *, trade: bool = True) -> Outcome:
    """A last, clean run (serving, a fill if ``trade``, SIGTERM), then the audit."""
    bot = Bot(rig)
    outcome.runs += 1
    try:
        outcome.recoveries.append(bot.wait_serving())
    except AssertionError as exc:
        outcome.problems.append(f"last run: {exc}")
    traded = True
    if trade and bot.alive():
        before = rig.venue_fill_count()
        try:
            wait_for(lambda: rig.venue_fill_count() > before, TRADE_TIMEOUT,
                     "a fill in the last run", bot)
        except AssertionError:
            traded = False
    code = bot.stop() if bot.alive() else bot.wait()
    outcome.exit_codes.append(code)
    outcome.output = bot.output
    if code != 0:
        outcome.problems.append(f"the last run exited {code}")
    outcome.audit_of(rig)
    if not traded and outcome.audit.refused_to_trade is None:
        outcome.problems.append(f"the last run made no fill within {TRADE_TIMEOUT}s and the "
                                "state says no refusal")
    return outcome


def warm_up(rig: Rig) -> float:
    """One short run that trades a little and stops cleanly: state for the faults to hit.
    Returns its start-up time (start to serving from no state: the baseline of recovery)."""
    bot = Bot(rig)
    took = bot.wait_serving()
    wait_for(lambda: rig.venue_fill_count() >= 3, START_TIMEOUT, "three fills", bot)
    code = bot.stop()
    assert code == 0, bot.tail()
    return took


# -- the scenarios -----------------------------------------------------------------------------
def kill_storm(rig: Rig, *, kills: int, seed: int, early: float = 0.25,
               max_wait: float = 1.5, deadline: float | None = None,
               progress: Callable[[], None] | None = None) -> Outcome:
    """``kills`` runs each killed with SIGKILL at a random moment: a share ``early`` during
    start-up (before serving), the rest 0..``max_wait`` s after serving. After each kill the
    audit may find only venue fills the ledger lacks (the next start's venue sync records
    them); the last, clean run must leave everything agreeing. Stops killing at
    ``deadline`` (time.monotonic()); ``progress`` is called after each kill."""
    rng = random.Random(seed)
    outcome = Outcome("kill_storm")
    killed = False  # the run before this one was killed
    for number in range(kills):
        if deadline is not None and time.monotonic() > deadline:
            break
        bot = Bot(rig)
        outcome.runs += 1
        if rng.random() < early:
            time.sleep(rng.uniform(0.05, 1.0))  # a random moment of start-up
        else:
            try:
                took = bot.wait_serving()
            except AssertionError as exc:
                outcome.problems.append(f"run {number}: {exc}")
                bot.kill()
                break
            outcome.recoveries.append(took)
            if killed:
                outcome.after_kill.append(took)
            time.sleep(rng.uniform(0, max_wait))  # a random moment of trading
        outcome.exit_codes.append(bot.kill())
        outcome.kills += 1
        killed = True
        report = outcome.audit_of(rig)
        bad = [v for v in report.violations if "lacks exchange fill" not in v]
        outcome.problems += [f"after kill {number}: {v}" for v in bad + report.missing]
        if progress is not None:
            progress()
    served = len(outcome.recoveries)
    _finish(rig, outcome)
    if killed and len(outcome.recoveries) > served:
        outcome.after_kill.append(outcome.recoveries[-1])  # the last run's, after a kill
    return outcome


def stop_and_continue(rig: Rig, *, pauses: int, seed: int, max_pause: float = 2.0) -> Outcome:
    """One run SIGSTOPped ``pauses`` times for up to ``max_pause`` s each and continued."""
    rng = random.Random(seed)
    outcome = Outcome("stop_and_continue")
    bot = Bot(rig)
    outcome.runs += 1
    try:
        outcome.recoveries.append(bot.wait_serving())
        for _ in range(pauses):
            time.sleep(rng.uniform(0.1, 0.6))
            bot.signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.1, max_pause))
            bot.signal(signal.SIGCONT)
            outcome.faults += 1
        before = rig.venue_fill_count()
        wait_for(lambda: rig.venue_fill_count() > before, START_TIMEOUT,
                 "a fill after the pauses", bot)
    except AssertionError as exc:
        outcome.problems.append(str(exc))
    code = bot.stop() if bot.alive() else bot.wait()
    outcome.exit_codes.append(code)
    if code != 0:
        outcome.problems.append(f"the paused run exited {code}:\n{bot.tail()}")
    return _finish(rig, outcome)


def second_instance(rig: Rig, *, timeout: float = 20.0) -> Outcome:
    """A second ``botvisor run`` on the same config beside a running one: it must exit 1
    with a message naming the state directory and the pid holding it, and the first goes
    on trading alone."""
    outcome = Outcome("second_instance", faults=1)
    first = Bot(rig)
    outcome.runs += 1
    try:
        outcome.recoveries.append(first.wait_serving())
        second = Bot(rig, "--duration", "5")
        outcome.runs += 1
        try:
            code = second.wait(timeout)
        except subprocess.TimeoutExpired:
            second.kill()
            code = -1
            outcome.problems.append(f"the second instance was still running after {timeout}s")
        outcome.exit_codes.append(code)
        said = second.output
        if code != 1:
            outcome.problems.append(f"the second instance exited {code}, not 1")
        if str(first.proc.pid) not in said or "state" not in said:
            outcome.problems.append("the second instance did not name the state directory "
                                    f"and the pid {first.proc.pid} holding it:\n{said[-2000:]}")
        before = rig.venue_fill_count()
        wait_for(lambda: rig.venue_fill_count() > before, START_TIMEOUT,
                 "the first instance trading on", first)
    except AssertionError as exc:
        outcome.problems.append(str(exc))
    code = first.stop() if first.alive() else first.wait()
    outcome.exit_codes.append(code)
    if code != 0:
        outcome.problems.append(f"the first instance exited {code}")
    return _finish(rig, outcome)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes() if path.exists() else b""
    if how == "delete":
        for f in path.parent.glob(path.name + "*"):
            f.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(data[: max(1, len(data) // 2)])
    elif how == "garble":
        path.write_bytes(bytes(b ^ 0x5A for b in data[:64]) + data[64:])
    elif how == "garble_middle_line":  # positions.log: one line in the middle made nonsense
        lines = data.splitlines(keepends=True)
        assert len(lines) >= 3, f"{path} has too few lines to damage one in the middle"
        lines[len(lines) // 2] = b'{"type": "fill", "seq": gar\xffbled\n'
        path.write_bytes(b"".join(lines))
    else:
        raise ValueError(how)


def damaged_state(rig: Rig, *, filename: str = "", how: str = "",
                  damages: tuple[tuple[str, str], ...] = ()) -> Outcome:
    """State files deleted or damaged between runs (the bot stopped): ``filename`` with
    ``how``, and/or every (file, how) of ``damages``; then a run. A projection must be
    rebuilt from the ledger with a warning naming the file; lost ledger, breaker or venue
    state must be named too, and the bot then refuse to trade and say why."""
    todo = ((filename, how),) if filename else ()
    todo += damages
    outcome = Outcome("damaged_state:" + ",".join(f"{f}:{h}" for f, h in todo),
                      faults=len(todo))
    for name, kind in todo:
        path = rig.state / name
        assert path.exists(), f"{path} to damage does not exist"
        _damage(path, kind)
    outcome = _finish(rig, outcome, trade=all(name in SOURCE_FILES for name, _ in todo))
    for name, _ in todo:
        named = re.compile(rf"(WARNING|ERROR|CRITICAL).*{re.escape(name)}")
        if not any(named.search(line) for line in outcome.output.splitlines()):
            outcome.problems.append(f"no warning naming {name} in the run's output")
    return outcome


@contextlib.contextmanager
def tmpfs_state(rig: Rig, size: str) -> Iterator[Path]:
    """The rig's state directory as a tmpfs of ``size`` (its files copied in and back
    out); raises MountUnavailable when mounting is not permitted."""
    keep = rig.directory / "state.keep"
    shutil.copytree(rig.state, keep)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                             str(rig.state)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(keep)
        raise MountUnavailable(result.stderr.strip() or "mount failed")
    try:
        for item in keep.iterdir():
            shutil.copy2(item, rig.state / item.name)
        yield rig.state
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(rig.state)], capture_output=True,
                       check=False)
        saved = rig.directory / "state.out"
        shutil.copytree(rig.state, saved, ignore=shutil.ignore_patterns("filler*"))
        if subprocess.run(["umount", str(rig.state)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(rig.state)], capture_output=True, check=False)
        shutil.rmtree(keep)
        for item in saved.iterdir():
            shutil.copy2(item, rig.state / item.name)
        shutil.rmtree(saved)


def _no_fatal_signal(code: int, bot: Bot, outcome: Outcome, what: str) -> None:
    if code < 0:
        outcome.problems.append(f"{what}: the process died of signal {-code} "
                                f"({signal.Signals(-code).name}):\n{bot.tail(15)}")


def read_only_state(rig: Rig, *, hold: float = 2.0) -> Outcome:
    """The state directory made read-only twice: under a running bot (a read-only bind
    mount over it, so every file opened from then on is read-only: the kernel refuses to
    remount a filesystem read-only while files are open on it for writing), and before a
    run starts (the tmpfs itself remounted ``ro``). Each is an I/O failure the bot logs,
    naming the read-only state, and survives or exits from non-zero: never a signal. Once
    writable again a run recovers and everything agrees."""
    outcome = Outcome("read_only_state", faults=2)
    with tmpfs_state(rig, "64m") as state:
        bot = Bot(rig)
        outcome.runs += 1
        bound = False
        try:
            outcome.recoveries.append(bot.wait_serving())
            for args in (["--bind", str(state), str(state)],
                         ["-o", "remount,ro,bind", str(state)]):
                subprocess.run(["mount", *args], check=True, capture_output=True)
                bound = True
            bot.hold(hold)
        except AssertionError as exc:
            outcome.problems.append(str(exc))
        finally:
            code = bot.stop() if bot.alive() else bot.wait()
            if bound:
                subprocess.run(["umount", str(state)], capture_output=True, check=False)
        outcome.exit_codes.append(code)
        _no_fatal_signal(code, bot, outcome, "state read-only under a running bot")
        _said_read_only(bot, outcome, "under a running bot")

        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True,
                       capture_output=True)
        bot = Bot(rig)
        outcome.runs += 1
        try:  # it may well never serve: wait for it to say why, or to end
            with contextlib.suppress(AssertionError):
                wait_for(lambda: _read_only_said(bot), START_TIMEOUT / 4,
                         "a word of the read-only state", bot)
            bot.hold(hold)
        finally:
            code = bot.stop() if bot.alive() else bot.wait()
            subprocess.run(["mount", "-o", "remount,rw", str(state)], capture_output=True,
                           check=False)
        outcome.exit_codes.append(code)
        _no_fatal_signal(code, bot, outcome, "state read-only at start")
        _said_read_only(bot, outcome, "at start")
    return _finish(rig, outcome)


def _read_only_said(bot: Bot) -> bool:
    said = bot.output.lower()
    return "read-only" in said or "readonly" in said


def _said_read_only(bot: Bot, outcome: Outcome, when: str) -> None:
    if not _read_only_said(bot):
        outcome.problems.append(f"the read-only state directory ({when}) was never "
                                f"reported:\n{bot.tail(15)}")


def full_disk(rig: Rig, *, hold: float = 2.0, size: str = "16m") -> Outcome:
    """The state directory's filesystem filled up under a running bot for ``hold`` s: the
    failure is logged, never a signal, nothing acknowledged is lost; after space is freed
    a run recovers and everything agrees."""
    outcome = Outcome("full_disk", faults=1)
    with tmpfs_state(rig, size) as state:
        bot = Bot(rig)
        outcome.runs += 1
        filler = state / "filler"
        try:
            outcome.recoveries.append(bot.wait_serving())
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as handle:
                block = b"\0" * 65536
                while True:
                    handle.write(block)
            bot.hold(hold)
        except AssertionError as exc:
            outcome.problems.append(str(exc))
        finally:
            filler.unlink(missing_ok=True)
        code = bot.stop() if bot.alive() else bot.wait()
        outcome.exit_codes.append(code)
        _no_fatal_signal(code, bot, outcome, "full disk")
        # a full disk is not damage: no state file may be moved aside (and so lost) for it
        aside = sorted(p.name for p in state.iterdir() if ".damaged" in p.name)
        if aside:
            outcome.problems.append(f"a full disk was taken for damage: moved aside {aside}")
    return _finish(rig, outcome)


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "kill_storm": kill_storm,
    "stop_and_continue": stop_and_continue,
    "second_instance": second_instance,
    "damaged_state": damaged_state,
    "read_only_state": read_only_state,
    "full_disk": full_disk,
}
