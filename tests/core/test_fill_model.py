"""The fill model alone (pure functions over Decimal), with hypothesis."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.core.matching import Reach, Working, match
from app.core.positions import Position, apply_fill
from app.core.values import Costs, Quote, exact
from app.core.vocabulary import OrderType, Side

decimals = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2)
maybe_sizes = st.none() | decimals


@st.composite
def quotes(draw: st.DrawFn) -> Quote:
    bid = draw(decimals)
    return Quote(
        bid, bid + draw(st.decimals(min_value=0, max_value=10, places=2)), draw(maybe_sizes), draw(maybe_sizes)
    )


@st.composite
def working_orders(draw: st.DrawFn) -> list[Working]:
    orders = []
    for ref in range(draw(st.integers(min_value=0, max_value=8))):
        order_type = draw(st.sampled_from(OrderType))
        orders.append(
            Working(
                ref=ref,
                side=draw(st.sampled_from(Side)),
                type=order_type,
                limit=float(draw(decimals)) if order_type == OrderType.LIMIT else None,
                remaining=draw(decimals),
                taker=draw(st.booleans()),
            )
        )
    return orders


fees = st.decimals(min_value=0, max_value=1, places=3)
costs = st.builds(
    Costs,
    st.decimals(min_value=0, max_value=100, places=1),
    st.decimals(min_value=0, max_value=100, places=1),
    st.decimals(min_value=0, max_value=100, places=1),
)


def crosses(order: Working, quote: Quote) -> bool:
    return Reach.of(quote).reaches(order.side, order.limit)


@given(quote=quotes(), orders=working_orders(), costs=costs)
def test_fills_respect_remaining_sizes_and_limits(quote: Quote, orders: list[Working], costs: Costs) -> None:
    fills = match(quote, orders, costs)
    by_ref = {order.ref: order for order in orders}
    assert len({fill.ref for fill in fills}) == len(fills)  # at most one fill per order per quote
    for fill in fills:
        order = by_ref[fill.ref]
        assert Decimal(0) < fill.qty <= order.remaining
        assert crosses(order, quote)
        if order.type == OrderType.LIMIT:
            assert order.limit is not None
            limit = exact(order.limit)
            assert fill.price <= limit if order.side == Side.BUY else fill.price >= limit
        assert fill.fee >= 0
    for side, size in (("BUY", quote.ask_size), ("SELL", quote.bid_size)):
        taken = sum((f.qty for f in fills if by_ref[f.ref].side == side), Decimal(0))
        if size is not None:
            assert taken <= size
        else:  # without a size, every crossing order fills completely
            assert all(
                any(f.ref == o.ref and f.qty == o.remaining for f in fills)
                for o in orders
                if o.side == side and crosses(o, quote)
            )


@given(quote=quotes(), orders=working_orders())
def test_size_goes_to_the_oldest_first(quote: Quote, orders: list[Working]) -> None:
    fills = match(quote, orders, Costs())
    filled = {fill.ref: fill.qty for fill in fills}
    for side in ("BUY", "SELL"):
        reached = [o for o in orders if o.side == side and crosses(o, quote)]
        # Once an order is left short, no later one gets anything.
        short = False
        for order in reached:
            if short:
                assert order.ref not in filled
            if filled.get(order.ref, Decimal(0)) < order.remaining:
                short = True


@given(
    fills=st.lists(
        st.tuples(st.sampled_from(Side), decimals, decimals, st.decimals(min_value=0, max_value=1, places=3)),
        max_size=20,
    )
)
def test_a_position_is_the_sum_of_its_fills(fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> None:
    position = Position()
    for side, qty, price, fee in fills:
        position = apply_fill(position, side, qty, price, fee)
    assert position.qty == sum((q if s == "BUY" else -q for s, q, _, _ in fills), Decimal(0))
    assert position.fees == sum((f for _, _, _, f in fills), Decimal(0))
    assert (position.avg_entry_price is None) == (position.qty == 0)
    if position.avg_entry_price is not None:
        assert position.avg_entry_price > 0
    # Realized plus unrealized profit is what the fills paid and got, exactly: closing
    # everything at any price leaves no residue.
    cash = sum((-q * p if s == "BUY" else q * p for s, q, p, _ in fills), Decimal(0))
    mark = Decimal("123.45")
    # Exact but for the average's rounding to 20 significant digits, each time a fill adds.
    residue = position.realized_pnl + position.unrealized_pnl(mark) - (cash + mark * position.qty)
    assert abs(residue) <= Decimal("1e-9")


def test_a_flip_through_zero_opens_at_the_fill_price() -> None:
    long = apply_fill(Position(), Side.BUY, Decimal(2), Decimal(100), Decimal(0))
    flipped = apply_fill(long, Side.SELL, Decimal(3), Decimal(110), Decimal(0))
    assert (flipped.qty, flipped.avg_entry_price, flipped.realized_pnl) == (Decimal(-1), Decimal(110), Decimal(20))
