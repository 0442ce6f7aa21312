"""LATENCY_MS on every store (the store contract, called directly): an order fills only
against market data stamped at least the latency after its acceptance; until then it
waits (an IOC or FOK too, ending after the first such data), and a LIMIT order rests
passively only once data that late has passed it by."""

import asyncio
from decimal import Decimal

from app.core.engine import Policy
from app.core.events import OrderExpired, OrderFilled
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Trade, book_of
from app.core.vocabulary import FillSource, OrderStatus, OrderType, Side, TimeInForce
from app.store.base import OrderStore
from app.store.ids import new_number
from tests.store.test_contract import BTC, admit, order, quote

D = Decimal
LATE = Policy(latency=50)


def post(store: OrderStore, bid: str, ask: str, ts: int, ask_size: str | None = None) -> list:  # type: ignore[type-arg]
    return asyncio.run(store.add_quote(BTC, quote(bid, ask, None, ask_size), LATE, ts, ts=ts))


def filled(events: list) -> list[tuple[str, Decimal, Decimal]]:  # type: ignore[type-arg]
    return [(e.order.idempotency_key, e.fill.qty, e.fill.price) for e in events if isinstance(e, OrderFilled)]


def timed(key: str, tif: TimeInForce, qty: float, limit: float | None, at: int) -> Order:
    kind = OrderKind(*BTC, Side.BUY, OrderType.MARKET if limit is None else OrderType.LIMIT, tif)
    return Order(number=new_number(), idempotency_key=key, kind=kind, terms=OrderTerms.of(qty, limit, at, None))


def status(store: OrderStore, placed: Order) -> tuple[OrderStatus, Decimal]:
    read = store.get(placed.order_id)
    assert read is not None
    return read.status, read.filled_qty


def test_an_order_fills_only_against_data_stamped_a_latency_after_it(store: OrderStore) -> None:
    post(store, "99", "100", ts=90)
    placed, _, events = admit(store, order("market", qty=1.0, at=100), LATE)
    assert filled(events) == []  # the quote it came to is older than its arrival at the venue
    assert filled(post(store, "100", "101", ts=149)) == []
    assert filled(post(store, "101", "102", ts=150)) == [("market", D(1), D(102))]
    assert status(store, placed) == (OrderStatus.FILLED, D(1))


def test_an_ioc_or_fok_waits_for_its_first_data_then_ends(store: OrderStore) -> None:
    post(store, "99", "100", ts=90)
    ioc, _, _ = admit(store, timed("ioc", TimeInForce.IOC, 1.0, 99.5, at=100), LATE)
    fok, _, _ = admit(store, timed("fok", TimeInForce.FOK, 2.0, None, at=100), LATE)
    ioc_late, _, _ = admit(store, timed("ioc-late", TimeInForce.IOC, 1.0, None, at=130), LATE)
    assert (status(store, ioc), status(store, fok)) == ((OrderStatus.NEW, D(0)), (OrderStatus.NEW, D(0)))
    # At 160 the first two have reached the venue: the IOC's limit is below the ask
    # (it fills nothing and ends); the FOK finds 1.5 of its 2 (nothing, ends). The
    # later IOC has not arrived yet and still waits; at 180 it takes the 1.5 left.
    events = post(store, "99", "100", ts=160, ask_size="1.5")
    assert filled(events) == []
    assert {e.order.idempotency_key for e in events if isinstance(e, OrderExpired)} == {"ioc", "fok"}
    assert status(store, ioc_late) == (OrderStatus.NEW, D(0))
    events = post(store, "99", "100", ts=180, ask_size="1.5")
    assert filled(events) == [("ioc-late", D(1), D(100))]
    assert status(store, ioc_late) == (OrderStatus.FILLED, D(1))


def test_a_limit_rests_passively_only_once_data_that_late_has_passed_it_by(store: OrderStore) -> None:
    post(store, "99", "100", ts=90)
    bid, _, _ = admit(store, order("bid", qty=1.0, limit=99.5, at=100), LATE)
    post(store, "99", "100", ts=120)  # before it arrived: it still takes when it comes
    post(store, "99", "99.5", ts=150)  # it arrives: the ask meets it, it takes at 99.5
    assert status(store, bid) == (OrderStatus.FILLED, D(1))
    admit(store, order("rest", qty=1.0, limit=99.0, at=200), LATE)
    post(store, "98", "100", ts=260)  # it arrives below the ask: passive from now on
    events = post(store, "97", "98.5", ts=270)
    assert filled(events) == [("rest", D(1), D(99))]  # as maker, at its own price
    assert [e.fill.liquidity.value for e in events if isinstance(e, OrderFilled)] == ["MAKER"]


