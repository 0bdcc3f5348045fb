"""One venue sync as a state machine: which ask comes next, and what the ledger lacked.

The executor runs it without waiting: it sends each step's message and hands the answer to
:meth:`VenueSync.answer`, which returns the next step (or None when the sync is done). The
steps: ``GetLedgerSummary``, ``GetVenueFills``, ``RecordFills`` in batches,
``GetVenueRecord`` (all fills again, by id, when the venue holds more than the ledger),
``GetOpenOrders``. A step's failure ends the sync, which is retried whole. The findings:
``recovered``, ``rejected``, ``ledger_empty`` and ``phantom``. Each step and why:
docs/trading-bot.md ("The executor after a crash").

Whether a sync runs, waits to, or neither is the :class:`SyncPhase` of the executor's sync
driver (``sync_driver.py``), moved only by :func:`next_sync_phase` along :data:`SYNC_TABLE`
(drawn in docs/state-machines.md, "The venue sync"); an event the table does not allow
raises ``IllegalTransition``. A sync's own step is its :class:`SyncStage`, moved only along
:data:`STAGE_TABLE` (the same: a move the table does not allow raises
``IllegalTransition``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from actors.common.fill_digest import fold
from actors.common.messages import Fill
from actors.execution.orders import IllegalTransition
from actors.portfolio.contract import FillsRecorded, GetLedgerSummary, LedgerSummary, RecordFills
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    GetVenueRecord,
    OpenOrder,
    VenueRecord,
)

__all__ = [
    "STAGE_TABLE",
    "SYNC_TABLE",
    "Step",
    "SyncEvent",
    "SyncPhase",
    "SyncStage",
    "VenueSync",
    "next_sync_phase",
]

Step = tuple[Literal["ledger", "venue"], Any]  # where the next ask goes, and its message


class SyncPhase(enum.StrEnum):
    """The executor's venue sync: none runs or waits, one waits, one runs."""

    IDLE = "idle"
    WANTED = "wanted"  # starts as soon as nothing of the executor's is out
    RUNNING = "running"
    RUNNING_AGAIN = "running_again"  # runs; another is wanted after it (asked meanwhile)


class SyncEvent(enum.StrEnum):
    """What moves the executor's venue sync."""

    WANT = "want"  # the executor's start, a SyncVenue, the retry timer after a failure
    START = "start"  # nothing of the executor's is out: the first step is sent
    DONE = "done"  # the last step answered: the ledger has the venue's fills
    FAILED = "failed"  # a step failed (retried whole, after venue_sync_retry)


_S, _V = SyncPhase, SyncEvent
SYNC_TABLE: MappingProxyType[tuple[SyncPhase, SyncEvent], SyncPhase] = MappingProxyType({
    (_S.IDLE, _V.WANT): _S.WANTED,
    (_S.WANTED, _V.WANT): _S.WANTED,
    (_S.RUNNING, _V.WANT): _S.RUNNING_AGAIN,
    (_S.RUNNING_AGAIN, _V.WANT): _S.RUNNING_AGAIN,
    (_S.WANTED, _V.START): _S.RUNNING,
    (_S.RUNNING, _V.DONE): _S.IDLE,
    (_S.RUNNING, _V.FAILED): _S.IDLE,
    (_S.RUNNING_AGAIN, _V.DONE): _S.WANTED,
    (_S.RUNNING_AGAIN, _V.FAILED): _S.WANTED,
})


def next_sync_phase(phase: SyncPhase, event: SyncEvent) -> SyncPhase:
    """Where ``event`` moves the sync in ``phase``; raises ``IllegalTransition`` when the
    table has no such move."""
    try:
        return SYNC_TABLE[phase, event]
    except KeyError:
        raise IllegalTransition(
            f"venue sync: {event.value} is not allowed from {phase.value}") from None


class SyncStage(enum.StrEnum):
    """Which answer one venue sync waits for."""

    SUMMARY = "summary"  # GetLedgerSummary
    FILLS = "fills"  # GetVenueFills
    RECORD = "record"  # RecordFills (a batch)
    COUNT = "count"  # GetVenueRecord
    OPEN = "open"  # GetOpenOrders
    DONE = "done"  # the last answer is in


_G = SyncStage
STAGE_TABLE: MappingProxyType[SyncStage, frozenset[SyncStage]] = MappingProxyType({
    _G.SUMMARY: frozenset({_G.SUMMARY, _G.FILLS}),  # (start: the summary is asked again)
    _G.FILLS: frozenset({_G.RECORD, _G.COUNT}),
    _G.RECORD: frozenset({_G.RECORD, _G.COUNT}),
    _G.COUNT: frozenset({_G.FILLS, _G.OPEN}),  # FILLS: a fill outside the window: all
    _G.OPEN: frozenset({_G.DONE}),
    _G.DONE: frozenset(),
})


