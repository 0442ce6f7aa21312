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
the `x` it was given when it joined (`QueueLevel.join`); no book update or trade visits
the orders resting there. Each order's queue is at most what the level shows (it
joined behind all of it, and both shrink alike), so a level that shows nothing has
nothing ahead of anyone: it is dropped, and an order whose level is gone has none.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from app.core.values import EXACT, ZERO
from app.core.vocabulary import Side

# The transforms are kept to this many significant digits (a shrink's ratio does not
# end), and a queue is read to this many decimal places: an estimate, not a balance.
KEPT = Context(prec=60)
PLACES = Decimal("1e-18")

LevelKey = tuple[Side, float]  # the side of the resting orders, and their limit price


@dataclass(slots=True)
class QueueLevel:
    """The queue at one price of one side: what the book shows there, and the
    transform that gives each order's queue ahead from its `x`."""

    shown: Decimal
    scale: Decimal = Decimal(1)
    consumed: Decimal = ZERO

    def ahead(self, x: Decimal) -> Decimal:
        value = EXACT.subtract(EXACT.multiply(self.scale, x), self.consumed)
        return ZERO if value <= ZERO else value.quantize(PLACES, ROUND_HALF_EVEN, EXACT)

    def shown_now(self, size: Decimal) -> None:
        """The book shows `size` here now: a smaller size shrinks every queue in
        proportion; a larger one leaves them (what is added joins behind)."""
        if size < self.shown:
            ratio = EXACT.divide(size, self.shown)
            self.scale = KEPT.multiply(self.scale, ratio)
            self.consumed = KEPT.multiply(self.consumed, ratio)
        self.shown = size

    def traded(self, qty: Decimal) -> None:
        """A trade of `qty` at this price: it consumes the front of every queue, and
        the size shown here is that much smaller."""
        self.consumed = KEPT.add(self.consumed, qty)
        self.shown = max(ZERO, EXACT.subtract(self.shown, qty))


class Queues:
    """The queue levels of one instrument's resting orders, with `top`: more than any
    `x` given so far, so a level made again at a price where one was dropped starts
    after every order that joined the old one (their queue stays zero)."""

    __slots__ = ("levels", "top")

    def __init__(self, levels: dict[LevelKey, QueueLevel] | None = None, top: Decimal = ZERO) -> None:
        self.levels = levels if levels is not None else {}
        self.top = top

    def join(self, side: Side, price: float, shown: Decimal) -> Decimal | None:
        """An order starts resting at `price`, where the book shows `shown`: its `x`
        (None: nothing is ahead of it, and never will be). Where a level is kept, its
        own `shown` is the newer (trades since the book have taken from it)."""
        key = (side, price)
        level = self.levels.get(key)
        if level is None:
            if shown <= ZERO:
                return None
            level = self.levels[key] = QueueLevel(shown, Decimal(1), self.top)
        x = KEPT.divide(KEPT.add(level.shown, level.consumed), level.scale)
        self.top = max(self.top, x)
        return x

    def ahead(self, side: Side, price: float, x: Decimal | None) -> Decimal:
        """The queue ahead of an order resting at `price` that joined with `x`."""
        level = None if x is None else self.levels.get((side, price))
        return ZERO if level is None or x is None else level.ahead(x)

    def show(self, side: Side, shown: dict[float, Decimal], worst: float) -> None:
        """A book update: `shown` is the size at each price it shows on `side`, best
        first down to `worst`. A level between the best and `worst` that it does not
        show has nothing left; one beyond `worst` is out of its sight and unchanged."""
        for (level_side, price), level in list(self.levels.items()):
            if level_side != side:
                continue
            size = shown.get(price)
            if size is None:
                beyond = price < worst if side == Side.BUY else price > worst
                if beyond:
                    continue
                size = ZERO
            level.shown_now(size)
            if level.shown <= ZERO:
                del self.levels[(side, price)]

    def traded(self, side: Side, price: float, qty: Decimal) -> None:
        """A trade of `qty` at `price` against the resting orders of `side`: it consumes
        the queue there, and every queue at a better price (the trade went through it)."""
        for (level_side, at), level in list(self.levels.items()):
            if level_side != side:
                continue
            if at == price:
                level.traded(qty)
            elif (at > price) if side == Side.BUY else (at < price):
                level.traded(level.shown)  # all of it: the trade printed beyond
            else:
                continue
            if level.shown <= ZERO:
                del self.levels[(side, at)]
