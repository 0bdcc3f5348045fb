"""Shared fixtures: a runtime that is always stopped, and a real `botvisor` subprocess."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class BotProcess:
    """A `botvisor` command running as a real subprocess, with its stderr read line by line."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.host.cli", *args],
            cwd=cwd or REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> str:
        """Block until a stderr line matches ``pattern``; fail with what was seen."""
        rx = re.compile(pattern)
        for line in self.lines:
            if rx.search(line):
                return line
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                try:
                    line = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:
                    break
                self.lines.append(line)
                if rx.search(line):
                    return line
        finally:
            timer.cancel()
        raise AssertionError(f"no line matching {pattern!r}; stderr was:\n" + "\n".join(self.lines))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    def stdout(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def bot_process() -> Iterator[type[BotProcess]]:
    started: list[BotProcess] = []

    class Tracked(BotProcess):
        def __init__(self, *args: str, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    for proc in started:
        proc.kill()


@pytest.fixture(autouse=True)
def _unit_tests_start_no_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``unit`` (the fast layer: ``pytest -m unit``) runs no runtime: it
    leaves no thread behind that was not there before it."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    before = set(threading.enumerate())
    yield
    started = [t.name for t in threading.enumerate() if t not in before]
    assert not started, f"a unit test started threads: {started}"
