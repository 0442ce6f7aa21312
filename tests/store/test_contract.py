"""The store contract, called directly (no HTTP, no service) on every store: memory,
SQLite and PostgreSQL answer alike. Each store loads an instrument's state, calls the
core and persists what its events describe; these tests read it back."""

import asyncio
from decimal import Decimal

import pytest

from app.core.controls import TradingState
from app.core.engine import Policy
from app.core.errors import IntentRefused, MarketDataRefused
from app.core.events import OrderAccepted, OrderCanceled, OrderFilled, TradingStateChanged
from app.core.order import Order, OrderKind, OrderTerms, StoredFill, differing_terms
from app.core.values import Costs, Quote, book_of
from app.core.vocabulary import CancelReason, FillSource, OrderStatus, OrderType, Side, TimeInForce, TradingStateName
from app.store.base import OrderFilter, OrderStore
from app.store.errors import StoreFull
from app.store.ids import new_number

BTC = ("binance", "BTC/USDT")
PLAIN = Policy()


def order(key: str, side: Side = Side.BUY, qty: float = 1.0, limit: float | None = None, at: int = 1) -> Order:
    kind = OrderKind(*BTC, side, OrderType.MARKET if limit is None else OrderType.LIMIT, TimeInForce.GTC)
    return Order(number=new_number(), idempotency_key=key, kind=kind, terms=OrderTerms.of(qty, limit, at, None))


def admit(store: OrderStore, new: Order, policy: Policy = PLAIN, cap: int | None = None) -> tuple[Order, bool, list]:  # type: ignore[type-arg]
    return asyncio.run(store.admit(new, policy, new.accepted_at, cap))


def quote(bid: str, ask: str, bid_size: str | None = None, ask_size: str | None = None) -> Quote:
    return Quote(
        Decimal(bid),
        Decimal(ask),
        None if bid_size is None else Decimal(bid_size),
        None if ask_size is None else Decimal(ask_size),
    )


def test_an_admitted_order_is_found_by_id_and_key_and_counted(store: OrderStore) -> None:
    stored, created, events = admit(store, order("k1"))
    assert created
    assert [type(event) for event in events] == [OrderAccepted]
    assert store.get(stored.order_id).idempotency_key == "k1"  # type: ignore[union-attr]
    assert store.get_by_key("k1").order_id == stored.order_id  # type: ignore[union-attr]
    assert store.get_by_key("k2") is None
    assert (store.count(), store.count_by_status()) == (1, {OrderStatus.NEW: 1})


def test_a_taken_key_answers_with_its_order_and_creates_nothing(store: OrderStore) -> None:
    first, _, _ = admit(store, order("k"))
    again, created, events = admit(store, order("k", qty=2.0))
    assert (again.order_id, created, events) == (first.order_id, False, [])
    assert store.count() == 1


def test_a_taken_key_answers_with_its_order_as_stored_term_for_term(store: OrderStore) -> None:
    """The order a taken key answers with is read back from the store (the SQL stores
    from their rows): its terms must still be those of the intent exactly, or a retry
    would be told its payload differs."""
    kind = OrderKind(*BTC, Side.SELL, OrderType.LIMIT, TimeInForce.IOC)

    def intent(qty: float, limit: float, at: int) -> Order:
        return Order(number=new_number(), idempotency_key="k", kind=kind, terms=OrderTerms.of(qty, limit, at, at))

    first, _, _ = admit(store, intent(0.1, 3150.25, 1))
    again, created, _ = admit(store, intent(0.1, 3150.25, 2))
    assert (again.order_id, created) == (first.order_id, False)
    assert differing_terms(again, intent(0.1, 3150.25, 3)) == []
    assert differing_terms(again, intent(0.1 + 0.2, 3150.25, 3)) == ["qty"]
    other = Order(
        number=new_number(),
        idempotency_key="k",
        kind=OrderKind(*BTC, Side.BUY, OrderType.MARKET, TimeInForce.GTC),
        terms=OrderTerms.of(0.1, None, 3, None),
    )
    assert differing_terms(admit(store, other)[0], other) == ["side", "type", "limit_price", "time_in_force"]


