"""Peers: how an actor says which other actors it reaches by name, and what it is itself.

A settings field that names a peer (a ``str``, ``str | None`` for an optional peer, or a
tuple of names) carries a :class:`Peer` marker::

    worker: Annotated[str, Peer(accepts=(Job,))] = "worker"

An actor class says what it is with ``accepts`` (the message types its handler takes) and
``publishes`` (the type of the snapshot peers read with ``ctx.peek``). The host checks a
tree against both before any actor starts (``docs/configuration.md``, *Peers and the wiring
check*). Nothing here knows a message type: plain data and two readers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Peer", "accepted_by", "published_by"]


@dataclass(frozen=True, slots=True)
class Peer:
    """What the actor named by a settings field must be: one that takes every type in
    ``accepts``, and publishes a ``publishes`` (or a subclass) when that is given."""

    accepts: tuple[type, ...] = ()
    publishes: type | None = None

    def __post_init__(self) -> None:
        if not self.accepts and self.publishes is None:
            raise ValueError("a Peer needs what the peer accepts or publishes")

    def describe(self) -> str:
        """What the peer must do, in words: ``accept Job; publish Scores``."""
        parts = []
        if self.accepts:
            parts.append("accept " + ", ".join(t.__name__ for t in self.accepts))
        if self.publishes is not None:
            parts.append(f"publish {self.publishes.__name__}")
        return "; ".join(parts)

    def refusal(self, actor: type) -> str | None:
        """Why an instance of ``actor`` cannot be this peer (None: it can, or ``actor``
        declares nothing, so only its name is known)."""
        taken = accepted_by(actor)
        shown = published_by(actor)
        if taken is None and shown is None:
            return None
        missing = [t.__name__ for t in self.accepts
                   if not any(issubclass(t, kind) for kind in taken or ())]
        if missing:
            return f"does not accept {', '.join(missing)}"
        if self.publishes is not None and not (
                shown is not None and issubclass(shown, self.publishes)):
            what = "nothing" if shown is None else shown.__name__
            return f"publishes {what}, not {self.publishes.__name__}"
        return None


def accepted_by(actor: type) -> tuple[type, ...] | None:
    """The message types ``actor`` declares it accepts (its ``accepts`` class attribute);
    None when it declares neither ``accepts`` nor ``publishes``."""
    taken = getattr(actor, "accepts", None)
    if isinstance(taken, tuple) and all(isinstance(t, type) for t in taken):
        return taken
    return None if published_by(actor) is None else ()


def published_by(actor: type) -> type | None:
    """The snapshot type ``actor`` declares it publishes (its ``publishes`` class
    attribute), or None."""
    shown = getattr(actor, "publishes", None)
    return shown if isinstance(shown, type) else None
