"""The Prometheus endpoint, scraped over real HTTP from a running tree."""

from __future__ import annotations

import re
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import (
    Backoff,
    ChildSpec,
    EventKind,
    EventRecorder,
    Intensity,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.metrics import MetricsService
from tests.conftest import BotProcess
from tests.support.bot_helpers import redirect_state, shipped_config, write_config

WAIT = 10.0


class Worker(SupervisedActor):
    """Publishes a snapshot with metrics(); crashes on request."""

    def on_start(self) -> None:
        self.ctx.publish(Snapshot(self.ctx.incarnation))

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("on purpose")
        return "ok"


class Snapshot:
    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation

    def metrics(self) -> dict[str, object]:
        return {"equity": 1234.5, "incarnation": self.incarnation, "label": "not a number"}


class Broken:
    def metrics(self) -> dict[str, float]:
        raise ValueError("a bug in a snapshot must not break the scrape")


class Quiet(SupervisedActor):
    def on_start(self) -> None:
        self.ctx.publish(Broken())


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as reply:
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.fixture
def served() -> Iterator[tuple[Runtime, int]]:
    rt = Runtime(monitor_interval=0)
    rt.start(SupervisorSpec(
        intensity=Intensity(10, 60),
        backoff=Backoff(initial=0, jitter=0),
        children=(ChildSpec("worker", factory=Worker), ChildSpec("quiet", factory=Quiet)),
    ))
    service = MetricsService("127.0.0.1", 0)
    port = service.serve(rt)
    try:
        yield rt, port
    finally:
        service.stop()
        rt.stop()


def test_restarts_mailbox_latency_and_published_gauges(served: tuple[Runtime, int]) -> None:
    rt, port = served
    rec = EventRecorder(rt.events)
    for _ in range(5):
        assert rt.ask("worker", "hello", timeout=WAIT) == "ok"
    before = scrape(port)
    w = (("actor", "worker"),)
    assert before[("botvisor_actor_up", w)] == 1
    assert before[("botvisor_actor_restarts_total", w)] == 0
    assert before[("botvisor_handler_seconds_count", w)] >= 5
    assert before[("botvisor_handler_seconds_bucket", (("actor", "worker"), ("le", "+Inf")))] \
        == before[("botvisor_handler_seconds_count", w)]
    assert before[("botvisor_equity", w)] == 1234.5
    assert before[("botvisor_incarnation", w)] == 1
    assert ("botvisor_label", w) not in before  # not a number: left out
    assert before[("botvisor_actor_state", (("actor", "worker"), ("state", "running")))] == 1

    rt.tell("worker", "crash")
    rec.wait_for(EventKind.RESTARTED, "worker", timeout=WAIT)
    after = scrape(port)
    assert after[("botvisor_actor_restarts_total", w)] == 1
    assert after[("botvisor_incarnation", w)] == 2
    dead = ("botvisor_dead_letters_total", ())
    assert after[dead] == before[dead] + 1
    assert ("botvisor_actor_up", (("actor", "quiet"),)) in after  # its broken metrics() is skipped


def test_only_loopback_addresses_are_accepted() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MetricsService("0.0.0.0", 0)


def test_a_running_bot_serves_trading_gauges(bot_process: type[BotProcess],
                                             tmp_path: Path) -> None:
    """`botvisor run` on the shipped tree with metrics on: scrape it over HTTP."""
    raw = shipped_config()
    redirect_state(raw, tmp_path)
    raw["metrics"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    path = write_config(raw, tmp_path / "bot.yaml")
    bot = bot_process("run", "--config", str(path), cwd=tmp_path)
    line = bot.wait_for_line(r"metrics on http://127\.0\.0\.1:\d+/metrics")
    port = int(re.search(r":(\d+)/metrics", line).group(1))  # type: ignore[union-attr]
    bot.wait_for_line(r"tree is up")
    samples = scrape(port)
    p = (("actor", "positions"),)
    # The shipped starting cash, give or take the first trades' fees and moves.
    assert 9_000 < samples[("botvisor_equity", p)] < 11_000
    assert samples[("botvisor_open_positions", p)] >= 0
    assert samples[("botvisor_breaker_state", (("actor", "breaker"),))] in (0, 1, 2, 3)
    assert ("botvisor_alerts_sent", (("actor", "alerts"),)) in samples
    assert samples[("botvisor_actor_up", (("actor", "executor"),))] == 1
    bot.signal(signal.SIGTERM)
    assert bot.wait() == 0
