"""Alert routing: channels (apprise targets) that keep their secrets, and the per-key gate.

* :func:`guard_logs`: the runtime's secret masker over apprise's, urllib3's and the alerts
  loggers' records;
* :class:`Channel`: one target, its URL (its fragments given to the masker before apprise
  sees it; shown masked), its apprise instance and tags, its counters and at most one
  :class:`Delivery` in flight;
* :class:`AlertGate`: from a clock reading, deliver, suppress (cooldown) or fold (burst).

Used from the alerts actor's thread; a delivery thread touches only its own Delivery.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import apprise
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from supervisor.error_handler import Severity
from supervisor.extensions import HasExtensions
from supervisor.host.secrets import (
    MASK,
    SecretError,
    mask_url,
    read_secret,
    secret_fragments,
    secrets_of,
)

if TYPE_CHECKING:
    from supervisor.host.secrets import SecretMasker

__all__ = [
    "GUARDED_LOGGERS",
    "Admission",
    "AlertGate",
    "Channel",
    "ChannelSettings",
    "Delivery",
    "Summary",
    "Verdict",
    "guard_logs",
    "resolve_url",
    "with_timeouts",
]

GUARDED_LOGGERS = (
    "apprise",
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "requests",
    "botvisor.alerts",
    "actors.alerts.alerts",
    "actors.alerts.routing",
)
_QUIETED = ("apprise", "urllib3")


# -- masking ---------------------------------------------------------------------------------
def guard_logs(runtime: HasExtensions, extra: Iterable[str] = ()) -> None:
    """Have ``runtime`` mask secrets and URLs in the loggers that can see apprise URLs.

    apprise and urllib3 (which log request URLs at debug level) are also set to WARNING
    unless someone configured them already.
    """
    secrets_of(runtime).guard_loggers((*GUARDED_LOGGERS, *extra))
    for name in _QUIETED:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def with_timeouts(url: str, seconds: float) -> str:
    """``url`` with apprise's connect/read timeouts (``cto``/``rto``) unless it sets them."""
    added = [f"{name}={seconds:g}" for name in ("cto", "rto")
             if not re.search(rf"[?&]{name}=", url)]
    if not added:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(added)


# -- channels --------------------------------------------------------------------------------
class ChannelSettings(BaseModel):
    """One channel: a name, an apprise URL (``url``, ``url_env`` or ``url_file``), tags.

    ``url_env`` names an environment variable holding the URL; ``url_file`` a file holding
    it (``$VAR``/``${VAR}`` in the path are expanded, e.g. ``${CREDENTIALS_DIRECTORY}/tg``
    for a systemd credential). The URL itself is never shown: only its masked form.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    url: SecretStr | None = None
    url_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    url_file: str | None = None
    tags: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_source(self) -> ChannelSettings:
        given = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"channel {self.name!r} needs exactly one of url, url_env, url_file "
                f"(got {', '.join(given) or 'none'})"
            )
        return self


def resolve_url(
    settings: ChannelSettings, environ: Mapping[str, str]
) -> tuple[str | None, str | None, str]:
    """(url, problem, source description); the problem never contains the secret."""
    if settings.url is not None:
        value = settings.url.get_secret_value().strip()
        return (value, None, "url") if value else (None, "url is empty", "url")
    try:
        url, source = read_secret("", env=settings.url_env, file=settings.url_file,
                                  environ=environ)
    except SecretError as exc:
        return None, exc.problem, exc.source
    if url is None:  # the settings' validator rules this out
        return None, "no url given", source
    return url, None, source


class Delivery:
    """One notification to one channel, sent from its own daemon thread.

    The alerts actor waits for it at most its timeout; a delivery still running after that
    is abandoned (its channel counts as busy until it ends, bounded by ``cto``/``rto``).
    """

    def __init__(
        self,
        channel: str,
        target: apprise.Apprise,
        *,
        title: str,
        body: str,
        notify_type: apprise.NotifyType,
        tag: str | Sequence[str],
        scrub: Callable[[str], str],
    ) -> None:
        self.channel = channel
        self.done = threading.Event()
        self.ok = False
        self.error: str | None = None
        self._args = (target, title, body, notify_type, tag)
        self._scrub = scrub
        self._thread = threading.Thread(
            target=self._run, name=f"alerts-delivery:{channel}", daemon=True
        )

    def start(self) -> Delivery:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def _run(self) -> None:
        target, title, body, notify_type, tag = self._args
        try:
            result = target.notify(body=body, title=title, notify_type=notify_type, tag=tag)
            self.ok = bool(result)
            if not self.ok:
                self.error = _failure_text(result, self._scrub)
        except Exception as exc:
            self.ok = False
            self.error = f"apprise raised {type(exc).__name__}: {self._scrub(str(exc))}"[:300]
        finally:
            self.done.set()


def _failure_text(result: object, scrub: Callable[[str], str]) -> str:
    """apprise's own words for a failure, when its result carries them (apprise >= 2)."""
    try:
        logs = getattr(result, "logs", None)
        entries = list(logs()) if callable(logs) else []
        words = [str(e.message) for e in entries
                 if getattr(e, "level", "") in ("WARNING", "ERROR", "CRITICAL")]
    except Exception:
        words = []
    text = "; ".join(dict.fromkeys(words)) or "delivery failed"
    return scrub(text)[:300]


