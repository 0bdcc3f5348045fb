"""One venue sync as a state machine: which ask comes next, and what the ledger lacked.

The executor runs it without waiting: it sends each step's message, and hands the answer
to :meth:`VenueSync.answer`, which returns the next step (or None when the sync is done).
The steps: the ledger's newest fill time (``recent`` only); the venue's fills since a
little before it (or all of them); those fills to the ledger in batches (``RecordFills``,
one transaction each; the ledger skips fill ids it has); last, the orders the venue still
has open (``GetOpenOrders``: their later fills are still to come, so the executor follows
them). A step's failure ends the sync; the executor retries it whole (every step is safe
to repeat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from actors.messages import Fill
from actors.paper_exchange import GetVenueFills
from actors.pipeline_messages import GetOpenOrders, OpenOrder
from actors.position_messages import FillsRecorded, GetLastFillTime, RecordFills

__all__ = ["Step", "VenueSync"]

Step = tuple[Literal["ledger", "venue"], Any]  # where the next ask goes, and its message


@dataclass
class VenueSync:
    """Owns one venue sync's progress and findings: the fills the venue listed, those the
    ledger lacked (``recovered``) and those it refused (``rejected``)."""

    mode: Literal["recent", "full", "off"]
    lookback: float  # venue seconds before the ledger's newest fill ("recent")
    batch: int  # fills per RecordFills
    reach_back: float | None = None  # an earlier instance's oldest unrecorded fill
    newest: float | None = None  # the ledger's newest fill time ("recent" only)
    since: float | None = None  # the venue fills asked for start here (None: all)
    fills: list[Fill] = field(default_factory=list)
    recovered: list[Fill] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    open_orders: tuple[OpenOrder, ...] = ()
    _stage: Literal["last", "fills", "record", "open"] = "last"
    _chunk: tuple[Fill, ...] = ()
    _next: int = 0

    def start(self) -> Step:
        if self.mode == "recent":
            self._stage = "last"
            return "ledger", GetLastFillTime()
        self._stage = "fills"
        return "venue", GetVenueFills(None)

    def answer(self, value: Any) -> Step | None:
        """Take the answer to the last step: the next step, or None when the sync is done.
        Raises TypeError for an answer of the wrong kind."""
        if self._stage == "last":
            if value is not None:
                self.newest = float(value)
                self.since = self.newest - self.lookback
                if self.reach_back is not None:
                    self.since = min(self.since, self.reach_back)
            self._stage = "fills"
            return "venue", GetVenueFills(self.since)
        if self._stage == "open":
            if not isinstance(value, list | tuple) or not all(
                    isinstance(o, OpenOrder) for o in value):
                raise TypeError(f"GetOpenOrders answered {type(value).__name__}")
            self.open_orders = tuple(value)
            return None
        if self._stage == "fills":
            if not isinstance(value, list | tuple):
                raise TypeError(f"GetVenueFills answered {type(value).__name__}")
            self.fills = list(value)
        else:
            if not isinstance(value, FillsRecorded):
                raise TypeError(f"RecordFills answered {type(value).__name__}")
            new = {r.fill_id for r in value.recorded if not r.duplicate}
            self.recovered.extend(f for f in self._chunk if f.fill_id in new)
            self.rejected.extend(value.rejected)
        if self._next >= len(self.fills):
            self._stage = "open"
            return "venue", GetOpenOrders()
        self._stage = "record"
        self._chunk = tuple(self.fills[self._next : self._next + self.batch])
        self._next += len(self._chunk)
        return "ledger", RecordFills(self._chunk)

    def newest_fill_time(self) -> float | None:
        """The newest fill time the venue listed or the ledger had (None: no fill at all)."""
        times = [f.at for f in self.fills]
        if self.newest is not None:
            times.append(self.newest)
        return max(times, default=None)

    def scope(self) -> str:
        """What was checked, for the log: "venue fill(s)[ since venue time T]"."""
        return "venue fill(s)" + ("" if self.since is None else
                                  f" since venue time {self.since:.0f}")
