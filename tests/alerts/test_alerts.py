"""The alerts actor delivers through real apprise over HTTP to servers the tests start.

Every channel is ``json://127.0.0.1:PORT/<kind>/<token>``: apprise POSTs a JSON body to a
ThreadingHTTPServer whose handler depends on ``<kind>``: ``ok`` records and answers 200,
``e500`` answers 500, ``hang`` holds the request (bounded) before answering. A closed port
gives a refused connection. Waiting is on conditions with timeouts, never on sleeps.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import apprise
import pytest

from actors.alerts.alerts import AlertsActor
from actors.alerts.contract import AlertStats, ChannelTestResult, GetAlertStats, TestAlert
from actors.alerts.routing import AlertGate, Verdict
from actors.common.messages import Alert, Fill, Side
from actors.risk.contract import BreakerTransition
from supervisor import (
    Backoff,
    ChildSpec,
    EventKind,
    EventRecorder,
    ManualClock,
    Runtime,
    Severity,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.config import ConfigError, parse_config

TOKEN = "tok3nS3cretXYZ"  # appears in every channel URL; must never be shown
WAIT = 10.0  # upper bound for anything that should happen promptly


# -- the HTTP side -----------------------------------------------------------------------------
@dataclass
class Received:
    """One POST as the server saw it."""

    kind: str
    channel: str
    body: dict[str, Any]


@dataclass
class Sink:
    """A ThreadingHTTPServer standing in for Telegram, Slack & co."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)
    holding: int = 0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, kind: str, channel: str) -> str:
        return f"json://127.0.0.1:{self.port}/{kind}/{channel}/{TOKEN}"

    def record(self, item: Received) -> None:
        with self.cond:
            self.received.append(item)
            self.cond.notify_all()

    def to(self, channel: str) -> list[Received]:
        with self.cond:
            return [r for r in self.received if r.channel == channel]

    def wait_for(
        self, channel: str, count: int = 1, match: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        def found() -> list[Received]:
            return [r for r in self.received
                    if r.channel == channel and (match is None or match(r))]

        with self.cond:
            ok = self.cond.wait_for(lambda: len(found()) >= count, timeout=WAIT)
            got = found()
        if not ok:
            seen = [(r.channel, r.body.get("title")) for r in self.received]
            pytest.fail(f"expected {count} message(s) on {channel!r}; server saw {seen}")
        return got

    def wait_holding(self) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.holding > 0, timeout=WAIT)


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            parts = self.path.strip("/").split("/")
            kind, channel = parts[0], parts[1] if len(parts) > 1 else ""
            item = Received(kind, channel, json.loads(raw or b"{}"))
            if kind == "hang":
                with sink.cond:
                    sink.holding += 1
                    sink.cond.notify_all()
                sink.release.wait(timeout=5.0)  # bounded: the test releases it at the end
                with sink.cond:
                    sink.holding -= 1
            sink.record(item)
            status = 500 if kind == "e500" else 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up (the hang case)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    box = Sink(server)
    server.RequestHandlerClass = _handler(box)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-sink",
                              daemon=True)
    thread.start()
    yield box
    box.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/closed/refused/{TOKEN}"


# -- the actor side ----------------------------------------------------------------------------
class Trader(SupervisedActor):
    """Stands for the trading path: it must keep answering whatever alerts does."""

    def on_receive(self, message: Any) -> Any:
        return "pong" if message == "ping" else None


class Crasher(SupervisedActor):
    """A sibling that crashes on request, to produce supervision events."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("boom")
        return message


class CrashingAlerts(AlertsActor):
    """The real alerts actor with one bug planted: the message "crash" kills it."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("alerts bug")
        return super().on_receive(message)


def channel(name: str, url: str, *tags: str) -> dict[str, Any]:
    return {"name": name, "url": url, "tags": list(tags)}


def settings(tmp_path: Path, channels: list[dict[str, Any]], **overrides: Any
             ) -> AlertsActor.Settings:
    values: dict[str, Any] = {
        "channels": channels,
        "cooldown_seconds": 0,
        "burst": None,
        "timeout_seconds": 2.0,
        "fallback_file": str(tmp_path / "alerts-fallback.jsonl"),
    }
    values.update(overrides)
    return AlertsActor.Settings.model_validate(values)