def test_the_cap_refuses_a_new_key_but_answers_a_taken_one(store: OrderStore) -> None:
    admit(store, order("a"), cap=1)
    with pytest.raises(StoreFull):
        admit(store, order("b"), cap=1)
    assert admit(store, order("a"), cap=1)[1] is False


def test_a_refused_intent_leaves_nothing_behind(store: OrderStore) -> None:
    store.set_trading_state(TradingState(TradingStateName.HALTED, "test", 5))
    with pytest.raises(IntentRefused, match="HALTED"):
        admit(store, order("k"))
    assert (store.count(), store.get_by_key("k")) == (0, None)


def test_a_quote_fills_resting_orders_oldest_first_and_moves_the_position(store: OrderStore) -> None:
    older, _, _ = admit(store, order("a", qty=1.0, at=1))
    newer, _, _ = admit(store, order("b", qty=1.0, at=2))
    events = asyncio.run(store.add_quote(BTC, quote("99", "100", ask_size="1.5"), PLAIN, 10))
    fills = [(event.order.order_id, event.fill.qty, event.after) for event in events if isinstance(event, OrderFilled)]
    assert fills == [
        (older.order_id, Decimal(1), OrderStatus.FILLED),
        (newer.order_id, Decimal("0.5"), OrderStatus.PARTIALLY_FILLED),
    ]
    [view] = store.positions()
    assert (view.position.qty, view.position.cost) == (Decimal("1.5"), Decimal(150))
    assert store.get(newer.order_id).filled_qty == Decimal("0.5")  # type: ignore[union-attr]
    # What the fills took of the quote's size is gone for the next order.
    assert admit(store, order("c", qty=1.0, at=3))[2][1:] == []


def test_a_cancel_ends_an_open_order_once(store: OrderStore) -> None:
    resting, _, _ = admit(store, order("k", limit=90.0))
    result = store.cancel(resting.order_id, 7)
    assert result is not None
    canceled, event = result
    assert isinstance(event, OrderCanceled)
    assert (canceled.status, event.before, event.reason) == (
        OrderStatus.CANCELED,
        OrderStatus.NEW,
        CancelReason.REQUESTED,
    )
    again = store.cancel(resting.order_id, 8)
    assert again is not None
    assert (again[0].status, again[1]) == (OrderStatus.CANCELED, None)
    assert store.cancel("paper-nope", 9) is None


def test_the_kill_switch_cancels_every_open_order_in_its_step(store: OrderStore) -> None:
    admit(store, order("a", limit=90.0, at=1))
    admit(store, order("b", limit=91.0, at=2))
    change = store.set_trading_state(TradingState(TradingStateName.HALTED, "why", 5), cancel_open=True)
    assert isinstance(change.events[0], TradingStateChanged)
    assert [event.order.idempotency_key for event in change.events[1:]] == ["a", "b"]  # type: ignore[union-attr]
    assert store.trading_state().state == TradingStateName.HALTED
    assert store.count_by_status().get(OrderStatus.CANCELED) == 2
    looser = store.set_trading_state(TradingState(TradingStateName.ACTIVE, "start-up", 6), only_stricter=True)
    assert (looser.events, store.trading_state().state) == ([], TradingStateName.HALTED)


def test_balances_reserve_on_admission_and_release_on_cancel(store: OrderStore) -> None:
    policy = Policy(Costs(taker_fee_bps=Decimal(10)))
    store.open_account({"USDT": Decimal(1000)}, {"BTC", "USDT"}, policy)
    resting, _, _ = admit(store, order("k", qty=2.0, limit=100.0), policy)
    held = store.balances()["USDT"]
    assert (held.total, held.reserved) == (Decimal(1000), Decimal("200.2"))
    store.cancel(resting.order_id, 5)
    assert store.balances()["USDT"].reserved == 0


