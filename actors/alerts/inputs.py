"""What each input says as an alert, and the severity an alert is given.

Owns the alerts made of the actor's inputs (:func:`fill_alert`, :func:`event_alert`,
:func:`breaker_alert`: key, severity name, title and body) and the severity rules
(:func:`key_rules`, the configured severities by key prefix, longest first, and
:func:`severity_of`, an alert's severity under them: None to drop it). Plain functions of
their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from actors.alerts.settings import BreakerState, SeverityName
from actors.common.messages import Alert, Fill
from actors.risk.contract import BreakerTransition
from supervisor.error_handler import Severity
from supervisor.events import SupervisionEvent

__all__ = ["breaker_alert", "event_alert", "fill_alert", "key_rules", "severity_of"]

KeyRules = Sequence[tuple[str, SeverityName | None]]


def fill_alert(fill: Fill, severity: SeverityName) -> Alert:
    """Each fill is its own news (keyed by fill id: never a repeat of another)."""
    return Alert(
        f"fill.{fill.fill_id}", severity,
        f"Fill: {fill.side.value} {fill.quantity} {fill.symbol} @ {fill.price}",
        f"order {fill.client_order_id}, fee {fill.fee}, venue {fill.venue}")


def event_alert(event: SupervisionEvent, severity: SeverityName) -> Alert:
    """A supervision event, keyed by its kind and its actor."""
    what = event.kind.value.replace("_", " ")
    return Alert(f"supervision.{event.kind.value}.{event.actor}", severity,
                 f"{event.actor} {what}", event.describe())


def breaker_alert(event: BreakerTransition,
                  severities: Mapping[BreakerState, SeverityName | None]) -> Alert | None:
    """A breaker transition at its state's severity (an unknown state: error), or None."""
    state = event.state
    mapping: dict[str, SeverityName | None] = {str(k): v for k, v in severities.items()}
    severity = mapping.get(state, "error")  # an unknown state is still worth a look
    if severity is None:
        return None
    figures = ", ".join(f"{k}={v}" for k, v in event.figures)
    body = f"{event.previous} -> {state}: {event.reason}" + (
        f" ({figures})" if figures else "") + f" [by {event.by}]"
    return Alert(f"breaker.{state}", severity,
                 f"Circuit breaker {state.replace('_', ' ')}", body)


def key_rules(fills: SeverityName | None,
              keys: Mapping[str, SeverityName | None]) -> list[tuple[str, SeverityName | None]]:
    """The severity of each configured key prefix (fills under ``fill``), longest first."""
    rules: dict[str, SeverityName | None] = {"fill": fills, **keys}
    return sorted(rules.items(), key=lambda kv: len(kv[0]), reverse=True)


def severity_of(alert: Alert, rules: KeyRules) -> Severity | None:
    """The first rule whose prefix is the alert's key (or a dotted start of it) decides;
    else the alert's own severity, WARNING when that is no severity's name."""
    for prefix, name in rules:
        if alert.key == prefix or alert.key.startswith(prefix + "."):
            return None if name is None else Severity.parse(name)
    try:
        return Severity.parse(alert.severity)
    except ValueError:
        return Severity.WARNING
