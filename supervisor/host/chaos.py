"""Fault injection as a feature: the ``chaos:`` section and the seeded plan it builds.

:class:`ChaosPlan` implements the kernel's :class:`~supervisor.faults.FaultPlan` (its
injectors, :class:`ActorChaos`, are :class:`~supervisor.faults.ActorFaults`); the faults
it raises (:class:`InjectedFault`, :class:`InjectedHang`) and :class:`WriteFaults` are the
kernel's (``supervisor.faults``), named here too. Off unless enabled (``botvisor run
--chaos``), and free when off: a cell without faults has ``chaos = None``. Each actor
draws from its own streams (``Random(f"{seed}:{name}")``, ``...:io`` for writes), kept
across restarts; every fault is counted (:meth:`ChaosPlan.counts`) and logged as a WARNING
that starts with ``chaos:``. The keys and what each fault does: ``docs/reliability.md``.
"""

from __future__ import annotations

import builtins
import errno as errno_module
import importlib
import logging
import os
import random
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from supervisor.faults import InjectedFault, InjectedHang, WriteFaults

__all__ = [
    "ActorChaos",
    "ActorFaultsModel",
    "ChaosModel",
    "ChaosPlan",
    "InjectedFault",
    "InjectedHang",
    "WriteFaults",
    "resolve_exception",
]

log = logging.getLogger("botvisor.chaos")

DEFAULT_SKIP = ("SupervisionEvent", "ProxyCall", "ProxyGetAttr", "ProxySetAttr")
IO_ERRNOS = ("ENOSPC", "EIO", "EROFS")


