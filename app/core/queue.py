"""Queue position: how much displayed size is ahead of each resting LIMIT order at its
price, kept for every order at once in O(1) per book update or trade.

An order joins the back of the queue at its price when it starts resting: the queue
ahead of it is the size the book shows there then (zero at a price the book does not
show). Trades at that price consume it, and a book update that shrinks the size shown
there shrinks it in proportion (cancels are not visible, so each shown unit is as
likely to go as any other: the usual assumption).

Every order at one price changes alike: a shrink multiplies each one's queue by the
same ratio, a trade subtracts the same size (and no queue goes below zero). So a price
level keeps one transform, `ahead = max(0, scale * x - consumed)`, and each order only
its place, the `x` it was given when it joined (`Queues.join`); no book update or
trade visits the orders resting there. Each order's queue is at most what the level
shows (it joined behind all of it, and both shrink alike), so a level that shows
nothing has nothing ahead of anyone: it is dropped, and an order whose level is gone
(or was made again since: its epoch differs) has none.
"""

import bisect
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import NamedTuple

from app.core.values import EXACT, ZERO, exact
from app.core.vocabulary import Side

# The transforms are kept to this many significant digits, and a queue is read to 12
# decimal places: an estimate, not a balance. A book's shrinks are multiplied as
# floats (about 16 significant digits) until the level is next read, so a book of
# 1,000 levels a side changes them all at a float's cost, not a decimal's; reading to
# 12 places gives a queue of 3 shrunk by a third and a half back as 1, not 0.99...9.
KEPT = Context(prec=60)
PLACES = Decimal("1e-12")
# A level's pending product of shrinks is applied before it comes near a float's least
# (about 1e-308): it must never round to zero.
SMALLEST_PENDING = 1e-150

LevelKey = tuple[Side, float]  # the side of the resting orders, and their limit price


class QueuePlace(NamedTuple):
    """Where an order joined the queue at its price: the level (`epoch`: a level made
    again at a price where one was dropped is a new one, with nothing of the old one's
    orders ahead of anyone) and its `x` there."""

    epoch: int
    x: Decimal

    def text(self) -> str:
        """As a SQL store keeps it: `epoch:x`."""
        return f"{self.epoch}:{self.x}"

    @classmethod
    def parse(cls, text: str | None) -> "QueuePlace | None":
        if text is None:
            return None
        epoch, _, x = text.partition(":")
        return cls(int(epoch), Decimal(x))


@dataclass(slots=True)
class QueueLevel:
    """The queue at one price of one side: what the book shows there, and the
    transform that gives each order's queue ahead from its `x`; with what books
    showed since, not yet applied (`seen`, the latest size, and `pending`, the product
    of their shrinks; `pending` None: nothing pending)."""

    epoch: int
    shown: Decimal
    scale: Decimal = Decimal(1)
    consumed: Decimal = ZERO
    seen: float = -1.0  # -1: as `shown`
    pending: float | None = None

    def __post_init__(self) -> None:
        if self.seen < 0:
            self.seen = float(self.shown)

    def ahead(self, x: Decimal) -> Decimal:
        self.settle()
        value = EXACT.subtract(EXACT.multiply(self.scale, x), self.consumed)
        return ZERO if value <= ZERO else value.quantize(PLACES, ROUND_HALF_EVEN, EXACT)

    def note(self, size: float) -> None:
        """A book shows `size` here now: a smaller size shrinks every queue in
        proportion; a larger one leaves them (what is added joins behind). A product
        of shrinks that nears a float's least is applied at once, so it never becomes
        zero."""
        if size == self.seen:
            return
        pending = 1.0 if self.pending is None else self.pending
        if size < self.seen:
            pending *= size / self.seen
            if pending < SMALLEST_PENDING:  # it would lose itself in a float: as decimals, now
                self.settle()
                ratio = EXACT.divide(exact(size), self.shown)
                self.scale = KEPT.multiply(self.scale, ratio)
                self.consumed = KEPT.multiply(self.consumed, ratio)
                self.shown, self.seen = exact(size), size
                return
        self.pending = pending
        self.seen = size

    def settle(self) -> None:
        """Apply what books showed since the level was last read."""
        if self.pending is None:
            return
        if self.pending < 1.0:
            ratio = exact(self.pending)
            self.scale = KEPT.multiply(self.scale, ratio)
            self.consumed = KEPT.multiply(self.consumed, ratio)
        self.shown = exact(self.seen)
        self.pending = None

    def traded(self, qty: Decimal) -> None:
        """A trade of `qty` at this price: it consumes the front of every queue, and
        the size shown here is that much smaller."""
        self.settle()
        self.consumed = KEPT.add(self.consumed, qty)
        self.shown = max(ZERO, EXACT.subtract(self.shown, qty))
        self.seen = float(self.shown)


