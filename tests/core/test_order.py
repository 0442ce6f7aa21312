"""The order model: OrderTerms packing, the status table, record_fill and restore."""

import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.order import (
    TRANSITIONS,
    IllegalTransition,
    Order,
    OrderKind,
    OrderTerms,
    StoredFill,
    differing_terms,
    record_fill,
    transition,
)
from app.core.vocabulary import OPEN_STATUSES, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from tests.core.factories import ETH, make_order

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
quantities = st.floats(min_value=0.0, max_value=1e15, exclude_min=True, allow_nan=False, allow_infinity=False)
moments = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
client_moments = st.none() | st.integers(min_value=INT64_MIN + 1, max_value=INT64_MAX)
TERMINAL = [status for status in OrderStatus if not status.is_open]
LEGAL = [(before, after) for before, targets in TRANSITIONS.items() for after in targets]
ILLEGAL = [(before, after) for before in OrderStatus for after in OrderStatus if after not in TRANSITIONS[before]]


def fill(number: int, qty: str, ts: int = 10) -> StoredFill:
    return StoredFill(
        number=number, qty=Decimal(qty), price=Decimal(100), fee=Decimal(0), liquidity=Liquidity.TAKER, ts=ts
    )


def order_in(status: OrderStatus, qty: float = 1.0) -> Order:
    order = make_order(1, qty=qty)
    order.status = status  # a test fixture: only `transition` assigns a status in the core
    return order


@given(qty=quantities, limit=st.none() | quantities, accepted_at=moments, client_ts=client_moments)
def test_terms_round_trip_exactly(qty: float, limit: float | None, accepted_at: int, client_ts: int | None) -> None:
    """Every number an order is created with reads back bit for bit, None included."""
    terms = OrderTerms.of(qty, limit, accepted_at, client_ts)
    assert type(terms) is bytes  # plain bytes: one object per stored order
    assert len(terms) == 40
    assert OrderTerms.qty(terms) == qty
    assert OrderTerms.limit_price(terms) == limit
    assert OrderTerms.accepted_at(terms) == accepted_at
    assert OrderTerms.client_ts(terms) == client_ts
    assert OrderTerms.unpack(terms) == (qty, limit, accepted_at, client_ts)
    assert OrderTerms.place(terms) == 0


@given(place=st.integers(min_value=0, max_value=2**64 - 1))
def test_a_place_given_by_a_store_keeps_every_other_term(place: int) -> None:
    terms = OrderTerms.of(0.25, 30000.5, 42, -7)
    placed = OrderTerms.placed(terms, place)
    assert (OrderTerms.place(placed), OrderTerms.unpack(placed)) == (place, OrderTerms.unpack(terms))
    assert type(placed) is bytes
    assert len(placed) == len(terms)


def test_the_place_costs_no_memory() -> None:
    """Bytes objects are allocated in 16-byte steps: 32 bytes of terms took an 80-byte
    block (a 33-byte header and the value), and 40 take the same one."""
    assert sys.getsizeof(OrderTerms.of(1.0, None, 0, None)) <= 80


def test_terms_edge_values() -> None:
    """The smallest positive float, 1e15, and both int64 ends survive; None stays None."""
    terms = OrderTerms.of(5e-324, 1e15, INT64_MIN, INT64_MAX)
    assert OrderTerms.qty(terms) == 5e-324
    assert OrderTerms.limit_price(terms) == 1e15
    assert OrderTerms.accepted_at(terms) == INT64_MIN
    assert OrderTerms.client_ts(terms) == INT64_MAX
    blank = OrderTerms.of(0.1, None, 0, None)
    assert OrderTerms.limit_price(blank) is None
    assert OrderTerms.client_ts(blank) is None


def test_order_reads_its_terms() -> None:
    """An order's numbers come from its terms; exact_qty is the decimal the client wrote."""
    order = make_order(7, Side.SELL, 0.1, 100.1, accepted_at=42)
    assert (order.qty, order.limit_price, order.accepted_at, order.client_ts) == (0.1, 100.1, 42, None)
    assert order.terms == OrderTerms.of(0.1, 100.1, 42, None)
    assert order.exact_qty == Decimal("0.1")
    assert order.remaining == Decimal("0.1")
    assert order.status == OrderStatus.NEW
    assert order.type == OrderType.LIMIT
    assert order.filled_qty == 0
    assert order.fills == []
    assert order.updated_at is None