def start(
    alerts_settings: AlertsActor.Settings,
    *,
    clock: ManualClock | None = None,
    actor: type[AlertsActor] = AlertsActor,
    crasher: bool = False,
) -> Runtime:
    rt = Runtime(clock=clock)
    children = [
        ChildSpec("alerts", factory=lambda: actor(alerts_settings), drain_on_stop=True),
        ChildSpec("trader", factory=Trader),
    ]
    if crasher:
        children.append(ChildSpec("crasher", factory=Crasher))
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=tuple(children)))
    return rt


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for rt in started:
        rt.stop()


def stats(rt: Runtime) -> AlertStats:
    result = rt.ask("alerts", GetAlertStats(), timeout=WAIT)
    assert isinstance(result, AlertStats)
    return result


def fallback_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def titles(items: list[Received]) -> list[str]:
    return [str(r.body.get("title")) for r in items]


# -- tests ---------------------------------------------------------------------------------------
def test_gate_cooldown_and_burst_units() -> None:
    gate = AlertGate(cooldown=10, burst_max=2, window=60)
    assert gate.admit("k", Severity.ERROR, "t", "", 0).verdict is Verdict.DELIVER
    assert gate.admit("k", Severity.ERROR, "t", "", 1).verdict is Verdict.SUPPRESSED
    assert gate.admit("k", Severity.CRITICAL, "t", "", 2).verdict is Verdict.FOLDED  # 3rd > 2
    assert gate.admit("other", Severity.ERROR, "t", "", 2).verdict is Verdict.DELIVER
    summary = gate.close("k", 0)
    assert summary is not None and summary.count == 2 and summary.severity is Severity.CRITICAL
    assert gate.admit("k", Severity.ERROR, "t", "", 61).verdict is Verdict.DELIVER


def test_routing_by_severity_through_tags(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="botvisor.alerts")
    s = settings(tmp_path, [channel("chat", sink.url("ok", "chat"), "chat"),
                            channel("ops", sink.url("ok", "ops"), "ops")],
                 routes={"info": [], "warning": ["ops"], "error": ["ops"],
                         "critical": ["chat", "ops"]},
                 events={"started": None})
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("a.crit", "critical", "critical thing", "both"))
    rt.tell("alerts", Alert("a.warn", "warning", "warning thing", "ops only"))
    rt.tell("alerts", Alert("a.info", "info", "info thing", "log only"))
    rt.tell("alerts", Alert("a.marker", "error", "marker", "ops, after the info"))
    sink.wait_for("ops", 3)
    result = stats(rt)
    assert titles(sink.to("chat")) == ["botvisor CRITICAL: critical thing"]
    assert titles(sink.to("ops")) == ["botvisor CRITICAL: critical thing",
                                      "botvisor WARNING: warning thing",
                                      "botvisor ERROR: marker"]
    assert (result.sent, result.failed, result.logged_only) == (4, 0, 1)
    assert any("info thing" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records if r.name == "botvisor.alerts")
    assert fallback_lines(tmp_path / "alerts-fallback.jsonl") == []