def test_listing_pages_newest_first_and_filters(store: OrderStore) -> None:
    for n in range(5):
        admit(store, order(f"k{n}", side=Side.BUY if n % 2 else Side.SELL, limit=90.0 + n, at=n))
    page, position = store.newest_first(None, 2, OrderFilter())
    assert [o.idempotency_key for o in page] == ["k4", "k3"]
    rest, _ = store.newest_first(position, 10, OrderFilter())
    assert [o.idempotency_key for o in rest] == ["k2", "k1", "k0"]
    buys, _ = store.newest_first(None, 10, OrderFilter(side=Side.BUY))
    assert [o.idempotency_key for o in buys] == ["k3", "k1"]


def test_the_last_page_of_a_filter_says_it_is_the_last(store: OrderStore) -> None:
    """next_cursor is None on the page that holds the oldest order the filter keeps,
    even when older orders that it does not keep are left."""
    for n in range(4):
        admit(store, order(f"k{n}", side=Side.SELL if n < 2 else Side.BUY, limit=90.0, at=n))
    buys, position = store.newest_first(None, 2, OrderFilter(side=Side.BUY))
    assert ([o.idempotency_key for o in buys], position) == (["k3", "k2"], None)
    everything, position = store.newest_first(None, 4, OrderFilter())
    assert (len(everything), position) == (4, None)
    _, position = store.newest_first(None, 3, OrderFilter())
    assert position is not None
    assert [o.idempotency_key for o in store.newest_first(position, 3, OrderFilter())[0]] == ["k0"]
    assert store.newest_first(position, 3, OrderFilter())[1] is None


def fill_fields(fill: StoredFill) -> tuple[object, ...]:
    return (fill.number, fill.qty, fill.price, fill.fee, fill.liquidity, fill.ts, fill.seq)


def test_orders_read_and_listed_carry_all_their_fills_in_order(store: OrderStore) -> None:
    """An order with several fills is one order on a page (whatever a store reads it
    with), with every fill oldest first, and the pages below it go on from the next order."""
    for n in range(4):
        admit(store, order(f"k{n}", qty=3.0, at=n))
    # Quotes at 100, 101, 102, 103 with 1, 1, 2, 3 on offer fill the oldest orders first.
    for n, size in enumerate(("1", "1", "2", "3")):
        asyncio.run(store.add_quote(BTC, quote("99", f"10{n}", ask_size=size), PLAIN, 10 + n))
    by_key = {key: store.get_by_key(key) for key in ("k0", "k1", "k2", "k3")}
    prices = {key: [fill.price for fill in found.fills] for key, found in by_key.items()}  # type: ignore[union-attr]
    assert prices == {
        "k0": [Decimal(100), Decimal(101), Decimal(102)],
        "k1": [Decimal(102), Decimal(103)],
        "k2": [Decimal(103)],
        "k3": [],
    }
    listed: list[Order] = []
    position: int | None = None
    for _ in range(3):
        page, position = store.newest_first(position, 3 if not listed else 2, OrderFilter())
        listed += page
        if position is None:
            break
    assert [o.idempotency_key for o in listed] == ["k3", "k2", "k1", "k0"]
    assert position is None
    for found in listed:
        assert [fill.price for fill in found.fills] == prices[found.idempotency_key]
        read = store.get(found.order_id)
        assert read is not None
        assert [fill_fields(fill) for fill in found.fills] == [fill_fields(fill) for fill in read.fills]
        assert all(fill.seq is not None for fill in found.fills)


