"""Fake venues on 127.0.0.1 that real ccxt trades against: shared test support.

:class:`FakeBinance` is a ThreadingHTTPServer on 127.0.0.1 (random port) that answers the
few Binance spot REST endpoints the ccxt adapter uses: ``exchangeInfo``, ``ticker/24hr``,
``order`` (create, and query by ``origClientOrderId``), ``myTrades``, ``allOrders`` and
``openOrders``. It checks the API key header and the HMAC signature of every private
request (so the credentials really reach ccxt), keeps its own orders and trades, and counts
every request, so "no second create" is proved on the server side. A test can plan faults
per endpoint: hold the request (a handler waiting on a threading.Event, bounded) past
ccxt's 500 ms timeout, drop the connection, answer a status code, or record an order and
then lose its reply. It also serves ``klines`` (:meth:`FakeBinance.set_candles`: a series
per market, the last candle may be still forming, one left out is a gap, a value such as
"x" is a malformed candle; :meth:`FakeBinance.storm` queues 429s with Binance's body). It
plays no other endpoint: one it does not serve is answered 404 and listed in ``unserved``.

:class:`FakeBinanceStream` plays Binance's kline websocket stream (for ``ccxt.pro``), and
:class:`FakeKraken` Kraken's public REST API (markets, OHLC, ticker).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from actors.common.messages import Fill, Side

KEY = "bvTestKey-7c1e9a55d2b4"  # must reach the server, and nothing else
SECRET = "bvTestSecret-4f0b8d2e6a91c3"  # signs requests; must never be shown
KEY_ENV, SECRET_ENV = "BV_TEST_BINANCE_KEY", "BV_TEST_BINANCE_SECRET"
T0 = 1_767_225_600_000  # venue time of the first order, ms
HOLD = 5.0  # a held request is answered by closing it after this long at most
SYMBOL, MARKET_ID = "BTC/USDT", "BTCUSDT"

MINUTE_MS = 60_000
RATE_LIMITED = (429, {"code": -1003, "msg": "Too many requests; current limit of IP is 6000 "
                      "requests per minute. Please use WebSocket Streams for live updates "
                      "to avoid bans."})
Candle = tuple[int, Any, Any, Any, Any, Any]  # open time ms, open, high, low, close, volume


def candles(start: int, n: int, interval_ms: int = MINUTE_MS, price: float = 100.0
            ) -> list[Candle]:
    """``n`` well-formed candles from ``start`` (ms), one per ``interval_ms``, prices
    drifting up from ``price``."""
    out: list[Candle] = []
    for i in range(n):
        o = price + i * 0.5
        c = o + 0.25
        out.append((start + i * interval_ms, f"{o:.2f}", f"{c + 0.5:.2f}", f"{o - 0.5:.2f}",
                    f"{c:.2f}", f"{10 + i % 7}.5"))
    return out


def exchange_info(*extra: tuple[str, str]) -> dict[str, Any]:
    """:data:`EXCHANGE_INFO` with more spot markets, each (base, quote) like BTC/USDT's."""
    info = copy.deepcopy(EXCHANGE_INFO)
    template = info["symbols"][0]
    for base, quote in extra:
        info["symbols"].append(copy.deepcopy(template) | {
            "symbol": base + quote, "baseAsset": base, "quoteAsset": quote})
    return info


EXCHANGE_INFO: dict[str, Any] = {
    "timezone": "UTC", "serverTime": T0, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": MARKET_ID, "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
        "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
             "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
             "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00", "applyMinToMarket": True,
             "maxNotional": "9000000.00", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }],
}


