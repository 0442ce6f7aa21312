"""The memory store's listing index: where the orders of each (exchange, symbol, side,
status) are, so that a filtered page reads only orders it keeps."""

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import islice
from typing import NamedTuple

from app.core.vocabulary import OrderStatus, Side
from app.store.base import OrderFilter

# Places per block of a SortedPlaces: a block is split in two past twice this. Small
# enough that an insert or a removal moves a few kilobytes at most, large enough that
# the blocks' own overhead (about 100 bytes each) is a fraction of a byte per place.
BLOCK = 1024


class SortedPlaces:
    """A sorted set of order places (integers from 0 to 2**32 - 1: the memory store's
    positions), in blocks of 4-byte arrays: 4 bytes a place, where a sorted list of
    Python ints would cost 36 (an int object and a slot), and a set would not keep them
    in order. Adding the largest place yet (a new order) appends to the last block;
    adding or removing any other finds its block by a binary search over the blocks'
    last places, then its slot in the block by another, and moves the rest of that
    block only."""

    __slots__ = ("_block", "_blocks", "_lasts", "_size")

    def __init__(self, block: int = BLOCK) -> None:
        self._block = block
        self._blocks: list[array[int]] = []
        self._lasts: list[int] = []  # the largest place of each block
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, place: int) -> None:
        blocks, lasts = self._blocks, self._lasts
        if not blocks or place > lasts[-1]:
            if not blocks or len(blocks[-1]) >= self._block:
                blocks.append(array("I"))
                lasts.append(place)
            blocks[-1].append(place)
            lasts[-1] = place
        else:
            index = bisect_left(lasts, place)
            block = blocks[index]
            at = bisect_left(block, place)
            if block[at] == place:
                raise ValueError(f"place {place} is already in the set")
            block.insert(at, place)
            half = self._block
            if len(block) > 2 * half:
                blocks.insert(index + 1, block[half:])
                del block[half:]
                lasts.insert(index, block[-1])
        self._size += 1

    def remove(self, place: int) -> None:
        blocks, lasts = self._blocks, self._lasts
        index = bisect_left(lasts, place)
        block = blocks[index] if index < len(blocks) else None
        at = -1 if block is None else bisect_left(block, place)
        if block is None or block[at] != place:
            raise KeyError(place)
        del block[at]
        if not block:
            del blocks[index], lasts[index]
        elif at == len(block):
            lasts[index] = block[-1]
        self._size -= 1

    def descending(self, before: int | None = None) -> Iterator[int]:
        """The places below `before` (None: every place), largest first."""
        blocks = self._blocks
        if not blocks:
            return
        index = len(blocks) - 1 if before is None else bisect_left(self._lasts, before)
        if index == len(blocks):
            index -= 1
        block = blocks[index]
        end = len(block) if before is None else bisect_left(block, before)
        while True:
            for at in range(end - 1, -1, -1):
                yield block[at]
            index -= 1
            if index < 0:
                return
            block = blocks[index]
            end = len(block)

    def __iter__(self) -> Iterator[int]:
        for block in self._blocks:
            yield from block


class IndexKey(NamedTuple):
    exchange: str
    symbol: str
    side: Side
    status: OrderStatus


class OrderIndex:
    """Every order's place, by its exchange, symbol, side and status together. Few keys
    exist (allowlisted instruments x 2 sides x 5 statuses), each order is under exactly
    one, and a status change moves it from one key to another.

    A page of a filter merges the keys the filter matches, newest first (a heap over
    their sorted places), and stops when the page is full: every place it reads is an
    order the filter keeps, however rare they are among all orders, and however common
    each part of the filter is alone (status=EXPIRED with symbol=BTC/USDT reads the
    keys that have both). A page costs a binary search per matching key, and a heap
    step per order it holds."""

    __slots__ = ("_block", "_keys")

    def __init__(self, block: int = BLOCK) -> None:
        self._block = block
        self._keys: dict[IndexKey, SortedPlaces] = {}

    def add(self, key: IndexKey, place: int) -> None:
        places = self._keys.get(key)
        if places is None:
            places = self._keys[key] = SortedPlaces(self._block)
        places.add(place)

    def move(self, key: IndexKey, place: int, to: OrderStatus) -> None:
        """The order at `place`, under `key`, now has status `to`."""
        if key.status == to:
            return
        self._keys[key].remove(place)
        self.add(key._replace(status=to), place)

    def newest_first(self, keep: OrderFilter, before: int | None, limit: int) -> tuple[list[int], bool]:
        """Up to `limit` places of orders `keep` accepts, below `before` (None: from the
        newest), largest first; and whether any such place is left below them."""
        sources = [
            places.descending(before)
            for key, places in self._keys.items()
            if places and keep.keeps_kind(key.exchange, key.symbol, key.side, key.status)
        ]
        if not sources:
            return [], False
        merged = sources[0] if len(sources) == 1 else heapq.merge(*sources, reverse=True)
        found = list(islice(merged, limit + 1))
        return found[:limit], len(found) > limit

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, places in self._keys.items():
            counts[key.status] = counts.get(key.status, 0) + len(places)
        return counts
