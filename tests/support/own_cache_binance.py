"""A ccxt.pro Binance that keeps each symbol's candles in a cache of its own, not in the
one put at ``ohlcvs[symbol][timeframe]`` before its first update (as some exchanges do)."""

from __future__ import annotations

from typing import Any

import ccxt.pro
from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp


class OwnCacheBinance(ccxt.pro.binance):  # type: ignore[misc]
    """Binance spot over a websocket whose kline handler stores each symbol's candles in a
    fresh :class:`ArrayCacheByTimestamp` made on its first update (and kept), replacing
    whatever stood in ``ohlcvs`` for it; the rest is ccxt.pro's own."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        self.own_caches: dict[tuple[str, str], ArrayCacheByTimestamp] = {}

    def handle_ohlcv(self, client: Any, message: dict[str, Any]) -> None:
        kline = message["k"]
        symbol = self.safe_symbol(kline["s"], None, None, "spot")
        timeframe = self.find_timeframe(kline["i"])
        key = (symbol, timeframe)
        if key not in self.own_caches:
            limit = self.safe_integer(self.options, "OHLCVLimit", 1000)
            self.own_caches[key] = ArrayCacheByTimestamp(limit)
        self.ohlcvs.setdefault(symbol, {})[timeframe] = self.own_caches[key]
        super().handle_ohlcv(client, message)
