"""PendingAsks: the asks an actor has sent without waiting, each with a deadline.

An actor that must never block (one sharing a thread with others, say) asks with
:meth:`~supervisor.context.ActorContext.ask_notify` and is told
:class:`~supervisor.context.Replied` when the reply is in. This book keeps what each of
those asks was for, so the ``Replied`` can be matched to it, and when it is due, so an ask
that is never answered is noticed (:meth:`PendingAsks.take_expired`) instead of waited for.
Tokens carry the instance's incarnation: a reply to an ask of an earlier instance (it
crashed with the ask out) reaches the replacement's mailbox and is told apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from supervisor.context import ActorContext
    from supervisor.future import ReplyFuture

__all__ = ["PendingAsk", "PendingAsks"]

W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class PendingAsk(Generic[W]):
    """One ask out: its token, its reply future, what it was for, when it is due, and
    whom it asked what (for the error when it is not answered in time)."""

    token: tuple[int, int]
    future: ReplyFuture[Any]
    what: W
    deadline: float
    target: str
    message: Any


class PendingAsks(Generic[W]):
    """Owns one actor instance's asks sent with ``ask_notify`` and not read yet.

    All share one ``timeout``, so deadlines rise in the order the asks were sent and the
    oldest ask is always first (:meth:`next_deadline` costs nothing).
    """

    def __init__(self, ctx: ActorContext, timeout: float) -> None:
        self._ctx = ctx
        self._timeout = timeout
        self._incarnation = ctx.incarnation
        self._seq = 0
        self._asks: dict[tuple[int, int], PendingAsk[W]] = {}

    def send(self, target: str, message: Any, what: W) -> PendingAsk[W]:
        """Ask ``target`` without waiting; raises what ``ask_notify`` raises (nothing is
        kept then)."""
        self._seq += 1
        token = (self._incarnation, self._seq)
        future = self._ctx.ask_notify(target, message, token)
        ask = PendingAsk(token, future, what, self._ctx.clock.now() + self._timeout, target,
                         message)
        self._asks[token] = ask
        return ask

    def take(self, token: Any) -> PendingAsk[W] | None:
        """The ask ``token`` answers, no longer pending; None if it is not one of ours (an
        earlier instance's, or one already taken)."""
        return self._asks.pop(token, None)

    def take_expired(self, now: float) -> list[PendingAsk[W]]:
        """The asks whose deadline has passed, no longer pending (oldest first)."""
        expired: list[PendingAsk[W]] = []
        for ask in self._asks.values():
            if ask.deadline > now:
                break
            expired.append(ask)
        for ask in expired:
            del self._asks[ask.token]
        return expired

    def take_answered(self, wanted: Any = None) -> list[PendingAsk[W]]:
        """The asks whose reply is already in (``wanted(what)`` picks among them), no
        longer pending, in the order they were sent; their ``Replied`` will find nothing."""
        done = [a for a in self._asks.values()
                if a.future.done() and (wanted is None or wanted(a.what))]
        for ask in done:
            del self._asks[ask.token]
        return done

    def next_deadline(self) -> float | None:
        """The deadline of the oldest pending ask (None when there is none)."""
        for ask in self._asks.values():
            return ask.deadline
        return None

    def __len__(self) -> int:
        return len(self._asks)

    def __bool__(self) -> bool:
        return bool(self._asks)

    def __iter__(self) -> Iterator[PendingAsk[W]]:
        return iter(list(self._asks.values()))
