"""Child and supervisor specifications: immutable descriptions the supervisors act on."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from supervisor.backoff import Backoff
from supervisor.error_handler import ErrorHandler

if TYPE_CHECKING:
    from supervisor.actor import SupervisedActor

__all__ = [
    "ActorFactory",
    "ChildSpec",
    "Fallback",
    "Intensity",
    "RestartType",
    "Strategy",
    "SupervisorSpec",
]

ActorFactory = Callable[[], "SupervisedActor"]


class RestartType(enum.StrEnum):
    """OTP restart types."""

    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted

    def restarts_after(self, *, abnormal: bool) -> bool:
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return abnormal
        return False


class Strategy(enum.StrEnum):
    """OTP restart strategies."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"

    def group(self, order: list[str], failed: str) -> list[str]:
        """The children, in start order, restarted when ``failed`` is restarted."""
        if self is Strategy.ONE_FOR_ONE:
            return [failed]
        if self is Strategy.ONE_FOR_ALL:
            return list(order)
        return order[order.index(failed) :]


@dataclass(frozen=True, slots=True)
class Intensity:
    """At most ``max_restarts`` restarts within ``within_seconds``; one more escalates."""

    max_restarts: int = 5
    within_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError("intensity.max_restarts must be >= 0")
        if self.within_seconds <= 0:
            raise ValueError("intensity.within_seconds must be > 0")


@dataclass(frozen=True, slots=True)
class Fallback:
    """What to run in a child's place after ``after`` consecutive failed starts or restarts.

    While the fallback runs, the primary is tried again every ``retry_primary_after``
    seconds (None: never); the first successful start of the primary replaces the fallback.
    """

    factory: ActorFactory
    after: int = 3
    retry_primary_after: float | None = 60.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.after < 1:
            raise ValueError("fallback.after must be >= 1")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor: a worker built by ``factory``, or a nested supervisor.

    ``shutdown`` is the seconds a stopping child gets to finish its current message and
    run ``on_stop`` (0: do not wait). ``linger``: the seconds before that which a child
    stopped for good may go on handling the answers it waits for, when its actor asks to
    (``SupervisedActor.on_stopping``); the runtime's clock ends it, and as many real seconds
    at most. ``handler_deadline`` is how long one message handler
    may run before the actor counts as hung (None: no deadline). ``mailbox_limit`` bounds
    the messages waiting for the actor, including those buffered while it restarts.
    ``drain_on_stop``: when stopped for good, handle the messages already waiting (within
    ``shutdown``) instead of failing them; for actors that must have the last word (logs,
    alerts). ``thread``: the name of a thread this worker shares with the others naming it
    (see :mod:`supervisor.dispatcher`); None, the default, gives it a thread of its own.
    ``urgent``: on a shared thread, this worker's turns go before its thread-mates' waiting
    turns (for a short handler on a latency path).
    """

    id: str
    factory: ActorFactory | None = None
    supervisor: SupervisorSpec | None = None
    restart: RestartType = RestartType.PERMANENT
    shutdown: float = 5.0
    linger: float = 2.0
    start_timeout: float = 10.0
    handler_deadline: float | None = None
    mailbox_limit: int | None = 100_000
    fallback: Fallback | None = None
    drain_on_stop: bool = False
    thread: str | None = None
    urgent: bool = False
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"child id {self.id!r} must be non-empty and contain no '/'")
        if (self.factory is None) == (self.supervisor is None):
            raise ValueError(f"child {self.id!r} needs exactly one of factory or supervisor")
        if self.shutdown < 0:
            raise ValueError(f"child {self.id!r}: shutdown must be >= 0")
        if self.linger < 0:
            raise ValueError(f"child {self.id!r}: linger must be >= 0")
        if self.handler_deadline is not None and self.handler_deadline <= 0:
            raise ValueError(f"child {self.id!r}: handler_deadline must be > 0")
        if self.thread is not None and (self.supervisor is not None or not self.thread):
            raise ValueError(f"child {self.id!r}: only a worker can share a named thread")
        if self.urgent and self.thread is None:
            raise ValueError(f"child {self.id!r}: urgent needs a shared thread (thread: NAME)")

    @property
    def is_supervisor(self) -> bool:
        return self.supervisor is not None

    @property
    def kind(self) -> str:
        return "supervisor" if self.is_supervisor else "worker"


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor: how it restarts its children, how often it may, and who they are."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: Intensity = field(default_factory=Intensity)
    backoff: Backoff = field(default_factory=Backoff)
    children: tuple[ChildSpec, ...] = ()
    error_handler: ErrorHandler | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for child in self.children:
            if child.id in seen:
                raise ValueError(f"duplicate child id {child.id!r}")
            seen.add(child.id)

    def all_ids(self) -> list[str]:
        """Every child id in this subtree, depth first."""
        ids: list[str] = []
        for child in self.children:
            ids.append(child.id)
            if child.supervisor is not None:
                ids.extend(child.supervisor.all_ids())
        return ids
