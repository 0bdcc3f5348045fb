"""kill -9 durability: an acknowledged fill survives SIGKILL, exactly once, and the sources
converge to the ledger afterwards.

A worker subprocess (``tests/support/kill9_worker.py``) records fills from several threads and
prints each acknowledgement only after the ask returned. The test kills it with SIGKILL at
seeded random moments, over and over, restarting it on the same files. After every kill the
SQLite ledger is read directly (read-only): every acknowledged fill is there exactly once,
with the acknowledged seq, and the ``positions``/``account`` projections equal a
recomputation from the ``fills`` table. Each restart resends a few fills of the previous
generation (acknowledged ones, and ones committed but killed before their reply): each must
come back as a duplicate with its original seq. Now and then half a line is appended to
``positions.log``, as a crash mid-append would leave it (SIGKILL alone rarely tears a single
``write``). At the end the tree is started in-process on the same files: after at most one
reconciliation (which may only reset sources), a second one is clean and every source's
view, and file, equals the ledger.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

from actors.common.messages import Fill, Side
from actors.portfolio.book import PositionBook
from actors.portfolio.contract import GetPortfolio, GetView, PositionView, Reconcile
from actors.portfolio.sources import SourceSettings
from tests.support.kill9_worker import SOURCE_FILES, STARTING_CASH, make_fill, start_tree

REPO = Path(__file__).resolve().parents[2]
GENERATIONS = 24
SEED = 90210
WAIT = 30.0  # seconds a generation may take to reach its kill point


@dataclass
class Generation:
    """One run of the worker: what it printed before it was killed."""

    number: int
    acks: dict[str, int] = field(default_factory=dict)
    resent: dict[str, tuple[int, bool]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stderr: Path | None = None

    def take(self, raw: bytes) -> None:
        if not raw.endswith(b"\n"):
            return  # a line torn by the kill was never a whole acknowledgement
        kind, *rest = raw.decode().split(" ", 1)
        if kind == "ERR":
            self.errors.append(rest[0].strip())
            return
        fid, seq, dup = rest[0].split()
        if kind == "ACK":
            assert dup == "0", f"a new fill {fid} was acknowledged as a duplicate"
            assert fid not in self.acks, f"{fid} acknowledged twice"
            self.acks[fid] = int(seq)
        elif kind == "RESEND":
            self.resent[fid] = (int(seq), dup == "1")
        else:
            raise AssertionError(f"unexpected worker output {raw!r}")


class Worker:
    """The worker subprocess, its stdout read line by line on a thread into a queue."""

    def __init__(self, directory: Path, gen: Generation, seed: int, resend: list[str]) -> None:
        resend_file = directory / f"resend-{gen.number}.txt"
        resend_file.write_text("\n".join(resend) + "\n", encoding="utf-8")
        gen.stderr = directory / f"worker-{gen.number}.err"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.gen = gen
        with open(gen.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.kill9_worker", "--dir", str(directory),
                 "--start", str(gen.number), "--seed", str(seed), "--resend", str(resend_file)],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err,
            )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self._lines.put(raw)
        self._lines.put(None)

    def run_until(self, acks: int, resends: int, timeout: float) -> None:
        """Take lines until ``acks`` new fills and ``resends`` resends were acknowledged."""
        deadline = time.monotonic() + timeout
        gen = self.gen
        while len(gen.acks) < acks or len(gen.resent) < resends:
            remaining = deadline - time.monotonic()
            try:
                raw = self._lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"generation {gen.number}: {len(gen.acks)}/{acks} acks, "
                    f"{len(gen.resent)}/{resends} resends after {timeout}s\n{self.stderr()}"
                ) from None
            if raw is None:
                raise AssertionError(
                    f"generation {gen.number}: worker exited ({self.proc.wait(5)})\n"
                    + self.stderr()
                )
            gen.take(raw)

    def kill9(self) -> None:
        """SIGKILL (if still running), then take every whole line it printed before dying."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        while True:
            try:
                raw = self._lines.get_nowait()
            except queue.Empty:
                break
            if raw is not None:
                self.gen.take(raw)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def stderr(self) -> str:
        assert self.gen.stderr is not None
        return self.gen.stderr.read_text(encoding="utf-8", errors="replace")[-4000:]


