"""The fill model: Reach, fill prices, size sharing and fees, over exact decimals."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.core.matching import Fill, Reach, Working, fill_price, match, touch, walk_price
from app.core.values import Costs, Quote, exact
from app.core.vocabulary import Liquidity, OrderType, Side
from tests.core.factories import make_book, make_quote

# Prices as a client writes them: at most 15 significant digits, so the float it sends
# reads back as the same text, and comparing the texts is the truth Reach must agree with.
written = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999.99"), places=2) | st.sampled_from(
    [Decimal(text) for text in ("99.1", "100.1", "0.1", "0.3", "100.3", "99.99", "1e-8", "0.00000001", "123456.789")]
)
binary = st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False)
NO_COSTS = Costs()


def working(ref: int, side: Side, remaining: str, limit: float | None = None, *, taker: bool = False) -> Working:
    order_type = OrderType.MARKET if limit is None else OrderType.LIMIT
    return Working(ref, side, order_type, limit, Decimal(remaining), taker)


@given(ask=written, bid=written, limit=written)
def test_reach_agrees_with_the_written_decimals(ask: Decimal, bid: Decimal, limit: Decimal) -> None:
    """A BUY is reached iff ask <= limit and a SELL iff bid >= limit, as the client wrote them."""
    reach = Reach.of(Quote(exact(float(bid)), exact(float(ask))))
    assert reach.reaches(Side.BUY, float(limit)) == (ask <= limit)
    assert reach.reaches(Side.SELL, float(limit)) == (bid >= limit)


@given(ask=binary, bid=binary, limit=binary)
def test_reach_agrees_with_exact_decimals_of_any_float(ask: float, bid: float, limit: float) -> None:
    """For any floats, Reach's float comparison equals comparing their shortest decimals."""
    reach = Reach.of(make_quote(bid, ask))
    assert reach.reaches(Side.BUY, limit) == (Decimal(repr(ask)) <= Decimal(repr(limit)))
    assert reach.reaches(Side.SELL, limit) == (Decimal(repr(bid)) >= Decimal(repr(limit)))


def test_reach_at_non_binary_prices() -> None:
    """99.1 and 100.1 are not binary fractions: equal prices still reach, a hair apart do not."""
    reach = Reach.of(make_quote(99.1, 100.1))
    assert reach.reaches(Side.BUY, 100.1)
    assert not reach.reaches(Side.BUY, 100.09)
    assert reach.reaches(Side.SELL, 99.1)
    assert not reach.reaches(Side.SELL, 99.11)


@given(ask=binary, bid=binary, side=st.sampled_from(Side))
def test_market_is_always_reached(ask: float, bid: float, side: Side) -> None:
    assert Reach.of(make_quote(bid, ask)).reaches(side, None)


def test_touch_is_the_far_side() -> None:
    quote = make_quote(99.1, 100.1)
    assert touch(Side.BUY, quote) == Decimal("100.1")
    assert touch(Side.SELL, quote) == Decimal("99.1")


def test_a_market_price_moves_against_the_order_by_the_slippage() -> None:
    """10 bps on 100.1: a BUY pays 100.2001, a SELL of 99.1 gets 99.0009."""
    quote, costs = make_quote(99.1, 100.1), Costs(slippage_bps=Decimal(10))
    assert walk_price(Side.BUY, quote, Decimal(1), costs) == Decimal("100.2001")
    assert walk_price(Side.SELL, quote, Decimal(1), costs) == Decimal("99.0009")
    assert walk_price(Side.BUY, quote, Decimal(1), NO_COSTS) == Decimal("100.1")


def test_fill_price_per_order_type() -> None:
    """MARKET: touch with slippage, taker. LIMIT taker: the touch. Passive LIMIT: its own limit, maker."""
    quote, costs = make_quote(99.1, 100.1), Costs(slippage_bps=Decimal(10))
    assert fill_price(working(0, Side.BUY, "1"), touch(Side.BUY, quote), costs) == (
        Decimal("100.2001"),
        Liquidity.TAKER,
    )
    assert fill_price(working(0, Side.SELL, "1"), touch(Side.SELL, quote), costs) == (
        Decimal("99.0009"),
        Liquidity.TAKER,
    )
    assert fill_price(working(0, Side.BUY, "1", 100.3, taker=True), touch(Side.BUY, quote), costs) == (
        Decimal("100.1"),
        Liquidity.TAKER,
    )
    assert fill_price(working(0, Side.SELL, "1", 98.7, taker=True), touch(Side.SELL, quote), costs) == (
        Decimal("99.1"),
        Liquidity.TAKER,
    )
    assert fill_price(working(0, Side.BUY, "1", 100.3), touch(Side.BUY, quote), costs) == (
        Decimal("100.3"),
        Liquidity.MAKER,
    )
    assert fill_price(working(0, Side.SELL, "1", 98.7), touch(Side.SELL, quote), costs) == (
        Decimal("98.7"),
        Liquidity.MAKER,
    )