@dataclass
class VenueSync:
    """Owns one venue sync's progress and findings: the fills the venue listed, those the
    ledger lacked (``recovered``) and those it refused (``rejected``), and what the
    counts say (``ledger_empty``, ``phantom``)."""

    mode: Literal["recent", "full", "off"]
    lookback: float  # venue seconds before the ledger's newest fill ("recent")
    batch: int  # fills per RecordFills
    reach_back: float | None = None  # an earlier instance's oldest unrecorded fill
    newest: float | None = None  # the ledger's newest fill time
    since: float | None = None  # the venue fills asked for start here (None: all)
    fills: list[Fill] = field(default_factory=list)
    recovered: list[Fill] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    open_orders: tuple[OpenOrder, ...] = ()
    summary: LedgerSummary | None = None  # the ledger before this sync
    record: VenueRecord | None = None  # the venue's count
    listed_all: bool = False  # every venue fill was listed (not only a window)
    phantom: int = 0  # fills the ledger has of this venue that the venue does not
    _stage: SyncStage = SyncStage.SUMMARY
    _chunk: tuple[Fill, ...] = ()
    _next: int = 0

    @property
    def ledger_empty(self) -> bool:
        """The ledger had no fill at all while the venue had this bot's fills."""
        return (self.summary is not None and self.summary.total == 0
                and (bool(self.recovered) or bool(self.record and self.record.fills)))

    @property
    def stage(self) -> SyncStage:
        """The answer this sync waits for (``DONE``: none)."""
        return self._stage

    def _move(self, stage: SyncStage) -> None:
        if stage not in STAGE_TABLE[self._stage]:
            raise IllegalTransition(
                f"venue sync: no move from {self._stage.value} to {stage.value}")
        self._stage = stage

    def start(self) -> Step:
        self._move(SyncStage.SUMMARY)
        return "ledger", GetLedgerSummary()

    def answer(self, value: Any) -> Step | None:
        """Take the answer to the last step: the next step, or None when the sync is done.
        Raises TypeError for an answer of the wrong kind."""
        if self._stage is SyncStage.DONE:
            raise IllegalTransition("venue sync: an answer after the last")
        if self._stage is SyncStage.SUMMARY:
            if not isinstance(value, LedgerSummary):
                raise TypeError(f"GetLedgerSummary answered {type(value).__name__}")
            self.summary = value
            self.newest = value.newest
            if self.mode == "recent" and value.newest is not None:
                self.since = value.newest - self.lookback
                if self.reach_back is not None:
                    self.since = min(self.since, self.reach_back)
            return self._list(self.since)
        if self._stage is SyncStage.OPEN:
            if not isinstance(value, list | tuple) or not all(
                    isinstance(o, OpenOrder) for o in value):
                raise TypeError(f"GetOpenOrders answered {type(value).__name__}")
            self.open_orders = tuple(value)
            self._move(SyncStage.DONE)
            return None
        if self._stage is SyncStage.COUNT:
            if value is None:  # a venue that keeps no count: the window is all there is
                self._move(SyncStage.OPEN)
                return "venue", GetOpenOrders()
            if not isinstance(value, VenueRecord):
                raise TypeError(f"GetVenueRecord answered {type(value).__name__}")
            return self._counted(value)
        if self._stage is SyncStage.FILLS:
            if not isinstance(value, list | tuple):
                raise TypeError(f"GetVenueFills answered {type(value).__name__}")
            self.fills = list(value)
            self._next = 0
        else:
            if not isinstance(value, FillsRecorded):
                raise TypeError(f"RecordFills answered {type(value).__name__}")
            new = {r.fill_id for r in value.recorded if not r.duplicate}
            self.recovered.extend(f for f in self._chunk if f.fill_id in new)
            self.rejected.extend(value.rejected)
        if self._next >= len(self.fills):
            self._move(SyncStage.COUNT)
            return "venue", GetVenueRecord()
        self._move(SyncStage.RECORD)
        self._chunk = tuple(self.fills[self._next : self._next + self.batch])
        self._next += len(self._chunk)
        return "ledger", RecordFills(self._chunk)

    def _list(self, since: float | None) -> Step:
        self._move(SyncStage.FILLS)
        self.listed_all = self.listed_all or since is None
        return "venue", GetVenueFills(since)

    def _counted(self, record: VenueRecord) -> Step:
        """Compare the venue's count, and the digest of its fill ids where both sides give
        one, with what the ledger holds of it now: a fill outside the window the ledger
        lacks shows in the count, or (hidden behind a phantom) in the digest."""
        self.record = record
        summary = self.summary
        assert summary is not None
        mine = [f.fill_id for f in self.recovered if f.venue == record.venue]
        held = summary.fills.get(record.venue, 0) + len(mine)
        differ = False
        if record.digest is not None and (record.venue in summary.digests
                                          or not summary.fills.get(record.venue)):
            ledger = summary.digests.get(record.venue, 0)
            for fill_id in mine:
                ledger = fold(ledger, fill_id)
            differ = ledger != record.digest
        if record.fills is not None:
            if (record.fills > held or differ) and not self.listed_all:
                self.since = None  # a fill outside the window: list them all, by id
                return self._list(None)
            self.phantom = max(0, held - record.fills)
        self._move(SyncStage.OPEN)
        return "venue", GetOpenOrders()

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
