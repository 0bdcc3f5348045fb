"""The breaker's history as an audit reads it, and the gate check on one fill.

Owns :class:`Interval` (one stretch of the breaker in one state, counting the
exposure-increasing fills recorded in it), :func:`breaker_intervals` (the stretches from
the breaker database's transitions; sets the report's ``refused_to_trade`` when the breaker
bars orders now), :func:`state_at` and :func:`check_gate` (a fill that adds exposure in an
OPEN or HALTED stretch older than the slack, or beyond a HALF_OPEN stretch's probes, is a
violation). Writes only to the report.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from actors.common.messages import Fill
from actors.reliability.audit_report import AuditReport

__all__ = ["Interval", "breaker_intervals", "check_gate", "state_at"]


@dataclass
class Interval:
    """The breaker in ``state`` from ``start`` (its reason) until the next stretch."""

    state: str
    start: float
    reason: str
    added: int = 0  # exposure-increasing fills recorded in it


def breaker_intervals(db: sqlite3.Connection, path: Path, report: AuditReport) -> list[Interval]:
    """The breaker's states over time, from its transitions; sets ``refused_to_trade``."""
    intervals: list[Interval] = []
    row = db.execute("SELECT record FROM state WHERE id = 1").fetchone()
    try:
        for at, record in db.execute("SELECT at, record FROM transitions ORDER BY id"):
            rec = json.loads(record)
            if not intervals:
                # before its first transition the breaker's state is not known: a breaker
                # whose file was lost starts afresh (possibly OPEN) with no history, so
                # "from" says nothing of the time before the file was made
                intervals.append(Interval("unknown", float("-inf"), "before its history"))
            intervals.append(Interval(str(rec["to"]), float(at), str(rec.get("reason", ""))))
        state = json.loads(row[0]) if row is not None else None
    except (ValueError, KeyError, TypeError) as exc:
        report.violations.append(f"{path}: breaker record is damaged ({exc})")
        return intervals
    if state is None:
        report.violations.append(f"{path}: breaker has no state row (it must not read as "
                                 "CLOSED)")
        return intervals
    if state.get("state") in ("open", "halted"):
        since = datetime.fromtimestamp(float(state.get("since") or 0), UTC)
        report.refused_to_trade = (f"breaker {state['state']} since {since:%Y-%m-%d %H:%M:%S}Z "
                                   f"by {state.get('by')}: {state.get('reason')}")
    return intervals


def state_at(intervals: list[Interval], when: float) -> Interval | None:
    """The stretch ``when`` falls in (the last that started by then), or None."""
    current = None
    for interval in intervals:
        if interval.start <= when:
            current = interval
        else:
            break
    return current



def check_gate(fill: Fill, recorded_at: float, intervals: list[Interval], slack: float, *,
               path: Path, report: AuditReport, probes: int) -> None:
    """Record a violation if ``fill`` (which adds exposure) passed a gate that was shut."""
    state = state_at(intervals, recorded_at)
    if state is None or state.state == "unknown":
        return
    if state.state == "half_open":
        state.added += 1
        if state.added > probes:
            report.violations.append(
                f"{path}: fill {fill.fill_id} (order {fill.client_order_id}) adds exposure "
                f"as probe {state.added} of a HALF_OPEN breaker that allows {probes}")
        return
    if state.state not in ("open", "halted"):
        return
    if recorded_at - state.start > slack:
        when = datetime.fromtimestamp(recorded_at, UTC)
        report.violations.append(
            f"{path}: fill {fill.fill_id} (order {fill.client_order_id}, {fill.side.value} "
            f"{fill.quantity} {fill.symbol}) adds exposure, recorded at "
            f"{when:%H:%M:%S.%f}Z while the breaker was {state.state} for "
            f"{recorded_at - state.start:.1f}s ({state.reason})")

