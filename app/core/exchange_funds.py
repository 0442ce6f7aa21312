"""A live exchange's account as intake sees it, when balances apply (PAPER_BALANCES is
set): an order for a live exchange must fit in what the exchange's account has free.

The account is read from the exchange now and then (`FundsReading`: what was free of
each asset, and when the reading was asked for). A reading already counts every order
the exchange had acknowledged before it was asked for (the exchange holds their funds,
or spent them); what it cannot count is an order on its way: stored here and not yet
sent, sent without a certain answer, or acknowledged after the reading was asked for.
Each live order records its claim when admitted (what it needs, priced as a paper
reservation is: `balances.claim`), and intake takes the claims of the orders on their
way off the reading. An order the exchange acknowledged during a reading, or up to
CLOCK_MARGIN_US before it (the processes' clocks may differ a little), is counted
twice until the next one: an error on the safe side, never the other.

Intake refuses (FundsUnknown) rather than guess: with no reading, a reading older than
READING_MAX_AGE_US (the exchange's account may have changed in ways no claim shows),
or orders on their way whose claims are unknown (placed while balances were off).
"""

from dataclasses import dataclass, field
from decimal import Decimal

from app.core.balances import Reservation, claim
from app.core.errors import FundsUnknown, IntentRefused
from app.core.order import Order
from app.core.values import EXACT, ZERO, Costs, Quote, shown

# How far apart two processes' clocks may be: an order answered for this long before a
# reading was asked for still counts as on its way.
CLOCK_MARGIN_US = 2_000_000
# A reading older than this checks nothing (the reader reads every few seconds).
READING_MAX_AGE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class FundsReading:
    """What an exchange's account had free, by asset (an asset it did not list has
    none), as read by a request sent at `taken_at` (the service's clock)."""

    free: dict[str, Decimal]
    taken_at: int

    @property
    def counts_from(self) -> int:
        """Orders first answered for by the exchange from this time on may not be in it."""
        return self.taken_at - CLOCK_MARGIN_US


@dataclass
class ExchangeFunds:
    """One live exchange's latest reading (None: never read yet) and the claims, by
    asset, of its orders on their way (that the reading cannot show); `unclaimed`: how
    many orders on their way have no claim (placed while balances were off)."""

    exchange: str
    reading: FundsReading | None
    on_the_way: dict[str, Decimal] = field(default_factory=dict)
    unclaimed: int = 0

    def free(self, asset: str) -> Decimal:
        """What is free of `asset` for a new order: the reading's, less the claims on
        their way."""
        assert self.reading is not None
        return EXACT.subtract(self.reading.free.get(asset, ZERO), self.on_the_way.get(asset, ZERO))

    def claim(self, order: Order, quote: Quote | None, costs: Costs, now: int) -> Reservation:
        """What `order` needs, if the account has it free (it is then on its way too);
        refuses it otherwise: FundsUnknown (see the module), INSUFFICIENT_BALANCE, or
        NO_QUOTE (a MARKET BUY with no quote to price it)."""
        account = f"the {self.exchange} account"
        if self.reading is None:
            raise FundsUnknown(f"The balances of {account} have not been read from the exchange yet; retry")
        age = now - self.reading.taken_at
        if age > READING_MAX_AGE_US:
            raise FundsUnknown(
                f"The balances of {account} were last read {age // 1_000_000} s ago (the exchange has not "
                "answered since); retry once it does"
            )
        if self.unclaimed:
            raise FundsUnknown(
                f"{self.unclaimed} order(s) placed while balances were off are on their way to {self.exchange}; "
                "retry once the exchange has answered for them"
            )
        needed = claim(order, order.exact_qty, quote, costs)
        free = self.free(needed.asset)
        if free < needed.held:
            raise IntentRefused(
                "INSUFFICIENT_BALANCE",
                f"{order.side} {shown(order.exact_qty)} {order.symbol} needs {shown(needed.held)} {needed.asset}; "
                f"{shown(max(free, ZERO))} {needed.asset} is free at {self.exchange} "
                "(its account as last read, less the orders on their way to it)",
            )
        self.on_the_way[needed.asset] = EXACT.add(self.on_the_way.get(needed.asset, ZERO), needed.held)
        return needed
