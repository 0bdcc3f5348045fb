"""The run report: one self-contained HTML page (inline SVG and CSS; no script, no network).

One wall-clock axis for equity (top) and drawdown (below), marking every fill (triangles),
breaker transition (lines; trips red, non-CLOSED periods shaded) and restart, escalation
or fallback (dotted, with a diamond); each marker has a ``<title>`` tooltip. Below the
chart: the summary, the breaker transitions, the supervision events, the fills and the
positions still open.
"""

from __future__ import annotations

import bisect
import html
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from actors.run.contract import EquityPoint, RunRecord, TradeMark

__all__ = ["render_html", "write_report"]

WIDTH = 1000
LEFT, RIGHT, TOP = 84, 24, 44
EQ_HEIGHT, GAP, DD_HEIGHT, BOTTOM = 300, 34, 130, 46
HEIGHT = TOP + EQ_HEIGHT + GAP + DD_HEIGHT + BOTTOM
MAX_FILL_ROWS = 500

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 24px auto; max-width: 1040px; padding: 0 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #5b6475; margin: 0 0 16px; }
svg { width: 100%; height: auto; background: #fff; border: 1px solid #dde1e8; }
svg text { font: 11px system-ui, sans-serif; fill: #4a5263; }
svg .title { font-size: 12px; font-weight: 600; fill: #1d2330; }
.grid { stroke: #eceff4; } .axis { stroke: #9aa3b2; }
.equity-curve { fill: none; stroke: #2458d6; stroke-width: 1.6; }
.drawdown-area { fill: #e4574c; fill-opacity: .28; stroke: #c2372c; stroke-width: 1; }
.trade.buy { fill: #1d9b55; } .trade.sell { fill: #d24637; }
.trade { stroke: #fff; stroke-width: .8; }
.breaker-trip { stroke: #d21f1f; stroke-width: 1.6; stroke-dasharray: 6 3; }
.breaker-change { stroke: #d89a00; stroke-width: 1.2; stroke-dasharray: 3 3; }
.span-open, .span-halted { fill: #d21f1f; fill-opacity: .07; }
.span-half_open { fill: #f0b400; fill-opacity: .10; }
.supervision { stroke: #7b3fc4; stroke-width: 1.3; stroke-dasharray: 1 3; }
.supervision-head { fill: #7b3fc4; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eceff4;
         vertical-align: top; }
th { color: #5b6475; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td:first-child { font-weight: 600; padding-right: 24px; }
.pos { color: #1d7f47; } .neg { color: #c2372c; } .note { color: #5b6475; }
"""


@dataclass(frozen=True, slots=True)
class _Scale:
    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return (self.px_lo + self.px_hi) / 2
        return self.px_lo + (value - self.lo) / span * (self.px_hi - self.px_lo)


def write_report(record: RunRecord, path: str | Path) -> Path:
    """Write the report to ``path`` atomically (a temporary file renamed into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_html(record), encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def render_html(record: RunRecord) -> str:
    """The whole page as one string."""
    s = record.summary
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(record.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(record.title)}</h1>",
        f'<p class="meta">{e(_stamp(s.started_at))} to {e(_stamp(s.ended_at))} '
        f"(local time) &middot; stopped because: {e(s.stop_reason)}</p>",
        _chart(record),
        "<h2>Summary</h2>",
        _table(s.rows(), cls="summary"),
    ]
    parts += [f'<p class="note">note: {e(n)}</p>' for n in s.notes]
    parts.append("<h2>Breaker transitions</h2>")
    if record.breaker:
        parts.append(_table(
            [(_clock_tenths(b.at), f"{b.previous} -> {b.state}", "trip" if b.trip else "", b.reason)
             for b in record.breaker],
            header=("time", "transition", "", "reason")))
    else:
        parts.append(f"<p>none (the breaker stayed {e(s.breaker_end)})</p>")
    parts.append("<h2>Restarts, escalations and fallbacks</h2>")
    if record.supervision:
        parts.append(_table([(_clock_tenths(m.at), m.kind, m.actor, m.detail)
                             for m in record.supervision],
                            header=("time", "event", "actor", "detail")))
    else:
        parts.append("<p>none</p>")
    parts.append(f"<h2>Fills ({len(record.trades)})</h2>")
    if record.trades:
        shown = record.trades[-MAX_FILL_ROWS:]
        if len(shown) < len(record.trades):
            parts.append(f'<p class="note">the last {len(shown)} are listed; every fill is '
                         "marked on the chart</p>")
        parts.append(_table(
            [(_clock_tenths(t.at), str(t.seq), t.symbol, t.side, f"{t.quantity:f}",
              f"{float(t.price):,.8g}", f"{float(t.fee):,.4f}",
              _signed(t.realized) if t.closes else "")
             for t in shown],
            header=("time", "seq", "symbol", "side", "quantity", "price", "fee",
                    "realised"),
            numeric=(1, 4, 5, 6, 7)))
    else:
        parts.append("<p>none</p>")
    parts.append("<h2>Open positions at the end</h2>")
    if record.positions:
        parts.append(_table(
            [(p.symbol, f"{p.quantity:f}", f"{float(p.entry):,.8g}", f"{float(p.mark):,.8g}",
              _signed(p.unrealized)) for p in record.positions],
            header=("symbol", "quantity", "entry", "mark", "unrealised"),
            numeric=(1, 2, 3, 4)))
    else:
        parts.append("<p>none</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- the chart --------------------------------------------------------------------------------
def _chart(record: RunRecord) -> str:
    s = record.summary
    points = list(record.equity)
    t0 = min([s.started_at, *(p.at for p in points[:1])])
    t1 = max([s.ended_at, *(p.at for p in points[-1:])])
    if t1 - t0 < 1:
        t1 = t0 + 1
    x = _Scale(t0, t1, LEFT, WIDTH - RIGHT)
    eq_top, eq_bottom = TOP, TOP + EQ_HEIGHT
    dd_top = eq_bottom + GAP
    dd_bottom = dd_top + DD_HEIGHT
    values = [p.equity for p in points] or [float(s.start_equity), float(s.end_equity)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1.0)
    y_ticks = _nice_ticks(lo - pad, hi + pad, 5)
    y = _Scale(min(y_ticks[0], lo - pad), max(y_ticks[-1], hi + pad), eq_bottom, eq_top)
    dd_max = max([p.drawdown_pct for p in points] + [s.max_drawdown_pct, 1.0])
    dd_ticks = _nice_ticks(0, dd_max, 3)
    d = _Scale(0, max(dd_ticks[-1], dd_max), dd_top, dd_bottom)
    out = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="equity, drawdown, fills, breaker transitions and restarts over time">',
           f"<title>{html.escape(record.title)}: equity and drawdown over time</title>"]
    out += _spans(record, x, eq_top, dd_bottom, t1)
    # grid and axes
    for v in y_ticks:
        if y.lo <= v <= y.hi:
            out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" '
                       f'y2="{y(v):.1f}"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                       f'text-anchor="end">{v:,.{_places(y_ticks)}f}</text>')
    for v in dd_ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{d(v):.1f}" '
                   f'y2="{d(v):.1f}"/><text x="{LEFT - 6}" y="{d(v) + 4:.1f}" '
                   f'text-anchor="end">{"0" if v == 0 else f"-{v:g}"}%</text>')
    for t in _time_ticks(t0, t1):
        out.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{eq_top}" '
                   f'y2="{dd_bottom}"/><text x="{x(t):.1f}" y="{dd_bottom + 16}" '
                   f'text-anchor="middle">{_clock(t)}</text>')
    for top, bottom in ((eq_top, eq_bottom), (dd_top, dd_bottom)):
        out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{bottom}"/>'
                   f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" '
                   f'y2="{bottom}"/>')
    out.append(f'<text class="title" x="{LEFT}" y="{eq_top - 8}">equity (quote currency)'
               "</text>")
    out.append(f'<text class="title" x="{LEFT}" y="{dd_top - 8}">drawdown from peak</text>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 8}" '
               'text-anchor="middle">time (local)</text>')
    out.append(f'<text x="14" y="{(eq_top + eq_bottom) / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(eq_top + eq_bottom) / 2:.0f})">equity</text>')
    # curves
    if points:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(p.at):.1f},{y(p.equity):.1f}"
                        for i, p in enumerate(points))
        out.append(f'<path class="equity-curve" d="{path}"><title>equity: {len(points)} '
                   f"samples, {float(s.start_equity):,.2f} to {float(s.end_equity):,.2f}"
                   "</title></path>")
        area = (f"M{x(points[0].at):.1f},{d(0):.1f} "
                + " ".join(f"L{x(p.at):.1f},{d(p.drawdown_pct):.1f}" for p in points)
                + f" L{x(points[-1].at):.1f},{d(0):.1f} Z")
        out.append(f'<path class="drawdown-area" d="{area}"><title>drawdown; max '
                   f"{s.max_drawdown_pct:.2f}% ({s.max_drawdown:,.2f})</title></path>")
    out += _breaker_lines(record, x, eq_top, dd_bottom)
    out += _supervision_lines(record, x, eq_top, dd_bottom)
    out += _trade_marks(record.trades, points, x, y)
    out += _legend()
    out.append("</svg>")
    return "\n".join(out)


def _spans(record: RunRecord, x: _Scale, top: float, bottom: float, end: float) -> list[str]:
    """Shade the periods the breaker was not CLOSED."""
    out = []
    state, since = record.summary.breaker_start, x.lo
    for mark in [*record.breaker, None]:
        until = mark.at if mark is not None else end
        if state not in ("closed", "unknown") and until > since:
            out.append(f'<rect class="span-{html.escape(state)}" x="{x(since):.1f}" '
                       f'y="{top}" width="{max(x(until) - x(since), 1):.1f}" '
                       f'height="{bottom - top}"><title>breaker {html.escape(state)} '
                       f"{_clock(since)} to {_clock(until)}</title></rect>")
        if mark is not None:
            state, since = mark.state, max(mark.at, x.lo)
    return out


def _breaker_lines(record: RunRecord, x: _Scale, top: float, bottom: float) -> list[str]:
    out = []
    for b in record.breaker:
        cls = "breaker-trip" if b.trip else "breaker-change"
        tip = html.escape(f"{_clock_tenths(b.at)} breaker {b.previous} -> {b.state}: {b.reason}")
        out.append(f'<line class="marker {cls}" x1="{x(b.at):.1f}" x2="{x(b.at):.1f}" '
                   f'y1="{top}" y2="{bottom}"><title>{tip}</title></line>')
    return out


def _supervision_lines(record: RunRecord, x: _Scale, top: float, bottom: float) -> list[str]:
    out = []
    for m in record.supervision:
        cx = x(m.at)
        tip = html.escape(f"{_clock_tenths(m.at)} {m.kind} {m.actor}" + (f": {m.detail}"
                                                                    if m.detail else ""))
        kind = html.escape(m.kind)
        out.append(f'<g class="marker supervision-mark {kind}"><title>{tip}</title>'
                   f'<line class="supervision" x1="{cx:.1f}" x2="{cx:.1f}" y1="{top}" '
                   f'y2="{bottom}"/><path class="supervision-head" '
                   f'd="M{cx:.1f},{top - 7:.1f} l5,5 l-5,5 l-5,-5 z"/></g>')
    return out


def _trade_marks(trades: Sequence[TradeMark], points: list[EquityPoint], x: _Scale,
                 y: _Scale) -> list[str]:
    times = [p.at for p in points]
    out = []
    for t in trades:
        cx, cy = x(t.at), y(_equity_at(points, times, t.at, (y.lo + y.hi) / 2))
        shape = (f"M{cx:.1f},{cy - 7:.1f} l6,10 h-12 z" if t.side == "buy"
                 else f"M{cx:.1f},{cy + 7:.1f} l6,-10 h-12 z")
        what = f"{t.side.upper()} {t.quantity:f} {t.symbol} @ {float(t.price):,.8g}"
        if t.closes:
            what += f", realised {_signed(t.realized)}"
        tip = html.escape(f"{_clock_tenths(t.at)} {what} (fee {float(t.fee):,.4f}, seq {t.seq})")
        out.append(f'<path class="marker trade {html.escape(t.side)}" data-seq="{t.seq}" '
                   f'd="{shape}"><title>{tip}</title></path>')
    return out


def _equity_at(points: list[EquityPoint], times: list[float], at: float,
               default: float) -> float:
    """Equity at ``at`` on the drawn curve (linear between samples at ``times``)."""
    if not points:
        return default
    i = bisect.bisect_right(times, at)
    if i == 0:
        return points[0].equity
    if i == len(points):
        return points[-1].equity
    a, b = points[i - 1], points[i]
    share = (at - a.at) / (b.at - a.at) if b.at > a.at else 0.0
    return a.equity + (b.equity - a.equity) * share


def _legend() -> list[str]:
    items = [
        ('<line class="equity-curve" x1="0" x2="18" y1="0" y2="0"/>', "equity"),
        ('<rect class="drawdown-area" x="0" y="-5" width="18" height="10"/>', "drawdown"),
        ('<path class="trade buy" d="M9,-6 l6,10 h-12 z"/>', "buy"),
        ('<path class="trade sell" d="M9,6 l6,-10 h-12 z"/>', "sell"),
        ('<line class="breaker-trip" x1="9" x2="9" y1="-7" y2="7"/>', "breaker trip"),
        ('<line class="breaker-change" x1="9" x2="9" y1="-7" y2="7"/>', "breaker change"),
        ('<rect class="span-open" x="0" y="-6" width="18" height="12"/>', "breaker not closed"),
        ('<path class="supervision-head" d="M9,-5 l5,5 l-5,5 l-5,-5 z"/>', "restart"),
    ]
    out = ['<g class="legend">']
    cx = float(LEFT)
    for glyph, label in items:
        out.append(f'<g transform="translate({cx:.0f},16)">{glyph}<text x="22" y="4">'
                   f"{label}</text></g>")
        cx += 30 + 6.4 * len(label)
    out.append("</g>")
    return out


# -- small helpers ----------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    v = float(start)
    while len(ticks) < 50:
        ticks.append(round(v, 10))
        if v >= hi:
            return ticks
        v += step
    return ticks


def _places(ticks: Sequence[float]) -> int:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    return 0 if step >= 1 else min(6, -math.floor(math.log10(step)))


def _time_ticks(t0: float, t1: float) -> list[float]:
    span = t1 - t0
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                             10800, 21600, 43200, 86400) if span / s <= 8), 86400 * 7)
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _clock_tenths(at: float) -> str:
    return f"{_clock(at)}.{int(at * 10) % 10}"


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


class _Markup(str):
    """A table cell that is already HTML (made here, never from run data)."""

    __slots__ = ()


def _signed(value: object) -> _Markup:
    number = float(str(value))
    cls = "pos" if number > 0 else "neg" if number < 0 else ""
    return _Markup(f'<span class="{cls}">{number:+,.2f}</span>')


def _table(rows: Iterable[Sequence[str]], *, header: Sequence[str] | None = None,
           cls: str = "", numeric: Sequence[int] = ()) -> str:
    """An HTML table; every cell is escaped except :class:`_Markup` ones."""
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, _Markup) else html.escape(cell)
            attr = ' class="num"' if i in numeric else ""
            cells.append(f"<td{attr}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)
