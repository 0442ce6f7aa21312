"""Resting orders of one instrument, kept so that a quote touches only what it crosses."""

import bisect
from typing import TYPE_CHECKING

from app.fills import Quote

if TYPE_CHECKING:
    from app.storage import Order

Entry = tuple[float, int, "Order"]  # (sort key, arrival position, order)


class Book:
    """Per side, MARKET orders waiting for a quote (any quote reaches them) in arrival
    order, and LIMIT orders in a list sorted by (key, arrival) where the key makes the
    orders a quote crosses a prefix: BUY by descending limit (key = -limit), SELL by
    ascending limit. Finding them is a binary search; nothing beyond them is read.
    Float keys compare exactly with the quote's Decimal prices."""

    def __init__(self) -> None:
        self._market: dict[str, list[tuple[int, Order]]] = {"BUY": [], "SELL": []}
        self._limit: dict[str, list[Entry]] = {"BUY": [], "SELL": []}
        self._limit_entries: dict[Order, Entry] = {}

    def __len__(self) -> int:
        return len(self._market["BUY"]) + len(self._market["SELL"]) + len(self._limit_entries)

    def add(self, order: "Order", position: int) -> None:
        limit = order.limit_price
        if limit is None:
            self._market[order.side].append((position, order))
            return
        entry = (-limit if order.side == "BUY" else limit, position, order)
        bisect.insort(self._limit[order.side], entry)
        self._limit_entries[order] = entry

    def remove(self, order: "Order") -> None:
        if order.limit_price is None:
            waiting = self._market[order.side]
            for index, (_, queued) in enumerate(waiting):  # filled from the front: found early
                if queued is order:
                    del waiting[index]
                    return
            return
        entry = self._limit_entries.pop(order, None)
        if entry is not None:
            side = self._limit[order.side]
            del side[bisect.bisect_left(side, entry[:2])]

    def crossed_by(self, quote: Quote) -> list["Order"]:
        """The orders this quote can fill, oldest first."""
        reached: list[tuple[int, Order]] = self._market["BUY"] + self._market["SELL"]
        for side, threshold in (("BUY", -quote.ask), ("SELL", quote.bid)):
            entries = self._limit[side]
            end = bisect.bisect_right(entries, (threshold, float("inf")))
            reached += [(position, order) for _, position, order in entries[:end]]
        reached.sort(key=lambda item: item[0])
        return [order for _, order in reached]
