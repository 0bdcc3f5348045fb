"""Classify failures by exception type into a severity, a directive and retry safety.

The mapping is keyed by the dotted names of exception classes (``"ConnectionError"`` for
builtins, ``"ccxt.base.errors.NetworkError"`` otherwise), so rules can name classes of
optional libraries without importing them. The most specific class in the exception's
MRO that has a rule wins; nothing is ever decided by the text of the message.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_RULES", "Decision", "Directive", "ErrorHandler", "Rule", "Severity"]


class Severity(enum.IntEnum):
    """How bad a failure is; alert routing keys off this."""

    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of {names})") from None


class Directive(enum.StrEnum):
    """What the supervisor does with a failed child."""

    RESUME = "resume"  # drop the failing message, keep the actor and its state
    RESTART = "restart"  # replace the actor by the supervisor's strategy
    STOP = "stop"  # stop the child for good, whatever its restart type
    ESCALATE = "escalate"  # the supervisor itself fails to its parent
    FALLBACK = "fallback"  # start the child's fallback in its place now


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do about one class of exception."""

    severity: Severity
    directive: Directive
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The handler's verdict on one failure, with the class name whose rule matched."""

    severity: Severity
    directive: Directive
    retryable: bool
    matched: str


_W, _E, _C = Severity.WARNING, Severity.ERROR, Severity.CRITICAL

DEFAULT_RULES: Mapping[str, Rule] = {
    # Network trouble: the actor's connection state is suspect, so rebuild it; safe to retry.
    "ConnectionError": Rule(_W, Directive.RESTART, retryable=True),
    "TimeoutError": Rule(_W, Directive.RESTART, retryable=True),
    "socket.gaierror": Rule(_W, Directive.RESTART, retryable=True),
    "http.client.HTTPException": Rule(_W, Directive.RESTART, retryable=True),
    "urllib.error.URLError": Rule(_W, Directive.RESTART, retryable=True),
    # Rate limits: wait and go on; the actor is fine.
    "supervisor.errors.RateLimited": Rule(_W, Directive.RESUME, retryable=True),
    # Bad data: drop the message that carried it, keep the actor.
    "ValueError": Rule(_W, Directive.RESUME),
    "decimal.InvalidOperation": Rule(_W, Directive.RESUME),
    "UnicodeError": Rule(_W, Directive.RESUME),
    # Programming errors: the actor's state may be corrupt, so start it afresh.
    "TypeError": Rule(_E, Directive.RESTART),
    "AttributeError": Rule(_E, Directive.RESTART),
    "LookupError": Rule(_E, Directive.RESTART),
    "NameError": Rule(_E, Directive.RESTART),
    "AssertionError": Rule(_E, Directive.RESTART),
    "ArithmeticError": Rule(_E, Directive.RESTART),
    "NotImplementedError": Rule(_E, Directive.RESTART),
    "RecursionError": Rule(_E, Directive.RESTART),
    "OSError": Rule(_E, Directive.RESTART),
    # The state directory is read-only, full or failing (the file and errno are named):
    # nothing more can be recorded there; restart with backoff, and say so loudly.
    "supervisor.errors.StorageFailure": Rule(_C, Directive.RESTART),
    # SQLite: a failed statement leaves the connection suspect; a damaged database file
    # (SQLITE_CORRUPT, SQLITE_NOTADB) is worse than a failed statement.
    "sqlite3.OperationalError": Rule(_E, Directive.RESTART),
    "sqlite3.IntegrityError": Rule(_E, Directive.RESTART),
    "sqlite3.DatabaseError": Rule(_C, Directive.RESTART),
    # Runtime conditions.
    "supervisor.errors.HandlerTimeout": Rule(_E, Directive.RESTART),
    "supervisor.errors.StartFailed": Rule(_E, Directive.RESTART),
    "supervisor.errors.RestartIntensityExceeded": Rule(_C, Directive.RESTART),
    "supervisor.errors.ActorNotRunning": Rule(_W, Directive.RESUME, retryable=True),
    "supervisor.errors.MailboxFull": Rule(_W, Directive.RESUME, retryable=True),
    "pykka.Timeout": Rule(_W, Directive.RESUME, retryable=True),
    # Process-level signals raised inside one actor stay inside that actor.
    "SystemExit": Rule(_C, Directive.RESTART),
    "KeyboardInterrupt": Rule(_C, Directive.RESTART),
    "MemoryError": Rule(_C, Directive.ESCALATE),
}

_DEFAULT = Rule(Severity.ERROR, Directive.RESTART)


def class_name(cls: type) -> str:
    """The dotted name rules use for ``cls``: bare for builtins, ``module.Qualname`` else."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class ErrorHandler:
    """Owns the failure classification rules of a supervisor (immutable after construction)."""

    def __init__(
        self,
        rules: Mapping[str, Rule] | None = None,
        *,
        default: Rule = _DEFAULT,
        include_defaults: bool = True,
    ) -> None:
        merged: dict[str, Rule] = dict(DEFAULT_RULES) if include_defaults else {}
        merged.update(rules or {})
        self._rules = merged
        self._default = default
        self._cache: dict[type, Decision] = {}
        self._cache_lock = threading.Lock()

    @property
    def rules(self) -> Mapping[str, Rule]:
        return dict(self._rules)

    def classify(self, exc: BaseException) -> Decision:
        cls = type(exc)
        cached = self._cache.get(cls)
        if cached is not None:
            return cached
        decision = self._decide(cls)
        with self._cache_lock:
            self._cache[cls] = decision
        return decision

    def _decide(self, cls: type) -> Decision:
        for klass in cls.__mro__:
            name = class_name(klass)
            rule = self._rules.get(name)
            if rule is None and klass.__module__ == "pykka._exceptions":
                rule = self._rules.get(f"pykka.{klass.__qualname__}")
            if rule is not None:
                return Decision(rule.severity, rule.directive, rule.retryable, name)
        d = self._default
        return Decision(d.severity, d.directive, d.retryable, "default")

    def with_rules(self, rules: Mapping[str, Rule]) -> ErrorHandler:
        """A new handler with ``rules`` added on top of this one's."""
        merged = dict(self._rules)
        merged.update(rules)
        return ErrorHandler(merged, default=self._default, include_defaults=False)
