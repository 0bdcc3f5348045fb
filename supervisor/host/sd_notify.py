"""systemd's notification protocol (sd_notify), and the run service that speaks it.

:class:`Notifier` sends ``KEY=VALUE`` lines as one datagram to the socket ``NOTIFY_SOCKET``
names (a path, or an abstract name when it starts with ``@``); outside systemd every call
is a no-op, and sending never raises (the first failure is a warning, later ones debug
lines). :class:`SystemdService` rides along with ``botvisor run``: ``READY=1`` once the tree
is up, ``RELOADING=1`` (with ``MONOTONIC_USEC``) and ``READY=1`` around a reload,
``STOPPING=1`` before the tree stops, ``STATUS=`` when the health summary changes, and
``WATCHDOG=1`` at half the ``WATCHDOG_USEC`` interval, only while
:class:`~supervisor.host.health.TreeHealth` finds the tree healthy. See ``docs/systemd.md``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from supervisor.host.health import HealthPolicy, HealthReport, TreeHealth
from supervisor.host.session import SessionService

if TYPE_CHECKING:
    from supervisor.clock import Clock, TimerHandle
    from supervisor.host.session import RunSession

log = logging.getLogger("botvisor")

__all__ = ["Notifier", "SystemdService", "monotonic_usec"]


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd reads ``MONOTONIC_USEC`` against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


class Notifier:
    """Owns the datagram socket to systemd's notification socket and the watchdog settings
    read from the environment (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID``).

    ``environ`` defaults to ``os.environ`` and ``pid`` to ``os.getpid()``; both are read
    once, at construction. Methods return True when a datagram was sent.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self.pid = os.getpid() if pid is None else pid
        self.socket_name: str | None = env.get("NOTIFY_SOCKET") or None
        self._address: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        if self.socket_name is not None:
            if self.socket_name.startswith("@"):
                self._address = "\0" + self.socket_name[1:]
            elif self.socket_name.startswith("/"):
                self._address = self.socket_name
            else:
                self._warn(f"NOTIFY_SOCKET={self.socket_name!r} is neither a path nor "
                           "an abstract socket ('@name'); not notifying systemd")
        self.watchdog_usec = self._read_watchdog(env)

    # -- what systemd gave us -----------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """True when there is a notification socket to talk to."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``); None: no watchdog
        for this process (unset, invalid, or ``WATCHDOG_PID`` names another process)."""
        if self.watchdog_usec is None or not self.enabled:
            return None
        return self.watchdog_usec / 2_000_000

    def _read_watchdog(self, env: Mapping[str, str]) -> int | None:
        raw = env.get("WATCHDOG_USEC")
        if not raw:
            return None
        try:
            usec = int(raw)
        except ValueError:
            usec = 0
        if usec <= 0:
            log.warning("sd_notify: ignoring WATCHDOG_USEC=%r (not a positive integer)", raw)
            return None
        owner = env.get("WATCHDOG_PID")
        if owner:
            try:
                owner_pid = int(owner)
            except ValueError:
                owner_pid = -1
            if owner_pid != self.pid:
                log.info("sd_notify: the watchdog is for pid %s, not ours (%d); not pinging",
                         owner, self.pid)
                return None
        return usec

    # -- messages -----------------------------------------------------------------------------
    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; False if not sent (never raises)."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX,
                                               socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(payload, self._address)
            except (OSError, ValueError) as exc:  # ValueError: an unusable address
                self._warn(f"could not notify systemd at {self.socket_name}: {exc}")
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) has finished."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """``STATUS=``: one line shown by ``systemctl status``."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``, only when the watchdog is enabled for this process."""
        if self.watchdog_interval is None:
            return False
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (systemd requires both, in one message)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}",
                           *self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1", *self._status(status))

    def close(self) -> None:
        """Close the socket (a later message opens a new one)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        return () if text is None else (f"STATUS={_one_line(text)}",)

    def _warn(self, message: str) -> None:
        if self._warned:
            log.debug("sd_notify: %s", message)
            return
        self._warned = True
        log.warning("sd_notify: %s (further failures are logged at debug level)", message)


class SystemdService(SessionService):
    """Owns the conversation with systemd for one run: readiness, reload and stop
    notifications, the ``STATUS=`` line, and the watchdog pings gated on tree health.

    Outside systemd (no ``NOTIFY_SOCKET``) every hook returns at once. Pings are driven by
    :meth:`tick` (the session's main loop, ~every 0.2 s) and, as a backup, by a timer on the
    runtime's clock every half ping interval. A ping is sent when one is due, the tree is
    healthy, and the main loop is alive: it ticked within the last ping interval, or a
    reload is in progress (a reload runs on the main thread and may take a while; systemd
    keeps the watchdog armed during it). After ``stopping`` no more pings go out (systemd
    disarms the watchdog when a service leaves the running state).
    """

    name = "systemd"

    def __init__(self, notifier: Notifier | None = None, *,
                 policy: HealthPolicy | None = None,
                 health: TreeHealth | None = None) -> None:
        self.notifier = notifier or Notifier()
        self.policy = policy
        self.health: TreeHealth | None = health
        self.pings = 0  # WATCHDOG=1 datagrams sent
        self.last_report: HealthReport | None = None
        self._clock: Clock | None = None
        self._lock = threading.RLock()
        self._timer: TimerHandle | None = None
        self._next_ping = float("-inf")
        self._last_tick = float("-inf")
        self._last_status: str | None = None
        self._reloading = False
        self._stopping = False

    @property
    def interval(self) -> float | None:
        """Seconds between pings, or None when systemd does not watch this process."""
        return self.notifier.watchdog_interval

    # -- SessionService hooks -----------------------------------------------------------------
    def start(self, session: RunSession) -> None:
        self.attach(session.runtime.clock, self.health or TreeHealth(session.runtime,
                                                                     self.policy))

    def attach(self, clock: Clock, health: TreeHealth) -> None:
        """Take the clock and health judge to use (``start`` does this from the session)."""
        self._clock = clock
        self.health = health
        if self.notifier.enabled:
            interval = self.interval
            log.info("systemd: notifying %s; watchdog %s", self.notifier.socket_name,
                     f"ping every {interval:g}s while healthy" if interval else "off")

    def ready(self) -> None:
        if not self.notifier.enabled:
            return
        now = self._now()
        with self._lock:
            self._last_tick = now
            report = self._judge(now)
            self._last_status = report.status_line
            self.notifier.ready(report.status_line)
            self._maybe_ping(now, report)
        self._schedule()

    def tick(self, now: float) -> None:
        if not self.notifier.enabled:
            return
        with self._lock:
            self._last_tick = now
            self._poll(now)

    def reloading(self) -> None:
        with self._lock:
            self._reloading = True
            self._last_status = "reloading the configuration"
            self.notifier.reloading(self._last_status)

    def reloaded(self, changes: list[str], needs_restart: list[str]) -> None:
        if not self.notifier.enabled:
            return
        now = self._now()
        with self._lock:
            self._reloading = False
            self._last_tick = now
            report = self._judge(now)
            self._last_status = report.status_line
            self.notifier.ready(report.status_line)
            self._maybe_ping(now, report)

    def stopping(self, reason: str) -> None:
        with self._lock:
            self._stopping = True
            self._cancel_timer()
            self._last_status = f"stopping: {reason}"
            self.notifier.stopping(self._last_status)

    def stopped(self, exit_code: int) -> None:
        with self._lock:
            self.notifier.status(f"stopped (exit status {exit_code})")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._cancel_timer()
        self.notifier.close()

    # -- the watchdog -------------------------------------------------------------------------
    def _poll(self, now: float) -> None:
        """Re-judge the tree; update STATUS= if it changed; ping if one is due and allowed."""
        if self._stopping or self.health is None:
            return
        report = self._judge(now)
        if report.status_line != self._last_status and not self._reloading:
            self._last_status = report.status_line
            self.notifier.status(report.status_line)
        self._maybe_ping(now, report)

    def _judge(self, now: float) -> HealthReport:
        assert self.health is not None, "SystemdService used before start()"
        report = self.health.check(now)
        previous = self.last_report
        if previous is None or previous.healthy != report.healthy:
            if report.healthy:
                if previous is not None:
                    log.warning("systemd: the tree is healthy again%s",
                                "; watchdog pings resume" if self.interval else "")
            else:
                log.error("systemd: the tree is unhealthy, watchdog pings %s: %s",
                          "stop" if self.interval else "would stop", report.reason)
        self.last_report = report
        return report

    def _maybe_ping(self, now: float, report: HealthReport) -> None:
        interval = self.interval
        if interval is None or self._stopping or not report.healthy or now < self._next_ping:
            return
        if not self._reloading and now - self._last_tick > interval:
            return  # the main loop has stalled: let systemd see it
        if self.notifier.watchdog():
            self.pings += 1
            self._next_ping = now + interval

    def _on_timer(self) -> None:
        now = self._now()
        try:
            with self._lock:
                self._timer = None
                self._poll(now)
        except Exception:  # a failed check skips one ping; the next timer tries again
            log.exception("systemd: watchdog check failed")
        finally:
            self._schedule()

    def _schedule(self) -> None:
        interval = self.interval
        with self._lock:
            if interval is None or self._clock is None or self._stopping:
                return
            if self._timer is None:
                self._timer = self._clock.call_later(interval / 2, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _now(self) -> float:
        if self._clock is None:
            return time.monotonic()
        return self._clock.now()
