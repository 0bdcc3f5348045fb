"""What one offline audit found, and its text for an operator.

Owns :class:`AuditReport` (the violations, missing files, notes and counts an audit
collects; ``clean`` only when nothing is missing and nothing violated),
:class:`AuditInputError` (the config is unusable: nothing to audit) and
:func:`print_report`, the report as the ``audit`` command prints it. No checking here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AuditInputError", "AuditReport", "print_report"]


@dataclass
class AuditReport:
    """What one audit found. ``clean`` only when nothing is missing and nothing violated."""

    config: str
    violations: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fills_checked: int = 0
    orders_checked: int = 0
    sources_checked: int = 0
    refused_to_trade: str | None = None  # the breaker's state and reason, when it bars orders

    @property
    def clean(self) -> bool:
        return not self.violations and not self.missing

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class AuditInputError(Exception):
    """The config cannot be read, or names no ledger: nothing to audit (exit 2)."""


def print_report(report: AuditReport) -> None:
    """Print ``report`` for an operator: the verdict, the counts, then each list."""
    status = "clean" if report.clean else "NOT CLEAN"
    print(f"audit of {report.config}: {status}")
    print(f"  fills checked {report.fills_checked}, orders checked {report.orders_checked}, "
          f"sources checked {report.sources_checked}")
    if report.refused_to_trade:
        print(f"  refused to trade: {report.refused_to_trade}")
    for title, items in (("missing", report.missing), ("violations", report.violations),
                         ("notes", report.notes)):
        if items:
            print(f"  {title}:")
            for item in items:
                print(f"    - {item}")
