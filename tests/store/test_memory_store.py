"""A stored order gives back exactly what it was created with."""

import asyncio
from datetime import UTC
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Quote, book_of
from app.core.vocabulary import OrderType, Side, TimeInForce
from app.ops.clock import to_micros
from app.store.errors import StoreFull
from app.store.memory import FILL_RESERVE, InMemoryStore
from app.web.schemas import MAX_AMOUNT
from tests.conftest import PLAIN, market_order

BTC = ("binance", "BTC/USDT")
amounts = st.floats(min_value=0, max_value=MAX_AMOUNT, exclude_min=True)
times = st.datetimes(timezones=st.just(UTC)).map(to_micros)


@given(
    qty=amounts,
    limit_price=st.none() | amounts,
    accepted_at=times,
    client_ts=st.none() | times,
    number=st.integers(min_value=0, max_value=2**128 - 1),
)
def test_order_terms_round_trip_exactly(
    qty: float, limit_price: float | None, accepted_at: int, client_ts: int | None, number: int
) -> None:
    kind = OrderKind("binance", "BTC/USDT", Side.SELL, OrderType.LIMIT, TimeInForce.IOC)
    order = Order(
        number=number,
        idempotency_key="k",
        kind=kind,
        terms=OrderTerms.of(qty, limit_price, accepted_at, client_ts),
    )
    assert (order.qty, order.limit_price, order.accepted_at, order.client_ts) == (
        qty,
        limit_price,
        accepted_at,
        client_ts,
    )
    assert (order.exchange, order.symbol, order.side, order.type, order.time_in_force) == kind
    assert (order.status, order.filled_qty) == ("NEW", 0.0)


def test_store_finds_orders_by_id_and_key_only_when_present() -> None:
    store = InMemoryStore()
    order = market_order("k-1")
    stored, created, _events = asyncio.run(store.admit(order, PLAIN, 0))
    assert (stored, created) == (order, True)
    assert store.get(order.order_id) is order
    assert store.get_by_key("k-1") is order
    assert store.get(order.order_id.upper()) is None
    assert store.get("paper-nope") is None
    assert store.get_by_key("k-2") is None
    assert store.count() == 1


def test_the_cap_counts_fills_and_refuses_intents_once_they_fill_it() -> None:
    """A store with room for 4 holds an order and the 3 fills it took: the next intent
    is refused, nothing is dropped, and a retry of the order's key still finds it."""
    store = InMemoryStore()
    big, _, _ = asyncio.run(store.admit(market_order("big", qty=10.0), PLAIN, 0, cap=4))
    for n in range(3):
        asyncio.run(store.add_quote(BTC, tiny_quote(), PLAIN, n, cap=4))
    assert (store.count(), store.held()) == (1, 4)
    with pytest.raises(StoreFull, match=r"orders and their fills number MAX_ORDERS=4 \(a fill counts as an order\)"):
        asyncio.run(store.admit(market_order("next"), PLAIN, 5, cap=4))
    assert asyncio.run(store.admit(market_order("big"), PLAIN, 6, cap=4)).created is False
    assert (store.count(), store.held(), len(big.fills)) == (1, 4, 3)


def test_fills_go_on_into_the_reserve_then_a_quote_that_could_fill_is_refused_whole() -> None:
    """Past the cap, the orders held still fill until the reserve (a tenth of the cap)
    is used; then a quote that reaches an open order is refused and changes nothing (not
    even the latest quote), while a quote that fills nothing is still taken."""
    cap = 20
    store = InMemoryStore()
    big, _, _ = asyncio.run(store.admit(market_order("big", qty=100.0), PLAIN, 0, cap=cap))
    for n in range(cap - 1 + int(cap * FILL_RESERVE)):
        asyncio.run(store.add_quote(BTC, tiny_quote(), PLAIN, n, cap=cap))
    assert store.held() == cap + int(cap * FILL_RESERVE)
    head, position = store.journal_head(), store.positions()
    with pytest.raises(StoreFull, match=r"could make \(1\) would take .* past MAX_ORDERS=20 and its reserve"):
        asyncio.run(store.add_quote(BTC, tiny_quote(bid="98"), PLAIN, 99, cap=cap))
    assert (store.journal_head(), store.positions(), len(big.fills)) == (head, position, 21)
    assert store.positions()[0].quote.bid == Decimal(99)  # type: ignore[union-attr]  # the refused quote was not kept
    assert asyncio.run(store.add_quote(("binance", "ETH/USDT"), tiny_quote(), PLAIN, 100, cap=cap)) == []
    store.cancel(big.order_id, 101)
    assert asyncio.run(store.add_quote(BTC, tiny_quote(bid="98"), PLAIN, 102, cap=cap)) == []  # reaches nothing now


def tiny_quote(bid: str = "99") -> Quote:
    return Quote(Decimal(bid), Decimal(100), None, Decimal(1))


def test_a_book_near_the_cap_counts_the_fills_its_walk_could_make() -> None:
    """A walk makes a fill per level: the reserve is checked against the orders a book
    reaches plus the levels behind its top, and a book that could pass it is refused."""
    cap = 20
    store = InMemoryStore()
    asyncio.run(store.admit(market_order("big", qty=100.0), PLAIN, 0, cap=cap))
    for n in range(cap - 2 + int(cap * FILL_RESERVE) - 1):
        asyncio.run(store.add_quote(BTC, tiny_quote(), PLAIN, n, cap=cap))
    room = cap + int(cap * FILL_RESERVE) - store.held()
    assert room == 2
    deep = book_of([(99.0, 1.0)], [(100.0, 1.0), (101.0, 1.0), (102.0, 1.0)])
    with pytest.raises(StoreFull, match=r"could make \(3\)"):
        asyncio.run(store.add_quote(BTC, deep, PLAIN, 50, cap=cap))
    two = book_of([(99.0, 1.0)], [(100.0, 1.0), (101.0, 1.0)])
    assert len(asyncio.run(store.add_quote(BTC, two, PLAIN, 51, cap=cap))) == 2
