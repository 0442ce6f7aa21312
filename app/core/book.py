"""Resting orders of one instrument, kept so that a quote touches only what it crosses."""

import bisect
from typing import TYPE_CHECKING, Any

from app.core.fills import Quote

if TYPE_CHECKING:
    from app.store.memory import Order

_AFTER_ALL = float("inf")


def _buy_key(order: "Order") -> tuple[float, int]:
    return -order.limit_price, order.number  # type: ignore[operator]


def _sell_key(order: "Order") -> tuple[float, int]:
    return order.limit_price, order.number  # type: ignore[return-value]


_KEYS = {"BUY": _buy_key, "SELL": _sell_key}


def reaches(quote: Quote, order: "Order") -> bool:
    """Whether `quote` is at or through the order's limit (a MARKET order: always)."""
    limit = order.limit_price
    if limit is None:
        return True
    # As floats: the quote's prices are the exact decimals of the floats the client
    # sent, and that mapping keeps order, so this is the fill model's exact comparison.
    # A Decimal against the float limit would compare binary values (0.1 != 0.1).
    return float(quote.ask) <= limit if order.side == "BUY" else float(quote.bid) >= limit


class Book:
    """Two kinds of resting order per side. Takers waiting for liquidity (MARKET orders,
    and LIMIT orders that crossed, or found no quote, when they came) in arrival order:
    every quote looks at them. Passive LIMIT orders, sorted so that the ones a quote
    crosses are a prefix: BUY by descending limit, SELL by ascending limit (the order
    number breaks ties, so each order has one place); finding them is a binary search
    and nothing beyond them is read. The lists hold the orders themselves and keys are
    computed while searching, so a resting order costs one list slot. Float limits
    compare exactly with the quote's Decimal prices."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Order]] = {"BUY": [], "SELL": []}
        self._passive: dict[str, list[Order]] = {"BUY": [], "SELL": []}

    def __len__(self) -> int:
        return sum(len(orders) for orders in (*self._waiting.values(), *self._passive.values()))

    def orders(self) -> list["Order"]:
        """Every order resting here (finished ones are dropped as quotes settle)."""
        return [
            order for orders in (*self._waiting.values(), *self._passive.values()) for order in orders if order.is_open
        ]

    def add(self, order: "Order", *, passive: bool) -> None:
        if passive and order.limit_price is not None:
            bisect.insort(self._passive[order.side], order, key=_KEYS[order.side])
        else:
            self._waiting[order.side].append(order)

    def remove(self, order: "Order") -> None:
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

    def crossed_by(self, quote: Quote) -> list[tuple["Order", bool]]:
        """The orders this quote may fill, oldest first, each with whether it takes."""
        reached = [(order, True) for order in (*self._waiting["BUY"], *self._waiting["SELL"])]
        for side in ("BUY", "SELL"):
            resting = self._passive[side]
            reached += [(order, False) for order in resting[: self._crossed_end(side, quote)]]
        reached.sort(key=lambda pair: pair[0].accepted_at)  # stable: ties keep arrival order
        return reached

    def settle(self, quote: Quote) -> None:
        """After `quote`'s fills: drop the orders they finished (one rebuild of the part
        of each list the quote read, not one shift of the list per order), and make
        the waiting LIMIT orders the quote did not reach passive."""
        for side, waiting in self._waiting.items():
            still_waiting = []
            for order in waiting:
                if not order.is_open:
                    continue
                if reaches(quote, order):
                    still_waiting.append(order)
                else:
                    bisect.insort(self._passive[side], order, key=_KEYS[side])
            waiting[:] = still_waiting
        for side, resting in self._passive.items():
            end = self._crossed_end(side, quote)
            resting[:end] = [order for order in resting[:end] if order.is_open]

    def _crossed_end(self, side: str, quote: Quote) -> int:
        probe: Any = (-float(quote.ask) if side == "BUY" else float(quote.bid), _AFTER_ALL)  # as in reaches
        return bisect.bisect_right(self._passive[side], probe, key=_KEYS[side])
