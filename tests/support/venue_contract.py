"""The venues' contract as a check: a venue actor answers every ask the executor and the
venue sync make with the reply ``actors.venues.contract.Venue`` names."""

from __future__ import annotations

from actors.common.fill_digest import digest
from actors.common.messages import Fill
from actors.venues.contract import (
    GetOpenOrders,
    GetVenueFills,
    GetVenueRecord,
    LookupOrder,
    OpenOrder,
    OrderResult,
    PlaceOrder,
    VenueRecord,
)
from supervisor import Runtime


def assert_answers_as_a_venue(rt: Runtime, name: str, order: PlaceOrder) -> None:
    """``order`` is placed at ``name`` (which can fill it), then every other ask is made."""
    placed = rt.ask(name, order)
    assert isinstance(placed, OrderResult) and placed.status == "filled", placed
    assert placed.client_order_id == order.client_order_id
    assert rt.ask(name, order) == placed  # idempotent by client order id
    found = rt.ask(name, LookupOrder(order.client_order_id))
    assert isinstance(found, OrderResult) and found.status == placed.status
    assert {f.fill_id for f in found.fills} == {f.fill_id for f in placed.fills}
    still_open = rt.ask(name, GetOpenOrders())
    assert isinstance(still_open, tuple)
    assert all(isinstance(o, OpenOrder) for o in still_open)
    fills = rt.ask(name, GetVenueFills())
    assert isinstance(fills, list) and all(isinstance(f, Fill) for f in fills)
    assert {f.fill_id for f in placed.fills} <= {f.fill_id for f in fills}
    assert rt.ask(name, GetVenueFills(since=fills[-1].at)) == [
        f for f in fills if f.at >= fills[-1].at]
    record = rt.ask(name, GetVenueRecord())
    assert isinstance(record, VenueRecord)
    assert record.fills is None or record.fills >= len(fills)
    if record.fills == len(fills) and record.digest is not None:  # it listed every fill
        assert record.digest == digest(f.fill_id for f in fills)
