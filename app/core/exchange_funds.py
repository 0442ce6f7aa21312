"""A live exchange's account as intake sees it, when balances apply (PAPER_BALANCES is
set): an order for a live exchange must fit in what the exchange's account has free.

The account is read from the exchange now and then (`FundsReading`: what was free of
each asset, and when the reading was asked for). A reading already counts every order
the exchange had acknowledged before it was asked for (the exchange holds their funds,
or spent them); what it cannot count is an order on its way: stored here and not yet
sent, sent without a certain answer, or acknowledged after the reading was asked for.
Each live order records its claim when admitted (what it needs, priced as a paper
reservation is: `balances.claim`), and intake takes the claims of the orders on their
way off the reading. An order the exchange acknowledged during a reading is counted
twice until the next one: an error on the safe side, never the other.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from app.core.balances import Reservation, claim
from app.core.errors import IntentRefused
from app.core.order import Order
from app.core.values import EXACT, ZERO, Costs, Quote, shown


@dataclass(frozen=True, slots=True)
class FundsReading:
    """What an exchange's account had free, by asset (an asset it did not list has
    none), as read by a request sent at `taken_at` (the service's clock)."""

    free: dict[str, Decimal]
    taken_at: int


@dataclass
class ExchangeFunds:
    """One live exchange's latest reading (None: never read yet) and the claims, by
    asset, of its orders on their way (that the reading cannot show)."""

    exchange: str
    reading: FundsReading | None
    on_the_way: dict[str, Decimal] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        """What is free of `asset` for a new order: the reading's, less the claims on
        their way."""
        assert self.reading is not None
        return EXACT.subtract(self.reading.free.get(asset, ZERO), self.on_the_way.get(asset, ZERO))

    def claim(self, order: Order, quote: Quote | None, costs: Costs) -> Reservation:
        """What `order` needs, if the account has it free (it is then on its way too);
        refuses it otherwise: EXCHANGE_BALANCE_UNKNOWN (never read yet),
        INSUFFICIENT_BALANCE, or NO_QUOTE (a MARKET BUY with no quote to price it)."""
        if self.reading is None:
            raise IntentRefused(
                "EXCHANGE_BALANCE_UNKNOWN",
                f"The balances of the {self.exchange} account have not been read from the exchange yet; "
                "retry in a few seconds",
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
