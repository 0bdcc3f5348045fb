"""The websocket worker with its venue in a child process (``WsStreamer(process=True)``, as
the market runs it), against the fake Binance (real ccxt.pro in a real child, 127.0.0.1).

The tree-level tests of tests/market/test_live_feed_ws.py run through the child as well
(drop, reconnect, 429 storm, stall, crash); these are the child's own faults: killed with
SIGKILL under a running stream, it is replaced and no candle is lost or doubled; stopped, it
is gone; its parent killed with SIGKILL, it ends by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from actors.market.live_feed import LiveCandles
from actors.market.ws_feed import WsStreamer
from tests.market import test_live_feed
from tests.market.test_live_feed import TF, WAIT, clock_at, start, taped
from tests.market.test_live_feed_ws import SYMBOL, ccxt_options, index
from tests.support.bot_helpers import REPO, wait_until
from tests.support.fake_venues import MARKET_ID, T0, FakeBinance, FakeBinanceStream, candles

venue = test_live_feed.venue  # the fixture: the fake's REST klines, candles 0..10


def closed(told: list[object]) -> list[int]:
    return [index(b.at) for m in list(told) if isinstance(m, LiveCandles) for b in m.bars]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_child_is_replaced_and_no_candle_is_lost_or_doubled(
        venue: FakeBinance, stream: FakeBinanceStream) -> None:
    clock = clock_at(10.5)
    told: list[object] = []
    worker = WsStreamer(
        process=True, incarnation=1, exchange="binance", symbols=[SYMBOL], timeframe="1m",
        ccxt_options=ccxt_options(venue, stream), poll_interval=0.05, stale_after=3,
        clock=clock, tell=told.append, resume=dict)
    worker.start()
    try:
        stream.wait_subscribed(MARKET_ID)
        wait_until(lambda: closed(told) or None, timeout=WAIT, what="candle 9 fetched")
        first = worker.venue_pid
        assert first is not None and first != os.getpid()
        series = candles(T0, 15)
        stream.push(MARKET_ID, series[10], closed=False)  # the stream is live in the child
        os.kill(first, signal.SIGKILL)
        venue.set_candles(MARKET_ID, series[:14])  # 10..13 close while no child runs
        clock.advance(4 * TF)  # inside candle 14
        stream.wait_subscribed(MARKET_ID, times=2)  # a new child subscribed again
        stream.push(MARKET_ID, series[14], closed=False)
        wait_until(lambda: closed(told)[-1:] == [13] or None, timeout=WAIT,
                   what="candles 10..13 fetched by the new child")
        assert closed(told) == [9, 10, 11, 12, 13]
        second = worker.venue_pid
        assert second is not None and second != first
    finally:
        worker.stop()
    assert not worker.alive
    wait_until(lambda: gone(second), timeout=WAIT, what="the child ended by the stop")


CHILD_OF_A_PARENT = """
import json, sys, threading
from actors.market.ws_feed import WsStreamer
from supervisor import SystemClock
options = json.loads(sys.argv[1])
worker = WsStreamer(process=True, incarnation=1, exchange="binance", symbols=["BTC/USDT"],
                    timeframe="1m", ccxt_options=options, poll_interval=0.05, stale_after=3,
                    clock=SystemClock(), tell=lambda m: None, resume=dict)
worker.start()
print("ready", flush=True)
for line in sys.stdin:  # "pid": the venue child's id, once it runs
    print(worker.venue_pid, flush=True)
threading.Event().wait()
"""


def test_the_child_ends_when_its_parent_is_killed(venue: FakeBinance,
                                                  stream: FakeBinanceStream) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD_OF_A_PARENT, json.dumps(ccxt_options(venue, stream))],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdin is not None
        assert parent.stdout.readline().strip() == "ready"
        stream.wait_subscribed(MARKET_ID, timeout=WAIT)  # the child streams
        parent.stdin.write("pid\n")
        parent.stdin.flush()
        child = int(parent.stdout.readline())
        assert child != parent.pid and not gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        wait_until(lambda: gone(child), timeout=WAIT, what="the orphaned child ended")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_market_runs_the_venue_in_a_child_unless_told_thread(
        venue: FakeBinance, stream: FakeBinanceStream, tmp_path: Path) -> None:
    """``ws_venue``: the child process by default, the worker's thread with ``thread``."""
    from actors.market.feed import MarketActor

    def children_streaming() -> set[int]:
        return {p.pid for p in psutil.Process().children(recursive=True)
                if not gone(p.pid)}

    for choice, forks in (("process", True), ("thread", False)):
        before = children_streaming()
        settings = MarketActor.Settings.model_validate({
            "source": "ccxt", "exchange": "binance", "symbols": [SYMBOL], "timeframe": "1m",
            "transport": "ws", "ws_venue": choice, "warmup": 1, "poll_interval": 0.05,
            "subscribers": ["tape"], "marks_interval": 0,
            "clock_file": str(tmp_path / f"{choice}.json"),
            "ccxt_options": ccxt_options(venue, stream)})
        rt = start(settings, tmp_path, clock_at(10.5))
        try:
            assert taped(rt, 9) == [9]
            new = children_streaming() - before
            assert bool(new) is forks, (choice, new)
        finally:
            rt.stop()
