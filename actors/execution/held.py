"""The signals the executor holds until an answer they depend on is in, in arrival order.

:class:`HeldSignals` owns them, each with its arrival number (``arrive`` counts what this
instance received): at most ``bound`` are held (:meth:`HeldSignals.hold` says False beyond);
a predecessor's hand-over goes ahead of everything this instance received
(:meth:`HeldSignals.handoff`); a signal a duplicate check found new goes back in its arrival
order (:meth:`HeldSignals.reinsert`). :meth:`HeldSignals.release` offers them in order to a
decision, a symbol's later signals staying behind its first that must still wait. Pure: no
actor; ``version`` changes with every change, for the executor to publish them.
"""

from __future__ import annotations

import logging
from bisect import insort
from collections.abc import Callable, Iterable, Iterator

from actors.execution.orders import Request

__all__ = ["HeldSignals"]

log = logging.getLogger("actors.execution.executor")  # the executor's log, for its pieces too


def _seq(entry: tuple[int, Request]) -> int:
    return entry[0]


class HeldSignals:
    """Owns the held signals and the arrival count (see the module docstring)."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.arrivals = 0  # signals and exit requests received by this instance
        self.version = 0  # changes with every change of what is held
        self._held: list[tuple[int, Request]] = []

    def __len__(self) -> int:
        return len(self._held)

    def __bool__(self) -> bool:
        return bool(self._held)

    def __iter__(self) -> Iterator[tuple[int, Request]]:
        return iter(list(self._held))

    def _set(self, held: list[tuple[int, Request]]) -> None:
        self._held = held
        self.version += 1

    def arrive(self) -> int:
        """A signal or exit request arrived: its arrival number."""
        self.arrivals += 1
        return self.arrivals

    def holds(self, symbol: str) -> bool:
        """Is a signal of ``symbol`` held?"""
        return any(r.symbol == symbol for _, r in self._held)

    def hold(self, seq: int, request: Request) -> bool:
        """Hold ``request`` behind those held; False (not held, logged) when ``bound`` are."""
        if len(self._held) >= self.bound:
            log.warning("not acting on %s: %d signals are held already", request.signal_id,
                        len(self._held))
            return False
        self._held.append((seq, request))
        self.version += 1
        return True

    def handoff(self, requests: Iterable[Request]) -> None:
        """A predecessor's held signals, in its order: ahead of all this instance has."""
        given = list(requests)
        first = min((seq for seq, _ in self._held), default=self.arrivals + 1)
        n = len(given)
        self._set([(first - n + i, r) for i, r in enumerate(given)] + self._held)

    def reinsert(self, seq: int, request: Request) -> None:
        """``request`` (arrival ``seq``) is to be decided again: back in arrival order."""
        insort(self._held, (seq, request), key=_seq)
        self.version += 1

    def take_all(self) -> list[tuple[int, Request]]:
        """Everything held, in order; none is held after."""
        held = self._held
        self._set([])
        return held

    def pass_on(self, checks: Iterable[tuple[int, Request]]) -> tuple[Request, ...]:
        """This instance ends: what it holds and the signals under a duplicate check
        (``checks``), in arrival order, for its replacement; none is held after."""
        return tuple(r for _, r in sorted([*self.take_all(), *checks], key=_seq))

    def release(self, consider: Callable[[int, Request], bool]) -> None:
        """Offer the held signals in order to ``consider`` (True: it must still wait);
        a symbol's later signals stay behind its first that waits. Rounds repeat while
        any was let go (``consider`` may put signals back meanwhile). Should ``consider``
        raise, the rest stay held and the error goes on (the one that raised is dropped)."""
        while self._held:
            held, self._held = self._held, []
            mark = self.version
            kept: list[tuple[int, Request]] = []
            waiting: set[str] = set()
            for i, (seq, request) in enumerate(held):
                try:
                    wait = request.symbol in waiting or consider(seq, request)
                except BaseException:
                    # the rest stay held (a replacement gets them); this one may be the
                    # cause, so it is not passed on
                    self._set(kept + held[i + 1 :] + self._held)
                    log.error("deciding %s raised; it is dropped", request.signal_id)
                    raise
                if wait:
                    waiting.add(request.symbol)
                    kept.append((seq, request))
            progress = len(kept) < len(held)
            self._held = kept + self._held
            if progress and self.version == mark:  # (put back: counted already)
                self.version += 1
            if not progress:
                return

    def signal_ids(self) -> tuple[str, ...]:
        """The held signals' ids, in order."""
        return tuple(r.signal_id for _, r in self._held)
