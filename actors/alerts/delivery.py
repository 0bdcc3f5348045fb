"""One alert delivered to its channels: in parallel, each given at most the timeout.

Owns :data:`NOTIFY_TYPES` (apprise's type for each severity), :data:`ALL_TAGS` and
:func:`deliver`, which starts the delivery on every target channel (the title after the
configured prefix and the severity's name; the title as the body when there is none),
waits for all of them until one shared deadline (real time: network time is not the
clock's), records each channel's outcome on it and returns ``{channel name: (ok,
error)}``. A channel that raises is a failure with its message scrubbed; nothing is
raised out of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import apprise

from actors.alerts.routing import Channel, Delivery
from supervisor.error_handler import Severity

__all__ = ["ALL_TAGS", "NOTIFY_TYPES", "deliver"]

NOTIFY_TYPES = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.ERROR: apprise.NotifyType.FAILURE,
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
}
ALL_TAGS = "all"  # apprise's tag that matches every channel


def deliver(
    targets: Sequence[Channel],
    severity: Severity,
    title: str,
    body: str,
    tags: tuple[str, ...] | str,
    *,
    prefix: str,
    timeout: float,
    scrub: Callable[[str], str],
) -> dict[str, tuple[bool, str | None]]:
    """Deliver to ``targets`` in parallel; wait at most ``timeout`` for all of them, then
    record each outcome on its channel."""
    full_title = f"{prefix} {severity.name}: {title}" if prefix else title
    notify_type = NOTIFY_TYPES[severity]
    results: dict[str, tuple[bool, str | None]] = {}
    started: list[tuple[Channel, Delivery]] = []
    for channel in targets:
        try:
            delivery = channel.send(full_title, body or title, notify_type, tags)
        except Exception as exc:
            delivery = f"{type(exc).__name__}: {scrub(str(exc))}"
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
    return results