def test_cooldown_per_key_uses_the_runtime_clock(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    clock = ManualClock()
    s = settings(tmp_path, [channel("ops", sink.url("ok", "ops"), "ops")],
                 cooldown_seconds=300)
    rt = start(s, clock=clock)
    runtimes.append(rt)
    alert = Alert("market.bad_data", "warning", "Bad market data", "1 rejected")
    rt.tell("alerts", alert)
    rt.tell("alerts", Alert("market.bad_data", "warning", "Bad market data", "2 rejected"))
    rt.tell("alerts", Alert("other.key", "warning", "Bad market data", "different key"))
    sink.wait_for("ops", 2)
    first = stats(rt)
    assert (first.sent, first.suppressed) == (2, 1)
    clock.advance(299)
    rt.tell("alerts", alert)
    assert stats(rt).suppressed == 2
    clock.advance(2)  # the cooldown is over
    rt.tell("alerts", Alert("market.bad_data", "warning", "Bad market data", "3 rejected"))
    got = sink.wait_for("ops", 3)
    assert got[-1].body["message"] == "3 rejected"
    assert stats(rt).sent == 3


def test_burst_is_folded_into_one_summary_when_the_window_closes(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    clock = ManualClock()
    s = settings(tmp_path, [channel("ops", sink.url("ok", "ops"), "ops")],
                 burst={"max": 3, "window_seconds": 60})
    rt = start(s, clock=clock)
    runtimes.append(rt)
    for i in range(15):
        rt.tell("alerts", Alert("supervision.dead_letter.x", "warning", f"dead letter {i}"))
    result = stats(rt)
    assert (result.sent, result.folded) == (3, 12)
    assert 60.0 in clock.pending()  # the window's close is a timer on the runtime clock
    clock.advance(60)
    got = sink.wait_for("ops", 4)
    summary = got[-1].body
    assert "12 similar alerts suppressed in 60 s" in summary["title"]
    assert "dead letter 14" in summary["message"]
    assert stats(rt).summaries == 1
    rt.tell("alerts", Alert("supervision.dead_letter.x", "warning", "after the window"))
    assert sink.wait_for("ops", 5)[-1].body["message"] == "after the window"


@pytest.mark.parametrize("kind", ["e500", "refused"])
def test_failed_delivery_is_counted_and_written_to_the_fallback_file(
    kind: str, sink: Sink, tmp_path: Path, runtimes: list[Runtime], refused_url: str
) -> None:
    url = refused_url if kind == "refused" else sink.url("e500", "ops")
    s = settings(tmp_path, [channel("ops", url, "ops"),
                            channel("chat", sink.url("ok", "chat"), "ops")])
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("breaker.open", "critical", "Circuit breaker open", "drawdown"))
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"
    sink.wait_for("chat")  # the healthy channel still got it
    result = stats(rt)
    assert (result.sent, result.failed, result.fallback_written) == (1, 1, 1)
    ops = next(c for c in result.channels if c.name == "ops")
    assert (ops.failed, ops.last_ok) == (1, False)
    assert ops.last_error
    [line] = fallback_lines(tmp_path / "alerts-fallback.jsonl")
    assert line["key"] == "breaker.open" and line["severity"] == "critical"
    assert list(line["failed"]) == ["ops"]
    assert TOKEN not in json.dumps(line) + repr(result)
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"


def test_hanging_channel_is_abandoned_after_the_timeout_and_trading_keeps_flowing(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("slow", sink.url("hang", "slow"), "ops"),
                            channel("fast", sink.url("ok", "fast"), "ops")],
                 timeout_seconds=0.5)
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("k", "error", "while a channel hangs"))
    sink.wait_holding()  # the request is in flight and the server is sitting on it
    for _ in range(20):
        assert rt.ask("trader", "ping", timeout=WAIT) == "pong"
    result = stats(rt)  # answered once the alert's delivery gave up on the slow channel
    assert sink.holding == 1 and not sink.release.is_set()  # the server never answered
    assert (result.sent, result.failed, result.fallback_written) == (1, 1, 1)
    slow = next(c for c in result.channels if c.name == "slow")
    assert slow.failed == 1 and slow.last_ok is False
    sink.wait_for("fast")
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"


def test_apprise_failures_inside_delivery_never_escape_the_actor(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    # A plugin that raises, carrying the secret in its message (apprise contains it)...
    @apprise.decorators.notify(on="botvisorboom")  # type: ignore[no-untyped-call, untyped-decorator]
    def _boom(body: str, title: str, notify_type: str, meta: dict[str, Any],
              **kwargs: Any) -> bool:
        raise RuntimeError(f"plugin exploded near {TOKEN}")

    s = settings(tmp_path, [channel("boom", f"botvisorboom://hooks/{TOKEN}", "ops"),
                            channel("ops", sink.url("ok", "ops"), "ops")])
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("a", "error", "first"))
    sink.wait_for("ops")
    assert stats(rt).failed == 1

    # ...and apprise itself raising out of notify() (the actor must contain it).
    def explode(self: apprise.Apprise, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError(f"apprise exploded sending to {sink.url('ok', 'ops')}")

    monkeypatch.setattr(apprise.Apprise, "notify", explode)
    rt.tell("alerts", Alert("b", "error", "second"))
    result = stats(rt)
    assert (result.sent, result.failed, result.fallback_written, result.errors) == (1, 3, 2, 0)
    ops = next(c for c in result.channels if c.name == "ops")
    assert ops.last_error is not None and "apprise raised RuntimeError" in ops.last_error
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"
    text = caplog.text + repr(result) + (tmp_path / "alerts-fallback.jsonl").read_text()
    assert TOKEN not in text


def test_a_crashing_alerts_actor_is_restarted_and_never_takes_down_the_trader(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("ops", sink.url("ok", "ops"), "ops")])
    rt = start(s, actor=CrashingAlerts, crasher=True)
    runtimes.append(rt)
    rec = EventRecorder(rt.events)
    rt.tell("alerts", "crash")
    rec.wait_for(EventKind.RESTARTED, "alerts")
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"
    # the replacement reports its predecessor's crash (the event waited in the mailbox)
    got = sink.wait_for("ops", match=lambda r: "alerts crashed" in r.body["title"])
    assert "alerts bug" in got[0].body["message"]
    rt.tell("alerts", Alert("after", "warning", "still alerting"))
    sink.wait_for("ops", match=lambda r: "still alerting" in r.body["title"])
    # one subscription survives the restart: a sibling's crash is reported exactly once
    rt.tell("crasher", "crash")
    rec.wait_for(EventKind.RESTARTED, "crasher")
    sink.wait_for("ops", match=lambda r: "crasher restarted" in r.body["title"])
    assert [t for t in titles(sink.to("ops")) if "crasher crashed" in t] == [
        "botvisor ERROR: crasher crashed"]
    rec.close()


