"""The paper fill model: which orders a quote reaches, at what price each fills, and how
they share the quote's size. Pure functions over exact decimals."""

from dataclasses import dataclass
from decimal import Decimal

from app.core.values import BPS, EXACT, ZERO, Costs, Quote, Trade, exact
from app.core.vocabulary import Liquidity, OrderType, Side


@dataclass(frozen=True, slots=True)
class Reach:
    """How far a quote reaches: a BUY limit at or above the ask, a SELL limit at or
    below the bid, and every MARKET order. The one definition: the book's search, the
    SQL store's query and the fill model all use it.

    As floats: the quote's prices are the exact decimals of floats the client sent,
    and that mapping keeps order, so comparing the floats compares the decimals (a
    Decimal against a float limit would compare binary values: 0.1 != 0.1)."""

    ask: float
    bid: float

    @classmethod
    def of(cls, quote: Quote) -> "Reach":
        return cls(float(quote.ask), float(quote.bid))

    def reaches(self, side: Side, limit: float | None) -> bool:
        if limit is None:
            return True
        return self.ask <= limit if side == Side.BUY else self.bid >= limit


def touch(side: Side, quote: Quote) -> Decimal:
    """The price an order on `side` takes: the ask for a BUY, the bid for a SELL."""
    return quote.ask if side == Side.BUY else quote.bid


def slipped(side: Side, price: Decimal, costs: Costs) -> Decimal:
    """What a MARKET order pays at a level of `price`: moved against it by the slippage."""
    moved = EXACT.divide(EXACT.multiply(price, costs.slippage_bps), BPS)
    return EXACT.add(price, moved) if side == Side.BUY else EXACT.subtract(price, moved)


def walk_price(side: Side, quote: Quote, qty: Decimal, costs: Costs) -> Decimal:
    """What a MARKET order of `qty` pays at the last level it would walk to on `quote`
    (the book's last level if the book shows less), levels already taken skipped: the
    worst price of its fills against this book."""
    last: Decimal | None = None
    left = qty
    for price, size in quote.levels(side == Side.BUY):
        if size is not None and size <= ZERO:
            continue
        last = price
        if size is None or size >= left:
            break
        left = EXACT.subtract(left, size)
    return slipped(side, touch(side, quote) if last is None else last, costs)


@dataclass(frozen=True, slots=True)
class Working:
    """An order the quote may fill: what is left of it, and whether it takes liquidity.

    A LIMIT order is a taker while it has never rested passively: matched on arrival,
    or waiting since it crossed (or found no quote) when it came. Once a quote has
    passed without reaching it, it is passive, and a later quote that crosses it fills
    it as maker, at its own price."""

    ref: int  # the caller's handle for the order; the model only passes it back
    side: Side
    type: OrderType
    limit: float | None
    remaining: Decimal
    taker: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill the model proposes for the order `ref`."""

    ref: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    # Why: the level it met (the touch), that level's size before it (None: unlimited),
    # and the rates applied (slippage moves MARKET prices only).
    level_price: Decimal
    level_size: Decimal | None
    slippage_bps: Decimal
    fee_bps: Decimal
    queue_ahead: Decimal | None = None  # a trade's fill: the queue ahead it consumed first


def fill_price(order: Working, level: Decimal, costs: Costs) -> tuple[Decimal, Liquidity]:
    """At a level of price `level`: MARKET takes the level moved by the slippage; a
    LIMIT taker takes the level; a passive LIMIT that the book crosses fills at its own
    price, as maker. None of these is worse than the order's limit (the level reaches
    it)."""
    if order.type == OrderType.MARKET:
        return slipped(order.side, level, costs), Liquidity.TAKER
    if order.taker:
        return level, Liquidity.TAKER
    assert order.limit is not None
    return exact(order.limit), Liquidity.MAKER


def _reaches(side: Side, price: Decimal, limit: float | None) -> bool:
    # As floats, for the reason Reach gives.
    if limit is None:
        return True
    return float(price) <= limit if side == Side.BUY else float(price) >= limit


def match(quote: Quote, orders: list[Working], costs: Costs) -> list[Fill]:
    """Fills for `orders`, given oldest first. Each order walks the levels of the side
    it takes from, best first, while they reach its limit: one fill per level, no more
    than the level shows (a size None is unlimited: that level fills it completely).
    Orders share the levels in time priority: what one takes, the next cannot."""
    taken: dict[Side, Decimal] = {Side.BUY: ZERO, Side.SELL: ZERO}  # from the front of each side
    fills: list[Fill] = []
    for order in orders:
        remaining = order.remaining
        if remaining <= ZERO:
            continue
        side = order.side
        skip = taken[side]  # what earlier orders took from the front of this side
        for level, size in quote.levels(side == Side.BUY):
            if not _reaches(side, level, order.limit):
                break
            available = size
            if size is not None:
                if skip >= size:
                    skip = EXACT.subtract(skip, size)
                    continue
                available = EXACT.subtract(size, skip)
                skip = ZERO
            qty = remaining if available is None else min(remaining, available)
            taken[side] = EXACT.add(taken[side], qty)
            remaining = EXACT.subtract(remaining, qty)
            price, liquidity = fill_price(order, level, costs)
            bps = costs.taker_fee_bps if liquidity == Liquidity.TAKER else costs.maker_fee_bps
            fee = EXACT.divide(EXACT.multiply(EXACT.multiply(price, qty), bps), BPS)
            slippage = costs.slippage_bps if order.type == OrderType.MARKET else ZERO
            fills.append(Fill(order.ref, qty, price, fee, liquidity, level, available, slippage, bps))
            if remaining <= ZERO:
                break
    return fills


@dataclass(frozen=True, slots=True)
class Queued:
    """A resting LIMIT order a trade may fill: what is left of it, and the queue ahead
    of it at its price before the trade."""

    ref: int
    limit: float
    remaining: Decimal
    ahead: Decimal


def match_trade(trade: Trade, orders: list[Queued], costs: Costs) -> list[Fill]:
    """Fills a print makes among the resting orders it meets (the side the aggressor
    hit, limits at or better than its price), given in priority: best price first,
    then oldest. At the print's price the trade first consumes the queue ahead of an
    order, then fills it; through a better price it fills what it can at once. The
    orders share the print: what one took is not there for the next (and an order at
    the print's price counts the fills before it as ahead of it). Each fill is a
    maker's, at the order's own price; it names the print (its price and size) and the
    queue ahead it consumed."""
    left = trade.qty
    fills: list[Fill] = []
    price = float(trade.price)
    for order in orders:
        if left <= ZERO:
            break
        at_price = order.limit == price
        available = EXACT.subtract(left, order.ahead) if at_price else left
        qty = min(order.remaining, available)
        if qty <= ZERO:
            continue
        left = EXACT.subtract(left, qty)
        own = exact(order.limit)
        fee = EXACT.divide(EXACT.multiply(EXACT.multiply(own, qty), costs.maker_fee_bps), BPS)
        # At its price the print took the queue ahead first (at most its size); through
        # its price it went past all of it.
        consumed = min(order.ahead, trade.qty) if at_price else order.ahead
        fills.append(
            Fill(
                order.ref,
                qty,
                own,
                fee,
                Liquidity.MAKER,
                trade.price,
                trade.qty,
                ZERO,
                costs.maker_fee_bps,
                consumed,
            )
        )
    return fills
