"""Fake venues on 127.0.0.1 that real ccxt trades against: shared test support.

:class:`FakeBinance` is a ThreadingHTTPServer on 127.0.0.1 (random port) that answers the
few Binance spot REST endpoints the ccxt adapter uses: ``exchangeInfo``, ``ticker/24hr``,
``order`` (create, and query by ``origClientOrderId``), ``myTrades``, ``allOrders`` and
``openOrders``. It checks the API key header and the HMAC signature of every private
request (so the credentials really reach ccxt), keeps its own orders and trades, and counts
every request, so "no second create" is proved on the server side. A test can plan faults
per endpoint: hold the request (a handler waiting on a threading.Event, bounded) past
ccxt's 500 ms timeout, drop the connection, answer a status code, or record an order and
then lose its reply. It plays no other endpoint: one it does not serve is answered 404 and
listed in ``unserved``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
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

EXCHANGE_INFO = {
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

    def __init__(self) -> None:
        self.lock = threading.Lock()
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

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
                return 200, EXCHANGE_INFO
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