def test_no_fill_is_worse_than_the_limit() -> None:
    """A reached LIMIT fills at or better than its limit, taker or maker, whatever the slippage."""
    quote, costs = make_quote(99.1, 100.1), Costs(slippage_bps=Decimal(500))
    orders = [
        working(0, Side.BUY, "1", 100.1, taker=True),
        working(1, Side.BUY, "1", 100.2),
        working(2, Side.SELL, "1", 99.1, taker=True),
        working(3, Side.SELL, "1", 99.0),
    ]
    fills = match(quote, orders, costs)
    assert [fill.ref for fill in fills] == [0, 1, 2, 3]
    for fill in fills:
        order = orders[fill.ref]
        assert order.limit is not None
        limit = exact(order.limit)
        assert fill.price <= limit if order.side == Side.BUY else fill.price >= limit


def test_size_is_shared_oldest_first() -> None:
    """Ask size 1.5 among three BUYs of 1: the oldest takes 1, the next 0.5, the last none."""
    quote = make_quote(99, 100, ask_size=1.5)
    fills = match(quote, [working(i, Side.BUY, "1") for i in range(3)], NO_COSTS)
    assert [(fill.ref, fill.qty) for fill in fills] == [(0, Decimal(1)), (1, Decimal("0.5"))]


def test_sides_share_their_own_size() -> None:
    """BUYs consume the ask size and SELLs the bid size, independently."""
    quote = make_quote(99, 100, bid_size=0.3, ask_size=0.2)
    orders = [working(0, Side.BUY, "1"), working(1, Side.SELL, "1"), working(2, Side.SELL, "1")]
    fills = match(quote, orders, NO_COSTS)
    assert [(fill.ref, fill.qty) for fill in fills] == [(0, Decimal("0.2")), (1, Decimal("0.3"))]


def test_unreached_order_takes_no_size() -> None:
    """An order the quote does not reach neither fills nor uses the size a later one gets."""
    quote = make_quote(99, 100, ask_size=1)
    orders = [working(0, Side.BUY, "1", 99.5, taker=True), working(1, Side.BUY, "1")]
    assert [(fill.ref, fill.qty) for fill in match(quote, orders, NO_COSTS)] == [(1, Decimal(1))]


def test_without_size_every_reached_order_fills_whole() -> None:
    quote = make_quote(99, 100)
    orders = [working(i, Side.BUY, "123.456") for i in range(4)]
    assert [fill.qty for fill in match(quote, orders, NO_COSTS)] == [Decimal("123.456")] * 4


def test_zero_size_fills_nothing() -> None:
    quote = make_quote(99, 100, bid_size=0, ask_size=0)
    assert match(quote, [working(0, Side.BUY, "1"), working(1, Side.SELL, "1")], NO_COSTS) == []


def test_fees_taker_and_maker() -> None:
    """fee = price x qty x bps / 10000, exactly: taker rate for takers, maker rate for makers."""
    quote = make_quote(99.1, 100.1)
    costs = Costs(slippage_bps=Decimal(0), taker_fee_bps=Decimal("7.5"), maker_fee_bps=Decimal(2))
    fills = match(quote, [working(0, Side.BUY, "0.3", 100.3), working(1, Side.BUY, "0.3")], costs)
    # Each with the level it met (the ask, no size: unlimited) and the rates applied.
    touch, zero = Decimal("100.1"), Decimal(0)
    assert fills == [
        Fill(0, Decimal("0.3"), Decimal("100.3"), Decimal("0.0060180"), Liquidity.MAKER, touch, None, zero, Decimal(2)),
        Fill(1, Decimal("0.3"), touch, Decimal("0.02252250"), Liquidity.TAKER, touch, None, zero, Decimal("7.5")),
    ]


def test_partially_filled_order_fills_its_remaining() -> None:
    """`remaining` is what the model fills, and an order with none left is skipped."""
    quote = make_quote(99, 100)
    fills = match(quote, [working(0, Side.SELL, "0.7"), working(1, Side.SELL, "0")], NO_COSTS)
    assert [(fill.ref, fill.qty) for fill in fills] == [(0, Decimal("0.7"))]


def test_each_fill_names_its_level_size_before_it_and_the_slippage_of_a_market_order() -> None:
    """Orders sharing the ask's 1.0 in time priority: each fill records what was left
    at the level when it came; only the MARKET order's price carries slippage."""
    quote = make_quote(99, 100, ask_size=1.0)
    costs = Costs(slippage_bps=Decimal(10), taker_fee_bps=Decimal(5), maker_fee_bps=Decimal(1))
    orders = [
        working(0, Side.BUY, "0.4", taker=True),
        working(1, Side.BUY, "0.5", 101.0, taker=True),
        working(2, Side.BUY, "0.5", 100.5),  # passive: maker, at its own price
    ]
    fills = match(quote, orders, costs)
    assert [(f.ref, f.qty, f.price, f.level_price, f.level_size, f.slippage_bps, f.fee_bps) for f in fills] == [
        (0, Decimal("0.4"), Decimal("100.1"), Decimal(100), Decimal("1.0"), Decimal(10), Decimal(5)),
        (1, Decimal("0.5"), Decimal(100), Decimal(100), Decimal("0.6"), Decimal(0), Decimal(5)),
        (2, Decimal("0.1"), Decimal("100.5"), Decimal(100), Decimal("0.1"), Decimal(0), Decimal(1)),
    ]


