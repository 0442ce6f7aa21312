"""Resting orders of one instrument, kept so that a quote touches only what it crosses."""

import bisect
from typing import TYPE_CHECKING, Any

from app.fills import Quote

if TYPE_CHECKING:
    from app.storage import Order

_AFTER_ALL = float("inf")


def _buy_key(order: "Order") -> tuple[float, int]:
    return -order.limit_price, order.number  # type: ignore[operator]


def _sell_key(order: "Order") -> tuple[float, int]:
    return order.limit_price, order.number  # type: ignore[return-value]


_KEYS = {"BUY": _buy_key, "SELL": _sell_key}


class Book:
    """Per side, MARKET orders waiting for a quote (any quote reaches them) in arrival
    order, and LIMIT orders sorted so that the ones a quote crosses are a prefix: BUY by
    descending limit, SELL by ascending limit (the order number breaks ties, so every
    order has one place). Finding the crossed ones is a binary search, and nothing
    beyond them is read. The lists hold the orders themselves, and keys are computed
    while searching: a resting order costs one list slot. Float limits compare exactly
    with the quote's Decimal prices."""

    def __init__(self) -> None:
        self._market: dict[str, list[Order]] = {"BUY": [], "SELL": []}
        self._limit: dict[str, list[Order]] = {"BUY": [], "SELL": []}

    def __len__(self) -> int:
        return sum(len(orders) for orders in (*self._market.values(), *self._limit.values()))

    def add(self, order: "Order") -> None:
        if order.limit_price is None:
            self._market[order.side].append(order)
        else:
            bisect.insort(self._limit[order.side], order, key=_KEYS[order.side])

    def remove(self, order: "Order") -> None:
        if order.limit_price is None:
            waiting = self._market[order.side]
            if order in waiting:  # filled from the front, so found early
                waiting.remove(order)
            return
        key = _KEYS[order.side]
        resting = self._limit[order.side]
        index = bisect.bisect_left(resting, key(order), key=key)
        if index < len(resting) and resting[index] is order:
            del resting[index]

    def settle(self, quote: Quote) -> None:
        """Drop the orders that `quote`'s fills finished. They all lie in the part of
        each list the quote crossed, so only that part is read; one rebuild per list
        instead of one removal (and one shift of the list) per finished order."""
        for waiting in self._market.values():
            waiting[:] = [order for order in waiting if order.is_open]
        for side, threshold in (("BUY", -quote.ask), ("SELL", quote.bid)):
            resting = self._limit[side]
            probe: Any = (threshold, _AFTER_ALL)
            end = bisect.bisect_right(resting, probe, key=_KEYS[side])
            resting[:end] = [order for order in resting[:end] if order.is_open]

    def crossed_by(self, quote: Quote) -> list["Order"]:
        """The orders this quote can fill, oldest first."""
        reached = self._market["BUY"] + self._market["SELL"]
        for side, threshold in (("BUY", -quote.ask), ("SELL", quote.bid)):
            resting = self._limit[side]
            probe: Any = (threshold, _AFTER_ALL)  # a Decimal price: compares exactly with the float keys
            reached += resting[: bisect.bisect_right(resting, probe, key=_KEYS[side])]
        reached.sort(key=lambda order: order.accepted_at)  # stable: ties keep arrival order
        return reached
