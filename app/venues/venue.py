"""What the live executor needs of an exchange (the port; ccxt behind it is
app.venues.ccxt_venue), in this service's own terms: orders by their client order id,
what the exchange says of one, and how a call can fail."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.core.engine import ExchangeReport
from app.core.order import Order


@dataclass(frozen=True, slots=True)
class Seen:
    """An order as the exchange holds it: its id there, and what it reports of it
    (every fill it knows, with trade ids; how it ended, if it did)."""

    exchange_order_id: str
    report: ExchangeReport


@dataclass(frozen=True, slots=True)
class Foreign:
    """An open order at the exchange, as listed there."""

    symbol: str
    exchange_order_id: str
    client_order_id: str | None


class VenueError(Exception):
    """A call that failed; `detail` says why, for people (never a credential)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Refused(VenueError):
    """The exchange refused the order for good (its reason in `detail`): it holds nothing."""


class Unknown(VenueError):
    """No answer that says what happened (a timeout, a lost connection, a 5xx): the order
    may or may not be at the exchange; only a look by its client order id tells."""


class NotSent(VenueError):
    """The call never reached the exchange (no connection could be made): nothing was
    done there."""


class Busy(VenueError):
    """The exchange asks us to slow down (429, a ban) and did nothing: try again after
    `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Venue(Protocol):
    """One exchange's account, through ccxt (or a stand-in in tests). Every call may raise
    Unknown, NotSent or Busy; `send` may also raise Refused."""

    async def prepare(self, order: Order) -> None:
        """Get ready to send `order`, sending nothing: what the exchange lists is read,
        and Refused if it cannot take the order as asked (an unknown symbol, a quantity
        or price off its steps)."""
        ...

    async def send(self, order: Order, client_order_id: str) -> str | None:
        """Place `order` (prepared) under `client_order_id`: the exchange's id of it
        (None: the exchange says it already has an order with that id, which `look`
        then reads). The one call that may create an order."""
        ...

    async def look(self, order: Order, client_order_id: str) -> Seen | None:
        """The order with that client order id at the exchange; None: it has none."""
        ...

    async def cancel(self, order: Order, client_order_id: str) -> None:
        """Ask the exchange to cancel the order (an order it no longer has open is no
        error: `look` then says how it ended)."""
        ...

    async def open_orders(self, symbols: list[str]) -> list[Foreign]:
        """Every open order of the account on these symbols."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """What the account has free of each asset (one it does not list: none)."""
        ...

    async def close(self) -> None: ...