def test_a_market_order_walks_the_levels_one_fill_each_with_slippage_on_top() -> None:
    """Asks 1 at 100, 2 at 101, 5 at 102; a MARKET BUY of 3.5 with 10 bps slippage."""
    book = make_book([(99, 1)], [(100, 1), (101, 2), (102, 5)])
    fills = match(book, [working(0, Side.BUY, "3.5")], Costs(slippage_bps=Decimal(10)))
    assert [(f.qty, f.price, f.level_price, f.level_size) for f in fills] == [
        (Decimal(1), Decimal("100.1"), Decimal(100), Decimal(1)),
        (Decimal(2), Decimal("101.101"), Decimal(101), Decimal(2)),
        (Decimal("0.5"), Decimal("102.102"), Decimal(102), Decimal(5)),
    ]


def test_a_marketable_limit_walks_up_to_its_limit_and_no_further() -> None:
    book = make_book([(99, 1), (98, 4)], [(100, 1), (101, 2)])
    buy = match(book, [working(0, Side.BUY, "9", 100.5, taker=True)], NO_COSTS)
    assert [(f.qty, f.price) for f in buy] == [(Decimal(1), Decimal(100))]
    sell = match(book, [working(0, Side.SELL, "9", 98.0, taker=True)], NO_COSTS)
    assert [(f.qty, f.price, f.level_size) for f in sell] == [
        (Decimal(1), Decimal(99), Decimal(1)),
        (Decimal(4), Decimal(98), Decimal(4)),
    ]


def test_orders_share_the_levels_in_time_priority() -> None:
    """The first takes the 100 level and half of 101; the second starts where it stopped."""
    book = make_book([(99, 1)], [(100, 1), (101, 1), (102, 1)])
    fills = match(book, [working(0, Side.BUY, "1.5"), working(1, Side.BUY, "1")], NO_COSTS)
    assert [(f.ref, f.qty, f.level_price, f.level_size) for f in fills] == [
        (0, Decimal(1), Decimal(100), Decimal(1)),
        (0, Decimal("0.5"), Decimal(101), Decimal(1)),
        (1, Decimal("0.5"), Decimal(101), Decimal("0.5")),
        (1, Decimal("0.5"), Decimal(102), Decimal(1)),
    ]


def test_a_passive_limit_crossed_by_several_levels_fills_at_its_own_price_per_level() -> None:
    book = make_book([(98, 1)], [(100, 1), (101, 2), (102, 5)])
    fills = match(book, [working(0, Side.BUY, "5", 101.5)], NO_COSTS)
    assert [(f.qty, f.price, f.liquidity, f.level_price) for f in fills] == [
        (Decimal(1), Decimal("101.5"), Liquidity.MAKER, Decimal(100)),
        (Decimal(2), Decimal("101.5"), Liquidity.MAKER, Decimal(101)),
    ]


def test_what_fills_took_is_gone_from_the_front_of_the_book() -> None:
    book = make_book([(99, 1), (98, 2)], [(100, 1), (101, 2), (102, 5)])
    less = book.less(True, Decimal("1.5"))
    assert list(less.levels(True)) == [
        (Decimal(100), Decimal(0)),
        (Decimal(101), Decimal("1.5")),
        (Decimal(102), Decimal(5)),
    ]
    assert list(less.levels(False)) == list(book.levels(False))  # the other side is untouched
    assert list(less.less(False, Decimal(3)).levels(False)) == [(Decimal(99), Decimal(0)), (Decimal(98), Decimal(0))]
    # Walking the reduced book starts at what is left.
    fills = match(less, [working(0, Side.BUY, "2")], NO_COSTS)
    assert [(f.qty, f.level_price, f.level_size) for f in fills] == [
        (Decimal("1.5"), Decimal(101), Decimal("1.5")),
        (Decimal("0.5"), Decimal(102), Decimal(5)),
    ]


def test_the_walk_price_is_the_dearest_level_a_market_order_would_reach() -> None:
    """What a MARKET BUY reserves: the price of the last level it walks to, levels
    already taken skipped, the book's last if it shows less than the order, slipped."""
    book = make_book([(99, 1)], [(100, 1), (101, 2), (102, 5)])
    costs = Costs(slippage_bps=Decimal(10))
    assert walk_price(Side.BUY, book, Decimal("0.5"), NO_COSTS) == Decimal(100)
    assert walk_price(Side.BUY, book, Decimal(3), NO_COSTS) == Decimal(101)
    assert walk_price(Side.BUY, book, Decimal("3.01"), costs) == Decimal("102.102")
    assert walk_price(Side.BUY, book, Decimal(50), NO_COSTS) == Decimal(102)
    assert walk_price(Side.BUY, book.less(True, Decimal(1)), Decimal(1), NO_COSTS) == Decimal(101)
    assert walk_price(Side.SELL, book, Decimal(9), NO_COSTS) == Decimal(99)
