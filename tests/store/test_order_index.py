"""The memory store's listing index (app.store.order_index), called directly: its sorted
blocks of places, and pages of any filter, checked against a plain scan."""

import random
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.order import TRANSITIONS
from app.core.vocabulary import OrderStatus, Side
from app.store.base import OrderFilter
from app.store.order_index import BLOCK, IndexKey, OrderIndex, SortedPlaces

EXCHANGES = ("binance", "coinbase")
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def test_sorted_places_keep_order_through_appends_inserts_and_removals() -> None:
    places = SortedPlaces()
    shuffled = list(range(0, 6 * BLOCK, 2))
    for place in shuffled[: 2 * BLOCK]:
        places.add(place)  # appends: the newest place each time
    random.Random(7).shuffle(rest := shuffled[2 * BLOCK :])
    for place in rest:
        places.add(place)
    for place in range(1, 6 * BLOCK, 2):
        places.add(place)  # an insert into every block, splitting the full ones
    assert list(places) == list(range(6 * BLOCK))
    assert len(places) == 6 * BLOCK
    gone = set(random.Random(8).sample(range(6 * BLOCK), 5 * BLOCK))
    for place in gone:
        places.remove(place)
    kept = [place for place in range(6 * BLOCK) if place not in gone]
    assert list(places) == kept
    assert list(places.descending()) == kept[::-1]
    for before in (0, 1, kept[0], kept[len(kept) // 2], kept[-1], kept[-1] + 1, 10 * BLOCK):
        assert list(places.descending(before)) == [place for place in reversed(kept) if place < before]


def test_sorted_places_refuse_a_place_twice_and_one_they_lack() -> None:
    places = SortedPlaces()
    for place in (3, 5, 9):
        places.add(place)
    with pytest.raises(ValueError, match="already"):
        places.add(5)
    for missing in (4, 10, 0):
        with pytest.raises(KeyError):
            places.remove(missing)
    for place in (9, 3, 5):
        places.remove(place)
    assert (len(places), list(places.descending()), list(places.descending(4))) == (0, [], [])
    places.add(1)
    assert list(places) == [1]


def test_a_full_block_is_split_and_an_empty_one_dropped() -> None:
    places = SortedPlaces(block=4)
    for place in range(0, 40, 4):
        places.add(place)  # appends fill blocks of 4: [0..12] [16..28] [32, 36]
    for place in (1, 2, 3, 5, 6):
        places.add(place)  # the first block passes 8 and is split in two
    assert [list(block) for block in places._blocks] == [
        [0, 1, 2, 3],
        [4, 5, 6, 8, 12],
        [16, 20, 24, 28],
        [32, 36],
    ]
    for place in (36, 32, 12):
        places.remove(place)
    assert [list(block) for block in places._blocks] == [[0, 1, 2, 3], [4, 5, 6, 8], [16, 20, 24, 28]]
    assert places._lasts == [3, 8, 28]
    assert list(places.descending(16)) == [8, 6, 5, 4, 3, 2, 1, 0]
    assert list(places.descending(17)) == [16, 8, 6, 5, 4, 3, 2, 1, 0]


# Operations on an index and a plain model of it: ("add", kind) accepts a new order of
# that kind; ("move", n, status) moves the n-th order (mod how many) to a status it
# may take.
kinds = st.tuples(st.sampled_from(EXCHANGES), st.sampled_from(SYMBOLS), st.sampled_from(list(Side)))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), kinds),
        st.tuples(st.just("move"), st.integers(min_value=0), st.sampled_from(list(OrderStatus))),
    ),
    max_size=300,
)
filters = st.builds(
    OrderFilter,
    statuses=st.none() | st.frozensets(st.sampled_from(list(OrderStatus)), min_size=1),
    exchange=st.none() | st.sampled_from(EXCHANGES),
    symbol=st.none() | st.sampled_from(SYMBOLS),
    side=st.none() | st.sampled_from(list(Side)),
)


def built(ops: list[tuple[object, ...]]) -> tuple[OrderIndex, list[IndexKey]]:
    index = OrderIndex(block=2)  # blocks of 2 to 4 places: splits and drops happen often
    model: list[IndexKey] = []  # each order's key, by place
    for op in ops:
        if op[0] == "add":
            exchange, symbol, side = op[1]  # type: ignore[misc]
            model.append(IndexKey(exchange, symbol, side, OrderStatus.NEW))
            index.add(model[-1], len(model) - 1)
        elif model:
            place = int(op[1]) % len(model)  # type: ignore[call-overload]
            to = OrderStatus(op[2])
            if to in TRANSITIONS[model[place].status]:
                index.move(model[place], place, to)
                model[place] = model[place]._replace(status=to)
    return index, model


@settings(max_examples=200, deadline=None)
@given(ops=operations, keep=filters, limit=st.integers(min_value=1, max_value=20), data=st.data())
def test_pages_are_what_a_scan_of_every_order_finds(
    ops: list[tuple[object, ...]], keep: OrderFilter, limit: int, data: st.DataObject
) -> None:
    index, model = built(ops)
    before = data.draw(st.none() | st.integers(min_value=0, max_value=len(model) + 2))
    top = len(model) if before is None else min(before, len(model))
    expected = [place for place in range(top - 1, -1, -1) if keep.keeps_kind(*model[place])]
    places, more = index.newest_first(keep, before, limit)
    assert places == expected[:limit]
    assert more == (len(expected) > limit)
    counts = {status: sum(1 for key in model if key.status == status) for status in OrderStatus}
    assert {status: n for status, n in index.count_by_status().items() if n} == {s: n for s, n in counts.items() if n}


def test_a_rare_combination_of_common_values_reads_only_its_own_orders() -> None:
    """Half the orders are EXPIRED and half are on BTC/USDT, but only one is both: the
    page asks only the keys that are both, which hold that one order."""
    index = OrderIndex()
    place = 0
    for exchange, symbol, side in product(EXCHANGES, SYMBOLS, Side):
        for _ in range(50):
            key = IndexKey(exchange, symbol, side, OrderStatus.NEW)
            index.add(key, place)
            if symbol != "BTC/USDT" or place == 7:
                index.move(key, place, OrderStatus.EXPIRED)
            place += 1
    keep = OrderFilter(statuses=frozenset({OrderStatus.EXPIRED}), symbol="BTC/USDT")
    asked = [key for key, places in index._keys.items() if places and keep.keeps_kind(*key)]
    assert asked == [IndexKey("binance", "BTC/USDT", Side.BUY, OrderStatus.EXPIRED)]
    assert index.newest_first(keep, None, 100) == ([7], False)


def test_moving_an_order_to_its_own_status_changes_nothing() -> None:
    index = OrderIndex()
    key = IndexKey("binance", "BTC/USDT", Side.BUY, OrderStatus.PARTIALLY_FILLED)
    index.add(key, 0)
    index.move(key, 0, OrderStatus.PARTIALLY_FILLED)  # a second partial fill
    assert index.count_by_status() == {OrderStatus.PARTIALLY_FILLED: 1}
    assert index.newest_first(OrderFilter(), None, 5) == ([0], False)
