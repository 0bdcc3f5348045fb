"""fast_init: a cheaper ``__init__`` for frozen, slotted dataclasses (messages)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that sets each field
    through its slot's descriptor.

    ``dataclass(frozen=True)`` writes every field with ``object.__setattr__(self, name,
    value)``, a generic call that looks the name up again each time; the slot descriptor
    it ends up at can be called directly, which is what this ``__init__`` does. The class
    stays exactly as frozen (assignment still raises ``FrozenInstanceError``), equal,
    hashable and printable as before; ``__post_init__`` still runs. Worth it only for
    messages sent thousands of times a second. Classes it cannot handle (fields with a
    ``default_factory``, ``init=False`` or keyword-only) keep the dataclass ``__init__``.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a frozen, slotted dataclass, not {cls.__name__}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if any(f.default_factory is not dataclasses.MISSING or not f.init or f.kw_only
           for f in fields):
        return cls
    names = [f.name for f in fields]
    namespace: dict[str, Any] = {f"_set_{n}": cls.__dict__[n].__set__ for n in names}
    args = []
    for f in fields:
        if f.default is dataclasses.MISSING:
            args.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
    body = [f"    _set_{n}(self, {n})" for n in names] or ["    pass"]
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - replacing a method on purpose
    return cls
