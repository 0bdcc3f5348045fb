"""The executor's venue sync driver: whether a sync runs or waits to, and who waits for it.

:class:`SyncDriver` owns the :class:`~actors.execution.venue_sync.SyncPhase` (every change
through :func:`~actors.execution.venue_sync.next_sync_phase`, so along ``SYNC_TABLE``), the
:class:`~actors.execution.venue_sync.VenueSync` under way, whether the last sync succeeded
(``synced``: orders may go out), the asks waiting for the next sync and for the one under way,
whether a retry timer is out, and an earlier instance's oldest unrecorded fill (where the next
sync reaches back to). The executor sends the steps it returns and tells it the answers. No
actor: the waiters are futures it answers or fails, and what the operator is to hear (a
failed sync, what a finished one found: :meth:`SyncDriver.report`) goes to the ``alert``
callable it is given, after it is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import pykka

from actors.common.messages import Alert
from actors.execution.venue_sync import Step, SyncEvent, SyncPhase, VenueSync, next_sync_phase

__all__ = ["SyncDriver"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too


class SyncDriver:
    """Owns the venue sync's phase and waiters (see the module docstring)."""

    def __init__(self, mode: Literal["recent", "full", "off"], lookback: float, batch: int,
                 *, retry: float, alert: Callable[[Alert], Any],
                 reach_back: float | None = None) -> None:
        self.mode, self.lookback, self.batch = mode, lookback, batch
        self.retry, self._alert = retry, alert  # seconds before a failed sync is retried
        self.reach_back = reach_back  # an earlier instance's oldest unrecorded fill
        self.synced = mode == "off"  # the last sync succeeded (with none: nothing to sync)
        self._phase = SyncPhase.IDLE
        self._sync: VenueSync | None = None  # the sync under way
        self._waiters: list[pykka.Future[Any]] = []  # for the next sync
        self._answering: list[pykka.Future[Any]] = []  # for the sync under way
        self.retry_out = False  # a retry timer is out (one at a time)

    @property
    def phase(self) -> SyncPhase:
        return self._phase

    @property
    def busy(self) -> bool:
        """A sync runs or waits to (no retries of fills and lookups meanwhile)."""
        return self._phase is not SyncPhase.IDLE

    def _event(self, event: SyncEvent) -> None:
        self._phase = next_sync_phase(self._phase, event)

    def want(self, reply: pykka.Future[Any] | None = None) -> None:
        """A sync is wanted (``reply``: answered with its count of fills recovered)."""
        if reply is not None:
            self._waiters.append(reply)
        self._event(SyncEvent.WANT)

    def due(self, nothing_out: bool) -> Step | None:
        """The first step of the sync wanted, if it may start (nothing of the executor's
        is out); its waiters are now the ones answered when it ends."""
        if self._phase is not SyncPhase.WANTED or not nothing_out:
            return None
        self._event(SyncEvent.START)
        self._answering, self._waiters = self._waiters, []
        self._sync = VenueSync(self.mode, self.lookback, self.batch, reach_back=self.reach_back)
        return self._sync.start()

    def answer(self, value: Any) -> Step | VenueSync | None:
        """The answer to the last step: the next step, or the sync when it is done (then
        :meth:`done` is due), None when no sync runs. Raises TypeError for a wrong answer."""
        sync = self._sync
        if sync is None:
            return None
        step = sync.answer(value)
        return sync if step is None else step

    def done(self) -> VenueSync:
        """The sync under way succeeded: the ledger has the venue's fills."""
        sync = self._sync
        assert sync is not None, "no venue sync under way"
        self._sync = None
        self._event(SyncEvent.DONE)
        self.synced = True
        self.reach_back = None
        return sync

    def answer_waiters(self, recovered: int) -> None:
        """Answer the asks that waited for the sync that succeeded."""
        waiters, self._answering = self._answering, []
        for reply in waiters:
            reply.set(recovered)

    def failed(self, exc: Exception) -> bool:
        """The sync under way failed (alerted; its waiters fail; an ask since gets the next
        try): True when a retry timer is to be scheduled (none is out)."""
        log.error("venue sync failed (%s: %s); no orders until it succeeds, retrying in %gs",
                  type(exc).__name__, exc, self.retry)
        self._alert(Alert("executor.venue_sync_failed", "error",
                          "Venue sync failed; not trading", f"{type(exc).__name__}: {exc}"))
        self._sync = None
        self._event(SyncEvent.FAILED)
        self.synced = False
        self.fail_waiters(exc, queued=False)
        if self.retry_out:
            return False
        self.retry_out = True
        return True

    def retry_timer(self) -> None:
        """The retry timer is in: a sync is wanted unless one has succeeded since."""
        self.retry_out = False
        if not self.synced:
            self.want()

    def fail_waiters(self, exc: Exception, *, queued: bool = True) -> None:
        """Fail the asks waiting for the sync under way (and, if ``queued``, for the next)."""
        waiters, self._answering = self._answering, []
        if queued:
            waiters += self._waiters
            self._waiters = []
        for reply in waiters:
            reply.set_exception((type(exc), exc, exc.__traceback__))


    def report(self, sync: VenueSync) -> str | None:
        """Log and alert what the finished ``sync`` found (recovered and refused fills, lost
        state); returns why trading is to halt (state lost), if it is."""
        recovered, rejected, where = sync.recovered, sync.rejected, sync.scope()
        if recovered:
            listed = ", ".join(f"{f.fill_id} {f.side.value} {f.quantity} {f.symbol}"
                               for f in recovered[:5])
            more = f" and {len(recovered) - 5} more" if len(recovered) > 5 else ""
            log.warning("venue sync: recorded %d fill(s) the ledger lacked (%s%s); %d %s "
                        "checked", len(recovered), listed, more, len(sync.fills), where)
            self._alert(Alert(
                "executor.venue_sync", "warning",
                f"Recovered {len(recovered)} fill(s) the ledger lacked",
                f"the venue had filled them but the ledger had no record (a crash between "
                f"fill and record): {listed}{more}"))
        else:
            log.info("venue sync: the ledger has all %d %s", len(sync.fills), where)
        halt = _lost_state(sync)
        if halt is not None:
            log.critical("venue sync: %s; trading halted", halt)
            self._alert(Alert("executor.lost_state", "critical", "State lost: trading halted",
                              halt))
        if rejected:
            listed = "; ".join(f"{fid}: {why}" for fid, why in rejected[:5])
            log.error("venue sync: the ledger refused %d venue fill(s): %s", len(rejected),
                      listed)
            self._alert(Alert("executor.venue_sync_rejected", "critical",
                              f"The ledger refused {len(rejected)} venue fill(s)", listed))
        return halt


def _lost_state(sync: VenueSync) -> str | None:
    """The ledger or the venue's record was lost (what the sync's counts say): why, with
    what to do (trading halts until an operator acts; the venue's fills are recorded
    already: they are facts)."""
    summary, record = sync.summary, sync.record
    ledger = summary.database if summary is not None and summary.database else "the ledger"
    venue = record.where if record is not None else "the venue"
    found: list[str] = []
    if sync.ledger_empty:
        count = record.fills if record is not None and record.fills else len(sync.fills)
        found.append(
            f"the ledger {ledger} had no fill while the venue ({venue}) has {count} of "
            "this bot's fills: the ledger was lost or replaced. The venue's fills are "
            "recorded again; its corrections and conflict history are gone")
    if sync.phantom:
        found.append(
            f"the venue's record {venue} lacks {sync.phantom} fill(s) that the ledger "
            f"{ledger} has: the venue's record was lost or replaced")
    if not found:
        return None
    return "; ".join(found) + ". Check, then `botvisor breaker close`"
