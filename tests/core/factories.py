"""Small builders shared by the core tests: orders, quotes and instrument states made
directly, with no store, service or HTTP in between."""

import itertools
from collections.abc import Callable
from decimal import Decimal

from app.core.book import Book
from app.core.controls import Exposure
from app.core.engine import InstrumentState
from app.core.order import Order, OrderKind, OrderTerms
from app.core.positions import Position
from app.core.values import Instrument, Quote, book_of, exact
from app.core.vocabulary import OrderType, Side, TimeInForce

BTC: Instrument = ("binance", "BTC/USDT")
ETH: Instrument = ("binance", "ETH/USDT")


def counter(start: int = 1) -> Callable[[], int]:
    """A `new_id` callable: 1, 2, 3, ..."""
    return itertools.count(start).__next__


def make_order(
    number: int,
    side: Side = Side.BUY,
    qty: float = 1.0,
    limit: float | None = None,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    accepted_at: int = 0,
    instrument: Instrument = BTC,
    order_type: OrderType | None = None,
) -> Order:
    """An order as a store builds it: LIMIT when it has a limit price, MARKET otherwise."""
    kind = OrderKind(
        instrument[0],
        instrument[1],
        side,
        order_type or (OrderType.MARKET if limit is None else OrderType.LIMIT),
        tif,
    )
    return Order(
        number=number,
        idempotency_key=f"key-{number}",
        kind=kind,
        terms=OrderTerms.of(qty, limit, accepted_at, None),
    )


def make_quote(bid: float, ask: float, bid_size: float | None = None, ask_size: float | None = None) -> Quote:
    """A quote as the service builds it from the floats a client sent."""
    return Quote(
        exact(bid),
        exact(ask),
        None if bid_size is None else exact(bid_size),
        None if ask_size is None else exact(ask_size),
    )


def make_book(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> Quote:
    """A book with depth, as the service builds it from the levels a client sent."""
    return book_of(bids, asks)


def exposure_from(book: Book) -> Callable[[Position], Exposure]:
    """How the memory store works out an instrument's exposure: its position and the
    open orders resting in its book."""

    def load(position: Position) -> Exposure:
        exposure = Exposure(position=position.qty)
        for order in book.orders():
            exposure.opened(order.side, order.remaining)
        return exposure

    return load


def make_instrument(
    quote: Quote | None = None,
    *,
    instrument: Instrument = BTC,
    book: Book | None = None,
    position: Position | None = None,
) -> InstrumentState:
    return InstrumentState(
        instrument, quote, Position() if position is None else position, exposure_from(Book() if book is None else book)
    )


def d(value: str | int) -> Decimal:
    """A decimal from its text (or an int): d("0.1") is one tenth."""
    return Decimal(value)
