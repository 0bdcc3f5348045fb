"""What the executor publishes and the messages of its own: :class:`ExecutorState` (what a
replacement starts from, and the signals held), :class:`SyncVenue` (an ask for a venue sync
now), and what it sends itself (:class:`Tick`, :class:`RetrySync`, :class:`Handoff`) or keeps
with each ask out (:class:`AskFor`)."""

from __future__ import annotations

from dataclasses import dataclass

from actors.execution.contract import ExitRequest
from actors.execution.lifecycle import Kind
from actors.execution.orders import OrderPhase
from actors.strategies.contract import Signal
from actors.venues.contract import PlaceOrder

__all__ = ["AskFor", "ExecutorState", "Handoff", "RetrySync", "SyncVenue", "Tick"]


@dataclass(frozen=True, slots=True)
class SyncVenue:
    """Reconcile the ledger with the venue's fills now (once this executor's own orders
    and fills out are answered).

    As an ask, the reply is the number of fills recovered (or the exception that stopped it).
    """


@dataclass(frozen=True, slots=True)
class RetrySync:
    """Timer: try the venue sync again after a failure."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Told by an executor that ends to its replacement: the signals it held, in order."""

    requests: tuple[Signal | ExitRequest, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    """Timer: asks past their deadline, retries due, stats answers due (at ``at``)."""

    at: float


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """Published by the executor: the venue time of its oldest fill not yet in the ledger
    (None when there is none), so a restarted executor syncs from far enough back; the
    newest signal time an instance may have sent an order for (``checked_through``: a
    later signal is new, an earlier or equal one is checked against ledger and exchange);
    the orders it has not seen the end of (``unresolved``, each with its phase); and the
    ids of the signals it holds, in order (``held``)."""

    unrecorded_since: float | None
    checked_through: float | None = None  # None: not known yet (no venue sync so far)
    # orders sent whose outcome is not known yet (placing, unknown, looking up), or that
    # the venue said are still open (open, open looking up): a replacement looks them up
    # after its venue sync (no new risk until then)
    unresolved: tuple[tuple[PlaceOrder, OrderPhase], ...] = ()
    held: tuple[str, ...] = ()  # signals waiting for an answer they depend on


@dataclass(frozen=True, slots=True)
class AskFor:
    """What an ask out was for: its kind and key (a client order id, a fill id)."""

    kind: Kind
    key: str = ""
