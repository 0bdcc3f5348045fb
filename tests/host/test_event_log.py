"""The EventLog actor writes supervision events to the log from its own thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from supervisor import (
    Backoff,
    ChildSpec,
    EventKind,
    EventRecorder,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.event_log import EventLog


class Fragile(SupervisedActor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("boom")
        return message


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        def find() -> logging.LogRecord | None:
            return next((r for r in self.records if text in r.getMessage()), None)

        with self.cond:
            self.cond.wait_for(lambda: find() is not None, timeout=timeout)
            found = find()
        if found is None:
            pytest.fail(f"no log line with {text!r}: {[r.getMessage() for r in self.records]}")
        return found


def test_event_log_logs_crash_and_restart_with_severity() -> None:
    capture = _Capture()
    logger = logging.getLogger("botvisor.events")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    rt = Runtime()
    rec = EventRecorder(rt.events)
    try:
        rt.start(
            SupervisorSpec(
                backoff=Backoff(initial=0, jitter=0),
                children=(
                    ChildSpec("events", factory=EventLog),
                    ChildSpec("fragile", factory=Fragile),
                ),
            )
        )
        rt.tell("fragile", "crash")
        rec.wait_for(EventKind.RESTARTED, "fragile")
        crashed = capture.wait_for("crashed fragile")
        assert crashed.levelno == logging.ERROR
        assert crashed.threadName.startswith("botvisor:events")
        capture.wait_for("restarted fragile")
    finally:
        rt.stop()
        logger.removeHandler(capture)


def test_event_log_filters_below_min_severity() -> None:
    capture = _Capture()
    logger = logging.getLogger("quiet.events")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    rt = Runtime()
    rec = EventRecorder(rt.events)
    settings = EventLog.Settings(logger="quiet.events", min_severity="error")
    try:
        rt.start(
            SupervisorSpec(
                backoff=Backoff(initial=0, jitter=0),
                children=(
                    ChildSpec("events", factory=lambda: EventLog(settings)),
                    ChildSpec("fragile", factory=Fragile),
                ),
            )
        )
        rt.tell("fragile", "crash")
        rec.wait_for(EventKind.RESTARTED, "fragile")
        capture.wait_for("crashed fragile")
        # the info-level restart is filtered; the error-level crash is not
        assert rt.ask("events", "ping", timeout=5) is None
        messages = [r.getMessage() for r in capture.records]
        assert not any(m.startswith("restarted") for m in messages)
    finally:
        rt.stop()
        logger.removeHandler(capture)


def test_event_log_drains_waiting_events_when_stopped() -> None:
    capture = _Capture()
    logger = logging.getLogger("drain.events")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    rt = Runtime()
    settings = EventLog.Settings(logger="drain.events")
    try:
        rt.start(
            SupervisorSpec(
                children=(
                    ChildSpec("events", factory=lambda: EventLog(settings), drain_on_stop=True),
                    ChildSpec("fragile", factory=Fragile),
                ),
            )
        )
    finally:
        rt.stop()
        logger.removeHandler(capture)
    # "fragile" stops just before the event log; its event was still waiting, and was logged
    messages = [r.getMessage() for r in capture.records]
    assert any(m.startswith("stopped fragile") for m in messages)
