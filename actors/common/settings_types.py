"""Setting types shared by the actors' ``Settings`` models, checked when the config loads.

:data:`StatePath` is a file the actor creates or opens (a database, a projection, a
fallback file): it must be a non-empty path that is not a directory and whose parent, if
it exists, is one. A bad one is refused with its key path, before anything starts, instead
of failing when the actor first opens it (and restart-looping).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["StatePath", "check_state_path"]


def check_state_path(value: str) -> str:
    """``value`` if it can name a file of the actor's own; ValueError says why not."""
    if not value.strip():
        raise ValueError("must be a file path, not empty")
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if value.endswith(("/", "\\")):
        raise ValueError(f"{value!r} names a directory; give a file path")
    path = Path(value)
    try:
        if path.is_dir():
            raise ValueError(f"{value!r} is a directory; give a file path")
        parent = path.parent
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{value!r}: {str(parent)!r} is not a directory")
    except OSError as exc:  # a name too long, say
        raise ValueError(f"{value!r} is not a usable path: {exc.strerror or exc}") from None
    return value


StatePath = Annotated[str, AfterValidator(check_state_path)]
