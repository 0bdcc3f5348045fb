"""The websocket feed's venue end: one ``ccxt.pro`` exchange, driven from an asyncio loop.

:class:`CcxtVenue` owns the exchange (public endpoints only, ccxt's throttle on) in the
running loop: the REST calls the worker makes (:meth:`~CcxtVenue.load_markets`,
:meth:`~CcxtVenue.fetch_ohlcv`) and :meth:`~CcxtVenue.stream`, which subscribes every
symbol's candles at once and hands each parsed update to ``on_rows(symbol, rows)`` as
ccxt.pro stores it. A cache of ours sits where ccxt.pro keeps each symbol's candles
(:func:`streamed_class`), so no ``watch_ohlcv`` is re-armed per update (it costs more than
the parsing it waits for); one watch stays open so that a failed socket ends the stream; an
exchange that keeps its candles elsewhere is watched symbol by symbol instead, with a
WARNING. An error raised by ``on_rows`` ends the stream; it never reaches ccxt's receive
loop.

The worker runs a CcxtVenue in its own thread, or in a child process
(:mod:`actors.market.ws_child`) behind the same interface.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["CcxtVenue", "OnRows", "streamed_class"]

OnRows = Callable[[str, list[list[Any]]], None]


@functools.cache
def streamed_class() -> type:
    """ccxt.pro's candle cache of one symbol that also hands each update, as it is stored,
    to ``on_rows(symbol, [row])``. Made on first use, as ccxt is imported (it is slow to
    import)."""
    from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

    class StreamedCandles(ArrayCacheByTimestamp):  # type: ignore[misc]
        def __init__(self, limit: int, symbol: str, on_rows: OnRows) -> None:
            super().__init__(limit)
            self.symbol = symbol
            self.on_rows = on_rows

        def append(self, item: list[Any]) -> None:
            super().append(item)
            self.on_rows(self.symbol, [list(item)])

    return StreamedCandles


class CcxtVenue:
    """Owns one ccxt.pro exchange in the running loop (module docstring); ``source`` names
    the feed in log lines."""

    def __init__(self, exchange_id: str, options: dict[str, Any], symbols: Sequence[str],
                 timeframe: str, source: str) -> None:
        import ccxt.pro

        self.exchange_id = exchange_id
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.source = source
        self.exchange: Any = getattr(ccxt.pro, exchange_id)(options | {"enableRateLimit": True})

    async def load_markets(self) -> None:
        await self.exchange.load_markets()

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int
                          ) -> list[list[Any]]:
        rows: list[list[Any]] = await self.exchange.fetch_ohlcv(symbol, timeframe, since, limit)
        return rows

    async def close(self) -> None:
        await self.exchange.close()

    async def stream(self, on_rows: OnRows) -> None:
        """Subscribe and hand every update to ``on_rows`` until the stream fails (raised)
        or this is cancelled."""
        ex, tf = self.exchange, self.timeframe
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def hook(symbol: str, rows: list[list[Any]]) -> None:
            try:
                on_rows(symbol, rows)
            except Exception as exc:
                if not failed.done():
                    failed.set_exception(exc)

        limit = int(ex.options.get("OHLCVLimit", 1000) or 1000)
        cache = streamed_class()
        for symbol in self.symbols:
            ex.ohlcvs.setdefault(symbol, {})[tf] = cache(limit, symbol, hook)
        # one SUBSCRIBE for every symbol; each symbol's watch after it sends none
        subscribe = asyncio.ensure_future(ex.watch_ohlcv_for_symbols(
            [[s, tf] for s in self.symbols]))
        await asyncio.sleep(0)
        subscribe.cancel()
        watch = asyncio.ensure_future(self._watch_first(hook))
        try:
            done, _ = await asyncio.wait([watch, failed], return_when=asyncio.FIRST_EXCEPTION)
            for future in done:
                future.result()
        finally:
            for future in (watch, subscribe, failed):
                future.cancel()
            await asyncio.gather(watch, subscribe, return_exceptions=True)

    async def _watch_first(self, on_rows: OnRows) -> None:
        """Keep one watch open, on the first symbol: it ends the stream when the socket
        fails (ccxt rejects it). Its rows came through the caches already, unless the
        exchange keeps candles elsewhere: then every symbol is watched."""
        ex, tf, first = self.exchange, self.timeframe, self.symbols[0]
        while True:
            rows = await ex.watch_ohlcv(first, tf)
            if not isinstance(ex.ohlcvs.get(first, {}).get(tf), streamed_class()):
                log.warning("market feed %s: %s keeps its candles elsewhere; watching each "
                            "symbol", self.source, self.exchange_id)
                on_rows(first, rows)
                await asyncio.gather(*(self._watch(s, on_rows) for s in self.symbols))

    async def _watch(self, symbol: str, on_rows: OnRows) -> None:
        ex, tf = self.exchange, self.timeframe
        while True:
            rows = await ex.watch_ohlcv(symbol, tf)
            on_rows(symbol, rows)  # every update since the last (ccxt.pro newUpdates)
