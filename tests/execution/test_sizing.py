"""Entry sizing (actors/execution/sizing.py, ``size_entry``), pure: risk per trade over the
stop distance, capped by the position size, the total exposure and the cash; the buy fills
being written and the buys not answered yet, counted as its docstring says; the two skip
reasons. Hypothesis checks it against a reference written here from the docstring's rules,
in exact fractions, and checks that the size never exceeds a cap and rises with equity."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

import hypothesis.strategies as st
import pytest
from hypothesis import given

from actors.common.messages import Fill, Side
from actors.execution.contract import SkipReason
from actors.execution.sizing import InFlightBuy, RiskLimits, size_entry
from actors.portfolio.contract import PortfolioSnapshot

pytestmark = pytest.mark.unit

D = Decimal
ZERO = D(0)

# generous caps, so that each test below tightens the one it is about
LOOSE = RiskLimits(risk_per_trade_pct=D(1), default_stop_pct=D(2), max_position_pct=D(100),
                   max_exposure_pct=D(1000), min_notional=D(10), in_flight_margin_pct=D(0),
                   cash_use=D(1))


def _snap(equity: str = "10000", cash: str | None = None, gross: str = "0",
          marks: dict[str, str] | None = None) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        seq=1, cash=D(equity if cash is None else cash), starting_cash=D(equity),
        equity=D(equity), realized_pnl=ZERO, unrealized_pnl=ZERO, fees=ZERO,
        gross_exposure=D(gross),
        marks={symbol: D(price) for symbol, price in (marks or {}).items()})


def _fill(n: int, symbol: str, quantity: str, price: str, fee: str = "0") -> Fill:
    return Fill(f"f{n}", f"bv-{n}", symbol, Side.BUY, D(quantity), D(price), D(fee))


def _size(limits: RiskLimits = LOOSE, *, price: str = "100", stop: float = 20.0,
          snap: PortfolioSnapshot | None = None, writing: tuple[Fill, ...] = (),
          unanswered: tuple[InFlightBuy, ...] = ()) -> Decimal | SkipReason:
    return size_entry(limits, D(price), stop, snap=snap or _snap(), writing=writing,
                      unanswered=unanswered)


# -- risk per trade and each cap --------------------------------------------------------------

def test_the_risk_per_trade_over_the_stop_distance() -> None:
    # 1 % of 10,000 is 100 at risk; 20 a unit to the stop: 5 units
    assert _size(stop=20.0) == D(5)
    assert _size(stop=3.0) == D("33.33333333")  # rounded down to 8 places


def test_no_stop_distance_takes_the_default_percent_of_the_price() -> None:
    # 2 % of 100 is 2 a unit: 50 units
    assert _size(stop=0.0) == D(50)
    assert _size(replace(LOOSE, default_stop_pct=D(5)), stop=0.0) == D(20)


def test_the_position_cap() -> None:
    # 10 % of 10,000 is 1,000 at 100 a unit: 10 units, not the 50 the risk allows
    assert _size(replace(LOOSE, max_position_pct=D(10)), stop=2.0) == D(10)


def test_the_exposure_cap_less_what_is_held() -> None:
    # 50 % of 10,000 is 5,000, of which 4,500 is held: 500 more, 5 units
    limits = replace(LOOSE, max_exposure_pct=D(50))
    assert _size(limits, stop=2.0, snap=_snap(gross="4500")) == D(5)
    assert _size(limits, stop=2.0, snap=_snap(gross="5000")) is SkipReason.BELOW_MINIMUM
    assert _size(limits, stop=2.0, snap=_snap(gross="6000")) is SkipReason.BELOW_MINIMUM


def test_the_cash_cap_keeps_room_for_fees() -> None:
    # 98 % of 300 cash is 294: 2.94 units
    limits = replace(LOOSE, cash_use=D("0.98"))
    assert _size(limits, stop=2.0, snap=_snap(cash="300")) == D("2.94")
    assert _size(limits, stop=2.0, snap=_snap(cash="0")) is SkipReason.BELOW_MINIMUM


def test_the_default_keeps_two_percent_of_cash() -> None:
    assert RiskLimits(D(1), D(2), D(100), D(100), D(0), D(0)).cash_use == D("0.98")


def test_the_smallest_cap_wins() -> None:
    limits = replace(LOOSE, max_position_pct=D(30), max_exposure_pct=D(60), cash_use=D("0.5"))
    snap = _snap(cash="4000", gross="3500")
    # risk 50 units (5,000), position 3,000, exposure 6,000 - 3,500 = 2,500, cash 2,000
    assert _size(limits, stop=2.0, snap=snap) == D(20)


def test_min_notional() -> None:
    # 0.1 unit at 100 is 10, the minimum: sized; 0.099999 is under it
    assert _size(stop=1000.0) == D("0.1")
    assert _size(stop=1000.01) is SkipReason.BELOW_MINIMUM
    assert _size(replace(LOOSE, min_notional=D(0)), stop=1000.01) == D("0.09999900")


def test_a_quantity_that_rounds_to_nothing_is_below_minimum() -> None:
    limits = replace(LOOSE, min_notional=D(0))
    assert _size(limits, snap=_snap(equity="0.00000001"), stop=20.0) is SkipReason.BELOW_MINIMUM


@pytest.mark.parametrize(("equity", "price"), [("0", "100"), ("-5", "100"), ("10000", "0"),
                                               ("10000", "-1")])
def test_no_equity_or_no_price(equity: str, price: str) -> None:
    assert _size(price=price, snap=_snap(equity=equity)) is SkipReason.NO_EQUITY


# -- what is being written and what is not answered yet ---------------------------------------

def test_a_fill_being_written_costs_its_cash_and_fee() -> None:
    limits = replace(LOOSE, cash_use=D("0.98"))
    snap = _snap(cash="1000", marks={"A": "100"})
    assert _size(limits, stop=2.0, snap=snap) == D("9.8")
    # 2 at 110 plus a fee of 1: 221 off the cash, 98 % of 779 is 763.42
    writing = (_fill(1, "A", "2", "110", fee="1"),)
    assert _size(limits, stop=2.0, snap=snap, writing=writing) == D("7.6342")


def test_a_fill_being_written_costs_equity_its_fee_and_what_it_paid_over_the_mark() -> None:
    snap = _snap(marks={"A": "100", "B": "200"})
    # 2 A at 110 against a mark of 100: 1 of fee and 20 over the mark; 1 % of 9,979 at
    # 10 a unit is 9.979
    assert _size(stop=10.0, snap=snap, writing=(_fill(1, "A", "2", "110", fee="1"),)) == \
        D("9.979")
    # 2 B at 190 under its mark of 200: only the fee
    assert _size(stop=10.0, snap=snap, writing=(_fill(2, "B", "2", "190", fee="1"),)) == \
        D("9.999")


def test_a_fill_being_written_adds_its_exposure_at_the_higher_of_fill_and_mark() -> None:
    limits = replace(LOOSE, max_exposure_pct=D(10))
    snap = _snap(marks={"A": "100", "B": "300"})
    # 2 A at 110 (over the mark) add 220, and take 21 off the equity: 10 % of 9,979 is
    # 997.9, less 220: 777.9 left, 7.779 units at 100
    assert _size(limits, stop=2.0, snap=snap,
                 writing=(_fill(1, "A", "2", "110", fee="1"),)) == D("7.779")
    # 2 B at 250 under the mark 300 add 600: 1,000 - 600 = 400, 4 units
    assert _size(limits, stop=2.0, snap=snap, writing=(_fill(2, "B", "2", "250"),)) == D(4)


def test_a_fill_being_written_without_a_mark_counts_at_its_price() -> None:
    limits = replace(LOOSE, max_exposure_pct=D(10))
    assert _size(limits, stop=2.0, writing=(_fill(1, "C", "3", "100"),)) == D(7)


def test_an_unanswered_buy_counts_with_the_margin() -> None:
    limits = replace(LOOSE, in_flight_margin_pct=D(2), cash_use=D(1))
    snap = _snap(cash="1000", marks={"A": "120"})
    buy = InFlightBuy("A", D(5), D(100))  # 5 at the mark 120 (over its price): 600
    # 612 of cash (600 and 2 %): 388 left, 3.88 units
    assert _size(limits, stop=2.0, snap=snap, unanswered=(buy,)) == D("3.88")
    # the margin off equity: 12; 1 % of 9,988 at 10 a unit
    plenty = _snap(marks={"A": "120"})
    assert _size(limits, stop=10.0, snap=plenty, unanswered=(buy,)) == D("9.988")
    # 612 onto exposure: 10 % of the 9,988 of equity is 998.8, less 612: 386.8
    tight = replace(limits, max_exposure_pct=D(10))
    assert _size(tight, stop=2.0, snap=_snap(marks={"A": "120"}), unanswered=(buy,)) == \
        D("3.8680")


def test_an_unanswered_buy_over_its_mark_counts_at_its_price() -> None:
    limits = replace(LOOSE, cash_use=D(1))
    snap = _snap(cash="1000", marks={"A": "80"})
    buy = InFlightBuy("A", D(5), D(100))
    assert _size(limits, stop=2.0, snap=snap, unanswered=(buy,)) == D(5)  # 500 left
    no_mark = InFlightBuy("Z", D(5), D(100))
    assert _size(limits, stop=2.0, snap=snap, unanswered=(no_mark,)) == D(5)


def test_what_is_in_flight_can_leave_no_equity() -> None:
    snap = _snap(equity="10", cash="10000")
    writing = (_fill(1, "A", "1", "100", fee="10"),)
    assert _size(snap=snap, writing=writing) is SkipReason.NO_EQUITY
    margin = replace(LOOSE, in_flight_margin_pct=D(10))
    buy = InFlightBuy("A", D(1), D(100))
    assert _size(margin, snap=snap, unanswered=(buy,)) is SkipReason.NO_EQUITY


# -- the reference, from the docstring --------------------------------------------------------

F = Fraction
QUANTUM = F(1, 10**8)


@dataclass(frozen=True)
class Case:
    """One call of ``size_entry``."""

    limits: RiskLimits
    price: Decimal
    stop: float
    snap: PortfolioSnapshot
    writing: tuple[Fill, ...]
    unanswered: tuple[InFlightBuy, ...]

    def size(self) -> Decimal | SkipReason:
        return size_entry(self.limits, self.price, self.stop, snap=self.snap,
                          writing=self.writing, unanswered=self.unanswered)

    def stop_distance(self) -> Fraction:
        """The stop distance a unit: the one given, or the default percent of the price."""
        if self.stop > 0:
            return F(repr(self.stop))
        return F(self.price) * F(self.limits.default_stop_pct) / 100


def reference(case: Case) -> Fraction | SkipReason:
    """The size by the docstring's rules, in exact fractions."""
    limits, snap = case.limits, case.snap

    def mark(symbol: str, price: Decimal) -> Fraction:
        return F(snap.marks[symbol]) if symbol in snap.marks else F(price)

    # what the fills being written do once they are in the ledger, or worse
    cash_spent = sum((F(f.quantity) * F(f.price) + F(f.fee) for f in case.writing), F(0))
    overpaid = sum((F(f.fee) + max(F(0), (F(f.price) - mark(f.symbol, f.price)) * F(f.quantity))
                    for f in case.writing), F(0))
    added = sum((max(F(f.price), mark(f.symbol, f.price)) * F(f.quantity)
                 for f in case.writing), F(0))
    # the buys not answered yet: at the higher of price and mark, plus the margin
    notionals = [F(b.quantity) * max(F(b.price), mark(b.symbol, b.price))
                 for b in case.unanswered]
    with_margin = [n * (1 + F(limits.in_flight_margin_pct) / 100) for n in notionals]
    equity = F(snap.equity) - overpaid - (sum(with_margin, F(0)) - sum(notionals, F(0)))
    cash = F(snap.cash) - cash_spent - sum(with_margin, F(0))
    exposure = F(snap.gross_exposure) + added + sum(with_margin, F(0))
    if case.price <= 0 or equity <= 0:
        return SkipReason.NO_EQUITY
    p = F(case.price)
    caps = {  # in units
        "risk": equity * F(limits.risk_per_trade_pct) / 100 / case.stop_distance(),
        "position": equity * F(limits.max_position_pct) / 100 / p,
        "exposure": (equity * F(limits.max_exposure_pct) / 100 - exposure) / p,
        "cash": cash * F(limits.cash_use) / p,
    }
    quantity = math.floor(min(caps.values()) / QUANTUM) * QUANTUM
    if quantity <= 0 or quantity * p < F(limits.min_notional):
        return SkipReason.BELOW_MINIMUM
    return quantity


