"""Trades and queue position on every store (the store contract, called directly): a
print consumes the queue ahead of a resting LIMIT order before it fills it, a print
through its price fills it at once, a shrinking level shrinks the queue, orders at one
price share a print in time priority, and every such fill explains itself."""

import asyncio
from decimal import Decimal

import pytest

from app.core.engine import Policy
from app.core.errors import MarketDataRefused
from app.core.events import OrderFilled
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Costs, Trade
from app.core.vocabulary import FillSource, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from app.store.base import OrderStore
from app.store.ids import new_number
from tests.store.test_contract import BTC, PLAIN, admit, book, order, quote

D = Decimal


def post_book(store: OrderStore, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int) -> None:
    asyncio.run(store.add_quote(BTC, book(bids, asks), PLAIN, ts, ts=ts, source=FillSource.BOOK))


def print_(store: OrderStore, price: str, qty: str, aggressor: Side, *, ts: int, policy: Policy = PLAIN) -> list:  # type: ignore[type-arg]
    trade = Trade(D(price), D(qty), buys=aggressor == Side.BUY)
    return asyncio.run(store.add_trade(BTC, trade, policy, ts, ts=ts))


def made(events: list) -> list[tuple[str, Decimal, Decimal, Decimal | None]]:  # type: ignore[type-arg]
    """(key, qty, price, queue ahead consumed) of each fill."""
    return [
        (e.order.idempotency_key, e.fill.qty, e.fill.price, e.fill.provenance.queue_ahead)
        for e in events
        if isinstance(e, OrderFilled)
    ]


def test_prints_consume_the_queue_ahead_then_fill_the_order_as_maker(store: OrderStore) -> None:
    post_book(store, [("100", "5"), ("99.5", "3")], [("100.5", "2")], ts=10)
    resting, _, _ = admit(store, order("bid", Side.BUY, qty=2.0, limit=100.0, at=11))
    assert print_(store, "100", "3", Side.SELL, ts=12) == []  # 3 of the 5 ahead
    assert print_(store, "100.5", "9", Side.BUY, ts=13) == []  # the asks: not its side
    filled = print_(store, "100", "4", Side.SELL, ts=14)
    assert made(filled) == [("bid", D(2), D(100), D(2))]
    fill = filled[0].fill
    assert fill.liquidity == Liquidity.MAKER
    p = fill.provenance
    assert (p.source, p.data_ts, p.level_price, p.level_size) == (FillSource.TRADE, 14, D(100), D(4))
    stored = store.get(resting.order_id)
    assert stored is not None
    assert (stored.status, [f.provenance.queue_ahead for f in stored.fills]) == (OrderStatus.FILLED, [D(2)])  # type: ignore[union-attr]


def test_a_print_through_the_price_fills_at_once_up_to_its_size(store: OrderStore) -> None:
    post_book(store, [("100", "5")], [("100.5", "2")], ts=10)
    admit(store, order("bid", Side.BUY, qty=2.0, limit=100.0, at=11))
    # A SELL print below the BUY's price: the queue at 100 is gone, the order fills.
    assert made(print_(store, "99.5", "1.5", Side.SELL, ts=12)) == [("bid", D("1.5"), D(100), D(5))]
    # Its queue is empty now: a print at its price fills the rest at once.
    assert made(print_(store, "100", "1", Side.SELL, ts=13)) == [("bid", D("0.5"), D(100), D(0))]


def test_a_shrinking_level_shrinks_the_queue_ahead_in_proportion(store: OrderStore) -> None:
    post_book(store, [("100", "6")], [("101", "1")], ts=10)
    admit(store, order("bid", Side.BUY, qty=5.0, limit=100.0, at=11))
    post_book(store, [("100", "3")], [("101", "1")], ts=12)  # half of the 6 ahead left
    post_book(store, [("100", "30")], [("101", "1")], ts=13)  # more behind it: no change
    assert made(print_(store, "100", "4", Side.SELL, ts=14)) == [("bid", D(1), D(100), D(3))]
    # A book whose bids no longer show 100 (99 is its best): nothing is left ahead.
    admit(store, order("bid-2", Side.BUY, qty=1.0, limit=100.0, at=15))
    post_book(store, [("99", "1")], [("101", "1")], ts=16)
    assert made(print_(store, "100", "0.5", Side.SELL, ts=17)) == [("bid", D("0.5"), D(100), D(0))]


def test_orders_at_one_price_share_a_print_in_time_priority_and_a_better_price_first(store: OrderStore) -> None:
    post_book(store, [("99", "1")], [("101", "1")], ts=10)  # nothing shown at 100 or 100.5
    admit(store, order("first", Side.BUY, qty=1.0, limit=100.0, at=11))
    admit(store, order("second", Side.BUY, qty=1.0, limit=100.0, at=12))
    admit(store, order("better", Side.BUY, qty=0.25, limit=100.5, at=13))
    assert made(print_(store, "100", "1.5", Side.SELL, ts=14)) == [
        ("better", D("0.25"), D("100.5"), D(0)),
        ("first", D(1), D(100), D(0)),
        ("second", D("0.25"), D(100), D(0)),
    ]