def test_a_print_fills_only_orders_that_had_arrived(store: OrderStore) -> None:
    post(store, "99", "100", ts=90)
    resting, _, _ = admit(store, order("bid", qty=1.0, limit=98.0, at=100), LATE)
    post(store, "99", "100", ts=160)  # passes it by once it has arrived
    trade = Trade(D(98), D(1), buys=False)
    events = asyncio.run(store.add_trade(BTC, trade, LATE, 170, ts=170))
    assert filled(events) == [("bid", D(1), D(98))]
    assert status(store, resting) == (OrderStatus.FILLED, D(1))


def test_a_fok_the_balance_cannot_pay_whole_fills_nothing_and_ends(store: OrderStore) -> None:
    """A FOK MARKET BUY reserved at the book it came to (10 at 100); when it arrives the
    book is dearer (5 at 100, 5 at 200): 1,500 where the account holds 1,000. It fills
    nothing, ends, and gives its reservation back; the book keeps its size."""
    store.open_account({"USDT": D(1000)}, {"BTC", "USDT"}, LATE)
    post(store, "99", "100", ts=90, ask_size="10")
    fok, _, _ = admit(store, timed("fok", TimeInForce.FOK, 10.0, None, at=100), LATE)
    assert store.balances()["USDT"].reserved == D(1000)
    book = book_of([(99.0, 1.0)], [(100.0, 5.0), (200.0, 5.0)])
    events = asyncio.run(store.add_quote(BTC, book, LATE, 160, ts=160, source=FillSource.BOOK))
    assert filled(events) == []
    assert status(store, fok) == (OrderStatus.EXPIRED, D(0))
    assert store.balances()["USDT"].reserved == 0
    _, _, taken = admit(store, order("after", qty=5.0, at=170), Policy())  # no latency: it takes at once
    assert filled(taken) == [("after", D(5), D(100))]


def test_a_limit_takes_its_place_in_the_queue_when_it_arrives(store: OrderStore) -> None:
    """Accepted at 100 while the book shows 4 at its price; by its arrival (150) the book
    shows 10 there: it joins behind the 10, not the 4. A print of 6 after it arrived
    fills nothing; one more of 5 fills it."""
    asyncio.run(store.add_quote(BTC, book_of([(150.0, 4.0)], [(151.0, 1.0)]), LATE, 90, ts=90))
    placed, _, _ = admit(store, order("bid", qty=1.0, limit=150.0, at=100), LATE)
    asyncio.run(store.add_quote(BTC, book_of([(150.0, 10.0)], [(151.0, 1.0)]), LATE, 120, ts=120))
    asyncio.run(store.add_quote(BTC, book_of([(150.0, 10.0)], [(151.0, 1.0)]), LATE, 160, ts=160))  # it arrives
    sell = Trade(D(150), D(6), buys=False)
    assert filled(asyncio.run(store.add_trade(BTC, sell, LATE, 170, ts=170))) == []
    sell = Trade(D(150), D(5), buys=False)
    assert filled(asyncio.run(store.add_trade(BTC, sell, LATE, 180, ts=180))) == [("bid", D(1), D(150))]
    assert status(store, placed) == (OrderStatus.FILLED, D(1))


def test_a_print_before_an_order_arrives_does_not_move_its_place(store: OrderStore) -> None:
    """The first data after its arrival is a print: the order takes its place behind
    what the latest book shows (4: a print changes no book), then the print applies to
    it. The print of 3 before it arrived took nothing of its queue."""
    asyncio.run(store.add_quote(BTC, book_of([(150.0, 4.0)], [(151.0, 1.0)]), LATE, 90, ts=90))
    admit(store, order("bid", qty=1.0, limit=150.0, at=100), LATE)
    before = Trade(D(150), D(3), buys=False)
    assert filled(asyncio.run(store.add_trade(BTC, before, LATE, 120, ts=120))) == []  # not there yet
    after = Trade(D(150), D("4.5"), buys=False)  # the 4 ahead of it, then 0.5 for it
    assert filled(asyncio.run(store.add_trade(BTC, after, LATE, 160, ts=160))) == [("bid", D("0.5"), D(150))]