def test_terminal_states_have_no_moves() -> None:
    """FILLED, CANCELED and EXPIRED are final; the open statuses are NEW and PARTIALLY_FILLED."""
    assert set(TRANSITIONS) == set(OrderStatus)
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
    assert {status for status in OrderStatus if TRANSITIONS[status]} == OPEN_STATUSES


@pytest.mark.parametrize(("before", "after"), LEGAL)
def test_every_legal_move_is_allowed(before: OrderStatus, after: OrderStatus) -> None:
    """A move the table lists happens, returns the status before and stamps the time."""
    order = order_in(before)
    assert transition(order, after, 99) == before
    assert order.status == after
    assert order.updated_at == 99


@pytest.mark.parametrize(("before", "after"), ILLEGAL)
def test_every_other_move_raises(before: OrderStatus, after: OrderStatus) -> None:
    """A move the table does not list raises and leaves the order as it was."""
    order = order_in(before)
    with pytest.raises(IllegalTransition):
        transition(order, after, 99)
    assert order.status == before
    assert order.updated_at is None


def test_table_size() -> None:
    """5 + 4 legal moves out of 36 pairs: the parametrized tests above cover all 36."""
    assert len(LEGAL) == 9
    assert len(LEGAL) + len(ILLEGAL) == 36


def test_record_fill_partially_then_fully() -> None:
    """Fills add up exactly (0.1 + 0.2 = 0.3): PARTIALLY_FILLED, then FILLED at the whole quantity."""
    order = make_order(1, qty=0.3)
    assert record_fill(order, fill(1, "0.1", ts=5)) == OrderStatus.NEW
    assert order.status == OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == Decimal("0.1")
    assert order.updated_at == 5
    assert record_fill(order, fill(2, "0.2", ts=6)) == OrderStatus.PARTIALLY_FILLED
    assert order.status == OrderStatus.FILLED
    assert order.filled_qty == Decimal("0.3")
    assert order.remaining == 0
    assert [f.number for f in order.fills] == [1, 2]
    assert order.updated_at == 6


def test_record_fill_whole_at_once() -> None:
    order = make_order(1, qty=2.5)
    assert record_fill(order, fill(1, "2.5")) == OrderStatus.NEW
    assert order.status == OrderStatus.FILLED


def test_overfill_raises_and_keeps_the_fills() -> None:
    """A fill beyond the quantity raises IllegalTransition; quantity, fills, status and time stay."""
    order = make_order(1, qty=1.0)
    record_fill(order, fill(1, "0.6", ts=10))
    with pytest.raises(IllegalTransition, match="overfills"):
        record_fill(order, fill(2, "0.5", ts=11))
    assert order.filled_qty == Decimal("0.6")
    assert len(order.fills) == 1
    assert order.status == OrderStatus.PARTIALLY_FILLED
    assert order.updated_at == 10


def test_fill_of_a_filled_order_raises() -> None:
    order = make_order(1, qty=1.0)
    record_fill(order, fill(1, "1"))
    with pytest.raises(IllegalTransition):
        record_fill(order, fill(2, "0.1"))
    assert order.filled_qty == 1


@pytest.mark.parametrize("status", [OrderStatus.CANCELED, OrderStatus.EXPIRED])
def test_fill_of_a_finished_order_raises_and_changes_nothing(status: OrderStatus) -> None:
    """A fill of a CANCELED or EXPIRED order is refused, and the order keeps what it had.
    Regression: record_fill once added the fill before the table refused the move."""
    order = order_in(status, qty=1.0)
    with pytest.raises(IllegalTransition):
        record_fill(order, fill(1, "0.5"))
    assert order.status == status
    assert order.filled_qty == 0
    assert order.fills == []
    assert order.updated_at is None


def test_restore_untouched_order_has_no_progress() -> None:
    """A stored order that never changed restores as a NEW one does: no progress object."""
    kind = OrderKind("binance", "BTC/USDT", Side.BUY, OrderType.MARKET)
    terms = OrderTerms.of(1.0, None, 3, 4)
    order = Order.restore(
        number=9,
        idempotency_key="k",
        kind=kind,
        terms=terms,
        status=OrderStatus.NEW,
        filled_qty=Decimal(0),
        fills=[],
        updated_at=None,
    )
    assert order._progress is None
    assert (order.number, order.idempotency_key, order.kind, order.terms) == (9, "k", kind, terms)
    assert order.status == OrderStatus.NEW
    assert order.updated_at is None


