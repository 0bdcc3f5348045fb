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

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from actors.alerts.contract import (
    AlertStats,
    ChannelStatus,
    ChannelTestResult,
    GetAlertStats,
    TestAlert,
)
from actors.alerts.delivery import ALL_TAGS, deliver
from actors.alerts.fallback import FallbackFile, fallback_line
from actors.alerts.inputs import breaker_alert, event_alert, fill_alert, key_rules, severity_of
from actors.alerts.routing import AlertGate, Channel, Verdict, guard_logs
from actors.alerts.settings import (
    DEFAULT_BREAKER_SEVERITIES,
    DEFAULT_EVENT_SEVERITIES,
    AlertsSettings,
    BreakerState,
    BurstModel,
    RoutesModel,
    SeverityName,
)
from actors.common.messages import Alert, Fill
from actors.portfolio.contract import RecordedFills
from actors.risk.contract import BreakerTransition
from supervisor.actor import SupervisedActor
from supervisor.error_handler import Severity
from supervisor.events import SupervisionEvent
from supervisor.host.control_protocol import OperatorCommand
from supervisor.host.secrets import secrets_of

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BREAKER_SEVERITIES",
    "DEFAULT_EVENT_SEVERITIES",
    "AlertsActor",
    "BreakerState",
    "BurstModel",
    "RoutesModel",
    "SeverityName",
]


@dataclass(frozen=True, slots=True)
class _CloseWindow:
    key: str
    opened: float


@dataclass(frozen=True, slots=True)
class _RetryFallback:
    """Try again to write the alerts held in memory to the fallback file."""


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

    class Settings(AlertsSettings):
        """The ``settings`` of an alerts child in ``config.yaml``."""

    def __init__(self, settings: AlertsActor.Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or AlertsActor.Settings()
        s = self.settings
        self._alert_log = logging.getLogger(s.logger)
        self._routes = {Severity.parse(name): tuple(getattr(s.routes, name))
                        for name in ("info", "warning", "error", "critical")}
        self._key_rules = key_rules(s.fills, s.keys)
        self._gate = AlertGate(
            s.cooldown_seconds,
            s.burst.max if s.burst else None,
            s.burst.window_seconds if s.burst else 60.0,
        )
        self._channels: list[Channel] = []
        self.received = self.dropped = self.sent = self.failed = 0
        self.suppressed = self.folded = self.summaries = self.logged_only = 0
        self.errors = 0
        self._fallback_file = FallbackFile(s.fallback_file, s.fallback_memory)
        self._retry_scheduled = False

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
        known = {t for c in self._channels for t in c.tags} | {ALL_TAGS}
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
            if self._fallback_file.pending and not self._write_held():
                log.error("alerts: %d alert(s) could not be written to the fallback file %s "
                          "before stopping (each is in the log above)",
                          self._fallback_file.pending, self.settings.fallback_file)
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
            if self._fallback_file.pending and not self._write_held():
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
        self._submit(fill_alert(fill, severity))

    def _on_event(self, event: SupervisionEvent) -> None:
        severity = self.settings.events.get(event.kind)
        if severity is None:
            return
        self._submit(event_alert(event, severity))

    def _on_breaker(self, event: BreakerTransition) -> None:
        alert = breaker_alert(event, self.settings.breaker)
        if alert is not None:
            self._submit(alert)

    # -- the pipeline: severity, gate, delivery ------------------------------------------------
    def _submit(self, alert: Alert) -> None:
        severity = severity_of(alert, self._key_rules)
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
        results = deliver(targets, severity, title, body, tags,
                          prefix=self.settings.title_prefix,
                          timeout=self.settings.timeout_seconds,
                          scrub=lambda text: secrets_of(self.ctx.runtime).scrub(text))
        for channel in targets:
            ok, _error = results[channel.name]
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
        self._fallback_file.hold(fallback_line(
            self.ctx.clock.wall(), key, severity.name.lower(), title, body, reason=reason,
            failures=failures))
        if not self._write_held():
            self._schedule_retry()

    def _write_held(self) -> bool:
        """Append every held line to the fallback file, oldest first; True if all are."""
        error = self._fallback_file.write()
        if error is None:
            return True
        log.error("alerts: cannot append to the fallback file %s: %s; %d alert(s) held "
                  "in memory (each is in the log), trying again in %gs",
                  self.settings.fallback_file, error.strerror or type(error).__name__,
                  self._fallback_file.pending, self.settings.fallback_retry_seconds)
        return False

    def _schedule_retry(self) -> None:
        if not self._retry_scheduled:
            self._retry_scheduled = True
            self.ctx.schedule(self.settings.fallback_retry_seconds, _RetryFallback())

    # -- asks ----------------------------------------------------------------------------------
    def _test(self, message: TestAlert) -> tuple[ChannelTestResult, ...]:
        if not self.settings.enabled:
            return tuple(ChannelTestResult(c.name, False, c.url, "alerts are disabled "
                                           "(enabled: false)") for c in self._channels)
        outcome = self._send(self._channels, Severity.INFO, message.title, message.body,
                             ALL_TAGS)
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
            fallback_written=self._fallback_file.written,
            fallback_errors=self._fallback_file.errors,
            errors=self.errors,
            fallback_pending=self._fallback_file.pending,
            fallback_dropped=self._fallback_file.dropped,
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