class Channel:
    """Owns one configured channel: its URL (never shown), apprise instance and counters."""

    def __init__(
        self,
        settings: ChannelSettings,
        timeout: float,
        environ: Mapping[str, str],
        masker: SecretMasker,
    ) -> None:
        self.name = settings.name
        self.tags = settings.tags
        self._scrub = masker.scrub
        url, problem, self.source = resolve_url(settings, environ)
        if url is not None:
            masker.add(secret_fragments(url))  # before apprise sees (and may log) it
        self.url = mask_url(url) if url is not None else MASK
        self.problem = problem
        self._apprise: apprise.Apprise | None = None
        if url is not None and problem is None:
            target = apprise.Apprise()
            if target.add(with_timeouts(url, timeout), tag=list(self.tags) or None) and (
                len(target) == 1
            ):
                self._apprise = target
            else:
                self.problem = "apprise cannot use this URL (unknown scheme or bad format)"
        self.sent = 0
        self.failed = 0
        self.last_ok: bool | None = None
        self.last_error: str | None = None
        self._delivery: Delivery | None = None

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, {self.url!r}, tags={list(self.tags)})"

    @property
    def ready(self) -> bool:
        return self._apprise is not None

    @property
    def busy(self) -> bool:
        return self._delivery is not None and not self._delivery.done.is_set()

    def matches(self, tags: Sequence[str]) -> bool:
        """True if apprise would route ``tags`` to this channel."""
        if self._apprise is not None:
            return any(True for _ in self._apprise.find(tag=list(tags)))
        wanted = set(tags)
        return "all" in wanted or bool(wanted & set(self.tags))

    def send(
        self, title: str, body: str, notify_type: apprise.NotifyType, tag: str | Sequence[str]
    ) -> Delivery | str:
        """Start a delivery, or say why none can start (the reason never holds a secret)."""
        if self._apprise is None:
            return self.problem or "not configured"
        if self.busy:
            return "its previous delivery has not ended yet"
        tags: str | list[str] = tag if isinstance(tag, str) else list(tag)
        self._delivery = Delivery(
            self.name, self._apprise, title=title, body=body, notify_type=notify_type,
            tag=tags, scrub=self._scrub,
        ).start()
        return self._delivery

    def record(self, ok: bool, error: str | None) -> None:
        self.last_ok = ok
        if ok:
            self.sent += 1
        else:
            self.failed += 1
            self.last_error = error


# -- cooldown and bursts ---------------------------------------------------------------------
class Verdict(enum.Enum):
    """What the gate decided about one alert."""

    DELIVER = "deliver"
    SUPPRESSED = "suppressed"  # the same alert was delivered within the cooldown
    FOLDED = "folded"  # past the burst limit of its key; counted in the window's summary


