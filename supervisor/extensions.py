"""Extensions: services a runtime holds for whoever needs one, without knowing what they are.

Code outside the kernel (the host's log masking, say) keeps one instance per runtime of
what it needs with ``runtime.extensions.get(make)``: the first call for a ``make`` builds
the instance, later calls return it, and every instance is closed when the runtime stops.
One asked for after the stop is built and closed at once, so it holds on to nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

__all__ = ["Extension", "Extensions", "HasExtensions"]


class Extension(Protocol):
    """What an extension implements: ``close`` is called once, when its runtime stops."""

    def close(self) -> None:
        """Undo whatever the extension installed; it is not used by the runtime again."""
        ...


E = TypeVar("E", bound=Extension)


class Extensions:
    """Owns one runtime's extensions, one per ``make`` (a module-level function or class)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Callable[[], Extension], Extension] = {}
        self._closed = False

    def get(self, make: Callable[[], E]) -> E:
        """The extension ``make`` builds, built on the first call (closed at once when the
        runtime has stopped already)."""
        with self._lock:
            found = self._made.get(make)
            if found is None:
                found = self._made[make] = make()
                if self._closed:
                    found.close()
            return cast(E, found)  # the instance ``make`` built

    def close(self) -> None:
        """Close every extension, in the reverse order they were built (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            made = list(self._made.values())
        for extension in reversed(made):
            extension.close()


class HasExtensions(Protocol):
    """Anything that holds extensions (a :class:`~supervisor.runtime.Runtime` does)."""

    @property
    def extensions(self) -> Extensions:
        """The extensions of this runtime."""
        ...
