"""The vocabulary every context shares: a venue's ``Fill`` and its ``Side``, ``Alert`` (any
context may tell the alerts actor) and ``HaltTrading`` (any may ask the circuit breaker to
halt). Small, immutable, validated at construction; each context's own messages are in its
``contract`` module."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal

from supervisor.fast_init import fast_init

__all__ = [
    "Alert",
    "Fill",
    "HaltTrading",
    "InvalidFill",
    "Side",
    "fill_from_json",
    "fill_to_json",
    "to_decimal",
]


class InvalidFill(ValueError):
    """A fill that cannot be recorded (bad numbers, or it would oversell or overspend)."""


class Side(enum.StrEnum):
    """Which way a fill or an order goes."""

    BUY = "buy"
    SELL = "sell"


def to_decimal(value: Decimal | int | str | float, what: str) -> Decimal:
    """Exact decimal from ``value``; floats go through ``repr`` so 0.1 stays 0.1."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFill(f"{what} must be finite, got {value!r}")
        value = repr(value)
    try:
        result = Decimal(value)
    except Exception:
        raise InvalidFill(f"{what} is not a number: {value!r}") from None
    if not result.is_finite():
        raise InvalidFill(f"{what} must be finite, got {value!r}")
    return result


@fast_init
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution reported by a venue. ``fill_id`` is unique per venue execution."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    at: float = 0.0  # venue time, seconds since the epoch
    venue: str = "paper"

    def __post_init__(self) -> None:
        if not self.fill_id:
            raise InvalidFill("fill_id must not be empty")
        if not self.symbol:
            raise InvalidFill(f"fill {self.fill_id}: symbol must not be empty")
        if type(self.side) is not Side:  # a Side already is one: no enum lookup
            object.__setattr__(self, "side", Side(self.side))
        for name in ("quantity", "price", "fee"):
            value = getattr(self, name)
            if type(value) is not Decimal or not value.is_finite():  # else: kept as it is
                object.__setattr__(self, name, to_decimal(value, name))
        if self.quantity <= 0:
            raise InvalidFill(f"fill {self.fill_id}: quantity must be > 0")
        if self.price <= 0:
            raise InvalidFill(f"fill {self.fill_id}: price must be > 0")
        if self.fee < 0:
            raise InvalidFill(f"fill {self.fill_id}: fee must be >= 0")

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person should hear about; ``key`` groups repeats for de-duplication."""

    key: str
    severity: str  # info | warning | error | critical
    title: str
    body: str = ""


@dataclass(frozen=True, slots=True)
class HaltTrading:
    """Ask the circuit breaker to refuse every order until a person resumes trading."""

    reason: str
    by: str


def fill_to_json(fill: Fill) -> dict[str, str | float]:
    return {
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": str(fill.quantity),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "at": fill.at,
        "venue": fill.venue,
    }


def fill_from_json(data: dict[str, object]) -> Fill:
    return Fill(
        str(data["fill_id"]),
        str(data["client_order_id"]),
        str(data["symbol"]),
        Side(str(data["side"])),
        to_decimal(str(data["quantity"]), "quantity"),
        to_decimal(str(data["price"]), "price"),
        to_decimal(str(data.get("fee", "0")), "fee"),
        float(str(data.get("at", 0.0))),
        str(data.get("venue", "paper")),
    )


