"""The executor's outbox: the fills sent to the ledger and not acknowledged yet, with retries.

:class:`Outbox` owns every fill from its first send until the ledger acknowledges it: a
fill out on its first try is ``recording``; one a try failed for is ``unrecorded``, with its
failures, when the next try is due (backoff from the failures) and whether one is out. After
``attempts`` failures it is alerted, once; an ``InvalidFill`` is refused for good (kept in
``refused``, never retried, alerted). It sends each try (``RecordFill``) through the ``ask``
it is given (the executor's, which owns the asks and hands the answers back), alerts through
``alert`` and says ``changed`` when what it holds changed (the executor publishes then). No
actor, no clock: ``now`` is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from actors.common.messages import Alert, Fill, InvalidFill, Side
from actors.portfolio.contract import FillRecorded, RecordFill
from supervisor.backoff import Backoff
from supervisor.errors import RuntimeErrorBase

__all__ = ["Failed", "Outbox", "Unrecorded"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too


@dataclass(slots=True)
class Unrecorded:
    """A fill the ledger has not acknowledged: failed tries, when the next is due, whether
    one is out, whether it was alerted."""

    fill: Fill
    failures: int = 0
    due: float = 0.0
    out: bool = False
    alerted: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    """What a failed try means: the fill is ``refused`` for good, or retried after its
    ``failures``; ``alert``: what to tell the operator (a refusal, or ``attempts`` failures:
    said once)."""

    refused: bool = False
    failures: int = 0
    alert: Alert | None = None


class Outbox:
    """Owns the fills out to the ledger or to send again (see the module docstring)."""

    def __init__(self, backoff: Backoff, attempts: int, *,
                 ask: Callable[[RecordFill, str], Any], alert: Callable[[Alert], Any],
                 changed: Callable[[], Any]) -> None:
        self._backoff = backoff
        self.attempts = attempts
        self._ask, self._alert, self._changed = ask, alert, changed
        self.recorded = 0  # fills the ledger acknowledged as new
        self.recording: dict[str, Fill] = {}  # fill id -> fill out on its first try
        self.unrecorded: dict[str, Unrecorded] = {}  # fill id -> fill a try failed for
        self.refused: list[Fill] = []  # fills the ledger refused for good

    def __len__(self) -> int:
        """The fills a try failed for (not acknowledged yet)."""
        return len(self.unrecorded)

    def __iter__(self) -> Iterator[Unrecorded]:
        return iter(list(self.unrecorded.values()))

    def send(self, fill: Fill, now: float) -> None:
        """Send ``fill`` to the ledger, without waiting for its commit (a try that cannot be
        sent has failed at ``now``)."""
        try:
            self._ask(RecordFill(fill), fill.fill_id)
        except RuntimeErrorBase as exc:
            self.failed(fill, exc, now)
            return
        self.sent(fill)

    def retry(self, fills: list[Fill], now: float) -> None:
        """Try ``fills`` again (those :meth:`due` or :meth:`stuck`)."""
        for fill in fills:
            self.send(fill, now)

    def answered(self, fill_id: str, value: Any) -> None:
        """The ledger acknowledged ``fill_id`` (``value``: its ``FillRecorded``)."""
        if self.acknowledged(fill_id):
            if not (isinstance(value, FillRecorded) and value.duplicate):
                self.recorded += 1  # (a fill it had already is not counted)
            self._changed()

    def not_answered(self, fill_id: str, exc: Exception, now: float) -> None:
        """A try of ``fill_id`` failed with ``exc`` (its answer, or none in time)."""
        fill = self.taken_back(fill_id)
        if fill is not None:
            self.failed(fill, exc, now)

    def sent(self, fill: Fill) -> None:
        """A try of ``fill`` is out."""
        u = self.unrecorded.get(fill.fill_id)
        if u is not None:
            u.out = True
        else:
            self.recording[fill.fill_id] = fill

    def acknowledged(self, fill_id: str) -> bool:
        """The ledger has ``fill_id``: it leaves the outbox (False: it was not in it)."""
        sent = self.recording.pop(fill_id, None)
        retried = self.unrecorded.pop(fill_id, None)
        return sent is not None or retried is not None

    def taken_back(self, fill_id: str) -> Fill | None:
        """A try of ``fill_id`` failed: the fill (None: not in the outbox)."""
        fill = self.recording.pop(fill_id, None)
        u = self.unrecorded.get(fill_id)
        if fill is None and u is not None:
            fill = u.fill
        return fill

    def failed(self, fill: Fill, exc: Exception, now: float) -> Failed:
        """A try of ``fill`` failed with ``exc`` at ``now``: refused for good
        (``InvalidFill``), or due again after the backoff of its failures; alerted as the
        result says."""
        result = self._failed(fill, exc, now)
        if result.alert is not None:
            self._alert(result.alert)
        self._changed()
        return result

    def _failed(self, fill: Fill, exc: Exception, now: float) -> Failed:
        what = f"{fill.fill_id} {fill.side.value} {fill.quantity} {fill.symbol}: {exc}"
        if isinstance(exc, InvalidFill):  # the ledger refuses it: retrying cannot change that
            self.unrecorded.pop(fill.fill_id, None)
            self.refused.append(fill)
            log.critical("the ledger refused fill %s: %s", fill.fill_id, exc)
            return Failed(refused=True, alert=Alert(
                f"executor.fill_refused.{fill.fill_id}", "critical",
                "The ledger refused a fill the venue made", what))
        u = self.unrecorded.get(fill.fill_id)
        if u is None:
            u = self.unrecorded[fill.fill_id] = Unrecorded(fill)
            log.warning("fill %s not acknowledged (%s: %s); sending it again", fill.fill_id,
                        type(exc).__name__, exc)
        u.out = False
        u.failures += 1
        u.due = now + self._backoff.delay(u.failures)
        if u.failures < self.attempts or u.alerted:
            return Failed(failures=u.failures)
        u.alerted = True
        log.error("fill %s not recorded yet (%s); will retry", fill.fill_id, exc)
        return Failed(failures=u.failures, alert=Alert(
            "executor.fill_unrecorded", "critical", "A fill could not be recorded yet", what))

    def due(self, now: float) -> list[Fill]:
        """Fills whose next try is due at ``now`` (none out)."""
        return [u.fill for u in self.unrecorded.values() if not u.out and u.due <= now]

    def stuck(self) -> list[Fill]:
        """Fills past their first ``attempts`` tries, none out (tried again per signal)."""
        return [u.fill for u in self.unrecorded.values()
                if not u.out and u.failures >= self.attempts]

    def next_due(self) -> float | None:
        """When the earliest try not out is due."""
        if not self.unrecorded:
            return None
        return min((u.due for u in self.unrecorded.values() if not u.out), default=None)

    def oldest(self) -> float | None:
        """The venue time of the oldest fill not acknowledged (None: none)."""
        oldest = min((u.fill.at for u in self.unrecorded.values()), default=None)
        if self.recording:
            sending = min(f.at for f in self.recording.values())
            oldest = sending if oldest is None else min(oldest, sending)
        return oldest

    def settled(self) -> bool:
        """Is every fill a try failed for past its first ``attempts`` tries?"""
        return all(u.failures >= self.attempts for u in self.unrecorded.values())

    def busy(self, symbol: str) -> bool:
        """Is a fill of ``symbol`` out, or within its first tries?"""
        return (any(f.symbol == symbol for f in self.recording.values())
                or any(u.fill.symbol == symbol and (u.out or u.failures < self.attempts)
                       for u in self.unrecorded.values()))

    def resolving(self) -> bool:
        """Is a retry out, or a fill within its first tries?"""
        return any(u.out or u.failures < self.attempts for u in self.unrecorded.values())

    def has_sale(self, symbol: str) -> bool:
        """Is a sale's fill of ``symbol`` out on its first try?"""
        return any(f.symbol == symbol and f.side is Side.SELL
                   for f in self.recording.values())

    def buys_writing(self) -> list[Fill]:
        """Buy fills out on their first try."""
        return [f for f in self.recording.values() if f.side is Side.BUY]

    def unsettled_symbols(self) -> set[str]:
        """Symbols with a fill a try failed for."""
        return {u.fill.symbol for u in self.unrecorded.values()}
