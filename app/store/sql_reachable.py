"""The open orders of one instrument that a SQL batch's quotes may reach, read once.

A batch holds its instrument's lock from its first statement to its commit, and every
round trip inside it waits for a turn of the busy event loop: a quote that read the
orders it reaches from the table would wait once per quote, with every other worker's
batch for that instrument waiting behind the lock. Instead the first quote reads the
open orders that any quote of the batch reaches (the widest reach of them all, its
rows locked against cancels until the commit) into the core's `Book`, and each quote
then finds its own there, as the memory store does; what the batch's intents add to
the instrument joins it as they rest. Nothing outside the batch can change those
orders meanwhile: a new order of this instrument needs its lock, a cancel the row's.
"""

from collections.abc import Iterable

from app.core.book import Book
from app.core.matching import Reach
from app.core.order import Order
from app.core.values import Quote
from app.store.prepared import Record
from app.store.sql_rows import order_of


def widest(quotes: Iterable[Quote]) -> Reach:
    """A reach that covers each of `quotes`' reaches: the lowest ask, the highest bid."""
    reaches = [Reach.of(quote) for quote in quotes]
    return Reach(min(reach.ask for reach in reaches), max(reach.bid for reach in reaches))


class Reachable:
    """The orders as the table ordered them (accepted_at, then seq), then those the
    batch adds, in the order it adds them."""

    __slots__ = ("_book", "_rank")

    def __init__(self, rows: Iterable[Record]) -> None:
        self._book = Book()
        # Each order's place in the table's order: ties in accepted_at keep it.
        self._rank: dict[int, int] = {}
        for row in rows:
            self.add(order_of(row), passive=row.passive)

    def add(self, order: Order, *, passive: bool) -> None:
        """An order that rests on the instrument (the table's, or one the batch admitted)."""
        self._rank[order.number] = len(self._rank)
        self._book.add(order, passive=passive)

    def reached_by(self, reach: Reach) -> list[tuple[Order, bool]]:
        """The open orders `reach` may fill, oldest first, each with whether it takes
        liquidity (the core's fill model skips those beyond its prices)."""
        reached = [(order, takes) for order, takes in self._book.reached_by(reach) if order.is_open]
        reached.sort(key=lambda pair: (pair[0].accepted_at, self._rank[pair[0].number]))
        return reached

    def settle(self, reach: Reach, arrived_by: int | None) -> None:
        """After the quote's fills: drop the orders they finished; the waiting LIMIT
        orders it did not reach (accepted by `arrived_by`, see Book.settle) rest
        passively from now on (as the table's pass-by)."""
        self._book.settle(reach, arrived_by)
