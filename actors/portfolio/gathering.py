"""Gathering the sources' views for a reconciliation without blocking the position actor.

Every source is asked for its view with ``ask_notify``; the position actor goes on with
its mailbox meanwhile (fills keep being recorded) and hands each ``Replied`` here. A source
that has not answered ``timeout`` seconds after the round began (``RoundDue``), or cannot
be asked, is unavailable for that round. A ``Reconcile`` asked for while a round is out
joins the next round; a round's replies are answered together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.portfolio.contract import GetView, SourceView
from actors.portfolio.reconcile import LedgerState
from supervisor.context import ActorContext
from supervisor.errors import RuntimeErrorBase
from supervisor.pending_asks import PendingAsk, PendingAsks

log = logging.getLogger(__name__)

__all__ = ["Round", "RoundDue", "ViewGathering"]

Reply = pykka.Future[Any] | None


@dataclass(frozen=True, slots=True)
class RoundDue:
    """Timer: the asks of round ``number`` are due."""

    number: int


@dataclass(slots=True)
class Round:
    """One gathering: why (the first reason, and every reason that joined), whom to answer,
    the ledger's state when the views were asked for, and the views in so far."""

    number: int
    reasons: list[str]
    replies: list[Reply]
    ledger: LedgerState
    attempt: int = 1
    views: dict[str, SourceView] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return self.reasons[0]


class ViewGathering:
    """Owns the position actor's reconciliation rounds: at most one out, one waiting."""

    def __init__(self, ctx: ActorContext, sources: tuple[str, ...], timeout: float) -> None:
        self._ctx = ctx
        self._sources = sources
        self._timeout = timeout
        self._asks: PendingAsks[tuple[int, str]] = PendingAsks(ctx, timeout)
        self._numbers = 0
        self._out: Round | None = None
        self._waiting: tuple[list[str], list[Reply]] | None = None

    def request(self, reason: str, reply: Reply, ledger: LedgerState) -> Round | None:
        """A Reconcile: begin a round, or join the one waiting. A round already complete
        (no source could be asked) is returned."""
        if self._out is not None:
            if self._waiting is None:
                self._waiting = ([reason], [reply])
            else:
                self._waiting[0].append(reason)
                self._waiting[1].append(reply)
            return None
        return self._begin([reason], [reply], ledger, 1)

    def again(self, done: Round, ledger: LedgerState) -> Round | None:
        """Ask every source again for ``done``'s replies (the ledger moved meanwhile)."""
        return self._begin(done.reasons, done.replies, ledger, done.attempt + 1)

    def next_round(self, ledger: LedgerState) -> Round | None:
        """Begin the round that waited for the last one, if any."""
        if self._out is not None or self._waiting is None:
            return None
        (reasons, replies), self._waiting = self._waiting, None
        return self._begin(reasons, replies, ledger, 1)

    def replied(self, token: Any) -> Round | None:
        """A view is in: the round, once every source has answered or is unavailable."""
        ask = self._asks.take(token)
        if ask is None:
            return None
        self._read(ask)
        return self._complete()

    def due(self, number: int) -> Round | None:
        """Round ``number``'s time is up: who has not answered is unavailable."""
        if self._out is None or self._out.number != number:
            return None
        for ask in self._asks:
            if ask.what[0] == number and self._asks.take(ask.token) is not None:
                self._read(ask)
        return self._complete()

    def fail(self, error: BaseException) -> None:
        """The actor stops: every reply still owed gets ``error``."""
        rounds = [r.replies for r in (self._out,) if r is not None]
        if self._waiting is not None:
            rounds.append(self._waiting[1])
        for replies in rounds:
            for reply in replies:
                if reply is not None:
                    reply.set_exception(exc_info=(type(error), error, None))
        self._out, self._waiting = None, None

    # -- inside --------------------------------------------------------------------------------
    def _begin(self, reasons: list[str], replies: list[Reply], ledger: LedgerState,
               attempt: int) -> Round | None:
        self._numbers += 1
        out = self._out = Round(self._numbers, reasons, replies, ledger, attempt)
        for source in self._sources:
            try:
                self._asks.send(source, GetView(), (out.number, source))
            except RuntimeErrorBase as exc:
                out.unavailable.append(source)
                log.debug("reconcile: %s unavailable: %s", source, exc)
        self._ctx.schedule(self._timeout, RoundDue(out.number))
        return self._complete()

    def _read(self, ask: PendingAsk[tuple[int, str]]) -> None:
        out = self._out
        number, source = ask.what
        if out is None or out.number != number:
            return
        if not ask.future.done():
            out.unavailable.append(source)
            log.debug("reconcile: %s unavailable: no view in %.1f s", source, self._timeout)
            return
        try:
            out.views[source] = ask.future.get(timeout=0)
        except RuntimeErrorBase as exc:
            out.unavailable.append(source)
            log.debug("reconcile: %s unavailable: %s", source, exc)

    def _complete(self) -> Round | None:
        out = self._out
        if out is None or len(out.views) + len(out.unavailable) < len(self._sources):
            return None
        self._out = None
        for ask in self._asks:  # none left of this round; an earlier one's late replies
            if ask.what[0] == out.number:
                self._asks.take(ask.token)
        out.views = {s: out.views[s] for s in self._sources if s in out.views}
        out.unavailable = [s for s in self._sources if s in out.unavailable]
        return out
