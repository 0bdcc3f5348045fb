"""The kernel's internal interfaces: what one kernel module needs of another, by name.

A context, an instance's message loop and a cell reach the objects above them only
through these protocols, so the kernel's modules import each other in one direction
(interfaces < context < actor < spec < cell < supervisor < runtime). They are documented
for implementors, as pykka documents ``_start_actor_loop``: ``supervisor.cell.Cell``
implements :class:`ContextCell` and :class:`ActorCell`, ``supervisor.runtime.Runtime``
implements :class:`ContextRuntime` (and ``supervisor.cell.CellRuntime``). Actors never
need them, except :class:`ContextRuntime` as the type of ``ctx.runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from supervisor.clock import Clock
from supervisor.error_handler import Decision, ErrorHandler
from supervisor.events import EventBus, Subscription
from supervisor.extensions import Extensions
from supervisor.faults import ActorFaults
from supervisor.future import ReplyFuture
from supervisor.latency import HandlerLatency
from supervisor.mailbox import Mailbox

if TYPE_CHECKING:
    from supervisor.dispatcher import Dispatcher

__all__ = ["ActorCell", "ContextCell", "ContextRuntime", "ContextSpec", "LoopSpec"]


class ContextSpec(Protocol):
    """What a context reads of its child's spec (a ``ChildSpec`` is one)."""

    @property
    def settings(self) -> dict[str, Any]: ...

    @property
    def thread(self) -> str | None: ...


class ContextCell(Protocol):
    """What a context needs of its child's cell (internal: ``supervisor.cell.Cell``).

    ``published`` and ``subscriptions`` are the context's to write; the rest it reads."""

    published: Any
    subscriptions: dict[str, Subscription]

    @property
    def name(self) -> str: ...

    @property
    def incarnation(self) -> int: ...

    @property
    def spec(self) -> ContextSpec: ...

    @property
    def mailbox(self) -> Mailbox: ...

    @property
    def chaos(self) -> ActorFaults | None: ...

    @property
    def closing(self) -> bool: ...


class ContextRuntime(Protocol):
    """What a context needs of its runtime (internal: ``supervisor.runtime.Runtime``); it is
    also what :attr:`ActorContext.runtime` gives an actor."""

    @property
    def clock(self) -> Clock: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def extensions(self) -> Extensions: ...

    def cell_or_none(self, name: str) -> ContextCell | None: ...

    def peek(self, name: str) -> Any: ...

    def tell(self, name: str, message: Any) -> None: ...

    def try_tell(self, name: str, message: Any) -> bool: ...

    def ask(self, name: str, message: Any, *, timeout: float | None = None) -> Any: ...

    def ask_future(self, name: str, message: Any,
                   future: ReplyFuture[Any] | None = None) -> ReplyFuture[Any]: ...

    def count_dead_letters(self, count: int) -> None: ...


class LoopSpec(Protocol):
    """What the message loop reads of its child's spec (a ``ChildSpec`` is one)."""

    @property
    def thread(self) -> str | None:
        """The shared thread the child runs on (None: a thread of its own)."""
        ...

    @property
    def urgent(self) -> bool:
        """On a shared thread, its turns go before the others'."""
        ...

    @property
    def handler_deadline(self) -> float | None:
        """Seconds a handler may run before it is reported hung (None: no limit)."""
        ...


class ActorCell(Protocol):
    """What an instance's message loop needs of its child's cell (internal:
    ``supervisor.cell.Cell`` implements it). The cell outlives the instance."""

    @property
    def name(self) -> str: ...

    @property
    def incarnation(self) -> int: ...

    @property
    def spec(self) -> LoopSpec: ...

    @property
    def mailbox(self) -> Mailbox: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def chaos(self) -> ActorFaults | None: ...

    @property
    def latency(self) -> HandlerLatency: ...

    @property
    def error_handler(self) -> ErrorHandler: ...

    def dispatcher(self, name: str) -> Dispatcher:
        """The runtime's shared thread called ``name``."""
        ...

    def report_failure(self, incarnation: int, exc: BaseException, decision: Decision,
                       message: Any, *, was_ask: bool, hung: bool = False) -> None:
        """Instance ``incarnation`` failed handling ``message``: tell its supervisor."""
        ...

    def report_exit(self, incarnation: int) -> None:
        """Instance ``incarnation`` stopped by itself: tell its supervisor."""
        ...
