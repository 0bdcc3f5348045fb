"""AlertsActor: tells people what happened, through apprise, without ever holding up trading.

Inputs, all by ``tell``: an ``Alert`` from any actor, breaker transitions, fills, and every
supervision event (its own subscription); the asks ``TestAlert`` and ``GetAlertStats``
(also published). Each input becomes an alert with a configured severity; it is logged,
passed through the :class:`~actors.alerts.routing.AlertGate` (cooldown, bursts) and
delivered in parallel to the channels its severity routes to, waiting at most
``timeout_seconds``. A failed delivery goes to the fallback file, or is held in memory
while that file cannot be written. The rules: docs/trading-bot.md ("Alerts").
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import apprise
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors.alerts.contract import (
    AlertStats,
    ChannelStatus,
    ChannelTestResult,
    GetAlertStats,
    TestAlert,
)
from actors.alerts.routing import (
    AlertGate,
    Channel,
    ChannelSettings,
    Delivery,
    Verdict,
    guard_logs,
)
from actors.common.messages import Alert, Fill
from actors.common.settings_types import StatePath
from actors.portfolio.contract import RecordedFills
from actors.risk.contract import BreakerTransition
from supervisor.actor import SupervisedActor
from supervisor.error_handler import Severity
from supervisor.events import EventKind, SupervisionEvent
from supervisor.host.control_protocol import OperatorCommand
from supervisor.host.secrets import secrets_of

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BREAKER_SEVERITIES",
    "DEFAULT_EVENT_SEVERITIES",
    "AlertsActor",
]

SeverityName = Literal["info", "warning", "error", "critical"]
BreakerState = Literal["closed", "open", "half_open", "halted"]

DEFAULT_EVENT_SEVERITIES: dict[EventKind, SeverityName | None] = {
    EventKind.STARTED: None,  # the event log already records every start
    EventKind.START_FAILED: "error",
    EventKind.CRASHED: "error",
    EventKind.RESUMED: "warning",
    EventKind.RESTARTING: None,  # "restarted" follows
    EventKind.RESTARTED: "warning",
    EventKind.ESCALATED: "critical",
    EventKind.FELL_BACK: "error",
    EventKind.PRIMARY_RESTORED: "info",
    EventKind.STOPPED: None,  # every actor at shutdown; the shutdown alert says it once
    EventKind.EXITED: "info",
    EventKind.HUNG: "error",
    EventKind.DEAD_LETTER: "warning",  # a flood is folded by the burst rule
    EventKind.SHUTDOWN_TIMEOUT: "error",
}

DEFAULT_BREAKER_SEVERITIES: dict[BreakerState, SeverityName | None] = {
    "open": "critical",
    "halted": "critical",
    "half_open": "warning",
    "closed": "info",
}

_NOTIFY_TYPES = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.ERROR: apprise.NotifyType.FAILURE,
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
}
_ALL = "all"  # apprise's tag that matches every channel


@dataclass(frozen=True, slots=True)
class _CloseWindow:
    key: str
    opened: float


@dataclass(frozen=True, slots=True)
class _RetryFallback:
    """Try again to write the alerts held in memory to the fallback file."""


# -- settings ----------------------------------------------------------------------------------
class RoutesModel(BaseModel):
    """``routes``: the apprise tags each severity goes to; an empty list means the log only.

    The tag ``all`` reaches every channel.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    info: tuple[str, ...] = ()
    warning: tuple[str, ...] = ("ops",)
    error: tuple[str, ...] = ("ops",)
    critical: tuple[str, ...] = ("ops", "chat")


