"""The guard against live orders on made-up prices: a live venue's market must be its feed.

A live venue (the ccxt exchange, its sandbox too) trades on the signals, sizes and stops
that the tree's market prices. That market, and its fallback, must be a live feed of the
same venue (``source: ccxt``, the same ccxt ``exchange``) carrying every symbol the venue
trades. :func:`unmatched_prices` says, in words, where a tree falls short; the exchange's
settings report :func:`price_refusals` or, with ``allow_unmatched_prices``,
:func:`price_warnings` (logged at every start; docs/live-exchange.md, *The guard*). Pure:
it reads the market's public settings fields (``source``, ``exchange``, ``symbols``) and
nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from supervisor.host.wiring import PeerView

__all__ = ["price_refusals", "price_warnings", "unmatched_prices"]

_LISTED = 8  # symbols named in one message at most


def unmatched_prices(exchange: str, symbols: Sequence[str], market: PeerView) -> list[str]:
    """Why each actor that can stand in ``market``'s place (the market, then its fallback)
    is not a live feed of ``exchange`` carrying ``symbols``; empty when every one is."""
    reasons = []
    for view in market.incarnations():
        settings = view.settings
        if settings is None:
            reasons.append(f"{view.path} is built without settings, so it cannot be told to "
                           f"be a live feed of {exchange}")
            continue
        source = getattr(settings, "source", None)
        feed = getattr(settings, "exchange", None)
        if source != "ccxt":
            what = "has no source setting" if source is None else f"is source {source!r}"
            reasons.append(f"{view.path} {what}, not a live feed of {exchange}")
        elif feed != exchange:
            reasons.append(f"{view.path} is a live feed of {feed!r}, not of {exchange!r}")
        else:
            carried = getattr(settings, "symbols", None)
            carried = set(carried) if isinstance(carried, tuple | list) else set()
            missing = [s for s in symbols if s not in carried]
            if missing:
                reasons.append(f"{view.path} (a live feed of {exchange}) does not carry "
                               f"{_listed(missing)}, which the venue trades")
    return reasons


def price_refusals(exchange: str, symbols: Sequence[str], sandbox: bool,
                   market: PeerView | None) -> list[str]:
    """One refusal per actor in ``market``'s place that is not a live feed of the venue,
    saying why and how to fix it (none when the market is not in the tree: the wiring
    check refuses that itself)."""
    if market is None:
        return []
    fix = (f"make the market a live feed of the venue (source: ccxt, exchange: {exchange}, "
           "with these symbols), or set allow_unmatched_prices: true on the exchange to run "
           "anyway")
    return [f"a live venue ({_venue(exchange, sandbox)}) must be priced by its own live feed, "
            f"but {reason}; {fix}" for reason in unmatched_prices(exchange, symbols, market)]


def price_warnings(exchange: str, symbols: Sequence[str], sandbox: bool,
                   market: PeerView | None) -> list[str]:
    """What the override lets through, one warning per unmatched actor; one saying the
    guard is off even when the market matches."""
    if market is None:
        return []
    reasons = unmatched_prices(exchange, symbols, market)
    if not reasons:
        return [f"the price guard is off, though {market.path} is a live feed of {exchange} "
                "now: a market that is not the venue's would not be refused"]
    return [f"the price guard is OFF: orders on {_venue(exchange, sandbox)} will be priced "
            f"by a market that is not the venue's ({reason})" for reason in reasons]


def _venue(exchange: str, sandbox: bool) -> str:
    return f"{exchange} sandbox" if sandbox else exchange


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return shown if more <= 0 else f"{shown} and {more} more"
