"""The in-memory store: orders by id and by idempotency key, in this process only.

One lock guards everything; each operation takes it for a moment around the core's
pure work, so two racing requests with the same key can never both see it free, no
quote slips in between a check and the order it lets in, and no two intents both pass
a limit only one of them fits.
"""

import threading
import uuid
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from typing import TypeVar

import anyio

from app.core import engine
from app.core.balances import Account, Holding
from app.core.book import Book
from app.core.controls import Exposure, TradingState
from app.core.engine import InstrumentState, Policy
from app.core.events import Event, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from app.core.ids import parse_order_id
from app.core.journal import EntryFilter
from app.core.matching import Reach
from app.core.order import Order, OrderTerms, StoredFill
from app.core.positions import Position
from app.core.values import Instrument, Quote, Trade
from app.core.vocabulary import FillSource, OrderStatus, Side
from app.ops.clock import now_micros
from app.store.base import Admission, OrderFilter, PositionView, StateChange
from app.store.errors import StoreFull
from app.store.ids import new_number
from app.store.journal import JournalPage, RetainedEvents
from app.store.order_index import IndexKey, OrderIndex

# How many journal entries the memory store keeps when EVENTS_RETAIN is not set.
DEFAULT_EVENTS_RETAIN = 100_000
# Its cap (MAX_ORDERS) counts orders and fills alike: a fill holds about as much
# memory as an order (docs/performance.md). New intents are refused at the cap; fills
# of the orders already held may go on into a reserve of this share of the cap, so
# that a full store still fills what rests; past that, a quote that could fill is
# refused. Nothing stored is ever dropped.
FILL_RESERVE = 0.1


T = TypeVar("T")


class _Instrument:
    """An instrument's core state and its resting orders."""

    __slots__ = ("book", "state", "traded")

    def __init__(self, key: Instrument) -> None:
        self.book = Book()
        self.state = InstrumentState(key, None, Position(), self._exposure)
        self.traded = False  # whether it has had a fill: only those have a position to show

    def _exposure(self, position: Position) -> Exposure:
        # Counted from the book the first time a check asks, then kept up to date by the
        # core: an instrument no check asks about costs the hot path nothing.
        return Exposure.of(position.qty, ((order.side, order.remaining) for order in self.book.orders()))