class BurstModel(BaseModel):
    """``burst``: more than ``max`` alerts of one key within ``window_seconds`` are folded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max: int = Field(5, ge=1)
    window_seconds: float = Field(60.0, gt=0)


class AlertsActor(SupervisedActor):
    """Owns the alert channels, the cooldown/burst state and the delivery counters.

    Delivery is bounded (``timeout_seconds`` per alert, channels in parallel) and never
    raises out of a handler: the supervisor sees this actor fail only on a bug, and then
    restarts it with fresh counters while the rest of the tree carries on.
    """

    accepts: ClassVar[tuple[type, ...]] = (
        Alert, SupervisionEvent, BreakerTransition, Fill, RecordedFills, GetAlertStats,
        TestAlert, OperatorCommand)
    publishes: ClassVar[type] = AlertStats

    class Settings(BaseModel):
        """The ``settings`` of an alerts child in ``config.yaml``."""

        model_config = ConfigDict(extra="forbid", frozen=True)
        enabled: bool = True  # the original bot's enable_notifications
        channels: tuple[ChannelSettings, ...] = ()
        routes: RoutesModel = RoutesModel()
        cooldown_seconds: float = Field(300.0, ge=0)
        burst: BurstModel | None = BurstModel()
        timeout_seconds: float = Field(10.0, gt=0, le=300)
        fallback_file: StatePath | None = "state/alerts-fallback.jsonl"
        # alerts held in memory while the fallback file cannot be written, and how often
        # to try writing them again
        fallback_memory: int = Field(1000, ge=1)
        fallback_retry_seconds: float = Field(30.0, gt=0)
        events: dict[EventKind, SeverityName | None] = Field(
            default_factory=lambda: dict(DEFAULT_EVENT_SEVERITIES)
        )
        breaker: dict[BreakerState, SeverityName | None] = Field(
            default_factory=lambda: dict(DEFAULT_BREAKER_SEVERITIES)
        )
        fills: SeverityName | None = "info"
        keys: dict[str, SeverityName | None] = Field(default_factory=dict)
        shutdown_severity: SeverityName | None = "warning"
        title_prefix: str = "botvisor"
        logger: str = "botvisor.alerts"

        @field_validator("events", mode="after")
        @classmethod
        def _merge_events(
            cls, value: dict[EventKind, SeverityName | None]
        ) -> dict[EventKind, SeverityName | None]:
            return {**DEFAULT_EVENT_SEVERITIES, **value}

        @field_validator("breaker", mode="after")
        @classmethod
        def _merge_breaker(
            cls, value: dict[BreakerState, SeverityName | None]
        ) -> dict[BreakerState, SeverityName | None]:
            return {**DEFAULT_BREAKER_SEVERITIES, **value}

        @model_validator(mode="after")
        def _unique_names(self) -> AlertsActor.Settings:
            names = [c.name for c in self.channels]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"channel names must be unique; repeated: {repeated}")
            return self

    def __init__(self, settings: AlertsActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or AlertsActor.Settings()
        s = self.settings
        self._alert_log = logging.getLogger(s.logger)
        self._routes = {Severity.parse(name): tuple(getattr(s.routes, name))
                        for name in ("info", "warning", "error", "critical")}
        keys: dict[str, SeverityName | None] = {"fill": s.fills, **s.keys}
        self._key_rules = sorted(keys.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._gate = AlertGate(
            s.cooldown_seconds,
            s.burst.max if s.burst else None,
            s.burst.window_seconds if s.burst else 60.0,
        )
        self._channels: list[Channel] = []
        self.received = self.dropped = self.sent = self.failed = 0
        self.suppressed = self.folded = self.summaries = self.logged_only = 0
        self.fallback_written = self.fallback_errors = self.errors = 0
        self.fallback_dropped = 0
        self._held: deque[str] = deque()  # fallback lines not written yet, oldest first
        self._retry_scheduled = False
        self._torn = False  # the fallback file ends in a line cut short by a failed write

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        runtime = self.ctx.runtime
        guard_logs(runtime, (self.settings.logger,))  # before any channel reads its URL
        timeout = self.settings.timeout_seconds
        self._channels = [Channel(c, timeout, os.environ, secrets_of(runtime))
                          for c in self.settings.channels]
        for channel in self._channels:
            if channel.problem:
                log.error("alert channel %r cannot deliver: %s", channel.name, channel.problem)
        known = {t for c in self._channels for t in c.tags} | {_ALL}
        if not self._channels:
            log.warning("alerts: no channels configured; alerts go to the log%s",
                        " and the fallback file" if self.settings.fallback_file else "")
        else:
            for severity, tags in self._routes.items():
                for tag in tags:
                    if tag not in known:
                        log.warning("alerts: %s alerts go to tag %r, which no channel has; "
                                    "they will be written to the fallback file",
                                    severity.name.lower(), tag)
        self._subscribe()
        self._publish()

    def _subscribe(self) -> None:
        """Forward the supervision events that map to a severity into this mailbox."""
        kinds = frozenset(k for k, v in self.settings.events.items() if v is not None)
        self.ctx.subscribe_events("alerts", lambda event: event.kind in kinds)

    def on_stop(self) -> None:
        try:
            if self.ctx.stopping_for_good:
                self._shutdown_alert()
        finally:
            if self._held and not self._write_held():
                log.error("alerts: %d alert(s) could not be written to the fallback file %s "
                          "before stopping (each is in the log above)", len(self._held),
                          self.settings.fallback_file)
            self._publish()

    def _shutdown_alert(self) -> None:
        name = self.settings.shutdown_severity
        if name is None:
            return
        body = f"The alerts actor {self.ctx.name!r} is stopping; no alerts after this one."
        pending = self._gate.pending()
        if pending:
            body += " Unsent burst summaries: " + "; ".join(
                f"{p.title} ({p.body})" for p in pending)
        self._deliver("botvisor.stopping", Severity.parse(name), "botvisor stopping", body)

    # -- messages ----------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        try:
            return self._handle(message)
        except Exception as exc:  # never let one alert take the actor down
            self.errors += 1
            log.error("alerts: %s while handling %s: %s", type(exc).__name__,
                      type(message).__name__, secrets_of(self.ctx.runtime).scrub(str(exc)))
            return None
        finally:
            self._publish()

    def _handle(self, message: Any) -> Any:
        if isinstance(message, Alert):
            self._submit(message)
        elif isinstance(message, SupervisionEvent):
            self._on_event(message)
        elif isinstance(message, BreakerTransition):
            self._on_breaker(message)
        elif isinstance(message, Fill):
            self._on_fill(message)
        elif isinstance(message, RecordedFills):
            for fill in message.fills:
                self._on_fill(fill)
        elif isinstance(message, _CloseWindow):
            summary = self._gate.close(message.key, message.opened)
            if summary is not None:
                self.summaries += 1
                self._deliver(summary.key, summary.severity, summary.title, summary.body)
        elif isinstance(message, _RetryFallback):
            self._retry_scheduled = False
            if self._held and not self._write_held():
                self._schedule_retry()
        elif isinstance(message, GetAlertStats):
            return self._stats()
        elif isinstance(message, TestAlert):
            return self._test(message)
        elif isinstance(message, OperatorCommand):
            return self._operator(message)
        else:
            log.warning("alerts: ignoring an unexpected %s message", type(message).__name__)
        return None

    def _on_fill(self, fill: Fill) -> None:
        """Each fill is its own news (keyed by fill id: never a repeat of another)."""
        severity = self.settings.fills
        if severity is None:
            self.dropped += 1
            return
        self._submit(Alert(
            f"fill.{fill.fill_id}", severity,
            f"Fill: {fill.side.value} {fill.quantity} {fill.symbol} @ {fill.price}",
            f"order {fill.client_order_id}, fee {fill.fee}, venue {fill.venue}"))

    def _on_event(self, event: SupervisionEvent) -> None:
        severity = self.settings.events.get(event.kind)
        if severity is None:
            return
        what = event.kind.value.replace("_", " ")
        self._submit(Alert(f"supervision.{event.kind.value}.{event.actor}", severity,
                           f"{event.actor} {what}", event.describe()))

    def _on_breaker(self, event: BreakerTransition) -> None:
        state = event.state
        mapping: dict[str, SeverityName | None] = {
            str(k): v for k, v in self.settings.breaker.items()}
        severity = mapping.get(state, "error")  # an unknown state is still worth a look
        if severity is None:
            return
        figures = ", ".join(f"{k}={v}" for k, v in event.figures)
        body = f"{event.previous} -> {state}: {event.reason}" + (
            f" ({figures})" if figures else "") + f" [by {event.by}]"
        self._submit(Alert(f"breaker.{state}", severity,
                           f"Circuit breaker {state.replace('_', ' ')}", body))

    # -- the pipeline: severity, gate, delivery ------------------------------------------------
    def _severity(self, alert: Alert) -> Severity | None:
        for prefix, name in self._key_rules:
            if alert.key == prefix or alert.key.startswith(prefix + "."):
                return None if name is None else Severity.parse(name)
        try:
            return Severity.parse(alert.severity)
        except ValueError:
            return Severity.WARNING

    def _submit(self, alert: Alert) -> None:
        severity = self._severity(alert)
        if severity is None:
            self.dropped += 1
            return
        self.received += 1
        admission = self._gate.admit(alert.key, severity, alert.title, alert.body,
                                     self.ctx.clock.now())
        if admission.verdict is Verdict.SUPPRESSED:
            self.suppressed += 1
            self._alert_log.debug("[%s] repeat within the cooldown: %s", alert.key, alert.title)
            return
        if admission.verdict is Verdict.FOLDED:
            self.folded += 1
            if admission.close_in is not None:
                self.ctx.schedule(admission.close_in, _CloseWindow(alert.key, admission.opened))
            return
        self._deliver(alert.key, severity, alert.title, alert.body)

    def _deliver(self, key: str, severity: Severity, title: str, body: str) -> None:
        self._alert_log.log(int(severity), "[%s] %s%s", key, title, f": {body}" if body else "")
        if not self.settings.enabled:
            self.logged_only += 1
            return
        tags = self._routes[severity]
        if not tags:
            self.logged_only += 1
            return
        targets = [c for c in self._channels if c.matches(tags)]
        if not targets:
            self._fallback(key, severity, title, body,
                           reason=f"no channel matches tags {list(tags)}", failures={})
            return
        outcome = self._send(targets, severity, title, body, tags)
        failures = {name: error or "failed" for name, (ok, error) in outcome.items() if not ok}
        if failures:
            log.warning("alert [%s] not delivered to %s", key,
                        "; ".join(f"{n}: {e}" for n, e in failures.items()))
            self._fallback(key, severity, title, body, reason="delivery failed",
                           failures=failures)

    def _send(
        self,
        targets: list[Channel],
        severity: Severity,
        title: str,
        body: str,
        tags: tuple[str, ...] | str,
    ) -> dict[str, tuple[bool, str | None]]:
        """Deliver to ``targets`` in parallel; wait at most the timeout for all of them."""
        timeout = self.settings.timeout_seconds
        prefix = self.settings.title_prefix
        full_title = f"{prefix} {severity.name}: {title}" if prefix else title
        notify_type = _NOTIFY_TYPES[severity]
        results: dict[str, tuple[bool, str | None]] = {}
        started: list[tuple[Channel, Delivery]] = []
        for channel in targets:
            try:
                delivery = channel.send(full_title, body or title, notify_type, tags)
            except Exception as exc:
                delivery = f"{type(exc).__name__}: {secrets_of(self.ctx.runtime).scrub(str(exc))}"
            if isinstance(delivery, str):
                results[channel.name] = (False, delivery)
            else:
                started.append((channel, delivery))
        deadline = time.monotonic() + timeout  # network time is real time, not the clock's
        for channel, delivery in started:
            if delivery.wait(max(0.0, deadline - time.monotonic())):
                results[channel.name] = (delivery.ok, delivery.error)
            else:
                results[channel.name] = (False, f"no answer within {timeout:g} s")
        for channel in targets:
            ok, error = results[channel.name]
            channel.record(ok, error)
            if ok:
                self.sent += 1
            else:
                self.failed += 1
        return results

    def _fallback(
        self, key: str, severity: Severity, title: str, body: str, *, reason: str,
        failures: dict[str, str],
    ) -> None:
        path = self.settings.fallback_file
        if not path:
            return
        record = {
            "at": self.ctx.clock.wall(),
            "key": key,
            "severity": severity.name.lower(),
            "title": title,
            "body": body,
            "reason": reason,
            "failed": failures,
        }
        self._held.append(json.dumps(record, ensure_ascii=False) + "\n")
        if len(self._held) > self.settings.fallback_memory:
            self._held.popleft()
            self.fallback_dropped += 1
        if not self._write_held():
            self._schedule_retry()

    def _write_held(self) -> bool:
        """Append every held line to the fallback file, oldest first; True if all are."""
        path = self.settings.fallback_file
        if not path or not self._held:
            return True
        try:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if self._torn:  # an earlier attempt stopped mid-line: end that line first
                    os.write(fd, b"\n")
                    self._torn = False
                while self._held:
                    line = self._held[0].encode("utf-8")
                    done = 0
                    while done < len(line):
                        try:
                            done += os.write(fd, line[done:])
                        except OSError:
                            self._torn = done > 0
                            raise
                    self._held.popleft()  # only a line written whole leaves memory
                    self.fallback_written += 1
            finally:
                os.close(fd)
        except OSError as exc:
            self.fallback_errors += 1
            log.error("alerts: cannot append to the fallback file %s: %s; %d alert(s) held "
                      "in memory (each is in the log), trying again in %gs", path,
                      exc.strerror or type(exc).__name__, len(self._held),
                      self.settings.fallback_retry_seconds)
            return False
        return True

    def _schedule_retry(self) -> None:
        if not self._retry_scheduled:
            self._retry_scheduled = True
            self.ctx.schedule(self.settings.fallback_retry_seconds, _RetryFallback())

    # -- asks ----------------------------------------------------------------------------------
    def _test(self, message: TestAlert) -> tuple[ChannelTestResult, ...]:
        if not self.settings.enabled:
            return tuple(ChannelTestResult(c.name, False, c.url, "alerts are disabled "
                                           "(enabled: false)") for c in self._channels)
        outcome = self._send(self._channels, Severity.INFO, message.title, message.body, _ALL)
        return tuple(ChannelTestResult(c.name, outcome[c.name][0], c.url, outcome[c.name][1])
                     for c in self._channels)

    def _operator(self, command: OperatorCommand) -> dict[str, Any]:
        """`botvisor alerts test|status`: per-channel results or counters (URLs masked)."""
        if command.command == "test":
            results = self._test(TestAlert(body=f"Test alert requested by {command.who}."))
            return {"channels": [{"name": r.name, "ok": r.ok, "url": r.url, "error": r.error}
                                 for r in results],
                    "enabled": self.settings.enabled}
        if command.command == "status":
            stats = self._stats()
            return {
                "enabled": stats.enabled, "received": stats.received, "sent": stats.sent,
                "failed": stats.failed, "suppressed": stats.suppressed,
                "folded": stats.folded, "fallback_written": stats.fallback_written,
                "fallback_pending": stats.fallback_pending,
                "fallback_dropped": stats.fallback_dropped, "errors": stats.errors,
                "channels": [{"name": c.name, "url": c.url, "ready": c.ready,
                              "problem": c.problem, "sent": c.sent, "failed": c.failed}
                             for c in stats.channels],
            }
        return {"error": f"alerts: unknown command {command.command!r} (test, status)",
                "code": 2}

    def _stats(self) -> AlertStats:
        return AlertStats(
            enabled=self.settings.enabled,
            received=self.received,
            dropped=self.dropped,
            sent=self.sent,
            failed=self.failed,
            suppressed=self.suppressed,
            folded=self.folded,
            summaries=self.summaries,
            logged_only=self.logged_only,
            fallback_written=self.fallback_written,
            fallback_errors=self.fallback_errors,
            errors=self.errors,
            fallback_pending=len(self._held),
            fallback_dropped=self.fallback_dropped,
            channels=tuple(
                ChannelStatus(c.name, c.url, c.source, c.tags, c.ready, c.problem, c.sent,
                              c.failed, c.last_ok, c.last_error, c.busy)
                for c in self._channels
            ),
        )

    def _publish(self) -> None:
        try:
            self.ctx.publish(self._stats())
        except Exception:  # status is a convenience; never fail a handler for it
            log.debug("alerts: could not publish stats", exc_info=False)