def test_a_buy_print_meets_the_resting_sells_and_fees_are_the_makers(store: OrderStore) -> None:
    costs = Policy(Costs(taker_fee_bps=D(10), maker_fee_bps=D(2)))
    asyncio.run(store.add_quote(BTC, quote("99", "101", "1", "2"), costs, 10, ts=10))
    admit(store, order("ask", Side.SELL, qty=3.0, limit=101.0, at=11), costs)  # behind the 2 shown
    filled = print_(store, "101", "4", Side.BUY, ts=12, policy=costs)
    assert made(filled) == [("ask", D(2), D(101), D(2))]
    assert filled[0].fill.fee == D("0.0404")  # 101 x 2 x 2 bps


def test_a_print_older_than_the_latest_market_data_is_refused_and_fills_nothing(store: OrderStore) -> None:
    post_book(store, [("100", "1")], [("101", "1")], ts=10)
    admit(store, order("bid", Side.BUY, qty=1.0, limit=100.0, at=11))
    with pytest.raises(MarketDataRefused) as refused:
        print_(store, "100", "5", Side.SELL, ts=9)
    assert refused.value.code == "OUT_OF_ORDER"
    # Nothing changed: the queue ahead is still the 1 shown.
    assert made(print_(store, "100", "1.5", Side.SELL, ts=12)) == [("bid", D("0.5"), D(100), D(1))]
    # And a quote older than that print is out of order too.
    with pytest.raises(MarketDataRefused):
        asyncio.run(store.add_quote(BTC, quote("99", "101"), PLAIN, 13, ts=11))


def test_a_limit_still_waiting_to_take_is_met_by_prints_too(store: OrderStore) -> None:
    """A LIMIT that came with no book rests at its price all the same: a print through
    it fills it, as maker at its own price (nothing is ahead of it: no book showed its
    price). A MARKET order waiting for a book is not a print's."""
    waiting, _, _ = admit(store, order("bid", Side.BUY, qty=1.0, limit=99.0, at=1))
    admit(store, order("market", Side.SELL, qty=1.0, at=2))
    assert made(print_(store, "98", "0.4", Side.SELL, ts=3)) == [("bid", D("0.4"), D(99), D(0))]
    assert made(print_(store, "99", "5", Side.BUY, ts=4)) == []  # a BUY print: it meets SELLs
    assert made(print_(store, "99", "5", Side.SELL, ts=5)) == [("bid", D("0.6"), D(99), D(0))]
    assert store.get(waiting.order_id).status == OrderStatus.FILLED  # type: ignore[union-attr]


def test_a_print_split_in_two_leaves_the_queues_where_one_print_would(store: OrderStore) -> None:
    """A joins behind 4; the book shows 6 and B joins behind those. One print of 7.5:
    4 ahead of A, A's 1, B's 6 less what A took... B gets 0.5. Printed as 5.5 then 2,
    B gets the same 0.5: what the first print gave A is not taken from B's queue again."""
    results = []
    for split in (["7.5"], ["5.5", "2"]):
        instrument = ("binance", f"Q{len(results)}/USDT")
        asyncio.run(store.add_quote(instrument, book([("650", "4")], [("651", "3")]), PLAIN, 1, ts=1))
        for key, qty, at in (("A", 1.0, 2), ("B", 3.0, 4)):
            kind = OrderKind(*instrument, Side.BUY, OrderType.LIMIT, TimeInForce.GTC)
            new = Order(
                number=new_number(), idempotency_key=f"{instrument[1]}-{key}", kind=kind,
                terms=OrderTerms.of(qty, 650.0, at, None),
            )  # fmt: skip
            asyncio.run(store.admit(new, PLAIN, at))
            if key == "A":
                asyncio.run(store.add_quote(instrument, book([("650", "6")], [("651", "3")]), PLAIN, 3, ts=3))
        fills: dict[str, Decimal] = {}
        for n, qty in enumerate(split):
            trade = Trade(D(650), D(qty), buys=False)
            for event in asyncio.run(store.add_trade(instrument, trade, PLAIN, 10 + n, ts=10 + n)):
                if isinstance(event, OrderFilled):
                    name = event.order.idempotency_key.rsplit("-", 1)[1]
                    fills[name] = fills.get(name, D(0)) + event.fill.qty
        results.append(fills)
    assert results == [{"A": D(1), "B": D("0.5")}, {"A": D(1), "B": D("0.5")}]


def test_a_level_shrunk_to_almost_nothing_still_takes_orders_and_prints(store: OrderStore) -> None:
    """A size of 5e-324 (the least float) at a level with an order in its queue, or a
    level that flickers between 4 and 0.001 a hundred times: the next order joins, and a
    print fills it past what is (barely) ahead, with no error."""
    post_book(store, [("150", "4")], [("151", "1")], ts=1)
    admit(store, order("first", Side.BUY, qty=1.0, limit=150.0, at=2))
    post_book(store, [("150", "5e-324")], [("151", "1")], ts=3)
    admit(store, order("second", Side.BUY, qty=1.0, limit=150.0, at=4))
    for n in range(100):
        post_book(store, [("150", "4")], [("151", "1")], ts=10 + 2 * n)
        post_book(store, [("150", "0.001")], [("151", "1")], ts=11 + 2 * n)
    admit(store, order("third", Side.BUY, qty=1.0, limit=150.0, at=300))
    # The first two have (next to) nothing ahead; the third joined behind 0.001.
    assert made(print_(store, "150", "2.5", Side.SELL, ts=301)) == [
        ("first", D(1), D(150), D(0)),
        ("second", D(1), D(150), D(0)),
        ("third", D("0.499"), D(150), D("0.001")),
    ]
