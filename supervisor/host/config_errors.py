"""ConfigError: a configuration's problems, each a key path and a reason.

Every part of loading reports through it, so ``botvisor check-config`` and ``botvisor run``
print one line per bad key and exit 2. :func:`validation_problems` turns a pydantic
``ValidationError`` into those pairs.
"""

from __future__ import annotations

from pydantic import ValidationError

from supervisor.host.logs import printable

__all__ = ["ConfigError", "validation_problems"]


class ConfigError(Exception):
    """A configuration problem; ``problems`` lists ``(key path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {printable(key)}: {printable(reason, 500)}"
                          for key, reason in problems)
        super().__init__(f"invalid configuration in {printable(source, 500)}:\n{lines}")


def validation_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """``(key path, reason)`` for each error of ``exc``, the paths under ``prefix``."""
    out = []
    for err in exc.errors():
        key = (prefix + _loc(err["loc"])).rstrip(".")
        msg = printable(err["msg"], 300)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((key or "(top level)", msg))
    return out


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{printable(part, 80)}" if text else printable(part, 80)
    return text

