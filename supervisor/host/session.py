"""RunSession: one ``botvisor run`` from start to exit, and the services that ride along.

The session is handed a validated config and the tree spec; it loads nothing itself. It
starts the tree, then its services (sd_notify, control socket, metrics, the observer...),
tells them about each phase (ready, reloading, reloaded, stopping, stopped), ticks them
from the main thread while the tree runs, and stops everything in reverse order. A service
is anything with the :class:`SessionService` methods; each gets the session, so it can read
the runtime, the config and its path, and ask for a stop or a reload. A service's failure
is logged and never stops the tree: a broken operator tool must not take the bot down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.errors import StartFailed
from supervisor.host.gc_freeze import freeze_startup_objects
from supervisor.host.secrets import secrets_of

if TYPE_CHECKING:
    from supervisor.host.config_models import BotConfig
    from supervisor.runtime import Runtime
    from supervisor.spec import SupervisorSpec

log = logging.getLogger("botvisor")

__all__ = ["RunSession", "SessionService"]

EXIT_OK, EXIT_ERROR = 0, 1
TICK_SECONDS = 0.2  # how often the main thread wakes to tick services and check the tree


class SessionService:
    """A part of a run that is not an actor: started after the tree, stopped before it ends.

    Subclasses override what they need; every hook runs on the main thread, except that
    services may start their own threads in :meth:`start` (and must end them in
    :meth:`stop`).
    """

    name: str = "service"

    def start(self, session: RunSession) -> None:
        """The tree is up; begin work."""

    def ready(self) -> None:
        """The tree is up and every service has started."""

    def tick(self, now: float) -> None:
        """Called from the main thread about every 0.2 s while the tree runs."""

    def reloading(self) -> None:
        """A reload (SIGHUP or the control socket) begins."""

    def reloaded(self, changes: list[str], needs_restart: list[str]) -> None:
        """A reload has finished; ``changes`` were applied, ``needs_restart`` were not."""

    def stopping(self, reason: str) -> None:
        """The tree is about to be stopped (signal, duration, or the root ending)."""

    def stopped(self, exit_code: int) -> None:
        """The tree has stopped; last chance to print or write anything."""

    def stop(self) -> None:
        """Release what :meth:`start` took (threads, sockets, files)."""


class RunSession:
    """Owns one run: the runtime, the services, the stop request and the exit code."""

    def __init__(
        self,
        config: BotConfig,
        spec: SupervisorSpec,
        runtime: Runtime,
        *,
        config_path: Path,
        duration: float | None = None,
        reloader: Callable[[RunSession], tuple[list[str], list[str]]] | None = None,
    ) -> None:
        self.config = config
        self.spec = spec
        self.runtime = runtime
        self.config_path = config_path
        self.duration = duration
        self.services: list[SessionService] = []
        self.stop_reason: str | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._reloader = reloader
        self._reload_lock = threading.Lock()
        self._reload_waiters: list[Future[tuple[list[str], list[str]]]] = []
        self._no_more_reloads = False
        self._started: list[SessionService] = []

    # -- requests (any thread, signal handlers included) ---------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the run to stop; the main thread does it."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def request_reload(self) -> Future[tuple[list[str], list[str]]]:
        """Ask the main thread to reload the config; the future gets (applied, not applied).

        Safe from signal handlers and other threads (the control socket's).
        """
        future: Future[tuple[list[str], list[str]]] = Future()
        with self._reload_lock:
            if self._no_more_reloads:
                future.set_exception(RuntimeError("the bot is stopping; nothing was reloaded"))
                return future
            self._reload_waiters.append(future)
        self._reload.set()
        self._stop.set()  # wake the main thread; it tells the two apart
        return future

    def signal_reload(self) -> None:
        """SIGHUP: ask for a reload without taking any lock (a signal handler runs on the
        main thread, which may hold one); nobody waits for its result."""
        self._reload.set()
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self.stop_reason is not None

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        """Start the tree and the services, wait, stop everything; the exit status."""
        runtime = self.runtime
        secrets_of(runtime)  # secrets are masked on the root's handlers from the first record
        try:
            runtime.start(self.spec, name=self.config.runtime.name,
                          shutdown=self.config.tree.shutdown)
        except StartFailed as exc:
            log.critical("could not start: %s", exc)
            runtime.stop()
            return EXIT_ERROR
        log.info("tree is up: %s", ", ".join(runtime.names()))
        if self.config.runtime.gc_freeze:
            log.debug("gc: %d start-up objects frozen", freeze_startup_objects())
        for service in self.services:
            if self._call(service, "start", service.start, self):
                self._started.append(service)
        for service in self._started:
            self._call(service, "ready", service.ready)
        self._wait()
        with self._reload_lock:  # reloads asked for too late: say so, do not leave them hanging
            late, self._reload_waiters = self._reload_waiters, []
            self._no_more_reloads = True
        for future in late:
            future.set_exception(RuntimeError("the bot is stopping; nothing was reloaded"))
        code = runtime.exit_code if runtime.exit_code is not None else EXIT_OK
        reason = self.stop_reason or runtime.exit_reason or "the tree ended"
        log.info("stopping: %s", reason)
        for service in self._started:
            self._call(service, "stopping", service.stopping, reason)
        runtime.stop()
        if code != EXIT_OK:
            log.critical("exiting with status %d: %s", code, runtime.exit_reason)
        else:
            log.info("stopped cleanly")
        for service in self._started:
            self._call(service, "stopped", service.stopped, code)
        for service in reversed(self._started):
            self._call(service, "stop", service.stop)
        return code

    def _wait(self) -> None:
        runtime = self.runtime
        clock = runtime.clock
        deadline = None if self.duration is None else clock.now() + self.duration
        while True:
            if self._reload.is_set():
                self._reload.clear()
                if self.stop_reason is None:
                    self._stop.clear()
                with self._reload_lock:
                    waiters, self._reload_waiters = self._reload_waiters, []
                result = self.reload()
                for future in waiters:
                    future.set_result(result)
            if self.stop_reason is not None or runtime.wait(timeout=0):
                return
            now = clock.now()
            if deadline is not None and now >= deadline:
                self.request_stop(f"--duration {self.duration:g}s reached")
                return
            for service in self._started:
                self._call(service, "tick", service.tick, now)
            wait = TICK_SECONDS if deadline is None else min(TICK_SECONDS, deadline - now)
            self._stop.wait(max(wait, 0.0))

    def reload(self) -> tuple[list[str], list[str]]:
        """Reload the config now (main thread); returns (applied, needing a restart)."""
        for service in self._started:
            self._call(service, "reloading", service.reloading)
        applied: list[str] = []
        needs_restart: list[str] = []
        if self._reloader is None:
            needs_restart = ["(this run cannot reload its config)"]
        else:
            try:
                applied, needs_restart = self._reloader(self)
            except Exception as exc:  # a bad new config keeps the old one running
                log.error("reload failed, still running the previous config: %s", exc)
                needs_restart = [f"reload failed: {exc}"]
        for service in self._started:
            self._call(service, "reloaded", service.reloaded, applied, needs_restart)
        return applied, needs_restart

    @staticmethod
    def _call(service: SessionService, hook: str, fn: Callable[..., object], *args: object
              ) -> bool:
        try:
            fn(*args)
        except Exception:
            log.exception("service %s failed in %s; the tree keeps running", service.name, hook)
            return False
        return True