def test_secrets_never_appear_in_logs_status_results_or_errors(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime], refused_url: str, *,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("apprise", "urllib3", "urllib3.connectionpool"):
        caplog.set_level(logging.DEBUG, logger=name)  # the worst case: everything logged
    secret_file = tmp_path / "creds" / "ops_url"
    secret_file.parent.mkdir()
    secret_file.write_text(sink.url("ok", "filed") + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(secret_file.parent))
    monkeypatch.setenv("BOTVISOR_TEST_CHAT_URL", sink.url("ok", "env"))
    monkeypatch.delenv("BOTVISOR_TEST_MISSING", raising=False)
    s = settings(tmp_path, [
        channel("plain", sink.url("ok", "plain"), "ops"),
        {"name": "from_env", "url_env": "BOTVISOR_TEST_CHAT_URL", "tags": ["ops"]},
        {"name": "from_file", "url_file": "${CREDENTIALS_DIRECTORY}/ops_url", "tags": ["ops"]},
        {"name": "missing", "url_env": "BOTVISOR_TEST_MISSING", "tags": ["ops"]},
        channel("e500", sink.url("e500", "e500"), "ops"),
        channel("refused", refused_url, "ops"),
        channel("bogus", f"nosuchscheme://{TOKEN}@host/{TOKEN}", "ops"),
    ])
    assert TOKEN not in repr(s) + str(s.model_dump())
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("k", "warning", "hello"))
    for name in ("plain", "env", "filed"):
        sink.wait_for(name)
    results = rt.ask("alerts", TestAlert(), timeout=WAIT)
    result = stats(rt)
    by_name = {c.name: c for c in result.channels}
    assert by_name["from_file"].ready and by_name["from_env"].ready
    assert by_name["missing"].problem == "environment variable BOTVISOR_TEST_MISSING is not set"
    assert by_name["bogus"].problem is not None and not by_name["bogus"].ready
    assert by_name["plain"].url == f"json://127.0.0.1:{sink.port}/***/***/***"
    assert {r.name: r.ok for r in results} == {
        "plain": True, "from_env": True, "from_file": True, "missing": False,
        "e500": False, "refused": False, "bogus": False,
    }
    assert any("missing" in r.getMessage() and "BOTVISOR_TEST_MISSING" in r.getMessage()
               for r in caplog.records)
    rt.stop()
    everything = "\n".join([
        caplog.text,
        *(r.getMessage() for r in caplog.records),
        repr(result), repr(results), repr(rt.peek("alerts")),
        (tmp_path / "alerts-fallback.jsonl").read_text(),
    ])
    assert TOKEN not in everything
    # apprise and urllib3 did log the request URLs (at debug level), masked:
    assert f"JSON POST URL: http://127.0.0.1:{sink.port}/***" in everything
    assert "POST *** HTTP/1.1" in everything


def test_test_alert_reports_each_channel(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime], refused_url: str
) -> None:
    s = settings(tmp_path, [channel("chat", sink.url("ok", "chat"), "chat"),
                            channel("broken", refused_url, "ops")])
    rt = start(s)
    runtimes.append(rt)
    results = rt.ask("alerts", TestAlert(), timeout=WAIT)
    assert [(r.name, r.ok) for r in results] == [("chat", True), ("broken", False)]
    assert all(isinstance(r, ChannelTestResult) and "***" in r.url for r in results)
    assert results[1].error
    assert sink.wait_for("chat")[0].body["title"] == "botvisor INFO: botvisor test alert"


def test_shutdown_alert_goes_out_after_the_waiting_alerts(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("ops", sink.url("ok", "ops"), "ops")])
    rt = start(s)
    rt.tell("alerts", Alert("last.words", "error", "queued before the stop"))
    rt.stop()
    got = sink.wait_for("ops", 2)
    assert titles(got) == ["botvisor ERROR: queued before the stop",
                           "botvisor WARNING: botvisor stopping"]


