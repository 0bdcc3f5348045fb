"""The run's view while it runs: the rich live view on a terminal, a status line otherwise.

Owns :func:`status_line` (one plain line: elapsed, equity, PnL, drawdown, positions,
breaker, restarts, the tree when not all running, alerts) and :func:`render_live` (the
same and more as rich renderables: tree health, account, open positions, breaker,
restarts, alerts and refused orders). Plain functions of the observer's
:class:`~actors.run.samples.Samples`, the supervision marks and the tree; they read
nothing else.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from actors.run.contract import SupervisionMark, format_duration, format_money
from actors.run.record import open_positions
from actors.run.samples import Samples
from supervisor.events import EventKind
from supervisor.tree_view import TreeNode

__all__ = ["render_live", "status_line", "tree_counts"]

ZERO = Decimal(0)


def tree_counts(node: TreeNode | None) -> Counter[str]:
    """How many actors of the tree are in each state."""
    if node is None:
        return Counter()
    return Counter(n.state for n in node.walk())


def _restarts(supervision: list[SupervisionMark]) -> Counter[str]:
    """How many times each actor restarted."""
    return Counter(m.actor for m in supervision if m.kind == EventKind.RESTARTED.value)


def status_line(s: Samples, *, elapsed: float, supervision: list[SupervisionMark],
                tree: TreeNode | None) -> str:
    """One plain line: elapsed, equity, PnL, positions, breaker, restarts, alerts."""
    parts = [f"[{format_duration(elapsed)}]"]
    snap = s.last
    if snap is not None:
        base = s.start.equity if s.start is not None else snap.starting_cash
        pnl = snap.equity - base
        held = ", ".join(sorted(snap.positions)) or "-"
        parts.append(f"equity {format_money(snap.equity)} pnl {format_money(pnl, sign=True)} "
                     f"dd {s.max_dd_pct:.2f}% open {len(snap.positions)} ({held})")
    if s.gate is not None:
        parts.append(f"breaker {s.gate.state.value}"
                     + (f" ({s.gate.reason})" if s.gate.state.value != "closed" else ""))
    restarts = _restarts(supervision)
    parts.append("restarts " + (", ".join(f"{a} {n}" for a, n in sorted(restarts.items()))
                                or "0"))
    counts = tree_counts(tree)
    if counts.get("running", 0) != sum(counts.values()):
        parts.append("tree " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if s.alerts is not None:
        raised = s.alerts_raised()
        parts.append(f"alerts {raised['received']} raised, {raised['sent']} sent")
    return " | ".join(parts)


def render_live(s: Samples, *, elapsed: float, supervision: list[SupervisionMark],
                tree: TreeNode | None) -> RenderableType:
    """The live view: tree health, account, positions, breaker, restarts, alerts."""
    counts = tree_counts(tree)
    head = Text()
    head.append("botvisor run ", style="bold")
    head.append(f"{format_duration(elapsed)}  ")
    head.append(f"tree: {counts.get('running', 0)} running", style="green")
    for state in ("starting", "restarting", "stopped", "terminated"):
        if counts.get(state):
            head.append(f", {counts[state]} {state}",
                        style="yellow" if state in ("starting", "restarting") else "red")
    parts: list[RenderableType] = [head]
    if tree is not None:
        unwell = [n for n in tree.walk() if n.state != "running"]
        if unwell:
            parts.append(Text("  " + ", ".join(f"{n.name}: {n.state}" for n in unwell),
                              style="yellow"))
    snap = s.last
    if snap is not None:
        base = s.start.equity if s.start is not None else snap.starting_cash
        pnl = snap.equity - base
        ret = float(pnl / base * 100) if base > 0 else 0.0
        realized = snap.realized_pnl - (s.start.realized_pnl if s.start else ZERO)
        parts.append(Text(
            f"equity {format_money(snap.equity)}  cash {format_money(snap.cash)}  "
            f"pnl {format_money(pnl, sign=True)} ({ret:+.2f}%)  "
            f"realised {format_money(realized, sign=True)}  max dd {s.max_dd_pct:.2f}%"))
        held = open_positions(snap)
        if not held:
            parts.append(Text("open positions: none"))
        else:
            table = Table(title=f"open positions ({len(held)})", title_justify="left")
            for col in ("symbol", "qty", "entry", "mark", "unrealised"):
                table.add_column(col, justify="left" if col == "symbol" else "right")
            for pos in held:
                table.add_row(pos.symbol, f"{pos.quantity:f}", f"{float(pos.entry):,.4f}",
                              f"{float(pos.mark):,.4f}",
                              Text(format_money(pos.unrealized, sign=True),
                                   style="green" if pos.unrealized >= 0 else "red"))
            parts.append(table)
    if s.gate is not None:
        style = {"closed": "green", "half_open": "yellow"}.get(s.gate.state.value, "red")
        line = Text("breaker ")
        line.append(s.gate.state.value.upper(), style=f"bold {style}")
        line.append(f"  {s.gate.reason}")
        trips = sum(1 for b in s.breaker if b.trip)
        line.append(f"  (trips this run: {trips})")
        parts.append(line)
    restarts = _restarts(supervision)
    parts.append(Text("restarts: " + (", ".join(f"{a} {n}"
                                                 for a, n in sorted(restarts.items()))
                                      or "none")))
    refused = s.refused()
    if s.alerts is not None:
        b = s.alerts_raised()
        parts.append(Text(
            f"alerts: {b['received']} raised, {b['sent']} sent, {b['failed']} failed, "
            f"{b['fallback_written']} to fallback file, {b['suppressed']} suppressed   "
            f"orders refused by breaker: {sum(refused.values())}"))
    return Group(*parts)
