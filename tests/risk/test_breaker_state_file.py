"""The breaker's state file: a ``breaker.db`` written before the breaker's core was split
out of its actor still loads, with its state, its memory and its count of transitions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from actors.risk.contract import BreakerGate, BreakerState, GetBreakerStatus, OrderIntent
from supervisor import ManualClock
from tests.risk.test_breaker_core import TODAYS_RECORD
from tests.support.breaker_helpers import breaker_settings, start_breaker


def test_a_breaker_db_of_todays_shape_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "breaker.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), "
               "record TEXT NOT NULL)")
    db.execute("CREATE TABLE transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "at REAL NOT NULL, record TEXT NOT NULL)")
    db.execute("INSERT INTO state (id, record) VALUES (1, ?)", (json.dumps(TODAYS_RECORD),))
    db.execute("INSERT INTO transitions (at, record) VALUES (1000.0, ?)", (json.dumps(
        {"from": "closed", "to": "open", "reason": TODAYS_RECORD["reason"],
         "by": "breaker", "figures": TODAYS_RECORD["figures"]}),))
    db.commit()
    db.close()
    clock = ManualClock()
    rt = start_breaker(breaker_settings(tmp_path, recovery_timeout=100,
                                        drawdown={"max_percent": 10}), clock)
    try:
        status = rt.ask("breaker", GetBreakerStatus())
        assert (status.state, status.reason, status.transitions) == (
            BreakerState.OPEN, TODAYS_RECORD["reason"], 1)
        assert status.measures["peak_equity"] == "1000"
        assert status.measures["stale_symbols.venue:1m"] == "BTC/USDT"
        gate = rt.peek("breaker")
        assert isinstance(gate, BreakerGate)
        assert not gate.check(OrderIntent("BTC/USDT", reduces_exposure=False)).allowed
    finally:
        rt.stop()