def test_restore_keeps_status_fills_and_time() -> None:
    """A stored order with fills comes back with them, and carries on along the table."""
    kind = OrderKind("binance", "BTC/USDT", Side.SELL, OrderType.LIMIT)
    first = fill(1, "0.4", ts=7)
    order = Order.restore(
        number=9,
        idempotency_key="k",
        kind=kind,
        terms=OrderTerms.of(1.0, 100.0, 3, None),
        status=OrderStatus.PARTIALLY_FILLED,
        filled_qty=Decimal("0.4"),
        fills=[first],
        updated_at=7,
    )
    assert order.status == OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == Decimal("0.4")
    assert order.fills == [first]
    assert order.updated_at == 7
    assert order.remaining == Decimal("0.6")
    record_fill(order, fill(2, "0.6", ts=8))
    assert order.status == OrderStatus.FILLED
    assert order.updated_at == 8


def test_restore_canceled_order_without_fills_keeps_its_time() -> None:
    """A canceled order that never filled still has the time it was canceled."""
    order = Order.restore(
        number=9,
        idempotency_key="k",
        kind=OrderKind("binance", "BTC/USDT", Side.BUY, OrderType.LIMIT),
        terms=OrderTerms.of(1.0, 100.0, 3, None),
        status=OrderStatus.CANCELED,
        filled_qty=Decimal(0),
        fills=[],
        updated_at=12,
    )
    assert order.status == OrderStatus.CANCELED
    assert order.updated_at == 12
    assert not order.is_open


# -- an intent's terms, compared -------------------------------------------------------


def test_a_retry_of_the_same_intent_differs_in_no_term() -> None:
    stored = make_order(1, Side.SELL, qty=0.1, limit=3150.25, tif=TimeInForce.IOC, accepted_at=5)
    # Another number and key, accepted later, with a client time: none of them a term.
    retry = Order(
        number=2,
        idempotency_key="other",
        kind=stored.kind,
        terms=OrderTerms.of(0.1, 3150.25, 99, 1_700_000_000_000_000),
    )
    assert differing_terms(stored, retry) == []


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"instrument": ("coinbase", "BTC/USDT")}, ["exchange"]),
        ({"instrument": ETH}, ["symbol"]),
        ({"side": Side.SELL}, ["side"]),
        ({"order_type": OrderType.MARKET, "limit": None}, ["type", "limit_price"]),
        ({"qty": 0.30000000000000004}, ["qty"]),
        ({"limit": 100.5}, ["limit_price"]),
        ({"tif": TimeInForce.FOK}, ["time_in_force"]),
        ({"side": Side.SELL, "qty": 2.0, "tif": TimeInForce.IOC}, ["side", "qty", "time_in_force"]),
    ],
)
def test_each_differing_term_is_named_in_the_intents_order(changed: dict[str, Any], named: list[str]) -> None:
    terms = {"side": Side.BUY, "qty": 0.3, "limit": 100.0} | changed
    side, qty, limit = terms.pop("side"), terms.pop("qty"), terms.pop("limit")
    assert differing_terms(make_order(1, Side.BUY, 0.3, 100.0), make_order(2, side, qty, limit, **terms)) == named


def test_a_copy_goes_its_own_way() -> None:
    """A copy has the order's progress so far; later fills of one leave the other alone."""
    original = make_order(1, Side.BUY, 2.0)
    record_fill(
        original,
        StoredFill(number=7, qty=Decimal(1), price=Decimal(100), fee=Decimal(0), liquidity=Liquidity.TAKER, ts=5),
    )
    copy = original.copy()
    assert (copy.order_id, copy.status, copy.filled_qty, copy.fills) == (
        original.order_id, OrderStatus.PARTIALLY_FILLED, Decimal(1), original.fills
    )  # fmt: skip
    record_fill(
        copy, StoredFill(number=8, qty=Decimal(1), price=Decimal(101), fee=Decimal(0), liquidity=Liquidity.TAKER, ts=6)
    )
    assert (copy.status, original.status) == (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
    assert (len(copy.fills), len(original.fills)) == (2, 1)