class Queues:
    """The queue levels of one instrument's resting orders, per side and price (with
    each side's prices kept sorted, so a print finds the levels it went through without
    reading the others), and the epoch the next new level takes."""

    __slots__ = ("_prices", "levels", "next_epoch")

    def __init__(self, levels: dict[LevelKey, QueueLevel] | None = None, next_epoch: int = 1) -> None:
        self.levels: dict[Side, dict[float, QueueLevel]] = {Side.BUY: {}, Side.SELL: {}}
        self._prices: dict[Side, list[float]] = {Side.BUY: [], Side.SELL: []}
        for (side, price), level in (levels or {}).items():
            self._add(side, price, level)
        self.next_epoch = next_epoch

    def __bool__(self) -> bool:
        return bool(self.levels[Side.BUY] or self.levels[Side.SELL])

    def items(self) -> list[tuple[LevelKey, QueueLevel]]:
        """Every level, by side and price, as it is (nothing pending is applied: a
        store that keeps them must not change when it reads them)."""
        return [((side, price), level) for side, levels in self.levels.items() for price, level in levels.items()]

    def join(self, side: Side, price: float, shown: Decimal) -> QueuePlace | None:
        """An order starts resting at `price`, where the book shows `shown`: its place
        (None: nothing is ahead of it, and never will be). Where a level is kept, its
        own `shown` is the newer (trades since the book have taken from it)."""
        level = self.levels[side].get(price)
        if level is None:
            if shown <= ZERO:
                return None
            level = self._add(side, price, QueueLevel(self.next_epoch, shown))
            self.next_epoch += 1
        level.settle()
        return QueuePlace(level.epoch, KEPT.divide(KEPT.add(level.shown, level.consumed), level.scale))

    def ahead(self, side: Side, price: float, place: QueuePlace | None) -> Decimal:
        """The queue ahead of an order resting at `price` from `place`."""
        level = None if place is None else self.levels[side].get(price)
        if level is None or place is None or level.epoch != place.epoch:
            return ZERO
        return level.ahead(place.x)

    def show(self, side: Side, shown: dict[float, float], worst: float) -> None:
        """A book update: `shown` is the size at each price it shows on `side` (as the
        client sent it), best first down to `worst`. A level between the best and
        `worst` that it does not show has nothing left; one beyond `worst` is out of
        its sight and unchanged."""
        gone = []
        for price, level in self.levels[side].items():
            size = shown.get(price)
            if size is None:
                if price < worst if side == Side.BUY else price > worst:
                    continue
                size = 0.0
            if size <= 0.0:
                gone.append(price)
            else:
                level.note(size)
        for price in gone:
            self._drop(side, price)

    def traded(self, side: Side, price: float, qty: Decimal) -> None:
        """A trade against the resting orders of `side` that took `qty` from the queue
        displayed at `price`: it consumes that much of every queue there, and all of
        every queue at a better price (the trade went through it)."""
        levels, prices = self.levels[side], self._prices[side]
        if side == Side.BUY:  # better: higher
            through = prices[bisect.bisect_right(prices, price) :]
        else:
            through = prices[: bisect.bisect_left(prices, price)]
        for at in through:  # the trade printed beyond: all of their queue is gone
            self._drop(side, at)
        level = levels.get(price)
        if level is not None:
            level.traded(qty)
            if level.shown <= ZERO:
                self._drop(side, price)

    def _add(self, side: Side, price: float, level: QueueLevel) -> QueueLevel:
        self.levels[side][price] = level
        bisect.insort(self._prices[side], price)
        return level

    def _drop(self, side: Side, price: float) -> None:
        del self.levels[side][price]
        prices = self._prices[side]
        del prices[bisect.bisect_left(prices, price)]
