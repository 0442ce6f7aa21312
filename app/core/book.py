"""Resting orders of one instrument, kept so that a quote touches only what it reaches."""

import bisect
from typing import Any

from app.core.matching import Reach
from app.core.order import Order
from app.core.queue import QueuePlace
from app.core.vocabulary import Side

_AFTER_ALL = float("inf")


def _buy_key(order: Order) -> tuple[float, int]:
    return -order.limit_price, order.number  # type: ignore[operator]


def _sell_key(order: Order) -> tuple[float, int]:
    return order.limit_price, order.number  # type: ignore[return-value]


_KEYS = {Side.BUY: _buy_key, Side.SELL: _sell_key}


class Book:
    """Two kinds of resting order per side. Takers waiting for liquidity (MARKET orders,
    and LIMIT orders that crossed, or found no quote, when they came) in arrival order:
    every quote looks at them. Passive LIMIT orders, sorted so that the ones a quote
    reaches are a prefix: BUY by descending limit, SELL by ascending limit (the order
    number breaks ties, so each order has one place); finding them is a binary search
    on the quote's `Reach` and nothing beyond them is read. The lists hold the orders
    themselves and keys are computed while searching, so a resting order costs one
    list slot. An order with a place in the queue at its price keeps it here too
    (`queue_place`, see core.queue)."""

    def __init__(self) -> None:
        self._waiting: dict[Side, list[Order]] = {Side.BUY: [], Side.SELL: []}
        self._passive: dict[Side, list[Order]] = {Side.BUY: [], Side.SELL: []}
        self._queue_place: dict[int, QueuePlace] = {}
        # LIMIT orders resting before they reached the venue (a latency), in acceptance
        # order: each takes its place in the queue when it arrives.
        self.arriving: list[Order] = []

    def __len__(self) -> int:
        return sum(len(orders) for orders in (*self._waiting.values(), *self._passive.values()))

    def orders(self) -> list[Order]:
        """Every open order resting here (finished ones are dropped as quotes settle)."""
        return [
            order for orders in (*self._waiting.values(), *self._passive.values()) for order in orders if order.is_open
        ]

    def arrived(self, order: Order, place: QueuePlace | None) -> None:
        """`order` reached the venue and took `place` (see engine.arrive)."""
        self.arriving.remove(order)
        if place is not None:
            self._queue_place[order.number] = place

    def add(
        self, order: Order, *, passive: bool, queue_place: QueuePlace | None = None, arriving: bool = False
    ) -> None:
        if arriving:
            self.arriving.append(order)
        if queue_place is not None:
            self._queue_place[order.number] = queue_place
        if passive and order.limit_price is not None:
            bisect.insort(self._passive[order.side], order, key=_KEYS[order.side])
        else:
            self._waiting[order.side].append(order)

    def remove(self, order: Order) -> None:
        self._queue_place.pop(order.number, None)
        if order in self.arriving:
            self.arriving.remove(order)
        waiting = self._waiting[order.side]
        if order in waiting:
            waiting.remove(order)
            return
        if order.limit_price is None:
            return
        key = _KEYS[order.side]
        resting = self._passive[order.side]
        index = bisect.bisect_left(resting, key(order), key=key)
        if index < len(resting) and resting[index] is order:
            del resting[index]

    def reached_by(self, reach: Reach) -> list[tuple[Order, bool]]:
        """The orders a quote may fill, oldest first, each with whether it takes."""
        reached = [(order, True) for order in (*self._waiting[Side.BUY], *self._waiting[Side.SELL])]
        for side in (Side.BUY, Side.SELL):
            resting = self._passive[side]
            reached += [(order, False) for order in resting[: self._reached_end(side, reach)]]
        reached.sort(key=lambda pair: pair[0].accepted_at)  # stable: ties keep arrival order
        return reached

    def met_by_trade(self, side: Side, price: float) -> list[tuple[Order, QueuePlace | None]]:
        """The resting LIMIT orders of `side` a print at `price` meets (at or better than
        it: a BUY limit at or above it), passive or still waiting to take, each with its
        place in the queue."""
        probe = Reach(price, price)  # reaches the BUY limits at or above, the SELL limits at or below
        resting = self._passive[side]
        met = [order for order in resting[: self._reached_end(side, probe)] if order.is_open]
        met += [
            order
            for order in self._waiting[side]
            if order.is_open and order.limit_price is not None and probe.reaches(side, order.limit_price)
        ]
        met.sort(key=lambda order: order.place)  # in acceptance order, as the core expects
        return [(order, self._queue_place.get(order.number)) for order in met]

    def settle_trade(self, side: Side, price: float) -> None:
        """After a print's fills: drop the orders of `side` they finished."""
        waiting = self._waiting[side]
        self._forget(waiting)
        waiting[:] = [order for order in waiting if order.is_open]
        resting = self._passive[side]
        end = self._reached_end(side, Reach(price, price))
        self._forget(resting[:end])
        resting[:end] = [order for order in resting[:end] if order.is_open]

    def _forget(self, orders: list[Order]) -> None:
        for order in orders:
            if not order.is_open:
                self._queue_place.pop(order.number, None)
        if self.arriving and any(not order.is_open for order in self.arriving):
            self.arriving = [order for order in self.arriving if order.is_open]

    def settle(self, reach: Reach, arrived_by: int | None = None) -> None:
        """After a quote's fills: drop the orders they finished (one rebuild of the part
        of each list the quote read, not one shift of the list per order), and make
        the waiting LIMIT orders the quote did not reach passive, if they had reached
        the venue by then (accepted by `arrived_by`; None: all, no latency)."""
        for side, waiting in self._waiting.items():
            still_waiting = []
            self._forget(waiting)
            for order in waiting:
                if not order.is_open:
                    continue
                if reach.reaches(side, order.limit_price) or (
                    arrived_by is not None and order.accepted_at > arrived_by
                ):
                    still_waiting.append(order)
                else:
                    bisect.insort(self._passive[side], order, key=_KEYS[side])
            waiting[:] = still_waiting
        for side, resting in self._passive.items():
            end = self._reached_end(side, reach)
            self._forget(resting[:end])
            resting[:end] = [order for order in resting[:end] if order.is_open]

    def _reached_end(self, side: Side, reach: Reach) -> int:
        # The keys of the orders `reach` reaches are at most this probe (see Reach.reaches).
        probe: Any = (-reach.ask if side == Side.BUY else reach.bid, _AFTER_ALL)
        return bisect.bisect_right(self._passive[side], probe, key=_KEYS[side])