def test_a_listing_keeps_any_of_several_statuses(store: OrderStore) -> None:
    """status NEW or PARTIALLY_FILLED: the open orders, newest first, paged."""
    admit(store, order("filled", qty=1.0, at=1))
    admit(store, order("partial", qty=2.0, at=2))
    asyncio.run(store.add_quote(BTC, quote("99", "100", ask_size="2"), PLAIN, 3))  # fills the first, half the second
    admit(store, order("new", limit=90.0, at=4))
    canceled, _, _ = admit(store, order("canceled", limit=90.0, at=5))
    store.cancel(canceled.order_id, 6)
    admit(store, order("newest", limit=90.0, at=7))
    open_ = OrderFilter(statuses=frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}))
    page, position = store.newest_first(None, 2, open_)
    assert [o.idempotency_key for o in page] == ["newest", "new"]
    rest, position = store.newest_first(position, 2, open_)
    assert ([o.idempotency_key for o in rest], position) == (["partial"], None)
    ended = OrderFilter(statuses=frozenset({OrderStatus.FILLED, OrderStatus.CANCELED}), side=Side.BUY)
    assert [o.idempotency_key for o in store.newest_first(None, 10, ended)[0]] == ["canceled", "filled"]
    assert store.newest_first(None, 10, OrderFilter(statuses=frozenset({OrderStatus.EXPIRED}))) == ([], None)
    assert store.count_by_status() | {OrderStatus.EXPIRED: 0} == {
        OrderStatus.NEW: 2,
        OrderStatus.PARTIALLY_FILLED: 1,
        OrderStatus.FILLED: 1,
        OrderStatus.CANCELED: 1,
        OrderStatus.EXPIRED: 0,
    }