def serve_locally(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading HTTP server on 127.0.0.1 (a free port), serving from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


# -- the venue ---------------------------------------------------------------------------------
@dataclass
class VenueOrder:
    """An order as the fake venue keeps it; trades are (trade id, price, qty, fee, asset)."""

    order_id: int
    coid: str
    side: str  # BUY | SELL
    qty: str
    time: int
    trades: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    status: str = "FILLED"

    def json(self) -> dict[str, Any]:
        executed = sum((Decimal(q) for _, _, q, _, _ in self.trades), Decimal(0))
        quote = sum((Decimal(p) * Decimal(q) for _, p, q, _, _ in self.trades), Decimal(0))
        return {
            "symbol": MARKET_ID, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.coid, "price": "0.00000000", "origQty": self.qty,
            "executedQty": str(executed), "cummulativeQuoteQty": str(quote),
            "status": self.status, "timeInForce": "GTC", "type": "MARKET", "side": self.side,
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time,
            "updateTime": self.time, "isWorking": True, "workingTime": self.time,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE",
        }

    def trade_json(self, trade: tuple[int, str, str, str, str]) -> dict[str, Any]:
        tid, price, qty, fee, asset = trade
        return {
            "symbol": MARKET_ID, "id": tid, "orderId": self.order_id, "orderListId": -1,
            "price": price, "qty": qty, "quoteQty": str(Decimal(price) * Decimal(qty)),
            "commission": fee, "commissionAsset": asset, "time": self.time,
            "isBuyer": self.side == "BUY", "isMaker": False, "isBestMatch": True,
        }

    def fills(self) -> tuple[Fill, ...]:
        """The fills the adapter must report for this order, built from the venue's strings:
        a fee in BTC (the base) is worth fee * price in USDT; one in BNB is not converted."""
        out = []
        for tid, price, qty, fee, asset in self.trades:
            worth = {"USDT": Decimal(1), "BTC": Decimal(price)}.get(asset, Decimal(0))
            quote_fee = Decimal(fee) * worth
            out.append(Fill(f"binance-{MARKET_ID}-{tid}", self.coid, SYMBOL,
                            Side(self.side.lower()), Decimal(qty), Decimal(price), quote_fee,
                            self.time / 1000, "binance"))
        return tuple(out)


# "hold", "drop", "record_then_hold", "record_then_drop", or (status code, body)
Fault = str | tuple[int, Any]


class FakeBinance:
    """A Binance spot REST API in miniature; owns its orders, trades and request log."""

    def __init__(self, extra_markets: tuple[tuple[str, str], ...] = ()) -> None:
        self.lock = threading.Lock()
        self.exchange_info = exchange_info(*extra_markets)
        self.klines: dict[str, list[Candle]] = {}  # market id -> candles, in time order
        self.interval_ms = MINUTE_MS
        self.release = threading.Event()
        self.orders: list[VenueOrder] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.auth_failures = 0
        self.faults: dict[str, deque[Fault]] = {}
        self.always: dict[str, Fault] = {}
        self.hidden_lookups = 0  # lookups of an order by client order id that miss it
        self.unserved: list[str] = []  # requests for endpoints this venue does not serve
        self._next_trade = 5001
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                venue.handle(self, "GET")

            def do_POST(self) -> None:
                venue.handle(self, "POST")

        self.server = serve_locally(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- what a test sets up and reads ---------------------------------------------------------
    def plan(self, endpoint: str, *faults: Fault) -> None:
        """The next requests to ``endpoint`` ("POST /api/v3/order") meet these faults."""
        with self.lock:
            self.faults.setdefault(endpoint, deque()).extend(faults)

    def count(self, endpoint: str) -> int:
        method, path = endpoint.split(" ")
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def endpoints(self) -> list[str]:
        with self.lock:
            return [f"{m} {p}" for m, p, _ in self.requests]

    def order(self, coid: str) -> VenueOrder:
        with self.lock:
            return next(o for o in self.orders if o.coid == coid)

    def add_order(self, coid: str, side: str, qty: str, rest_fee: str = "BTC") -> VenueOrder:
        """Fill a market order: the first 0.001 at 43251.17 (fee in USDT), the rest at
        43251.18 (fee in ``rest_fee``); fees are 0.1%."""
        with self.lock:
            order = VenueOrder(len(self.orders) + 28, coid, side, qty,
                               T0 + 1000 * len(self.orders))
            rest = Decimal(qty)
            for price, asset in (("43251.17", "USDT"), ("43251.18", rest_fee)):
                part = min(rest, Decimal("0.00100")) if asset == "USDT" else rest
                if part <= 0:
                    continue
                base = part * Decimal(price) if asset == "USDT" else part
                fee = (base / 1000).quantize(Decimal("0.00000001"))
                order.trades.append((self._next_trade, price, str(part), str(fee), asset))
                self._next_trade += 1
                rest -= part
            self.orders.append(order)
            return order

    def set_candles(self, market_id: str, candles: list[Candle],
                    interval_ms: int = MINUTE_MS) -> None:
        """Serve ``candles`` (open time ms, o, h, l, c, v; any value is sent as its str, so
        "x" makes a malformed one) as ``market_id``'s klines; the last may be still forming,
        and a candle left out is a gap."""
        with self.lock:
            self.klines[market_id] = sorted(candles, key=lambda c: c[0])
            self.interval_ms = interval_ms

    def storm(self, n: int, endpoint: str = "GET /api/v3/klines") -> None:
        """The next ``n`` requests to ``endpoint`` are answered 429 with Binance's body."""
        self.plan(endpoint, *[RATE_LIMITED] * n)

    # -- serving -------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        raw = parts.query
        if method == "POST":
            raw = h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode()
        params = dict(parse_qsl(raw))
        endpoint = f"{method} {parts.path}"
        with self.lock:
            self.requests.append((method, parts.path, params))
            queued = self.faults.get(endpoint)
            fault = queued.popleft() if queued else self.always.get(endpoint)
        if "signature" in params and not self._signed(h, raw):
            with self.lock:
                self.auth_failures += 1
            return self._send(h, 401, {"code": -1022, "msg": "Signature is not valid."})
        if fault in ("hold", "drop"):
            return self._lose(h, fault)
        if isinstance(fault, tuple):
            return self._send(h, *fault)
        if endpoint == "POST /api/v3/order":
            order = self.add_order(params["newClientOrderId"], params["side"],
                                   params["quantity"])
            if fault in ("record_then_hold", "record_then_drop"):
                return self._lose(h, fault.removeprefix("record_then_"))
            reply = order.json() | {"transactTime": order.time, "fills": [
                {"price": p, "qty": q, "commission": f, "commissionAsset": a, "tradeId": t}
                for t, p, q, f, a in order.trades]}
            return self._send(h, 200, reply)
        return self._send(h, *self._answer(endpoint, params))

    def _signed(self, h: BaseHTTPRequestHandler, raw: str) -> bool:
        payload, _, signature = raw.rpartition("&signature=")
        good = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return h.headers.get("X-MBX-APIKEY") == KEY and hmac.compare_digest(good, signature)

    def _answer(self, endpoint: str, q: dict[str, str]) -> tuple[int, Any]:
        since = int(q.get("startTime", 0))
        limit = int(q.get("limit", 500))
        with self.lock:
            orders = list(self.orders)
            if endpoint == "GET /api/v3/exchangeInfo":
                return 200, self.exchange_info
            if endpoint == "GET /api/v3/klines":
                return self._klines(q)
            if endpoint == "GET /api/v3/ticker/24hr":
                return 200, {"symbol": MARKET_ID, "lastPrice": "43251.17",
                             "bidPrice": "43251.16", "askPrice": "43251.18",
                             "openPrice": "43000.00", "highPrice": "44000.00",
                             "lowPrice": "42000.00", "volume": "12.5",
                             "quoteVolume": "540000.00", "openTime": T0 - 86_400_000,
                             "closeTime": T0, "count": 10}
            if endpoint == "GET /api/v3/order":
                coid = q.get("origClientOrderId")
                if coid is not None and self.hidden_lookups > 0:
                    self.hidden_lookups -= 1
                    orders = []
                for o in orders:
                    if o.coid == coid or str(o.order_id) == q.get("orderId"):
                        return 200, o.json()
                return 400, {"code": -2013, "msg": "Order does not exist."}
            if endpoint == "GET /api/v3/allOrders":
                if self.hidden_lookups > 0:
                    self.hidden_lookups -= 1
                    orders = []
                return 200, [o.json() for o in orders if o.time >= since][:limit]
            if endpoint == "GET /api/v3/openOrders":
                return 200, [o.json() for o in orders if o.status == "NEW"]
            if endpoint == "GET /api/v3/myTrades":
                trades = [o.trade_json(t) for o in orders for t in o.trades
                          if o.time >= since and q.get("orderId") in (None, str(o.order_id))]
                return 200, sorted(trades, key=lambda t: (t["time"], t["id"]))[:limit]
            self.unserved.append(endpoint)
        return 404, {"code": -1, "msg": f"not served here: {endpoint}"}

    def _klines(self, q: dict[str, str]) -> tuple[int, Any]:
        """Binance's klines (call with the lock held): open time within [startTime,
        endTime], the first ``limit`` (at most 1000) of them, or the latest without
        startTime; each row as Binance lays it out (prices as strings)."""
        symbol = q.get("symbol", "")
        if symbol not in {m["symbol"] for m in self.exchange_info["symbols"]}:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        series = self.klines.get(symbol, [])
        limit = min(int(q.get("limit", 500)), 1000)
        start, end = int(q.get("startTime", -1)), int(q.get("endTime", 2**62))
        chosen = [c for c in series if start <= c[0] <= end]
        chosen = chosen[:limit] if "startTime" in q else chosen[-limit:]
        iv = self.interval_ms
        return 200, [[t, str(o), str(h), str(lo), str(c), str(v), t + iv - 1, "0", 1, "0",
                      "0", "0"] for t, o, h, lo, c, v in chosen]

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        h.send_response(code)
        h.send_header("Content-Type",
                      "text/plain" if isinstance(body, str) else "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _lose(self, h: BaseHTTPRequestHandler, how: str) -> None:
        """Answer nothing: hold the request until released (bounded), or drop it now."""
        if how == "hold":
            self.release.wait(HOLD)
        h.close_connection = True


class FakeBinanceStream:
    """Binance's spot kline websocket stream in miniature (the ``websockets`` library).

    Plays: a client's ``SUBSCRIBE`` (answered ``{"result": null, "id": ...}``) to
    ``<symbol>@kline_<interval>`` streams, then kline events (``{"e": "kline", ...,
    "k": {"t": ..., "x": closed, ...}}``) that a test pushes to the subscribers. Controls:
    :meth:`push` a candle (forming or closed), :meth:`drop` every connection (no close
    frame), :meth:`stall` (the connection stays open, pushes are swallowed) and
    :meth:`resume`. Does not play: combined streams, other event types, the stream's own
    pings, the 24-hour disconnect. ccxt.pro reaches it with ``urls['api']['ws']['spot']`` set
    to :attr:`url` (ccxt appends ``/<stream index>``; the path holds ``/stream``, as the
    real one does, which is how ccxt tells a spot stream).
    """

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.lock = threading.Lock()
        self.subscribers: dict[str, list[Any]] = {}  # stream name -> connections
        self.connections: list[Any] = []
        self.subscribes: dict[str, int] = {}  # stream name -> SUBSCRIBE requests naming it
        self.stalled = False
        self.swallowed = 0  # events pushed while stalled
        self.sent = 0
        self.subscribed = threading.Condition(self.lock)
        self.server = serve(self._session, "127.0.0.1", 0, compression=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/stream"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)

    def _session(self, conn: Any) -> None:
        with self.lock:
            self.connections.append(conn)
        try:
            for raw in conn:
                msg = json.loads(raw)
                if msg.get("method") == "SUBSCRIBE":
                    with self.lock:
                        for name in msg.get("params", []):
                            self.subscribers.setdefault(name, []).append(conn)
                            self.subscribes[name] = self.subscribes.get(name, 0) + 1
                        self.subscribed.notify_all()
                    conn.send(json.dumps({"result": None, "id": msg.get("id")}))
        except Exception:  # a dropped or closed connection ends its session
            pass
        finally:
            with self.lock:
                for conns in self.subscribers.values():
                    if conn in conns:
                        conns.remove(conn)
                if conn in self.connections:
                    self.connections.remove(conn)

    def wait_subscribed(self, market_id: str, times: int = 1, interval: str = "1m",
                        timeout: float = 10.0) -> None:
        """Block until ``market_id``'s kline stream has been subscribed to ``times`` times
        in all (a reconnect subscribes again) and someone listens (AssertionError after
        ``timeout`` seconds)."""
        name = f"{market_id.lower()}@kline_{interval}"
        with self.lock:
            ok = self.subscribed.wait_for(
                lambda: self.subscribes.get(name, 0) >= times
                and bool(self.subscribers.get(name)), timeout)
        assert ok, f"{name} was not subscribed to {times} times within {timeout} s"

    def push(self, market_id: str, candle: Candle, closed: bool, interval: str = "1m",
             interval_ms: int = MINUTE_MS) -> int:
        """Send ``candle`` as a kline event to ``market_id``'s subscribers; how many got it
        (0 while stalled; a connection cut by :meth:`drop` gets nothing)."""
        t, o, h, lo, c, v = candle
        event = {"e": "kline", "E": t + interval_ms - 1 if closed else t + 1, "s": market_id,
                 "k": {"t": t, "T": t + interval_ms - 1, "s": market_id, "i": interval,
                       "f": 100, "L": 200, "o": str(o), "c": str(c), "h": str(h),
                       "l": str(lo), "v": str(v), "n": 100, "x": closed, "q": "0",
                       "V": "0", "Q": "0", "B": "0"}}
        name = f"{market_id.lower()}@kline_{interval}"
        with self.lock:
            if self.stalled:
                self.swallowed += 1
                return 0
            conns = list(self.subscribers.get(name, []))
        from websockets.exceptions import ConnectionClosed

        data = json.dumps(event)
        reached = 0
        for conn in conns:
            try:
                conn.send(data)
            except (OSError, ConnectionClosed):
                continue  # cut by drop(); its session has not yet taken it off the list
            reached += 1
        with self.lock:
            self.sent += reached
        return reached

    def drop(self) -> int:
        """Cut every connection at the socket (no close frame); how many were cut."""
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.socket.shutdown(socket.SHUT_RDWR)
        return len(conns)

    def stall(self) -> None:
        """Keep the connections open but send nothing: pushes are swallowed."""
        with self.lock:
            self.stalled = True

    def resume(self) -> None:
        with self.lock:
            self.stalled = False


# -- Kraken ------------------------------------------------------------------------------------
KRAKEN_PAIRS = {"XXBTZUSD": ("XXBT", "ZUSD", "XBTUSD", "XBT/USD"),
                "XETHZUSD": ("XETH", "ZUSD", "ETHUSD", "ETH/USD")}
KRAKEN_LIMIT = 720  # candles in one OHLC answer, as Kraken's


class FakeKraken:
    """Kraken's public REST API in miniature, for real ``ccxt.kraken``.

    Plays: ``/0/public/AssetPairs`` and ``/0/public/Assets`` (what ``load_markets`` reads;
    BTC/USD and ETH/USD), ``/0/public/OHLC`` (``pair``, ``interval`` in minutes, ``since``
    in seconds: the candles after ``since``, at most 720, rows ``[time s, o, h, l, c, vwap,
    volume, count]`` with prices as strings, and a ``last`` cursor: the open time of the
    last candle, as Kraken's) and ``/0/public/Ticker``. Kraken's errors come as HTTP 200
    with ``{"error": [...]}``; :meth:`plan` queues such answers or a status code per
    endpoint. Does not play: private endpoints, Kraken's own limit of serving only the
    latest 720 candles whatever ``since`` asks, its call-rate counters.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ohlc: dict[str, list[Candle]] = {}  # pair id -> candles (open time in ms)
        self.interval_ms = MINUTE_MS
        self.last_price = "43251.10"
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.faults: dict[str, deque[tuple[int, Any]]] = {}
        self.unserved: list[str] = []
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                venue.handle(self)

        self.server = serve_locally(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_candles(self, pair: str, candles: list[Candle], interval_ms: int = MINUTE_MS
                    ) -> None:
        """Serve ``candles`` (open time in ms) as ``pair``'s OHLC (e.g. "XXBTZUSD")."""
        with self.lock:
            self.ohlc[pair] = sorted(candles, key=lambda c: c[0])
            self.interval_ms = interval_ms

    def plan(self, path: str, *answers: tuple[int, Any]) -> None:
        """The next requests to ``path`` ("/0/public/OHLC") get these answers."""
        with self.lock:
            self.faults.setdefault(path, deque()).extend(answers)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = dict(parse_qsl(parts.query))
        with self.lock:
            self.requests.append((parts.path, q))
            queued = self.faults.get(parts.path)
            code, body = queued.popleft() if queued else self._answer(parts.path, q)
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/0/public/AssetPairs":
            return 200, {"error": [], "result": {pid: {
                "altname": alt, "wsname": ws, "aclass_base": "currency", "base": base,
                "aclass_quote": "currency", "quote": quote, "lot": "unit",
                "cost_decimals": 5, "pair_decimals": 1, "lot_decimals": 8,
                "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
                "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]], "fee_volume_currency": "ZUSD",
                "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001",
                "costmin": "0.5", "tick_size": "0.1", "status": "online"}
                for pid, (base, quote, alt, ws) in KRAKEN_PAIRS.items()}}
        if path == "/0/public/Assets":
            return 200, {"error": [], "result": {
                code: {"aclass": "currency", "altname": alt, "decimals": 10,
                       "display_decimals": 5, "status": "enabled"}
                for code, alt in (("XXBT", "XBT"), ("XETH", "ETH"), ("ZUSD", "USD"))}}
        if path == "/0/public/OHLC":
            pair = q.get("pair", "")
            if pair not in self.ohlc:
                return 200, {"error": ["EQuery:Unknown asset pair"]}
            since_ms = int(q.get("since", -1)) * 1000
            rows = [c for c in self.ohlc[pair] if c[0] > since_ms][:KRAKEN_LIMIT]
            out = [[t // 1000, str(o), str(h), str(lo), str(c), str(c), str(v), 5]
                   for t, o, h, lo, c, v in rows]
            last = rows[-1][0] // 1000 if rows else max(since_ms // 1000, 0)
            return 200, {"error": [], "result": {pair: out, "last": last}}
        if path == "/0/public/Ticker":
            pair = q.get("pair", "")
            if pair not in KRAKEN_PAIRS:
                return 200, {"error": ["EQuery:Unknown asset pair"]}
            p = self.last_price
            return 200, {"error": [], "result": {pair: {
                "a": [p, "1", "1.000"], "b": [p, "2", "2.000"], "c": [p, "0.01"],
                "v": ["10.0", "20.0"], "p": [p, p], "t": [10, 20], "l": [p, p],
                "h": [p, p], "o": p}}}
        self.unserved.append(path)
        return 404, {"error": [f"EGeneral:Unknown method {path}"]}
