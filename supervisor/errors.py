"""Exceptions raised by the runtime to callers, each naming the actor and the reason."""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "ActorNotRunning",
    "AskTimeout",
    "HandlerTimeout",
    "MailboxFull",
    "RateLimited",
    "RestartIntensityExceeded",
    "RuntimeErrorBase",
    "StartFailed",
    "StorageFailure",
    "UnknownActor",
    "WouldDeadlock",
]


class RuntimeErrorBase(Exception):
    """Base of every error the runtime raises on purpose."""


class UnknownActor(RuntimeErrorBase, LookupError):
    """No actor with this name exists in the tree."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no actor named {name!r}")
        self.name = name


class ActorNotRunning(RuntimeErrorBase):
    """The actor exists but is stopped for good, so a message to it fails fast."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"actor {name!r} is not running ({reason})")
        self.name = name
        self.reason = reason


class AskTimeout(RuntimeErrorBase, TimeoutError):
    """No reply to an ask arrived within its timeout."""

    def __init__(self, name: str, message_type: str, timeout: float) -> None:
        super().__init__(f"no reply from {name!r} to {message_type} within {timeout:g}s")
        self.name = name
        self.timeout = timeout


class WouldDeadlock(RuntimeErrorBase):
    """An actor asked an actor that shares its thread: the reply could never come."""

    def __init__(self, asker: str, name: str, thread: str) -> None:
        super().__init__(f"{asker!r} asked {name!r}, which shares its thread {thread!r}: "
                         "the ask would wait for itself; tell instead")
        self.asker = asker
        self.name = name


class MailboxFull(RuntimeErrorBase):
    """The actor's mailbox holds its configured limit of messages; the new one was refused."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"mailbox of {name!r} is full ({limit} messages)")
        self.name = name
        self.limit = limit


class HandlerTimeout(RuntimeErrorBase):
    """A message handler ran past its deadline (a hung actor)."""

    def __init__(self, name: str, message_type: str, elapsed: float, deadline: float) -> None:
        super().__init__(
            f"{name!r} has been handling {message_type} for {elapsed:.3f}s "
            f"(deadline {deadline:.3f}s)"
        )
        self.name = name
        self.elapsed = elapsed
        self.deadline = deadline


class RestartIntensityExceeded(RuntimeErrorBase):
    """A supervisor restarted its children more often than its intensity allows and gave up."""

    def __init__(self, supervisor: str, restarts: int, within: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} exceeded {restarts} restarts in {within:g}s"
        )
        self.supervisor = supervisor


class StartFailed(RuntimeErrorBase):
    """An actor's ``on_start`` raised or did not finish within its start timeout."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"actor {name!r} failed to start: {reason}")
        self.name = name


class ActorCrashed(RuntimeErrorBase):
    """Stands in for a ``BaseException`` (SystemExit, KeyboardInterrupt) raised in an actor.

    The original is kept as ``__cause__``; the runtime never lets it escape the actor's
    thread, so one actor's ``SystemExit`` cannot stop the others.
    """

    def __init__(self, name: str, original: BaseException) -> None:
        super().__init__(f"actor {name!r} raised {type(original).__name__}: {original}")
        self.name = name
        self.original = original


class RateLimited(RuntimeErrorBase):
    """A remote service asked us to slow down; safe to retry after a wait."""


class StorageFailure(RuntimeErrorBase, OSError):
    """The state directory cannot hold what an actor must write: read-only, full, or an I/O
    error. An ``OSError`` whose ``errno`` (EROFS, ENOSPC, EIO) and ``filename`` name the
    cause and the file; classified as a critical failure (restart with backoff)."""
