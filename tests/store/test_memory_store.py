"""A stored order gives back exactly what it was created with."""

import asyncio
from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from app.core.order import Order, OrderKind, OrderTerms
from app.core.vocabulary import OrderType, Side, TimeInForce
from app.ops.clock import to_micros
from app.store.memory import InMemoryStore
from app.web.schemas import MAX_AMOUNT
from tests.conftest import PLAIN, market_order

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