@dataclass(frozen=True, slots=True)
class Admission:
    """The gate's answer: the verdict, and when to close the window if a close is due."""

    verdict: Verdict
    close_in: float | None = None  # schedule _CloseWindow(key, opened) after this delay
    opened: float = 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    """One alert standing for those of a key that a burst window did not deliver."""

    key: str
    severity: Severity
    folded: int
    suppressed: int
    window: float
    last_title: str
    last_body: str

    @property
    def count(self) -> int:
        return self.folded + self.suppressed

    @property
    def title(self) -> str:
        return f"{self.count} similar alerts suppressed in {self.window:g} s"

    @property
    def body(self) -> str:
        last = self.last_title + (f" - {self.last_body}" if self.last_body else "")
        return (f"{self.key}: {self.folded} over the burst limit, {self.suppressed} repeats "
                f"within the cooldown. Last: {last}")


@dataclass(slots=True)
class _Window:
    opened: float
    count: int = 0
    folded: int = 0
    suppressed: int = 0
    worst: Severity = Severity.INFO
    last_title: str = ""
    last_body: str = ""
    closing: bool = False  # a close has been scheduled

    def note(self, severity: Severity, title: str, body: str) -> None:
        self.worst = max(self.worst, severity)
        self.last_title, self.last_body = title, body


class AlertGate:
    """Cooldown, de-duplication and burst folding per alert key, on a clock passed in.

    * De-duplication with cooldown: an alert with the same key, severity and title as one
      delivered less than ``cooldown`` seconds ago is suppressed (the body may differ: it
      often carries a changing count). A more severe alert is never a repeat.
    * Bursts: the window of a key opens at its first alert and lasts ``window`` seconds.
      The first ``burst_max`` alerts in it are handled as above; the rest are folded. When
      a window that folded anything closes, :meth:`close` returns one :class:`Summary`
      counting every alert of the window that was not delivered.
    """

    def __init__(self, cooldown: float, burst_max: int | None, window: float) -> None:
        self.cooldown = cooldown
        self.burst_max = burst_max
        self.window = window
        self._sent: dict[str, dict[tuple[Severity, str], float]] = {}
        self._windows: dict[str, _Window] = {}
        self._expired: dict[tuple[str, float], _Window] = {}
        self._calls = 0

    def admit(self, key: str, severity: Severity, title: str, body: str, now: float) -> Admission:
        self._calls += 1
        if self._calls % 256 == 0:
            self._prune(now)
        window: _Window | None = None
        if self.burst_max is not None:
            window = self._windows.get(key)
            if window is None or now >= window.opened + self.window:
                if window is not None and window.closing:
                    self._expired[(key, window.opened)] = window
                window = self._windows[key] = _Window(now)
            window.count += 1
            if window.count > self.burst_max:
                window.folded += 1
                window.note(severity, title, body)
                if window.closing:
                    return Admission(Verdict.FOLDED)
                window.closing = True
                delay = max(0.0, window.opened + self.window - now)
                return Admission(Verdict.FOLDED, close_in=delay, opened=window.opened)
        if self.cooldown > 0:
            sent = self._sent.setdefault(key, {})
            signature = (severity, title)
            last = sent.get(signature)
            if last is not None and now - last < self.cooldown:
                if window is not None:
                    window.suppressed += 1
                    window.note(severity, title, body)
                return Admission(Verdict.SUPPRESSED)
            sent[signature] = now
        return Admission(Verdict.DELIVER)

    def close(self, key: str, opened: float) -> Summary | None:
        """End the window of ``key`` opened at ``opened``; its summary if it folded any."""
        window = self._expired.pop((key, opened), None)
        if window is None:
            current = self._windows.get(key)
            if current is None or current.opened != opened:
                return None
            window = self._windows.pop(key)
        return self._summary(key, window)

    def pending(self) -> list[Summary]:
        """Summaries of every window that folded alerts and has not closed yet."""
        windows = [*(((k, w) for (k, _), w in self._expired.items())), *self._windows.items()]
        return [s for k, w in windows if (s := self._summary(k, w)) is not None]

    def _summary(self, key: str, window: _Window) -> Summary | None:
        if window.folded == 0:
            return None
        return Summary(key, window.worst, window.folded, window.suppressed, self.window,
                       window.last_title, window.last_body)

    def _prune(self, now: float) -> None:
        for key in list(self._sent):
            live = {s: t for s, t in self._sent[key].items() if now - t < self.cooldown}
            if live:
                self._sent[key] = live
            else:
                del self._sent[key]
        for key, window in list(self._windows.items()):
            if not window.closing and now >= window.opened + self.window:
                del self._windows[key]
