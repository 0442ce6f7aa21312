"""The paper fill model: which orders a quote reaches, at what price each fills, and how
they share the quote's size. Pure functions over exact decimals."""

from dataclasses import dataclass
from decimal import Decimal

from app.core.values import BPS, EXACT, ZERO, Costs, Quote, exact
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


def market_price(side: Side, quote: Quote, costs: Costs) -> Decimal:
    """What a MARKET order pays: the touch moved against it by the slippage."""
    at = touch(side, quote)
    moved = EXACT.divide(EXACT.multiply(at, costs.slippage_bps), BPS)
    return EXACT.add(at, moved) if side == Side.BUY else EXACT.subtract(at, moved)


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


def fill_price(order: Working, quote: Quote, costs: Costs) -> tuple[Decimal, Liquidity]:
    """MARKET takes the touch moved by the slippage; a LIMIT taker takes the touch; a
    passive LIMIT that a quote crosses fills at its own price, as maker. None of these
    is worse than the order's limit (the quote reaches it)."""
    if order.type == OrderType.MARKET:
        return market_price(order.side, quote, costs), Liquidity.TAKER
    if order.taker:
        return touch(order.side, quote), Liquidity.TAKER
    assert order.limit is not None
    return exact(order.limit), Liquidity.MAKER


def match(quote: Quote, orders: list[Working], costs: Costs) -> list[Fill]:
    """Fills for `orders`, given oldest first. When the quote carries the size on the
    side an order consumes, orders share that size in time priority (what one takes,
    the next cannot); without a size, every order it reaches fills completely."""
    reach = Reach.of(quote)
    left: dict[Side, Decimal | None] = {Side.BUY: quote.ask_size, Side.SELL: quote.bid_size}
    fills: list[Fill] = []
    for order in orders:
        if order.remaining <= ZERO or not reach.reaches(order.side, order.limit):
            continue
        available = left[order.side]
        qty = order.remaining if available is None else min(order.remaining, available)
        if qty <= ZERO:
            continue
        if available is not None:
            left[order.side] = EXACT.subtract(available, qty)
        price, liquidity = fill_price(order, quote, costs)
        bps = costs.taker_fee_bps if liquidity == Liquidity.TAKER else costs.maker_fee_bps
        fee = EXACT.divide(EXACT.multiply(EXACT.multiply(price, qty), bps), BPS)
        slippage = costs.slippage_bps if order.type == OrderType.MARKET else ZERO
        fills.append(Fill(order.ref, qty, price, fee, liquidity, touch(order.side, quote), available, slippage, bps))
    return fills