def resolve_exception(name: str) -> type[BaseException]:
    """The exception class called ``name`` (bare for builtins, else ``module.Class``).

    ValueError names what is wrong: not importable, not an exception class, or one that
    cannot be built from a single message argument.
    """
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        found = getattr(builtins, name, None)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import {module_name!r}: {exc}") from None
        found = getattr(module, attr, None)
    if not (isinstance(found, type) and issubclass(found, Exception)):
        raise ValueError(f"{name!r} is not an exception class (a subclass of Exception)")
    try:
        found("chaos: check")
    except Exception as exc:
        raise ValueError(f"{name!r} cannot be raised with one message: {exc}") from None
    return found


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ActorFaultsModel(_Model):
    """One actor's faults (an entry of ``chaos.actors``; keys in ``docs/reliability.md``)."""

    raises: dict[str, float] = Field(default_factory=dict, alias="raise")
    hang: float = Field(0.0, ge=0, le=1)
    slow: float = Field(0.0, ge=0, le=1)
    slow_seconds: float = Field(0.05, ge=0, le=3600)
    io_error: float = Field(0.0, ge=0, le=1)
    io_errnos: tuple[str, ...] = IO_ERRNOS
    only_messages: tuple[str, ...] | None = None
    skip_messages: tuple[str, ...] = ()

    @field_validator("raises")
    @classmethod
    def _known_exceptions(cls, value: dict[str, float], info: ValidationInfo
                          ) -> dict[str, float]:
        # check-config passes the imports it allows (context "imports", with may_import):
        # a class of a module it may not run is checked when the bot runs
        imports = (info.context or {}).get("imports")
        for name, probability in value.items():
            module_name = name.rpartition(".")[0]
            if imports is None or not module_name or imports.may_import(f"{module_name}:_"):
                resolve_exception(name)
            if not 0 <= probability <= 1:
                raise ValueError(f"{name}: a probability must be between 0 and 1")
        return value

    @field_validator("io_errnos")
    @classmethod
    def _known_errnos(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in IO_ERRNOS:
                raise ValueError(f"{name!r} is not one of {', '.join(IO_ERRNOS)}")
        if not value:
            raise ValueError("needs at least one errno")
        return value

    @model_validator(mode="after")
    def _one_draw(self) -> ActorFaultsModel:
        total = sum(self.raises.values()) + self.hang + self.slow
        if total > 1 + 1e-9:
            raise ValueError(f"raise + hang + slow add up to {total:g}; at most 1 per message")
        return self

    def over(self, base: ActorFaultsModel) -> ActorFaultsModel:
        """This entry with the keys it does not set taken from ``base`` (the "*" entry)."""
        merged = base.model_dump(by_alias=False)
        merged.update(self.model_dump(by_alias=False, include=self.model_fields_set))
        return ActorFaultsModel.model_validate(merged)


def _default_actors() -> dict[str, ActorFaultsModel]:
    return {"*": ActorFaultsModel.model_validate({
        "raise": {"RuntimeError": 0.002, "ConnectionError": 0.002},
        "slow": 0.002, "slow_seconds": 0.05, "io_error": 0.001})}


class ChaosModel(_Model):
    """The ``chaos:`` section (keys in ``docs/reliability.md``); off unless ``enabled``."""

    enabled: bool = False
    seed: int = Field(0, ge=0, lt=2**63)
    hang_margin: float = Field(1.0, gt=0, le=3600)
    skip_messages: tuple[str, ...] = DEFAULT_SKIP
    actors: dict[str, ActorFaultsModel] = Field(default_factory=_default_actors)

    def problems(self, names: Iterable[str], deadlines: Mapping[str, float | None]
                 ) -> list[tuple[str, str]]:
        """Problems with the tree this section is for: ``(key path, reason)`` pairs.

        ``names``: every actor of the tree; ``deadlines``: the workers' handler deadlines.
        """
        known = set(names)
        out: list[tuple[str, str]] = []
        for name, faults in self.actors.items():
            if name == "*":
                continue
            if name not in known:
                out.append((f"chaos.actors.{name}", f"no actor named {name!r} in the tree"))
            elif name not in deadlines:
                out.append((f"chaos.actors.{name}", "a supervisor is never faulted"))
            elif "hang" in faults.model_fields_set and faults.hang > 0 \
                    and deadlines[name] is None:
                out.append((f"chaos.actors.{name}.hang",
                            "needs the child's handler_deadline (a hang lasts past it)"))
        return out

    def plan(self, *, seed: int | None = None) -> ChaosPlan:
        """The plan this section describes (``seed`` overrides the section's)."""
        return ChaosPlan(self, self.seed if seed is None else seed)


class ChaosPlan:
    """Owns one run's faults: the settings, the per-actor injectors, their counts, and the
    event that ends every hang and slow-down when the runtime stops.

    Thread-safe: each injector is used from its actor's thread (and its I/O stream from
    whatever thread writes), and the counts are read from anywhere.
    """

    def __init__(self, model: ChaosModel, seed: int) -> None:
        self.model = model
        self.seed = seed
        self._released = threading.Event()
        self._paused = False
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._injectors: dict[str, ActorChaos] = {}
        base = model.actors.get("*", ActorFaultsModel())
        self._faults = {name: f.over(base) for name, f in model.actors.items() if name != "*"}
        self._base = base
        self._exceptions = {name: resolve_exception(name)
                            for f in (base, *self._faults.values()) for name in f.raises}

    # -- for the runtime -------------------------------------------------------------------
    def injector(self, name: str, *, is_supervisor: bool) -> ActorChaos | None:
        """The injector of child ``name`` (None: nothing to inject; supervisors never).

        One per name, kept across restarts (its random streams go on)."""
        if is_supervisor:
            return None
        with self._lock:
            found = self._injectors.get(name)
            if found is not None:
                return found
            faults = self._faults.get(name, self._base)
            if not (faults.raises or faults.hang or faults.slow or faults.io_error):
                return None
            found = self._injectors[name] = ActorChaos(self, name, faults)
            return found

    def release(self) -> None:
        """End every hang and slow-down now, and make later ones return at once (stop)."""
        self._released.set()

    def pause(self) -> None:
        """Inject nothing more (and draw nothing) until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    # -- what happened -----------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """Faults injected so far: actor -> kind (``raise:RuntimeError``, ``hang``,
        ``slow``, ``io:ENOSPC``) -> count."""
        with self._lock:
            return {actor: dict(kinds) for actor, kinds in self._counts.items()}

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return sum(sum(kinds.values()) for kinds in self._counts.values())

    def summary(self) -> dict[str, Any]:
        """What ``botvisor status`` shows: on, the seed, the total and the counts."""
        return {"enabled": True, "seed": self.seed, "faults_injected": self.faults_injected,
                "counts": self.counts()}

    def _count(self, actor: str, kind: str, what: str) -> None:
        with self._lock:
            kinds = self._counts.setdefault(actor, {})
            kinds[kind] = n = kinds.get(kind, 0) + 1
        log.warning("chaos: %s injected into %s %s (#%d of this kind)", kind, actor, what, n)


class ActorChaos:
    """Owns one actor's fault streams (handler faults and state-write faults).

    The runtime calls :meth:`inject` before each handler; the actor's storage calls
    :meth:`before_write` before each write to the state directory (``self.ctx.chaos``,
    None when nothing is injected into this actor).
    """

    def __init__(self, plan: ChaosPlan, name: str, faults: ActorFaultsModel) -> None:
        self.plan = plan
        self.name = name
        self.faults = faults
        self._rng = random.Random(f"{plan.seed}:{name}")
        self._io_rng = random.Random(f"{plan.seed}:{name}:io")
        self._io_lock = threading.Lock()
        self._skip = frozenset((*plan.model.skip_messages, *faults.skip_messages))
        self._only = None if faults.only_messages is None else frozenset(faults.only_messages)
        self._eligible: dict[type, bool] = {}
        self._raises = [(plan._exceptions[n], n, p) for n, p in faults.raises.items() if p > 0]
        self._errnos = [getattr(errno_module, e) for e in faults.io_errnos]

    def eligible(self, message_type: type) -> bool:
        """May a message of this type be faulted?"""
        found = self._eligible.get(message_type)
        if found is None:
            name = message_type.__name__
            found = name not in self._skip and (self._only is None or name in self._only)
            self._eligible[message_type] = found
        return found

    def decide(self, message_type: type, deadline: float | None) -> str | None:
        """Draw this message's fault: ``raise:Name``, ``hang``, ``slow`` or None.

        Draws only for eligible messages (so skipped ones do not move the stream), and
        not while the plan is paused."""
        if self.plan._paused or not self.eligible(message_type):
            return None
        u = self._rng.random()
        for _cls, name, p in self._raises:
            if u < p:
                return f"raise:{name}"
            u -= p
        f = self.faults
        if u < f.hang:  # with no deadline to hang past, this share injects nothing
            return "hang" if deadline is not None else None
        u -= f.hang
        if u < f.slow:
            return "slow"
        return None

    def inject(self, message: Any, deadline: float | None) -> None:
        """Called by the message loop before the handler of ``message`` runs.

        Raises the drawn exception, hangs (then raises :class:`InjectedHang`) or sleeps."""
        kind = self.decide(type(message), deadline)
        if kind is None:
            return
        what = f"handling {type(message).__name__}"
        if kind == "slow":
            self.plan._count(self.name, kind, what)
            self.plan._released.wait(self.faults.slow_seconds)
            return
        if kind == "hang":
            assert deadline is not None
            seconds = deadline + self.plan.model.hang_margin
            self.plan._count(self.name, kind, f"{what} for {seconds:g}s")
            self.plan._released.wait(seconds)
            raise InjectedHang(self.name, f"{type(message).__name__} (chaos: a hang)",
                               seconds, deadline)
        cls = next(c for c, n, _p in self._raises if f"raise:{n}" == kind)
        self.plan._count(self.name, kind, what)
        raise cls(f"chaos: injected into {self.name} handling {type(message).__name__}")

    def before_write(self, path: str | os.PathLike[str]) -> None:
        """Called before a write to the state directory: may raise OSError (ENOSPC, EIO or
        EROFS, as configured), as a full, failing or read-only disk would. Cheap: one
        draw from the actor's I/O stream."""
        p = self.faults.io_error
        if not p or self.plan._paused:
            return
        with self._io_lock:
            hit = self._io_rng.random() < p
            code = self._io_rng.choice(self._errnos) if hit else 0
        if hit:
            self.plan._count(self.name, f"io:{errno_module.errorcode[code]}",
                             f"writing {Path(path).name}")
            raise OSError(code, f"chaos: {os.strerror(code)}", str(path))
