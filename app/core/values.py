"""Exact numbers and the market data they are compared with.

Quantities and prices arrive as floats; the core works with the decimal each float's
shortest text spells (0.1 is one tenth), in a context wide enough that sums and
products of a few of them never round.
"""

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Quote:
    """An instrument's top of book; a size left None is unlimited."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None

    @property
    def mid(self) -> Decimal:
        return EXACT.divide(EXACT.add(self.bid, self.ask), 2)


@dataclass(frozen=True, slots=True)
class Costs:
    """Paper execution costs, in basis points."""

    slippage_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    maker_fee_bps: Decimal = ZERO


Instrument = tuple[str, str]  # (exchange, symbol)
