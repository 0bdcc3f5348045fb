"""The lockstep replay's barrier: the market emits step N+1 only once the pipeline is done
with step N (``market.settings.pace: lockstep``; why and what it proves:
docs/backtesting.md, "Parity with the live tree").

A step is a list of *stages*, each a few asks sent at once with
:meth:`~supervisor.context.ActorContext.ask_notify` (the market never waits on its shared
thread; each reply comes back as a ``Replied``); the next stage is sent once every ask of
the one before is answered. Most asks are a *barrier*: pykka's own ``ProxyGetAttr`` of the
actor's class, which every pykka actor answers in mailbox order with no handler of its own,
so its answer says that everything told to that actor before it has been handled (and what
that told others was sent). The executor is asked :class:`~actors.market.contract.AwaitIdle`
instead, answered once no order or fill of its is out.

:class:`Lockstep` owns the step in progress: the stages left, the tokens of the asks out,
when it began. :func:`stages` builds a step's stages in the backtest's order. The market
keeps one timer for the whole replay (not one per step): when it fires,
:meth:`Lockstep.left` says how long the step in progress may still take, and a step out
of time is given up (:meth:`Lockstep.give_up`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from pykka.messages import ProxyGetAttr

from actors.market.contract import AwaitIdle
from supervisor import ActorContext
from supervisor.errors import RuntimeErrorBase

__all__ = ["BARRIER", "Lockstep", "Stage", "stages"]

# Answered by any pykka actor once it has handled what was queued before it (its class).
BARRIER = ProxyGetAttr(attr_path=("__class__",))

Stage = tuple[tuple[str, Any], ...]  # (actor name, message to ask it), asked at once


def stages(step: Any, *, positions: str, breaker: str, subscribers: Iterable[str],
           through: Iterable[str], idle: str) -> list[Stage]:
    """One step's stages, in the backtest's order (docs/backtesting.md, "One step"): the
    position actor and the breaker have the step's marks and samples (told before); the
    subscribers take ``step`` (its ``Bars``); each of ``through`` in turn has what they
    sent on; ``idle`` has nothing in flight; the position actor, then the breaker, have
    what that caused."""
    ledger, risk = (positions, BARRIER), (breaker, BARRIER)
    return [(ledger, risk), tuple((name, step) for name in subscribers),
            *(((name, BARRIER),) for name in through),
            ((idle, AwaitIdle()),), (ledger,), (risk,)]


class Lockstep:
    """Owns the step in progress: its number, the stages still to send, and the tokens of
    the asks of the stage out. Tokens carry the instance's incarnation and the step, so a
    reply to an earlier instance's ask, or to a step given up, is told apart."""

    def __init__(self, ctx: ActorContext, timeout: float) -> None:
        self._ctx = ctx
        self.timeout = timeout
        self.step = 0  # the step in progress (0: none)
        self._began = 0.0
        self._stages: deque[Stage] = deque()
        self._out: dict[tuple[int, int, int], str] = {}  # token -> the actor asked
        self._sent = 0
        self.problem: str | None = None  # why the step cannot be waited for (give up)

    @property
    def busy(self) -> bool:
        """Is a step still waited for?"""
        return self.step != 0

    def begin(self, step: int, stages: Iterable[Stage]) -> bool:
        """Start waiting for ``step``; True when it is done at once (nothing to ask), or
        when an ask could not be sent (:attr:`problem` says why)."""
        self.step, self._stages, self._out, self.problem = step, deque(stages), {}, None
        self._began = self._ctx.clock.now()
        return self._advance()

    def left(self) -> float | None:
        """Seconds the step in progress may still take (0 or less: out of time); None
        when no step is waited for."""
        if not self.step:
            return None
        return self.timeout - (self._ctx.clock.now() - self._began)

    def replied(self, token: Any) -> bool:
        """The reply to ``token`` is in; True when the step is done (all stages answered)
        or cannot go on (:attr:`problem`). A token not of this step is ignored (False)."""
        if self._out.pop(token, None) is None:
            return False
        return not self._out and self._advance()

    def give_up(self) -> str:
        """The step is not waited for any more: what it still waited for."""
        waited = ", ".join(sorted(set(self._out.values()))) or "nothing"
        self.step, self._stages, self._out = 0, deque(), {}
        return waited

    def _advance(self) -> bool:
        """Send the next stage with an ask; True when none is left (or one failed)."""
        ctx = self._ctx
        while self._stages:
            stage = self._stages.popleft()
            for name, message in stage:
                self._sent += 1
                token = (ctx.incarnation, self.step, self._sent)
                try:
                    ctx.ask_notify(name, message, token)
                except RuntimeErrorBase as exc:  # not running (restarting), full, unknown
                    self.problem = f"{name} could not be asked ({exc})"
                    self._out.clear()
                    self.step = 0
                    return True
                self._out[token] = name
            if self._out:
                return False
        self.step = 0
        return True
