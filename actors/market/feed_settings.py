"""The market actor's settings model: what :class:`~actors.market.feed.MarketActor` reads
of its config (``MarketActor.Settings`` is this class), with the checks across its keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.common.messages import Alert
from actors.market.contract import (
    AwaitIdle,
    Bars,
    FeedHealth,
    MarketSamples,
    MarkPrices,
    ScannedBars,
)
from actors.market.data import check_csv_dir
from actors.market.live_feed import default_poll_interval
from actors.market.live_source import check_live
from supervisor.peers import Peer

__all__ = ["MarketSettings"]


class MarketSettings(BaseModel):
    """The market actor's settings (``MarketActor.Settings``): the source and its pace,
    the live feed's venue and candles, the peers the bars and prices go to, and the clock
    file. Checked as a whole: a csv source needs its directory, a live one its venue and
    symbols (:func:`~actors.market.live_source.check_live`), lockstep a replay and an
    executor to wait on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["synthetic", "csv", "ccxt"] = "synthetic"
    csv_dir: str | None = None
    seed: int = 7
    # synthetic: a mapping of start prices; ccxt: a list, as the venue lists them
    symbols: dict[str, float] | tuple[str, ...] | None = None
    # ccxt: the venue (a ccxt id), its candles, how they come (``ws``: ccxt.pro's
    # watch_ohlcv; ``rest``: polling fetch_ohlcv; ``auto``: ws where ccxt.pro watches
    # the venue's candles), how often they are polled or checked for staleness
    # (default: a tenth of the timeframe, at most 60 s), how
    # many timeframes without a closed candle make the feed stale, and a mapping passed
    # to the ccxt constructor (urls, options; public endpoints only: no API key)
    exchange: str | None = None
    timeframe: str = "1m"
    transport: Literal["auto", "ws", "rest"] = "auto"
    # ws: where ccxt.pro parses the stream (``process``: a child process, off the bot's
    # interpreter lock; ``thread``: the worker's own thread, where a process cannot fork)
    ws_venue: Literal["process", "thread"] = "process"
    poll_interval: float | None = Field(None, gt=0)
    stale_after: float = Field(3.0, ge=1)
    # ccxt, a fresh start (no resume file): the closed candles per symbol fetched first,
    # to fill the scanner's and the strategies' windows (no entry is signalled on them)
    warmup: int = Field(100, ge=1, le=1000)
    # ccxt: candles older than the newest closed one are catch-up steps (no entry on
    # them); false: every closed candle is traded on (a venue that serves history)
    catch_up: bool = True
    ccxt_options: dict[str, Any] = Field(default_factory=dict)
    bar_seconds: float = Field(60.0, gt=0)
    speed: float = Field(600.0, gt=0)  # market seconds per real second
    # "timed": a step every bar_seconds / speed real seconds. "lockstep" (csv, synthetic):
    # the next step once the pipeline is done with this one: the position actor and the
    # breaker have the step's marks and samples, the subscribers its bars, then
    # lockstep_through (in order: the evaluator) what those sent on, lockstep_idle (the
    # executor) has nothing in flight, and the position actor and the breaker have what
    # that caused. A step not done within lockstep_timeout seconds is logged (WARNING)
    # and the next follows at the timed pace. docs/backtesting.md, "Parity with the
    # live tree".
    pace: Literal["timed", "lockstep"] = "timed"
    lockstep_through: Annotated[tuple[str, ...], Peer(accepts=(ScannedBars,))] = ()
    lockstep_idle: Annotated[str | None, Peer(accepts=(AwaitIdle,))] = None
    lockstep_timeout: float = Field(10.0, gt=0)
    crash_at_bar: int | None = Field(600, ge=0)
    max_steps: int | None = Field(None, ge=1)
    # Bars go to these; the paper exchange reads the latest bars this actor publishes
    # (MarketCursor) instead of a message per step
    subscribers: Annotated[tuple[str, ...], Peer(accepts=(Bars,))] = ("scanner", "exits")
    positions: Annotated[str, Peer(accepts=(MarkPrices,))] = "positions"
    # The position actor gets the latest price of each symbol at most this often (real
    # seconds; 0: with every step). It marks the portfolio with them and samples equity
    # at most once a second, so coalescing costs nothing there and saves the position
    # actor a wake-up per step when bars come fast.
    marks_interval: float = Field(0.05, ge=0)
    breaker: Annotated[str, Peer(accepts=(MarketSamples, FeedHealth))] = "breaker"
    alerts: Annotated[str, Peer(accepts=(Alert,))] = "alerts"
    # The feed's position across processes (None: none kept, each process starts the
    # feed at its first bar); a new position is written every clock_lease steps
    clock_file: str | None = "state/market_clock.json"
    clock_lease: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _csv_needs_a_directory(self) -> MarketSettings:
        if self.source == "csv":
            check_csv_dir(self.csv_dir)
        if self.source == "ccxt":
            check_live(self)
            if self.pace == "lockstep":
                raise ValueError("pace: 'lockstep' replays a source (csv, synthetic); a "
                                 "live feed's candles come when the venue closes them")
        elif isinstance(self.symbols, tuple):
            raise ValueError(f"symbols: source {self.source!r} takes a mapping of "
                             "symbol to start price, not a list")
        if self.pace == "lockstep" and self.lockstep_idle is None:
            raise ValueError("lockstep_idle: pace 'lockstep' needs the actor that places "
                             "the orders (the executor), to wait until none is in flight")
        return self

    @property
    def live_symbols(self) -> tuple[str, ...]:
        return self.symbols if isinstance(self.symbols, tuple) else ()

    @property
    def live_poll_interval(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return default_poll_interval(self.timeframe)