def test_an_order_s_fills_come_in_pages_by_seq(store: OrderStore) -> None:
    """A page of an order's fills: oldest first from a seq, and whether more follow;
    another order's fills, on the same quotes, are not among them."""
    many, _, _ = admit(store, order("many", qty=5.0, at=1))
    other, _, _ = admit(store, order("other", qty=5.0, at=2))
    for n in range(7):
        asyncio.run(
            store.add_quote(BTC, quote("99", "100", ask_size="1"), PLAIN, 10 + n)
        )  # 5 to the older, then 2 to other
    found = store.order_fills(many.order_id, 0, 2)
    assert found is not None
    held, first, more = found
    assert (held.order_id, len(first), more) == (many.order_id, 2, True)
    seqs = [fill.seq for fill in first]
    assert None not in seqs
    assert seqs == sorted(seqs)  # type: ignore[type-var]
    pages = [first]
    while more:
        _, page, more = store.order_fills(many.order_id, pages[-1][-1].seq or 0, 2)  # type: ignore[misc]
        pages.append(page)
    fills = [fill for page in pages for fill in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sum(fill.qty for fill in fills) == Decimal(5)
    assert [fill.seq for fill in fills] == sorted({fill.seq for fill in fills})  # type: ignore[type-var]
    assert {fill.fill_id for fill in fills}.isdisjoint(
        fill.fill_id
        for fill in store.order_fills(other.order_id, 0, 100)[1]  # type: ignore[index]
    )
    assert store.order_fills(many.order_id, fills[-1].seq or 0, 2)[1:] == ([], False)  # type: ignore[index]
    _, whole, more = store.order_fills(many.order_id, 0, 5)  # type: ignore[misc]
    assert ([fill.fill_id for fill in whole], more) == ([fill.fill_id for fill in fills], False)
    assert store.order_fills(many.order_id, 0, 4)[2] is True  # type: ignore[index]
    assert store.order_fills("paper-a1b2c3d4-e5f6-4890-abcd-ef1234567890", 0, 5) is None
    assert store.order_fills("nope", 0, 5) is None


def test_market_data_older_than_the_latest_is_refused_and_changes_nothing(store: OrderStore) -> None:
    asyncio.run(store.add_quote(BTC, quote("99", "100"), PLAIN, 10, ts=8))
    with pytest.raises(MarketDataRefused) as refused:
        asyncio.run(store.add_quote(BTC, quote("50", "51"), PLAIN, 11, ts=7))
    assert refused.value.code == "OUT_OF_ORDER"
    assert store.market_data_times() == {BTC: 8}
    # The refused quote did not become the latest: an order fills at the one before.
    _, _, events = admit(store, order("k", at=12))
    assert [(event.fill.qty, event.fill.price) for event in events if isinstance(event, OrderFilled)] == [
        (Decimal(1), Decimal(100))
    ]
    # Unstamped, a quote takes the time it arrives (12 here), or the latest's if later.
    asyncio.run(store.add_quote(BTC, quote("101", "102"), PLAIN, 12))
    asyncio.run(store.add_quote(BTC, quote("102", "103"), PLAIN, 11))
    assert store.market_data_times() == {BTC: 12}


def test_stale_market_data_fills_nothing_until_fresh_data_comes(store: OrderStore) -> None:
    aged = Policy(max_quote_age=1_000)
    asyncio.run(store.add_quote(BTC, quote("99", "100"), aged, 1_000, ts=1_000))
    waiting, _, events = admit(store, order("waits", at=2_001), aged)
    assert ([type(event) for event in events], waiting.status) == ([OrderAccepted], OrderStatus.NEW)
    with pytest.raises(MarketDataRefused) as refused:
        asyncio.run(store.add_quote(BTC, quote("99", "100"), aged, 3_000, ts=1_999))
    assert refused.value.code == "STALE_MARKET_DATA"
    filled = asyncio.run(store.add_quote(BTC, quote("100", "101"), aged, 3_000, ts=2_500))
    assert [(event.order.idempotency_key, event.fill.price) for event in filled if isinstance(event, OrderFilled)] == [
        ("waits", Decimal(101))
    ]


def test_each_fill_keeps_its_provenance_wherever_it_is_read(store: OrderStore) -> None:
    costs = Policy(Costs(slippage_bps=Decimal(10), taker_fee_bps=Decimal(5), maker_fee_bps=Decimal(1)))
    asyncio.run(store.add_quote(BTC, quote("99", "100", ask_size="1.5"), costs, 20, ts=15))
    arrived, _, _ = admit(store, order("taker", qty=1.0, at=21), costs)
    resting, _, _ = admit(store, order("maker", qty=2.0, limit=98.0, at=22), costs)
    asyncio.run(store.add_quote(BTC, quote("96", "97", ask_size="3"), costs, 30, ts=28))
    expected = {
        "taker": [(FillSource.ARRIVAL, 15, Decimal(100), Decimal("1.5"), Decimal(10), Decimal(5))],
        # Below the ask on arrival it rests; the next quote crosses it: maker.
        "maker": [(FillSource.QUOTE, 28, Decimal(97), Decimal(3), Decimal(0), Decimal(1))],
    }

    def made(fill: StoredFill) -> tuple[object, ...]:
        p = fill.provenance
        assert p is not None
        return (p.source, p.data_ts, p.level_price, p.level_size, p.slippage_bps, p.fee_bps)

    for placed in (arrived, resting):
        key = placed.idempotency_key
        read = store.get(placed.order_id)
        assert read is not None
        assert [made(fill) for fill in read.fills] == expected[key]
        paged = store.order_fills(placed.order_id, 0, 10)
        assert paged is not None
        assert [made(fill) for fill in paged[1]] == expected[key]
    journaled = [(order.idempotency_key, made(fill)) for order, fill in store.fills_after(0, 10)]
    assert journaled == [("taker", expected["taker"][0]), ("maker", expected["maker"][0])]


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Quote:
    """A book with depth, from the levels as a client writes them, best first."""
    return book_of([(float(p), float(s)) for p, s in bids], [(float(p), float(s)) for p, s in asks])


def fills_of(events: list[object]) -> list[tuple[str, Decimal, Decimal, Decimal | None]]:
    """(key, qty, price, level size before) of each fill, in order."""
    return [
        (e.order.idempotency_key, e.fill.qty, e.fill.price, e.fill.provenance.level_size)  # type: ignore[union-attr]
        for e in events
        if isinstance(e, OrderFilled)
    ]


def test_a_book_is_walked_and_what_fills_take_is_gone_until_the_next_book(store: OrderStore) -> None:
    """Asks 1 at 100, 2 at 101, 5 at 102. A MARKET BUY of 2.5 walks two levels; the
    next one starts at what is left (0.5 at 101), also once the store reads the book
    back; a new book brings the sizes back."""
    asks = [("100", "1"), ("101", "2"), ("102", "5")]
    asyncio.run(store.add_quote(BTC, book([("99", "1")], asks), PLAIN, 10, ts=10, source=FillSource.BOOK))
    _, _, first = admit(store, order("first", qty=2.5, at=11))
    assert fills_of(first) == [
        ("first", Decimal(1), Decimal(100), Decimal(1)),
        ("first", Decimal("1.5"), Decimal(101), Decimal(2)),
    ]
    _, _, second = admit(store, order("second", qty=1.0, at=12))
    assert fills_of(second) == [
        ("second", Decimal("0.5"), Decimal(101), Decimal("0.5")),
        ("second", Decimal("0.5"), Decimal(102), Decimal(5)),
    ]
    asyncio.run(store.add_quote(BTC, book([("99", "1")], asks), PLAIN, 20, ts=20, source=FillSource.BOOK))
    _, _, third = admit(store, order("third", qty=1.0, at=21))
    assert fills_of(third) == [("third", Decimal(1), Decimal(100), Decimal(1))]


def test_a_book_fills_resting_orders_walking_its_levels_in_time_priority(store: OrderStore) -> None:
    """Passive orders the book crosses fill at their own price, as makers, once per
    level they reach, sharing the levels oldest first; each fill names the book."""
    asyncio.run(store.add_quote(BTC, quote("95", "105"), PLAIN, 1, ts=1))
    admit(store, order("buy-101", Side.BUY, qty=4.0, limit=101.0, at=2))
    admit(store, order("buy-100.8", Side.BUY, qty=1.0, limit=100.8, at=3))
    admit(store, order("sell-99.2", Side.SELL, qty=2.0, limit=99.2, at=4))
    bids = [("100", "1"), ("99.5", "1"), ("99", "3")]
    asks = [("100.5", "1"), ("101", "2"), ("102", "9")]
    events = asyncio.run(store.add_quote(BTC, book(bids, asks), PLAIN, 5, ts=5, source=FillSource.BOOK))
    assert fills_of(events) == [
        ("buy-101", Decimal(1), Decimal(101), Decimal(1)),
        ("buy-101", Decimal(2), Decimal(101), Decimal(2)),
        ("sell-99.2", Decimal(1), Decimal("99.2"), Decimal(1)),
        ("sell-99.2", Decimal(1), Decimal("99.2"), Decimal(1)),
    ]
    filled = [e.fill for e in events if isinstance(e, OrderFilled)]
    assert {(f.liquidity.value, f.provenance.source, f.provenance.data_ts) for f in filled} == {  # type: ignore[union-attr]
        ("MAKER", FillSource.BOOK, 5)
    }
    assert [p.level_price for p in (f.provenance for f in filled) if p is not None] == [
        Decimal("100.5"),
        Decimal(101),
        Decimal(100),
        Decimal("99.5"),
    ]
    # What is left of the 101 BUY rests; the 100.8 BUY found the 100.5 level taken.
    left = {o.idempotency_key: (o.status, o.filled_qty) for o in store.newest_first(None, 10, OrderFilter())[0]}
    assert left == {
        "buy-101": (OrderStatus.PARTIALLY_FILLED, Decimal(3)),
        "buy-100.8": (OrderStatus.NEW, Decimal(0)),
        "sell-99.2": (OrderStatus.FILLED, Decimal(2)),
    }
