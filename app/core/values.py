"""Exact numbers and the market data they are compared with.

Quantities and prices arrive as floats; the core works with the decimal each float's
shortest text spells (0.1 is one tenth), in a context wide enough that sums and
products of a few of them never round.
"""

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Context, Decimal
from functools import lru_cache

ZERO = Decimal(0)
BPS = Decimal(10_000)
# Values have at most 17 significant digits and lie between 1e-324 and 1e15; sums and
# products of a few of them stay exact within this many digits (the default, 28, does
# not: 1e15 - 1e-15 needs 31).
EXACT = Context(prec=100)


# Bots repeat the same quantities and prices, and one order's are converted several
# times (checks, reservation, matching): a small cache saves most conversions.
@lru_cache(maxsize=4096)
def exact(number: float) -> Decimal:
    """The decimal a client wrote: `repr` of a float is the shortest text that reads
    back as it, so 0.1 becomes Decimal("0.1"), not 0.1000000000000000055511..."""
    return Decimal(repr(number))


def shown(value: Decimal) -> str:
    """A quantity as a person reads it: the exact decimal, without exponent."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


class Depth:
    """The levels behind a book's top on one side, best first, as the client sent them,
    less `taken`: what fills took from the front of them (fills always walk from the
    best level, so what they took is a prefix). Each level is read as exact decimals
    only when it is walked.

    The prices and sizes are kept as the floats sent, each list in one `array`: a book
    of 1,000 levels a side is then taken without making 4,000 decimals (most of which
    no order ever reaches), and it is two objects the garbage collector does not
    track, where 2,000 floats in tuples would be 2,000 it walks at each full collection
    for as long as the book is the latest."""

    __slots__ = ("prices", "sizes", "taken")

    def __init__(self, prices: Sequence[float] = (), sizes: Sequence[float] = (), taken: Decimal = ZERO) -> None:
        self.prices = array("d", prices)
        self.sizes = array("d", sizes)
        self.taken = taken

    def __len__(self) -> int:
        return len(self.prices)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Depth):
            return NotImplemented
        return (self.prices, self.sizes, self.taken) == (other.prices, other.sizes, other.taken)

    def __hash__(self) -> int:
        return hash((tuple(self.prices), tuple(self.sizes), self.taken))

    def __repr__(self) -> str:
        return f"Depth({list(zip(self.prices, self.sizes, strict=True))}, taken={self.taken})"

    def levels(self) -> Iterator[tuple[Decimal, Decimal]]:
        """Each level as (price, what is left of its size), best first."""
        skip = self.taken
        for price, size in zip(self.prices, self.sizes, strict=True):
            shown = exact(size)
            if skip >= shown:
                skip = EXACT.subtract(skip, shown)
                yield exact(price), ZERO
            else:
                yield exact(price), EXACT.subtract(shown, skip)
                skip = ZERO

    def less(self, qty: Decimal) -> "Depth":
        """These levels less `qty` more taken from their front."""
        return Depth(self.prices, self.sizes, EXACT.add(self.taken, qty))


NO_DEPTH = Depth()


@dataclass(frozen=True, slots=True)
class Quote:
    """An instrument's book: its top (a size left None is unlimited) and, for a book
    posted with depth, the levels behind the top on each side, best first. A quote is
    a book of one level per side."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    deeper_bids: Depth = NO_DEPTH
    deeper_asks: Depth = NO_DEPTH

    @property
    def mid(self) -> Decimal:
        return EXACT.divide(EXACT.add(self.bid, self.ask), 2)

    def levels(self, buying: bool) -> Iterator[tuple[Decimal, Decimal | None]]:
        """The levels an order takes from, best first: the asks for a BUY (`buying`),
        the bids for a SELL, each as (price, size)."""
        if buying:
            yield self.ask, self.ask_size
            yield from self.deeper_asks.levels()
        else:
            yield self.bid, self.bid_size
            yield from self.deeper_bids.levels()

    def less(self, buying: bool, qty: Decimal) -> "Quote":
        """The book less `qty` taken from the front of the side a BUY (`buying`) or a
        SELL takes from: fills always walk from the best level, so what they took is a
        prefix of the side."""
        top = self.ask_size if buying else self.bid_size
        if top is None or qty <= ZERO:  # an unlimited top takes everything
            return self
        from_top = min(top, qty)
        rest = EXACT.subtract(qty, from_top)
        deeper = self.deeper_asks if buying else self.deeper_bids
        if rest > ZERO:
            deeper = deeper.less(rest)
        if buying:
            return replace(self, ask_size=EXACT.subtract(top, from_top), deeper_asks=deeper)
        return replace(self, bid_size=EXACT.subtract(top, from_top), deeper_bids=deeper)


@dataclass(frozen=True, slots=True)
class Trade:
    """A print on the tape: `qty` traded at `price`, the aggressor buying (`buys`: it
    lifted the asks, so it meets resting SELL orders) or selling (it hit the bids)."""

    price: Decimal
    qty: Decimal
    buys: bool


@dataclass(frozen=True, slots=True)
class Costs:
    """Paper execution costs, in basis points."""

    slippage_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    maker_fee_bps: Decimal = ZERO


Instrument = tuple[str, str]  # (exchange, symbol)


def book_of(bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]) -> Quote:
    """The book a client sent as (price, size) floats per side, best first (at least one
    level each), as exact decimals."""
    (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
    return Quote(exact(bid), exact(ask), exact(bid_size), exact(ask_size), _depth(bids[1:]), _depth(asks[1:]))


def _depth(levels: Sequence[tuple[float, float]]) -> Depth:
    if not levels:
        return NO_DEPTH
    return Depth([price for price, _ in levels], [size for _, size in levels])