class InMemoryStore:
    name = "memory"
    blocking = False

    def __init__(self, events_retain: int = DEFAULT_EVENTS_RETAIN) -> None:
        self._lock = threading.Lock()
        self._by_number: dict[int, Order] = {}
        self._by_key: dict[str, Order] = {}
        self._sequence: list[Order] = []  # in acceptance order: an order's place is its index
        # Where each (exchange, symbol, side, status)'s orders are: a filtered listing
        # reads only what it keeps, and a scrape counts statuses without a scan.
        self._index = OrderIndex()
        self._instruments: dict[Instrument, _Instrument] = {}
        self._trading = TradingState(updated_at=now_micros())
        self._account: Account | None = None  # the paper account, when PAPER_BALANCES is set
        self._journal = RetainedEvents(events_retain)
        self.journal_id = uuid.uuid4().hex  # this journal lives and dies with the process
        self._fills: list[tuple[Order, StoredFill]] = []  # every fill, in journal order

    async def admit(self, order: Order, policy: Policy, now: int, cap: int | None = None) -> Admission:
        with self._lock:
            existing = self._by_key.get(order.idempotency_key)
            if existing is not None:
                return Admission(existing, False, [])
            if cap is not None and self.held() >= cap:
                raise StoreFull(
                    cap,
                    f"The store is full: its orders and their fills number MAX_ORDERS={cap} (a fill counts as an "
                    "order); no new order is accepted. Existing orders are kept and can still be read, canceled "
                    "and filled",
                )
            instrument = self._instrument((order.exchange, order.symbol))
            admitted = engine.admit(
                order, instrument.state, self._trading, policy, self._account, now=now, new_id=new_number
            )
            order.terms = OrderTerms.placed(order.terms, len(self._sequence))
            self._by_key[order.idempotency_key] = order
            self._by_number[order.number] = order
            self._sequence.append(order)
            self._keep(instrument, admitted.events)
            if admitted.rests:
                instrument.book.add(
                    order, passive=admitted.passive, queue_place=admitted.queue_place, arriving=admitted.arriving
                )
            return Admission(order, True, admitted.events)

    def quick(self, call: str, *args: object) -> bool:
        return True  # every call takes a moment's lock at most

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[None]:
        yield  # nothing belongs to the loop

    async def wait_for(self, call: Callable[[], T]) -> T:
        return call()  # never asked: every call is quick

    def get(self, order_id: str) -> Order | None:
        number = parse_order_id(order_id)
        return None if number is None else self._by_number.get(number)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        return self._by_key.get(idempotency_key)

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        with self._lock:
            sequence = self._sequence
            if keep.idempotency_key is not None:
                order = self._by_key.get(keep.idempotency_key)
                kept = order is not None and keep.keeps(order) and (before is None or order.place < before)
                return ([order] if kept and order is not None else []), None
            if keep.keeps_all:
                top = len(sequence) if before is None else min(before, len(sequence))
                places: range | list[int] = range(top - 1, max(top - limit, 0) - 1, -1)
                more = top > limit
            else:
                places, more = self._index.newest_first(keep, before, limit)
            found = [sequence[place] for place in places]
        return found, (found[-1].place if more else None)

    def count(self) -> int:
        return len(self._by_number)

    def held(self) -> int:
        return len(self._sequence) + len(self._fills)

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            return self._index.count_by_status()

    async def add_quote(
        self,
        instrument: Instrument,
        quote: Quote,
        policy: Policy,
        now: int,
        cap: int | None = None,
        *,
        ts: int | None = None,
        source: FillSource = FillSource.QUOTE,
    ) -> list[Event]:
        with self._lock:
            held = self._instrument(instrument)
            ts = engine.stamp(held.state, ts, now, policy)  # refused data is refused whatever the store holds
            reach = Reach.of(quote)
            reached = held.book.reached_by(reach) if held.book else []
            # Each fill ends an order's walk, or empties a level with another behind it:
            # no more fills than the orders it reaches and the levels behind the top.
            possible = len(reached) + len(quote.deeper_bids) + len(quote.deeper_asks) if reached else 0
            if cap is not None and possible and self.held() + possible > cap + int(cap * FILL_RESERVE):
                raise StoreFull(
                    cap,
                    f"The store is full: the fills this quote could make ({possible}) would take its orders "
                    f"and fills past MAX_ORDERS={cap} and its reserve for fills ({int(cap * FILL_RESERVE)}); the "
                    "quote was not taken. Existing orders are kept and can still be read and canceled",
                )
            self._arrive(held, policy, ts)
            events = engine.apply_quote(
                held.state, quote, reached, policy, self._account, now=now, new_id=new_number, ts=ts, source=source
            )
            if reached:
                assert held.state.quote_ts is not None  # the quote's, just applied
                held.book.settle(reach, policy.arrived_by(held.state.quote_ts))
            self._keep(held, events)
            return events

    async def add_trade(
        self,
        instrument: Instrument,
        trade: Trade,
        policy: Policy,
        now: int,
        cap: int | None = None,
        *,
        ts: int | None = None,
    ) -> list[Event]:
        with self._lock:
            held = self._instrument(instrument)
            ts = engine.stamp(held.state, ts, now, policy)  # refused data is refused whatever the store holds
            side = Side.SELL if trade.buys else Side.BUY
            price = float(trade.price)
            met = held.book.met_by_trade(side, price)
            if cap is not None and met and self.held() + len(met) > cap + int(cap * FILL_RESERVE):
                raise StoreFull(
                    cap,
                    f"The store is full: the fills this trade could make ({len(met)}) would take its orders "
                    f"and fills past MAX_ORDERS={cap} and its reserve for fills ({int(cap * FILL_RESERVE)}); the "
                    "trade was not taken. Existing orders are kept and can still be read and canceled",
                )
            self._arrive(held, policy, ts)
            met = held.book.met_by_trade(side, price)  # with the places of those that just arrived
            events = engine.apply_trade(
                held.state, trade, met, policy, self._account, now=now, new_id=new_number, ts=ts
            )
            if events:
                held.book.settle_trade(side, price)
            self._keep(held, events)
            return events

    def cancel(self, order_id: str, now: int) -> tuple[Order, OrderCanceled | None] | None:
        with self._lock:
            order = self.get(order_id)
            if order is None:
                return None
            held = self._instrument((order.exchange, order.symbol))
            event = engine.cancel(order, held.state.exposure_known, self._account, now=now)
            if event is not None:
                held.book.remove(order)
                self._keep(held, [event])
            return order, event

    def trading_state(self) -> TradingState:
        return self._trading

    def claim_feeds(self, holder: str, instruments: Sequence[Instrument], now: int, ttl: int) -> set[Instrument]:
        return set(instruments)  # no other process shares this store: every feed is this one's

    def release_feeds(self, holder: str, instruments: Sequence[Instrument]) -> None:
        return None

    def set_trading_state(
        self,
        state: TradingState,
        *,
        cancel_open: bool = False,
        only_stricter: bool = False,
        live: frozenset[str] = frozenset(),
    ) -> StateChange:
        with self._lock:
            before = self._trading
            open_orders = [order for held in self._instruments.values() for order in held.book.orders()]
            events = engine.change_trading_state(
                before,
                state,
                open_orders,
                self._account,
                cancel_open=cancel_open,
                only_stricter=only_stricter,
                live=live,
                exposure_of=lambda order: self._instrument((order.exchange, order.symbol)).state.exposure_known,
            )
            if events:
                self._trading = state
            for event in events:
                if isinstance(event, OrderCanceled):
                    held = self._instrument((event.order.exchange, event.order.symbol))
                    held.book.remove(event.order)
            self._keep(None, events)
            return StateChange(before, events)

    def open_account(self, start: dict[str, Decimal], assets: set[str], policy: Policy) -> None:
        with self._lock:
            if self._account is not None:
                return
            holdings = {
                asset: Holding(start.get(asset, Decimal(0)), start.get(asset, Decimal(0)))
                for asset in assets | set(start)
            }
            account = Account(holdings)
            open_orders = [order for held in self._instruments.values() for order in held.book.orders()]
            quotes = {key: held.state.quote for key, held in self._instruments.items() if held.state.quote is not None}
            account.adopt(open_orders, quotes, policy.costs)
            self._account = account

    def balances(self) -> dict[str, Holding]:
        with self._lock:
            if self._account is None:
                return {}
            return {asset: replace(held) for asset, held in self._account.holdings.items()}

    def market_data_times(self) -> dict[Instrument, int | None]:
        with self._lock:
            return {
                key: held.state.quote_ts for key, held in self._instruments.items() if held.state.quote_ts is not None
            }

    def positions(self) -> list[PositionView]:
        with self._lock:
            return [
                PositionView(key[0], key[1], held.state.position, held.state.quote)
                for key, held in sorted(self._instruments.items())
                if held.traded
            ]

    def read_journal(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        with self._lock:
            return self._journal.read(after, limit, keep)

    def journal_head(self) -> int:
        return self._journal.head

    def order_fills(self, order_id: str, after: int, limit: int) -> tuple[Order, list[StoredFill], bool] | None:
        with self._lock:
            order = self.get(order_id)
            if order is None:
                return None
            fills = order.fills
            start = bisect_right(fills, after, key=_seq_of)
            page = fills[start : start + limit + 1]
        return order, page[:limit], len(page) > limit

    def fills_after(self, after: int, limit: int) -> list[tuple[Order, StoredFill]]:
        with self._lock:
            start = bisect_right(self._fills, after, key=_fill_seq)
            return self._fills[start : start + limit]

    async def follow(self) -> AsyncIterator[int]:
        """Nothing: no other process shares this journal (this one learns of its own
        appends from the calls that made them)."""
        await anyio.sleep_forever()
        yield self._journal.head  # never reached: makes this an async generator

    def close(self) -> None:
        pass  # nothing to release: the orders go with the process

    @staticmethod
    def _arrive(held: _Instrument, policy: Policy, ts: int) -> None:
        """The orders that reach the venue by data stamped `ts` take their places first."""
        if held.book.arriving:
            for order, place in engine.arrive(held.state, held.book.arriving, policy, ts):
                held.book.arrived(order, place)

    def _instrument(self, key: Instrument) -> _Instrument:
        held = self._instruments.get(key)
        if held is None:
            held = self._instruments[key] = _Instrument(key)
        return held

    def _keep(self, held: _Instrument | None, events: list[Event]) -> None:
        """Journal the events and move the orders whose status they changed in the
        index (the lock is held)."""
        self._journal.append(events)
        index = self._index
        for event in events:
            if isinstance(event, OrderAccepted):
                order = event.order
                index.add(IndexKey(order.exchange, order.symbol, order.side, OrderStatus.NEW), order.place)
                continue
            if isinstance(event, OrderFilled):
                before, after = event.before, event.after
                self._fills.append((event.order, event.fill))
                if held is not None:
                    held.traded = True
            elif isinstance(event, OrderCanceled):
                before, after = event.before, OrderStatus.CANCELED
            elif isinstance(event, OrderExpired):
                before, after = event.before, OrderStatus.EXPIRED
            elif isinstance(event, OrderRejected):
                before, after = event.before, OrderStatus.REJECTED
            else:
                continue
            order = event.order
            index.move(IndexKey(order.exchange, order.symbol, order.side, before), order.place, after)


def _fill_seq(kept: tuple[Order, StoredFill]) -> int:
    return _seq_of(kept[1])


def _seq_of(fill: StoredFill) -> int:
    assert fill.seq is not None  # journaled as it was kept
    return fill.seq