def _money(low: str, high: str) -> st.SearchStrategy[Decimal]:
    """Amounts in cents from ``low`` to ``high``."""
    return st.integers(int(D(low) * 100), int(D(high) * 100)).map(lambda cents: D(cents) / 100)


def _sized(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Three significant digits, from 1.00 times 10 ** ``low`` to 9.99 times 10 ** ``high``
    (spread evenly over the magnitudes)."""
    return st.builds(lambda digits, power: D(digits) * D(10) ** power / 100,
                     st.integers(100, 999), st.integers(low, high))


def _one_of(*values: str) -> st.SearchStrategy[Decimal]:
    return st.sampled_from([D(v) for v in values])


SYMBOLS = st.sampled_from(("A", "B", "C"))


@st.composite
def snapshots(draw: st.DrawFn) -> PortfolioSnapshot:
    """Mostly an account with equity, and cash and exposure in proportion to it; now and
    then one with no equity, or with cash and exposure anywhere."""
    kind = draw(st.integers(0, 9))
    equity = draw(_money("-100", "0") if kind == 0 else _sized(2, 5))
    cash = (equity * draw(_one_of("0", "0.05", "0.3", "0.9", "1", "1.2"))).quantize(D("0.01"))
    gross = (max(equity, ZERO) * draw(_one_of("0", "0.1", "0.5", "0.99", "1.5"))).quantize(
        D("0.01"))
    if kind == 1:
        cash, gross = draw(_money("-100", "100000")), draw(_sized(0, 5))
    marks = draw(st.dictionaries(SYMBOLS, _sized(0, 2), max_size=2))
    return PortfolioSnapshot(1, cash, D(10000), equity, ZERO, ZERO, ZERO, gross, marks=marks)


@st.composite
def prices(draw: st.DrawFn) -> Decimal:
    """Mostly a price from 0.0100 to 999; now and then none (zero or below)."""
    return draw(_money("-1", "0") if draw(st.integers(0, 9)) == 0 else _sized(-2, 2))


buy_st = st.builds(InFlightBuy, symbol=SYMBOLS, quantity=_money("0.01", "2"),
                   price=_sized(0, 2))
cases = st.builds(
    Case,
    limits=st.builds(
        RiskLimits, risk_per_trade_pct=_money("0.1", "5"), default_stop_pct=_money("0.5", "10"),
        max_position_pct=_one_of("1", "5", "10", "25", "100"),
        max_exposure_pct=_one_of("1", "50", "100", "150", "200"),
        min_notional=_money("0", "10"), in_flight_margin_pct=_money("0", "5"),
        cash_use=_money("0.5", "1")),
    price=prices(),
    stop=st.one_of(st.just(0.0), _money("0.01", "100").map(float)),
    snap=snapshots(),
    writing=st.lists(st.builds(
        Fill, fill_id=st.uuids().map(str), client_order_id=st.just("bv-x"), symbol=SYMBOLS,
        side=st.just(Side.BUY), quantity=_money("0.01", "2"), price=_sized(0, 2),
        fee=_money("0", "5")), max_size=3).map(tuple),
    unanswered=st.lists(buy_st, max_size=3).map(tuple),
)


@given(cases)
def test_the_size_is_the_reference_computation(case: Case) -> None:
    got, want = case.size(), reference(case)
    if isinstance(want, SkipReason):
        assert got is want
    else:
        assert isinstance(got, Decimal) and F(got) == want


@given(cases)
def test_the_size_is_positive_and_within_every_cap(case: Case) -> None:
    got, limits, snap = case.size(), case.limits, case.snap
    if isinstance(got, SkipReason):
        assert got in (SkipReason.NO_EQUITY, SkipReason.BELOW_MINIMUM)
        return
    assert got > 0 and got == got.quantize(D("0.00000001"))
    notional = F(got) * F(case.price)
    assert notional >= F(limits.min_notional)
    # the caps from the snapshot alone: what is in flight only lowers them
    equity = F(snap.equity)
    assert notional <= equity * F(limits.max_position_pct) / 100
    assert notional <= equity * F(limits.max_exposure_pct) / 100 - F(snap.gross_exposure)
    assert notional <= F(snap.cash) * F(limits.cash_use)
    assert F(got) * case.stop_distance() <= equity * F(limits.risk_per_trade_pct) / 100


def _units(size: Decimal | SkipReason) -> Decimal:
    return ZERO if isinstance(size, SkipReason) else size


@given(cases, _money("0", "50000"))
def test_more_equity_never_sizes_less(case: Case, more: Decimal) -> None:
    less = case.size()
    most = replace(case, snap=replace(case.snap, equity=case.snap.equity + more)).size()
    assert _units(most) >= _units(less)
    if less is SkipReason.BELOW_MINIMUM:
        assert most is not SkipReason.NO_EQUITY


@given(cases, buy_st)
def test_one_more_buy_in_flight_never_sizes_more(case: Case, buy: InFlightBuy) -> None:
    after = replace(case, unanswered=(*case.unanswered, buy)).size()
    assert _units(after) <= _units(case.size())
