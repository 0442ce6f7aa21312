"""Queue position, directly: the transform each price level keeps gives every order's
queue ahead as if each had been updated one by one."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.core.queue import QueuePlace, Queues
from app.core.vocabulary import Side

D = Decimal


def test_an_order_joins_behind_what_is_shown_and_trades_consume_it() -> None:
    queues = Queues()
    first = queues.join(Side.BUY, 100.0, D(5))
    assert queues.ahead(Side.BUY, 100.0, first) == D(5)
    queues.traded(Side.BUY, 100.0, D(2))
    assert queues.ahead(Side.BUY, 100.0, first) == D(3)
    # A second order joins behind what is shown now (5 - 2).
    second = queues.join(Side.BUY, 100.0, D(5))
    assert queues.ahead(Side.BUY, 100.0, second) == D(3)
    queues.traded(Side.BUY, 100.0, D(4))
    assert (queues.ahead(Side.BUY, 100.0, first), queues.ahead(Side.BUY, 100.0, second)) == (D(0), D(0))


def test_a_shrinking_level_shrinks_every_queue_in_proportion_and_a_growing_one_none() -> None:
    queues = Queues()
    x = queues.join(Side.SELL, 101.0, D(8))
    queues.traded(Side.SELL, 101.0, D(2))  # 6 ahead, 6 shown
    queues.show(Side.SELL, {101.0: 3.0}, worst=101.0)  # half of it gone
    assert queues.ahead(Side.SELL, 101.0, x) == D(3)
    queues.show(Side.SELL, {101.0: 30.0}, worst=101.0)  # added behind it
    assert queues.ahead(Side.SELL, 101.0, x) == D(3)
    queues.show(Side.SELL, {101.0: 10.0}, worst=101.0)  # a third of 30 left
    assert queues.ahead(Side.SELL, 101.0, x) == D(1)


def test_a_level_no_longer_shown_within_the_book_has_nothing_ahead_and_beyond_it_is_unchanged() -> None:
    queues = Queues()
    near = queues.join(Side.BUY, 99.0, D(2))
    far = queues.join(Side.BUY, 90.0, D(7))
    queues.show(Side.BUY, {100.0: 1.0, 98.0: 1.0}, worst=98.0)  # 99 is within and missing; 90 beyond
    assert (queues.ahead(Side.BUY, 99.0, near), queues.ahead(Side.BUY, 90.0, far)) == (D(0), D(7))
    # A new order at 99 starts a new level; the old one stays at the front.
    again = queues.join(Side.BUY, 99.0, D(4))
    assert (queues.ahead(Side.BUY, 99.0, again), queues.ahead(Side.BUY, 99.0, near)) == (D(4), D(0))


def test_a_trade_through_a_price_clears_its_queue() -> None:
    queues = Queues()
    x = queues.join(Side.BUY, 100.0, D(5))
    queues.traded(Side.BUY, 99.5, D("0.1"))  # a SELL print below the BUY's price
    assert queues.ahead(Side.BUY, 100.0, x) == D(0)


def test_at_a_price_not_shown_nothing_is_ahead() -> None:
    queues = Queues()
    assert queues.join(Side.BUY, 100.0, D(0)) is None
    assert queues.ahead(Side.BUY, 100.0, None) == D(0)


sizes = st.decimals(min_value=D("0.001"), max_value=D(1000), places=3)
steps = st.lists(st.tuples(st.sampled_from(["show", "trade", "join"]), sizes), min_size=1, max_size=30)


@given(first=sizes, steps=steps)
def test_the_transform_matches_updating_each_order_one_by_one(first: Decimal, steps: list[tuple[str, Decimal]]) -> None:
    """The model each order would follow on its own: joins behind what is shown, a
    shrink scales it, a trade subtracts (never below zero). Never negative, never more
    than what is shown; equal to the model but for the float products of the shrinks
    (about 16 significant digits each) and the reading to 12 places."""
    queues = Queues()
    shown = first
    xs = [queues.join(Side.BUY, 100.0, shown)]
    each = [shown]
    for step, size in steps:
        if step == "show":
            if size < shown and shown > 0:
                each = [q * size / shown for q in each]
            shown = size
            queues.show(Side.BUY, {100.0: float(size)}, worst=100.0)
        elif step == "trade":
            each = [max(D(0), q - size) for q in each]
            shown = max(D(0), shown - size)
            queues.traded(Side.BUY, 100.0, size)
        else:
            xs.append(queues.join(Side.BUY, 100.0, shown))
            each.append(shown)
        for x, expected in zip(xs, each, strict=True):
            got = queues.ahead(Side.BUY, 100.0, x)
            assert D(0) <= got <= shown + D("1e-12")
            assert abs(got - expected) <= D("1e-12") * max(D(1), expected) + D("1e-12"), (got, expected)


def test_a_level_shrunk_a_thousand_times_still_takes_new_orders_exactly() -> None:
    """Shrinks multiply as floats until the level is read: a product that would round
    to zero is applied first, so a level that went 10 -> 5 and back 1,100 times still
    gives a new order its queue (and the first one's is as small as it should be)."""
    queues = Queues()
    first = queues.join(Side.BUY, 100.0, D(10))
    for _ in range(1100):
        queues.show(Side.BUY, {100.0: 5.0}, worst=100.0)
        queues.show(Side.BUY, {100.0: 10.0}, worst=100.0)
    later = queues.join(Side.BUY, 100.0, D(10))
    assert queues.ahead(Side.BUY, 100.0, later) == D(10)
    assert queues.ahead(Side.BUY, 100.0, first) == D(0)  # 10 / 2**1100, read to 12 places


def test_a_level_made_again_starts_a_new_epoch_whatever_came_before() -> None:
    """An old level's shrinks do not reach a new level at another price (no shared
    counter loses a small size beside a huge one)."""
    queues = Queues()
    queues.join(Side.BUY, 100.0, D(10))
    for _ in range(300):
        queues.show(Side.BUY, {100.0: 5.0, 99.0: 1.0}, worst=99.0)
        queues.show(Side.BUY, {100.0: 10.0, 99.0: 1.0}, worst=99.0)
    ask = queues.join(Side.SELL, 105.0, D("3.7"))
    assert queues.ahead(Side.SELL, 105.0, ask) == D("3.7")
    assert ask is not None
    assert ask.epoch == 2
    assert QueuePlace.parse(ask.text()) == ask
