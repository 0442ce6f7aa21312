"""The book of resting orders: which orders a quote reaches, settling after fills, removal."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.core.book import Book
from app.core.matching import Reach
from app.core.order import Order, StoredFill, record_fill, transition
from app.core.vocabulary import Liquidity, OrderStatus, Side
from tests.core.factories import make_order, make_quote

PRICES = [98.7, 99.0, 99.1, 99.9, 100.0, 100.1, 100.3, 101.0]
EVERYTHING = Reach(ask=0.0, bid=float("inf"))  # reaches every BUY and every SELL limit


@st.composite
def resting(draw: st.DrawFn) -> list[tuple[Order, bool]]:
    """Orders as a store adds them: (order, passive). Acceptance times are distinct, but
    not in number order (ids are random in the service)."""
    count = draw(st.integers(min_value=0, max_value=12))
    numbers = draw(st.permutations(range(1, count + 1)))
    added = []
    for index, number in enumerate(numbers):
        limit = draw(st.none() | st.sampled_from(PRICES))
        order = make_order(number, draw(st.sampled_from(Side)), 1.0, limit, accepted_at=index * 10)
        added.append((order, limit is not None and draw(st.booleans())))
    return added


reaches = st.builds(lambda bid, ask: Reach.of(make_quote(bid, ask)), st.sampled_from(PRICES), st.sampled_from(PRICES))


def book_of(added: list[tuple[Order, bool]]) -> Book:
    book = Book()
    for order, passive in added:
        book.add(order, passive=passive)
    return book


def fill_whole(order: Order) -> None:
    record_fill(
        order,
        StoredFill(number=1, qty=order.remaining, price=Decimal(100), fee=Decimal(0), liquidity=Liquidity.TAKER, ts=1),
    )


@given(added=resting(), reach=reaches)
def test_reached_by_returns_what_reach_reaches_oldest_first(added: list[tuple[Order, bool]], reach: Reach) -> None:
    """Every open order Reach reaches is returned, passive ones only if reached; waiting
    ones (every quote looks at them) as takers, passive ones as makers; oldest first."""
    book = book_of(added)
    found = book.reached_by(reach)
    assert [order.accepted_at for order, _ in found] == sorted(order.accepted_at for order, _ in found)
    assert len({id(order) for order, _ in found}) == len(found)
    expected = {
        id(order): not passive
        for order, passive in added
        if not passive or reach.reaches(order.side, order.limit_price)
    }
    assert {id(order): taker for order, taker in found} == expected
    reached = {id(order) for order, _ in added if reach.reaches(order.side, order.limit_price)}
    assert {id(order) for order, _ in found if reach.reaches(order.side, order.limit_price)} == reached


@given(added=resting(), reach=reaches, data=st.data())
def test_settle_drops_finished_and_makes_unreached_waiting_limits_passive(
    added: list[tuple[Order, bool]], reach: Reach, data: st.DataObject
) -> None:
    """After a quote: finished orders leave the book, waiting LIMITs it did not reach
    rest passive (makers from then on), the rest stay as they were."""
    book = book_of(added)
    found = book.reached_by(reach)
    for order, _ in found:
        if reach.reaches(order.side, order.limit_price) and data.draw(st.booleans()):
            fill_whole(order)
    book.settle(reach)
    still_open = [(order, passive) for order, passive in added if order.is_open]
    assert {id(order) for order in book.orders()} == {id(order) for order, _ in still_open}
    assert len(book) == len(still_open)
    now_passive = {
        id(order): passive or not reach.reaches(order.side, order.limit_price) for order, passive in still_open
    }
    assert {id(order): not taker for order, taker in book.reached_by(EVERYTHING)} == now_passive


def test_settle_keeps_reached_but_unfilled_waiting_orders_taking() -> None:
    """A crossing LIMIT the size ran out on waits as a taker; MARKET orders always wait."""
    book = Book()
    limit, market = make_order(1, Side.BUY, 1.0, 100.1, accepted_at=1), make_order(2, Side.SELL, accepted_at=2)
    book.add(limit, passive=False)
    book.add(market, passive=False)
    reach = Reach.of(make_quote(99.1, 100.1))
    book.settle(reach)
    assert book.reached_by(reach) == [(limit, True), (market, True)]
    book.settle(Reach.of(make_quote(99.1, 100.3)))  # no longer reaches the LIMIT
    assert book.reached_by(EVERYTHING) == [(limit, False), (market, True)]


def test_passive_order_reached_only_when_crossed() -> None:
    """A passive BUY at 100 is reached by an ask of 100 or below, not by 100.1."""
    book = Book()
    order = make_order(1, Side.BUY, 1.0, 100.0)
    book.add(order, passive=True)
    assert book.reached_by(Reach.of(make_quote(99, 100.1))) == []
    assert book.reached_by(Reach.of(make_quote(99, 100.0))) == [(order, False)]


def test_passive_market_order_waits() -> None:
    """A MARKET order asked to rest passive has no price to sort by: it waits as a taker."""
    book = Book()
    order = make_order(1, Side.BUY)
    book.add(order, passive=True)
    assert book.reached_by(Reach.of(make_quote(1, 2))) == [(order, True)]


def test_remove_waiting_and_passive_orders() -> None:
    """remove takes an order out wherever it rests; an order not there is ignored."""
    book = Book()
    same_price = [make_order(n, Side.SELL, 1.0, 100.0, accepted_at=n) for n in (3, 1, 2)]
    waiting = make_order(4, Side.BUY, accepted_at=4)
    for order in same_price:
        book.add(order, passive=True)
    book.add(waiting, passive=False)
    assert len(book) == 4
    book.remove(same_price[2])
    book.remove(waiting)
    book.remove(make_order(5, Side.SELL, 1.0, 100.0))  # never added
    book.remove(make_order(6, Side.BUY))  # never added, no price
    assert [order.number for order, _ in book.reached_by(EVERYTHING)] == [1, 3]  # oldest first
    assert len(book) == 2


def test_orders_lists_only_open_ones() -> None:
    """orders() skips an order that finished before the book settled."""
    book = Book()
    first, second = make_order(1, Side.BUY, 1.0, 100.0), make_order(2, Side.BUY, 1.0, 99.0)
    book.add(first, passive=True)
    book.add(second, passive=True)
    transition(first, OrderStatus.CANCELED, 5)
    assert book.orders() == [second]
