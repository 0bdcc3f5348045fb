"""Worker for ``test_positions_kill9``: records fills until it is killed with SIGKILL.

``python -m tests.support.kill9_worker --dir DIR --start N --seed S [--resend FILE]``

Builds the ledger subtree (a rest_for_one supervisor "ledger": the position actor and its
three sources, every file in DIR), then records fills from several threads, forever. Each
reply is printed to stdout, flushed, only after the ask returned:

* ``ACK <fill_id> <seq> <duplicate 0|1>`` for a new fill;
* ``RESEND <fill_id> <seq> <duplicate 0|1>`` for a fill id read from ``--resend`` (one id a
  line), sent again to exercise deduplication;
* ``ERR <fill_id> <error>`` when an ask failed (the fill is then sent again).

A fill is a pure function of its id (:func:`make_fill`), so the test can rebuild every fill
and a resent id is the very same fill. ``--start`` is the generation number, part of each id.
Thread ``t`` alternates a buy and a sell of half that buy, so it never sells more than it
bought and, with a large starting cash, no fill is ever rejected.
"""

from __future__ import annotations

import argparse
import sys
import threading
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.common.messages import Fill, Side
from actors.portfolio.contract import RecordFill
from actors.portfolio.positions import PositionActor
from actors.portfolio.sources import (
    PaperWalletSource,
    PositionsLogSource,
    SourceSettings,
    TradeManagerSource,
)
from supervisor import ChildSpec, Runtime, Strategy, SupervisorSpec

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
STARTING_CASH = Decimal("10000000")
THREADS = 4
SOURCE_FILES: dict[str, tuple[type[Any], str]] = {
    "trade_manager": (TradeManagerSource, "trade_manager.json"),
    "paper_wallet": (PaperWalletSource, "paper_wallet.yaml"),
    "positions_log": (PositionsLogSource, "positions.log"),
}


def fill_id(seed: int, gen: int, thread: int, i: int) -> str:
    return f"s{seed}-g{gen}-t{thread}-{i}"


def make_fill(fid: str) -> Fill:
    """The fill with id ``fid``: even ``i`` buys, odd ``i`` sells half of the buy before it."""
    prefix, _, index = fid.rpartition("-")
    i = int(index)
    pair = zlib.crc32(f"{prefix}-{i // 2}".encode())
    own = zlib.crc32(fid.encode())
    symbol = SYMBOLS[pair % len(SYMBOLS)]
    bought = Decimal(2 * (1 + pair % 50)) / 1000  # 0.002 .. 0.100
    gen = int(prefix.split("-")[1][1:])
    at = gen * 1_000_000.0 + i
    fee = Decimal(own % 5) / 100
    if i % 2 == 0:
        price = Decimal(1000 + (pair >> 8) % 9000) / 100  # 10.00 .. 99.99
        return Fill(fid, f"o-{fid}", symbol, Side.BUY, bought, price, fee, at)
    price = Decimal(1000 + (own >> 8) % 9000) / 100
    return Fill(fid, f"o-{fid}", symbol, Side.SELL, bought / 2, price, fee, at)


def ledger_spec(directory: Path) -> SupervisorSpec:
    """The ledger subtree over the files in ``directory``."""
    settings = PositionActor.Settings(
        database=str(directory / "ledger.db"),
        starting_cash=STARTING_CASH,
        reconcile_interval=3600,
        conflict_strategy="merge",
    )

    def source(name: str) -> ChildSpec:
        cls, filename = SOURCE_FILES[name]
        ss = SourceSettings(path=str(directory / filename), starting_cash=STARTING_CASH)
        return ChildSpec(name, factory=lambda: cls(ss))

    return SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        children=(
            ChildSpec("positions", factory=lambda: PositionActor(settings)),
            *(source(name) for name in SOURCE_FILES),
        ),
    )


def start_tree(directory: Path) -> Runtime:
    rt = Runtime(ask_timeout=30)
    rt.start(SupervisorSpec(children=(ChildSpec("ledger", supervisor=ledger_spec(directory)),)))
    return rt


class Out:
    """Whole lines to stdout, one writer at a time, flushed at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def record(rt: Runtime, out: Out, tag: str, fid: str) -> None:
    """Ask until the fill is acknowledged; print the reply once the ask has returned."""
    fill = make_fill(fid)
    while True:
        try:
            reply = rt.ask("positions", RecordFill(fill), timeout=30)
        except Exception as exc:
            out.line(f"ERR {fid} {type(exc).__name__}: {exc}".replace("\n", " "))
            continue
        out.line(f"{tag} {reply.fill_id} {reply.seq} {int(reply.duplicate)}")
        return


def trader(rt: Runtime, out: Out, seed: int, gen: int, thread: int) -> None:
    i = 0
    while True:
        record(rt, out, "ACK", fill_id(seed, gen, thread, i))
        i += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--start", type=int, required=True, help="generation number")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--resend", type=Path)
    args = parser.parse_args(argv)
    resend = []
    if args.resend is not None:
        resend = args.resend.read_text(encoding="utf-8").split()
    rt = start_tree(args.dir)
    out = Out()
    for t in range(THREADS):
        threading.Thread(
            target=trader, args=(rt, out, args.seed, args.start, t), daemon=True
        ).start()
    for fid in resend:
        record(rt, out, "RESEND", fid)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
