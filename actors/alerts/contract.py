"""The alerts context's contract: what the alerts actor accepts besides ``Alert`` (which every
context sends, so it is in :mod:`actors.common.messages`), ``BreakerTransition`` and
``RecordedFills`` (owned by their senders), and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AlertStats",
    "ChannelStatus",
    "ChannelTestResult",
    "GetAlertStats",
    "TestAlert",
]


@dataclass(frozen=True, slots=True)
class TestAlert:
    """Ask: send a test message to every channel, whatever its tags.

    Reply: ``tuple[ChannelTestResult, ...]``, one per configured channel. The ask can take
    up to the actor's ``timeout_seconds``; ask with a longer timeout.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    title: str = "botvisor test alert"
    body: str = "If you can read this, this channel delivers botvisor alerts."


@dataclass(frozen=True, slots=True)
class ChannelTestResult:
    """One channel's answer to :class:`TestAlert`; ``url`` is masked."""

    name: str
    ok: bool
    url: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GetAlertStats:
    """Ask: the alerts actor's counters, as an :class:`AlertStats`."""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel as the status shows it: masked URL, readiness, counters, last error."""

    name: str
    url: str  # masked
    source: str  # "url", "environment variable X" or "file PATH"
    tags: tuple[str, ...]
    ready: bool
    problem: str | None  # why it cannot deliver (missing secret, unusable URL)
    sent: int
    failed: int
    last_ok: bool | None
    last_error: str | None
    busy: bool  # a delivery abandoned after the timeout is still running


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Counters since this instance started.

    ``received``: alerts handled (after mapping; ``dropped`` were mapped to no severity).
    ``sent``/``failed``: channel deliveries (an alert to two channels counts two).
    ``suppressed``: repeats within the cooldown; ``folded``: past a burst limit;
    ``summaries``: burst summaries delivered. ``logged_only``: alerts whose severity routes
    nowhere (or with ``enabled: false``). ``fallback_written``: lines appended to the
    fallback file; ``fallback_errors``: failed attempts to write it. ``fallback_pending``:
    alerts held in memory because the fallback file could not be written (written later,
    in order); ``fallback_dropped``: held alerts given up past ``fallback_memory`` (each was
    logged). ``errors``: unexpected exceptions caught in the actor.
    """

    enabled: bool
    received: int
    dropped: int
    sent: int
    failed: int
    suppressed: int
    folded: int
    summaries: int
    logged_only: int
    fallback_written: int
    fallback_errors: int
    errors: int
    channels: tuple[ChannelStatus, ...]
    fallback_pending: int = 0
    fallback_dropped: int = 0

    def metrics(self) -> dict[str, float]:
        """Gauges for the metrics endpoint (counts since this instance started)."""
        return {
            "alerts_sent": float(self.sent),
            "alerts_failed": float(self.failed),
            "alerts_suppressed": float(self.suppressed + self.folded),
            "alerts_fallback_written": float(self.fallback_written),
            "alerts_fallback_pending": float(self.fallback_pending),
            "alerts_fallback_dropped": float(self.fallback_dropped),
        }
