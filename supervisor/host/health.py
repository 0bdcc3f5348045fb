"""TreeHealth: is the tree healthy right now, and why not, read from the runtime alone.

The verdict feeds the systemd watchdog (fed only while the tree is healthy) and the
one-line ``STATUS=``. The tree is unhealthy when the root has ended or never started, or a
**permanent** child is hung (past its ``handler_deadline``), crash-looping (more than
``max_restarts`` failure restarts within ``restart_window`` seconds) or out of RUNNING for
longer than ``down_grace`` seconds. A child the operator stopped, and what is below it, is
not judged; transient and temporary children are only counted. Every check is a read (the
tree snapshot, the specs, the bounded event history, so restart counts are lower bounds):
it never blocks and may run on any thread. What it means in production: ``docs/systemd.md``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor.events import EventKind
from supervisor.lifecycle import ChildState
from supervisor.spec import RestartType

if TYPE_CHECKING:
    from supervisor.runtime import Runtime
    from supervisor.tree_view import TreeNode

__all__ = ["HealthPolicy", "HealthReport", "TreeHealth"]

_STATE_ORDER = (
    ChildState.RUNNING,
    ChildState.STARTING,
    ChildState.RESTARTING,
    ChildState.STOPPED,
    ChildState.TERMINATED,
)
_NAMES_SHOWN = 3  # names listed per non-running state in the summary before "+N"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds for :class:`TreeHealth`.

    ``down_grace``: seconds a permanent child may be out of RUNNING (restarting, starting,
    stopped) before that is a failure; longer than a typical backoff delay.
    ``max_restarts`` / ``restart_window``: more failure restarts of one permanent child than
    this within the window is a crash loop. ``summary_window``: the span of the restart count
    shown in the summary.
    """

    down_grace: float = 30.0
    max_restarts: int = 5
    restart_window: float = 300.0
    summary_window: float = 600.0

    def __post_init__(self) -> None:
        if self.down_grace < 0:
            raise ValueError("health down_grace must be >= 0")
        if self.max_restarts < 0:
            raise ValueError("health max_restarts must be >= 0")
        if self.restart_window <= 0 or self.summary_window <= 0:
            raise ValueError("health windows must be > 0")


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One verdict: healthy or not, the problems found, and the one-line summary."""

    healthy: bool
    reason: str  # "ok", or the first problem (and how many more)
    problems: tuple[str, ...]
    summary: str
    at: float  # the runtime clock's monotonic reading the verdict is for

    @property
    def status_line(self) -> str:
        """The text for ``STATUS=``: the summary, led by the reason when unhealthy."""
        if self.healthy:
            return self.summary
        return f"UNHEALTHY: {self.reason} | {self.summary}"


class TreeHealth:
    """Owns the health verdict for one runtime and the little memory it needs: since when
    each permanent child has been seen out of RUNNING (for ``down_grace``).

    Thread-safe; :meth:`check` may be called from the main thread and a timer thread alike.
    """

    def __init__(self, runtime: Runtime, policy: HealthPolicy | None = None) -> None:
        self.runtime = runtime
        self.policy = policy or HealthPolicy()
        self._down_since: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- the verdict -------------------------------------------------------------------------
    def check(self, now: float | None = None) -> HealthReport:
        """Judge the tree now (``now`` defaults to the runtime clock's reading)."""
        runtime = self.runtime
        now = runtime.clock.now() if now is None else now
        policy = self.policy
        problems: list[str] = []
        if runtime.exit_code is not None:
            why = runtime.exit_reason or "no reason given"
            problems.append(f"the tree has ended (exit {runtime.exit_code}): {why}")
        root = runtime.tree()
        if root is None:
            problems.append("the tree is not running")
            return self._report(now, problems, "no tree")
        restarts = self._restarts_by_actor(now - policy.restart_window)
        down: dict[str, float] = {}
        with self._lock:
            for child in root.children:
                self._judge(child, now, restarts, down, problems)
            self._down_since = down
        return self._report(now, problems, self._summary(root, now))

    def summary(self, now: float | None = None) -> str:
        """One line for ``STATUS=``, e.g. ``15 actors: 14 running, 1 terminated (scanner);
        3 restarts in 10 min``."""
        now = self.runtime.clock.now() if now is None else now
        root = self.runtime.tree()
        return "no tree" if root is None else self._summary(root, now)

    def restart_count(self, window: float, now: float | None = None,
                      actor: str | None = None) -> int:
        """Failure restarts (of ``actor``, or of anyone) in the last ``window`` seconds."""
        now = self.runtime.clock.now() if now is None else now
        counts = self._restarts_by_actor(now - window)
        return counts.get(actor, 0) if actor is not None else sum(counts.values())

    # -- internals ---------------------------------------------------------------------------
    def _judge(self, node: TreeNode, now: float, restarts: Counter[str],
               down: dict[str, float], problems: list[str]) -> None:
        policy = self.policy
        if node.state == ChildState.TERMINATED:
            return  # stopped by the operator: not a failure, and nothing below it runs
        permanent = node.restart == RestartType.PERMANENT
        if permanent and restarts[node.name] > policy.max_restarts:
            problems.append(
                f"{node.name} is crash-looping: {restarts[node.name]} restarts in "
                f"{_span(policy.restart_window)} (limit {policy.max_restarts})"
            )
        if node.state != ChildState.RUNNING:
            if permanent:
                since = self._down_since.get(node.name, now)
                down[node.name] = since
                if now - since > policy.down_grace:
                    problems.append(
                        f"{node.name} has not been running ({node.state}) for over "
                        f"{policy.down_grace:g}s"
                    )
            return  # its children are down with it; it speaks for them
        if permanent and node.busy_for is not None:
            cell = self.runtime.cell_or_none(node.name)
            deadline = cell.spec.handler_deadline if cell is not None else None
            if deadline is not None and node.busy_for > deadline:
                problems.append(f"{node.name} is hung: a handler has run past its "
                                f"{deadline:g}s deadline")
        for child in node.children:
            self._judge(child, now, restarts, down, problems)

    def _restarts_by_actor(self, horizon: float) -> Counter[str]:
        return Counter(
            e.actor
            for e in self.runtime.events.recent()
            if e.kind is EventKind.RESTARTING and e.monotonic > horizon
        )

    def _summary(self, root: TreeNode, now: float) -> str:
        nodes = [n for child in root.children for n in child.walk()]
        by_state: dict[str, list[str]] = {}
        for node in nodes:
            by_state.setdefault(node.state, []).append(node.name)
        parts = []
        known = [s.value for s in _STATE_ORDER]
        for state in [*known, *sorted(set(by_state) - set(known))]:
            names = by_state.get(state)
            if not names:
                continue
            if state == ChildState.RUNNING:
                parts.append(f"{len(names)} running")
            else:
                parts.append(f"{len(names)} {state} ({_names(names)})")
        fallback = [n.name for n in nodes if n.fallback_active]
        if fallback:
            parts.append(f"{len(fallback)} on fallback ({_names(fallback)})")
        window = self.policy.summary_window
        count = sum(self._restarts_by_actor(now - window).values())
        restarts = ("no restarts" if count == 0 else
                    f"{count} restart{'s' if count != 1 else ''}")
        noun = "actor" if len(nodes) == 1 else "actors"
        return f"{len(nodes)} {noun}: {', '.join(parts) or 'none'}; {restarts} in {_span(window)}"

    def _report(self, now: float, problems: list[str], summary: str) -> HealthReport:
        if not problems:
            return HealthReport(True, "ok", (), summary, now)
        reason = problems[0]
        if len(problems) > 1:
            reason += f" (and {len(problems) - 1} more)"
        return HealthReport(False, reason, tuple(problems), summary, now)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    extra = len(names) - _NAMES_SHOWN
    return shown if extra <= 0 else f"{shown} +{extra} more"


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