def test_a_crashing_sibling_produces_an_alert_with_the_configured_severity(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("chat", sink.url("ok", "chat"), "chat"),
                            channel("ops", sink.url("ok", "ops"), "ops")],
                 events={"crashed": "critical", "restarted": None})
    rt = start(s, crasher=True)
    runtimes.append(rt)
    rec = EventRecorder(rt.events)
    rt.tell("crasher", "crash")
    rec.wait_for(EventKind.RESTARTED, "crasher")
    got = sink.wait_for("chat", match=lambda r: "crasher crashed" in r.body["title"])
    assert got[0].body["title"] == "botvisor CRITICAL: crasher crashed"
    assert "boom" in got[0].body["message"]
    sink.wait_for("ops", match=lambda r: "crasher crashed" in r.body["title"])
    assert rt.ask("trader", "ping", timeout=WAIT) == "pong"
    assert not any("restarted" in t for t in titles(sink.to("ops")))
    rec.close()


def test_breaker_open_is_critical_and_fills_follow_their_mapping(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("chat", sink.url("ok", "chat"), "chat"),
                            channel("ops", sink.url("ok", "ops"), "ops")],
                 fills="warning")
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", BreakerTransition("closed", "open", "drawdown 12% > 10%",
                                        (("drawdown_pct", "12"),)))
    got = sink.wait_for("chat")
    assert got[0].body["title"] == "botvisor CRITICAL: Circuit breaker open"
    assert "closed -> open: drawdown 12% > 10% (drawdown_pct=12)" in got[0].body["message"]
    assert got[0].body["type"] == "failure"
    rt.tell("alerts", Fill("f-1", "o-1", "BTC/USDT", Side.BUY, Decimal("0.5"),
                           Decimal("30000")))
    fills = sink.wait_for("ops", 2)
    assert fills[-1].body["title"] == "botvisor WARNING: Fill: buy 0.5 BTC/USDT @ 30000"
    assert titles(sink.to("chat")) == ["botvisor CRITICAL: Circuit breaker open"]


def test_unrouted_severity_goes_to_the_fallback_file_and_disabled_sends_nothing(
    sink: Sink, tmp_path: Path, runtimes: list[Runtime]
) -> None:
    s = settings(tmp_path, [channel("ops", sink.url("ok", "ops"), "ops")],
                 routes={"error": ["pager"]})
    rt = start(s)
    runtimes.append(rt)
    rt.tell("alerts", Alert("k", "error", "nobody listens to pager"))
    assert stats(rt).fallback_written == 1
    [line] = fallback_lines(tmp_path / "alerts-fallback.jsonl")
    assert line["reason"] == "no channel matches tags ['pager']"

    off = settings(tmp_path / "off", [channel("ops", sink.url("ok", "off"), "ops")],
                   enabled=False, shutdown_severity=None, events={"started": None})
    rt2 = start(off)
    runtimes.append(rt2)
    rt2.tell("alerts", Alert("k", "critical", "not sent"))
    assert rt2.ask("alerts", TestAlert(), timeout=WAIT)[0].ok is False
    result = stats(rt2)
    assert (result.sent, result.logged_only, result.enabled) == (0, 1, False)
    rt2.stop()
    assert sink.to("off") == []


def test_config_validates_alert_settings_without_echoing_secrets() -> None:
    raw = {"tree": {"children": [{
        "name": "alerts", "actor": "actors.alerts.alerts:AlertsActor", "drain_on_stop": True,
        "settings": {
            "channels": [
                {"name": "tg", "url": f"tgram://{TOKEN}/1", "url_env": "X", "tags": ["chat"]},
                {"name": "ops", "url_file": "/run/x", "tags": ["ops"], "token": TOKEN},
            ],
            "events": {"crashed": "loud"},
            "burst": {"max": 0},
        },
    }]}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    keys = {key for key, _ in info.value.problems}
    assert "tree.children[0].settings.channels[0]" in keys
    assert "tree.children[0].settings.channels[1].token" in keys
    assert "tree.children[0].settings.events.crashed" in keys
    assert "tree.children[0].settings.burst.max" in keys
    assert TOKEN not in str(info.value)
    ok = {"tree": {"children": [{"name": "alerts", "actor": "actors.alerts.alerts:AlertsActor",
                                 "settings": {"channels": [{"name": "c", "url_env": "X"}]}}]}}
    parse_config(ok)