# -- the ledger, read directly --------------------------------------------------------------
def _row_fill(row: tuple[object, ...]) -> Fill:
    fill_id, coid, symbol, side, qty, price, fee, at, venue = row
    return Fill(str(fill_id), str(coid), str(symbol), Side(str(side)), Decimal(str(qty)),
                Decimal(str(price)), Decimal(str(fee)), float(str(at)), str(venue))


@dataclass
class LedgerContents:
    seq_of: dict[str, int]
    book: PositionBook  # recomputed from the fills, in seq order
    last_seq: int
    rows: list[tuple[object, ...]]  # the fills table, in seq order


def check_ledger(db_path: Path, acked: dict[str, int],
                 before: LedgerContents | None = None) -> LedgerContents:
    """Every acked fill once with its seq; projections equal a recomputation from the fills.

    Given the contents ``before`` checked at an earlier kill, the fills it held must be
    there unchanged, and the recomputation goes on from its book over the fills since
    (the same book as one from scratch: fills are applied in seq order either way)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT seq, fill_id, client_order_id, symbol, side, quantity, price, fee, at, venue "
            "FROM fills ORDER BY seq"
        ).fetchall()
        positions = {
            sym: (Decimal(q), Decimal(a), Decimal(r), opened, updated)
            for sym, q, a, r, opened, updated in db.execute(
                "SELECT symbol, quantity, avg_price, realized_pnl, opened_at, updated_at "
                "FROM positions"
            )
        }
        account = {k: Decimal(v) for k, v in db.execute("SELECT key, value FROM account")}
        adjustments = db.execute("SELECT COUNT(*) FROM adjustments").fetchone()[0]
    finally:
        db.close()
    assert adjustments == 0, "nothing should have adjusted the ledger"
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), "fill seqs must be 1..n without gaps"
    seq_of: dict[str, int] = {}
    for row in rows:
        assert row[1] not in seq_of, f"fill {row[1]} recorded twice"
        seq_of[row[1]] = row[0]
    lost = {fid: seq for fid, seq in acked.items() if seq_of.get(fid) != seq}
    assert not lost, f"{len(lost)} acknowledged fills missing or moved, e.g. {list(lost)[:5]}"

    if before is None:
        book, new = PositionBook(STARTING_CASH), rows
    else:
        kept = len(before.rows)
        assert rows[:kept] == before.rows, "a fill recorded before the kill was changed"
        book, new = copy.deepcopy(before.book), rows[kept:]
    for row in new:
        fill = _row_fill(row[1:])
        assert fill == make_fill(fill.fill_id), f"fill {fill.fill_id} stored wrong"
        book.apply(fill)  # with checks: the worker never sends a fill the ledger must reject
    expected = {
        s: (p.quantity, p.avg_price, p.realized_pnl, p.opened_at, p.updated_at)
        for s, p in book.positions.items()
    }
    assert positions == expected
    assert account == {
        "cash": book.cash,
        "starting_cash": STARTING_CASH,
        "realized_pnl": book.realized_pnl,
        "fees": book.fees,
    }
    return LedgerContents(seq_of, book, len(rows), rows)


def _views(book: PositionBook) -> dict[str, PositionView]:
    return {s: PositionView(p.quantity, p.avg_price, p.updated_at)
            for s, p in book.positions.items()}


def _resends(rng: random.Random, prev: Generation | None, acked: dict[str, int],
             ledger: LedgerContents | None) -> dict[str, int]:
    """Fill ids to send again, with the seq the ledger holds for each."""
    if prev is None or ledger is None:
        return {}
    chosen: dict[str, int] = {}
    last_acks = sorted(prev.acks, key=prev.acks.__getitem__)[-3:]
    earlier = sorted(acked)
    for fid in [*last_acks, *rng.sample(earlier, min(2, len(earlier)))]:
        chosen[fid] = acked[fid]
    # committed, but the worker was killed before it could print the reply
    prefix = f"-g{prev.number}-"
    unacked = sorted(f for f in ledger.seq_of if prefix in f and f not in prev.acks)
    for fid in unacked[:3]:
        chosen[fid] = ledger.seq_of[fid]
    return chosen


def _torn(path: Path) -> bool:
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


def _tear(path: Path) -> None:
    """Append half a line, as a crash in the middle of an append would leave it."""
    with open(path, "ab") as handle:
        handle.write(b'{"type":"fill","seq":')


# -- the test ----------------------------------------------------------------------------------
def test_acknowledged_fills_survive_sigkill_and_sources_converge(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db_path = tmp_path / "ledger.db"
    acked: dict[str, int] = {}
    ledger: LedgerContents | None = None
    prev: Generation | None = None
    resends_checked = unacked_committed = torn_logs = 0
    worker: Worker | None = None
    try:
        for number in range(GENERATIONS):
            gen = Generation(number)
            expected_resends = _resends(rng, prev, acked, ledger)
            worker = Worker(tmp_path, gen, rng.randrange(1000), list(expected_resends))
            worker.run_until(rng.randint(3, 200), len(expected_resends), WAIT)
            worker.kill9()
            worker = None
            assert not gen.errors, gen.errors[:5]
            assert set(gen.acks).isdisjoint(acked), "a new fill id was acknowledged before"
            acked.update(gen.acks)
            ledger = check_ledger(db_path, acked, ledger)
            for fid, seq in expected_resends.items():
                assert gen.resent[fid] == (seq, True), (fid, gen.resent[fid], seq)
            resends_checked += len(expected_resends)
            unacked_committed += sum(
                1 for f in ledger.seq_of if f"-g{number}-" in f and f not in gen.acks
            )
            torn_logs += _torn(tmp_path / "positions.log")
            if number % 6 == 5:
                _tear(tmp_path / "positions.log")  # as if power was cut mid-append
            prev = gen
    finally:
        if worker is not None:
            worker.kill9()
    assert ledger is not None
    assert resends_checked >= 3 * (GENERATIONS - 1)
    print(f"\n{GENERATIONS} kills, {len(acked)} acked fills, {ledger.last_seq} in the ledger, "
          f"{unacked_committed} committed but unacked, {resends_checked} resends checked, "
          f"{torn_logs} torn positions.log, "
          f"{len(list(tmp_path.glob('.*.tmp')))} temporary files left by atomic writes")

    # -- restart in-process: the sources converge to the ledger ----------------------------
    _tear(tmp_path / "positions.log")
    rt = start_tree(tmp_path)
    try:
        log = (tmp_path / "positions.log").read_bytes()
        assert log.endswith(b"\n"), "the positions log source must drop a torn last line"
        first = rt.ask("positions", Reconcile("after kill -9"), timeout=30)
        print(f"first reconciliation: {first.conflicts or 'clean'}; {first.actions}")
        if not first.clean:
            resets = [a for a in first.actions if a.startswith("reset ")]
            assert resets == list(first.actions), f"only sources may be reset: {first.actions}"
        second = rt.ask("positions", Reconcile("check"), timeout=30)
        assert second.clean, second.conflicts
        assert set(second.checked) == set(SOURCE_FILES)
        snap = rt.ask("positions", GetPortfolio())
        assert snap.seq == ledger.last_seq
        assert snap.cash == ledger.book.cash
        assert snap.positions == _views(ledger.book)
        for name, (cls, _) in SOURCE_FILES.items():
            view = rt.ask(name, GetView())
            assert view.last_seq == ledger.last_seq, name
            assert view.positions == snap.positions, name
            assert view.cash == (snap.cash if cls.keeps_cash else None), name
    finally:
        rt.stop()
    check_ledger(db_path, acked)

    # -- and the files the sources left behind say the same ------------------------------
    for name, (cls, filename) in SOURCE_FILES.items():
        source = cls(SourceSettings(path=str(tmp_path / filename), starting_cash=STARTING_CASH))
        state = source.load()
        assert state.last_seq == ledger.last_seq, name
        assert _views(state.book) == _views(ledger.book), name
        if cls.keeps_cash:
            assert state.book.cash == ledger.book.cash, name
    wallet = yaml.safe_load((tmp_path / "paper_wallet.yaml").read_text(encoding="utf-8"))
    assert Decimal(wallet["balance"]["USDT"]) == ledger.book.cash
    manager = json.loads((tmp_path / "trade_manager.json").read_text(encoding="utf-8"))
    assert manager["last_seq"] == ledger.last_seq
