"""The paper fill model: a quote and the orders it may reach, in; fills, out.

Pure functions over `Decimal`: no clock, no store, no logging, so that any store can
apply the same fills and hypothesis can test the model alone.
"""

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from functools import lru_cache
from typing import Literal

Liquidity = Literal["TAKER", "MAKER"]
BPS = Decimal(10_000)
ZERO = Decimal(0)


# Bots repeat the same quantities and prices, and one order's are converted several
# times (checks, reservation, matching): a small cache saves most conversions.
@lru_cache(maxsize=4096)
def exact(number: float) -> Decimal:
    """The decimal a client wrote: `repr` of a float is the shortest text that reads
    back as it, so 0.1 becomes Decimal("0.1"), not 0.1000000000000000055511..."""
    return Decimal(repr(number))


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class Costs:
    slippage_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    maker_fee_bps: Decimal = ZERO


@dataclass(frozen=True)
class Working:
    """An order the quote may fill: what is left of it, and whether it takes liquidity.

    A LIMIT order is a taker while it has never rested passively: matched on arrival,
    or waiting since it crossed (or found no quote) when it came. Once a quote has
    passed without reaching it, it is passive, and a later quote that crosses it fills
    it as maker, at its own price."""

    ref: int  # the caller's handle for the order; the model only passes it back
    side: Literal["BUY", "SELL"]
    type: Literal["MARKET", "LIMIT"]
    limit_price: Decimal | None
    remaining: Decimal
    taker: bool = False


@dataclass(frozen=True)
class Fill:
    ref: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity


def crosses(order: Working, quote: Quote) -> bool:
    """Can this quote fill the order at all?"""
    if order.type == "MARKET":
        return True
    assert order.limit_price is not None
    if order.side == "BUY":
        return quote.ask <= order.limit_price
    return quote.bid >= order.limit_price


def fill_price(order: Working, quote: Quote, costs: Costs) -> tuple[Decimal, Liquidity]:
    """MARKET takes the touch moved against it by the slippage; a LIMIT taker takes the
    touch; a passive LIMIT that a quote crosses fills at its own price, as maker. None
    of these is worse than the order's limit (the quote crosses it)."""
    touch = quote.ask if order.side == "BUY" else quote.bid
    if order.type == "MARKET":
        moved = touch * costs.slippage_bps / BPS
        return (touch + moved if order.side == "BUY" else touch - moved), "TAKER"
    assert order.limit_price is not None
    if order.taker:
        return touch, "TAKER"
    return order.limit_price, "MAKER"


# Values have at most 17 significant digits and lie between 1e-324 and 1e15; sums and
# products of a few of them stay exact within this many digits (the default, 28, does
# not: 1e15 - 1e-15 needs 31).
EXACT = Context(prec=100)


def match(quote: Quote, orders: list[Working], costs: Costs) -> list[Fill]:
    """Fills for `orders`, given oldest first. When the quote carries the size on the
    side an order consumes, orders share that size in time priority (what one takes,
    the next cannot); without a size, every crossing order fills completely."""
    with localcontext(EXACT):
        return _match(quote, orders, costs)


def _match(quote: Quote, orders: list[Working], costs: Costs) -> list[Fill]:
    left: dict[str, Decimal | None] = {"BUY": quote.ask_size, "SELL": quote.bid_size}
    fills: list[Fill] = []
    for order in orders:
        if order.remaining <= ZERO or not crosses(order, quote):
            continue
        available = left[order.side]
        qty = order.remaining if available is None else min(order.remaining, available)
        if qty <= ZERO:
            continue
        if available is not None:
            left[order.side] = available - qty
        price, liquidity = fill_price(order, quote, costs)
        bps = costs.taker_fee_bps if liquidity == "TAKER" else costs.maker_fee_bps
        fills.append(Fill(order.ref, qty, price, price * qty * bps / BPS, liquidity))
    return fills
