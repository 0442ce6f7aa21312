"""The order store interface and the lock-guarded in-memory store."""

import math
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from typing import NamedTuple, Protocol

from app.core.balances import Account, Holding
from app.core.book import Book, reaches
from app.core.controls import STRICTNESS, Controls, Exposure, TradingState, as_decimal
from app.core.errors import StoreFull
from app.core.fills import EXACT, Costs, Fill, Quote, Working, exact
from app.core.ids import FILL_PREFIX, format_id, format_order_id, new_number, parse_order_id
from app.core.positions import Position, apply_fill
from app.ops.clock import now_micros


class OrderKind(NamedTuple):
    """What an order trades and how. Few distinct values exist, so orders share them."""

    exchange: str
    symbol: str
    side: str
    type: str
    time_in_force: str = "GTC"


# The numbers an order is created with, packed into one bytes object: as four Python
# numbers they would cost 32 bytes each, and a slot each. Absent values are NaN (for
# the price) and the smallest int64 (for the time), neither of which a valid intent has.
_TERMS = struct.Struct("<ddqq")  # qty, limit_price, accepted_at, client_ts
_NO_TIME = -(2**63)
ZERO = Decimal(0)
Instrument = tuple[str, str]  # (exchange, symbol)


class Order:
    """One accepted order, kept small: the target is under 450 bytes a stored order.

    Times are integer microseconds since the epoch; the id is kept as its number.
    """

    __slots__ = ("_terms", "filled_qty", "fills", "idempotency_key", "kind", "number", "status", "updated_at")

    def __init__(
        self,
        *,
        number: int,
        idempotency_key: str,
        kind: OrderKind,
        qty: float,
        limit_price: float | None,
        client_ts: int | None,
        accepted_at: int,
    ) -> None:
        self.number = number
        self.idempotency_key = idempotency_key
        self.kind = kind
        self._terms = _TERMS.pack(
            qty,
            math.nan if limit_price is None else limit_price,
            accepted_at,
            _NO_TIME if client_ts is None else client_ts,
        )
        self.status = "NEW"
        self.filled_qty = ZERO  # exact: fills add up to qty with no float drift
        self.fills: list[StoredFill] | None = None  # None until the first fill: most orders have none
        self.updated_at: int | None = None  # None until something changes after acceptance

    @property
    def order_id(self) -> str:
        return format_order_id(self.number)

    @property
    def exchange(self) -> str:
        return self.kind.exchange

    @property
    def symbol(self) -> str:
        return self.kind.symbol

    @property
    def side(self) -> str:
        return self.kind.side

    @property
    def type(self) -> str:
        return self.kind.type

    @property
    def time_in_force(self) -> str:
        return self.kind.time_in_force

    @property
    def qty(self) -> float:
        return float(_TERMS.unpack_from(self._terms)[0])

    @property
    def limit_price(self) -> float | None:
        price = float(_TERMS.unpack_from(self._terms)[1])
        return None if math.isnan(price) else price

    @property
    def accepted_at(self) -> int:
        return int(_TERMS.unpack_from(self._terms)[2])

    @property
    def client_ts(self) -> int | None:
        moment = int(_TERMS.unpack_from(self._terms)[3])
        return None if moment == _NO_TIME else moment

    @property
    def exact_qty(self) -> Decimal:
        return exact(self.qty)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class StoredFill:
    __slots__ = ("fee", "liquidity", "number", "price", "qty", "ts")

    def __init__(self, *, number: int, qty: Decimal, price: Decimal, fee: Decimal, liquidity: str, ts: int) -> None:
        self.number = number
        self.qty = qty
        self.price = price
        self.fee = fee
        self.liquidity = liquidity
        self.ts = ts

    @property
    def fill_id(self) -> str:
        return format_id(FILL_PREFIX, self.number)


@dataclass(frozen=True)
class Execution:
    """One fill as applied: the order, the fill, and the order's status before and after."""

    order: Order
    fill: StoredFill
    before: str
    after: str


@dataclass(frozen=True)
class PositionView:
    exchange: str
    symbol: str
    position: Position
    quote: Quote | None


class Admission(NamedTuple):
    """What storing an intent's order did: the order stored (or the one that owns its
    key), whether it was created, and the fills matching on arrival gave it."""

    order: Order
    created: bool
    executions: list[Execution]


class StateChange(NamedTuple):
    """What setting the trading state did: the state before, the state now in force, and
    the orders it canceled, each with its status before."""

    before: TradingState
    after: TradingState
    canceled: list[tuple["Order", str]]


@dataclass(frozen=True)
class OrderFilter:
    """What a listing keeps; a field left None keeps every order."""

    status: str | None = None
    exchange: str | None = None
    symbol: str | None = None
    side: str | None = None
    idempotency_key: str | None = None

    def keeps(self, order: Order) -> bool:
        return (
            (self.status is None or order.status == self.status)
            and (self.exchange is None or order.exchange == self.exchange)
            and (self.symbol is None or order.symbol == self.symbol)
            and (self.side is None or order.side == self.side)
            and (self.idempotency_key is None or order.idempotency_key == self.idempotency_key)
        )


# The fill model, closed over its costs: a quote and the working orders, oldest first.
Matcher = Callable[[Quote, list[Working]], list[Fill]]
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


class OrderStore(Protocol):
    name: str  # "memory", "sqlite" or "postgresql": what /capabilities and /healthz report
    blocking: bool  # True if calls wait on I/O: the service then makes them off the event loop

    async def admit(
        self, order: Order, match: Matcher, now: int, cap: int | None = None, controls: Controls | None = None
    ) -> Admission:
        """Store `order` unless its idempotency key is taken, and match it against its
        instrument's latest quote; what is left of it then rests. One atomic step.
        Raises StoreFull if a new order would make more than `cap` orders, and
        IntentRefused if `controls` refuse it (after the key check: a retry of an
        accepted intent always gets its order).

        The one async operation: it is the hot path, and each store keeps it off the
        event loop its own way (a moment's lock; a writer thread's group commit)."""
        ...

    def get(self, order_id: str) -> Order | None: ...

    def get_by_key(self, idempotency_key: str) -> Order | None: ...

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        """Up to `limit` orders that `keep` accepts, newest first, from just below
        position `before` (None: from the newest). Also returns the position to go on
        from, or None when no older order is left. Positions never move: a new order
        takes the next one, so paging is stable while orders arrive."""
        ...

    def count(self) -> int: ...

    def count_by_status(self) -> dict[str, int]:
        """How many orders have each status (statuses with none may be left out)."""
        ...

    def add_quote(self, instrument: Instrument, quote: Quote, match: Matcher, now: int) -> list[Execution]:
        """Keep `quote` as the instrument's latest and fill the resting orders it
        crosses, oldest first. One atomic step."""
        ...

    def cancel(self, order_id: str, now: int) -> tuple[Order, str] | None:
        """Cancel an open order: it, and its status before (unchanged if it was not
        open). None if there is no such order."""
        ...

    def positions(self) -> list[PositionView]: ...

    def trading_state(self) -> TradingState: ...

    def set_trading_state(
        self, state: TradingState, *, cancel_open: bool = False, only_stricter: bool = False
    ) -> StateChange:
        """Record `state` (with `only_stricter`: only if it refuses more than the one
        recorded) and, with `cancel_open`, cancel every open order in the same step.
        Shared by every process using the store."""
        ...

    def open_account(self, start: dict[str, Decimal], assets: set[str], costs: Costs) -> None:
        """Turn the paper account on: each asset of `assets` and `start` holds its
        `start` amount (0 if none). A store that already has an account (a database
        opened again) keeps its balances."""
        ...

    def balances(self) -> dict[str, Holding]:
        """The account's holdings by asset (empty when it is off)."""
        ...

    def close(self) -> None: ...


class InMemoryStore:
    """Orders by id and by idempotency key, in this process only."""

    name = "memory"
    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_number: dict[int, Order] = {}
        self._by_key: dict[str, Order] = {}
        self._sequence: list[Order] = []  # in acceptance order: an order's position is its index
        self._books: dict[Instrument, Book] = {}
        self._quotes: dict[Instrument, Quote] = {}
        self._held: dict[Instrument, Position] = {}
        self._by_status: dict[str, int] = {}  # kept as statuses change: a scrape reads it, never scans
        # What each instrument's open orders want, for the controls' limits: counted from
        # the book the first time a check asks, then kept as orders open, fill and end.
        # An instrument no check has asked about costs the hot path one dict lookup.
        self._open: dict[Instrument, Exposure] = {}
        self._trading = TradingState(updated_at=now_micros())
        self._funds: Funds | None = None  # the paper account, when PAPER_BALANCES is set

    async def admit(
        self, order: Order, match: Matcher, now: int, cap: int | None = None, controls: Controls | None = None
    ) -> Admission:
        # The checks, the insert and the match share one lock hold: two racing requests
        # with the same key can never both see it free, no quote slips in between, and
        # no two intents both pass a limit only one of them fits.
        with self._lock:
            existing = self._by_key.get(order.idempotency_key)
            if existing is not None:
                return Admission(existing, False, [])
            if cap is not None and len(self._sequence) >= cap:
                raise StoreFull(cap)
            instrument = (order.exchange, order.symbol)
            quote = self._quotes.get(instrument)
            if controls is not None:
                controls.vet(order, self._trading, quote, lambda: self._exposure(instrument))
            if self._funds is not None:
                self._funds.admit(order, quote)
            self._by_key[order.idempotency_key] = order
            self._by_number[order.number] = order
            self._sequence.append(order)
            self._recount(None, "NEW")
            executions: list[Execution] = []
            if quote is not None and takes_on_arrival(order, quote, match):
                executions = self._fill(
                    instrument=instrument, quote=quote, orders=[(order, True)], match=match, now=now
                )
            before = expire_unfilled(order, now)
            if before is not None:
                self._recount(before, order.status)
                if self._funds is not None:
                    self._funds.ended(order)
            elif order.is_open:
                self._book(instrument).add(order, passive=rests_passively(order, quote))
                tally = self._open.get(instrument)
                if tally is not None:
                    tally.opened(order.side, remaining(order))
            return Admission(order, True, executions)

    def get(self, order_id: str) -> Order | None:
        number = parse_order_id(order_id)
        return None if number is None else self._by_number.get(number)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        return self._by_key.get(idempotency_key)

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        sequence = self._sequence  # only ever appended to, so reading needs no lock
        position = len(sequence) if before is None else min(before, len(sequence))
        found: list[Order] = []
        while position > 0 and len(found) < limit:
            position -= 1
            if keep.keeps(sequence[position]):
                found.append(sequence[position])
        return found, (position if position > 0 else None)

    def count(self) -> int:
        return len(self._by_number)

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_status)

    def _recount(self, before: str | None, after: str) -> None:
        if before is not None:
            self._by_status[before] -= 1
        self._by_status[after] = self._by_status.get(after, 0) + 1

    def add_quote(self, instrument: Instrument, quote: Quote, match: Matcher, now: int) -> list[Execution]:
        with self._lock:
            self._quotes[instrument] = quote
            book = self._books.get(instrument)
            if not book:
                return []
            executions = self._fill(
                instrument=instrument, quote=quote, orders=book.crossed_by(quote), match=match, now=now
            )
            book.settle(quote)
            tally = self._open.get(instrument)
            if tally is not None:
                for execution in executions:  # every order a quote fills was resting: open
                    order = execution.order
                    # An order that ended gives up what it had left (none if it filled).
                    gone = execution.fill.qty + (ZERO if order.is_open else remaining(order))
                    tally.filled(order.side, gone, ended=not order.is_open)
            return executions

    def cancel(self, order_id: str, now: int) -> tuple[Order, str] | None:
        with self._lock:
            order = self.get(order_id)
            if order is None:
                return None
            before = order.status
            if order.is_open:
                self._cancel_open(order, now)
            return order, before

    def _cancel_open(self, order: Order, now: int) -> None:
        instrument = (order.exchange, order.symbol)
        tally = self._open.get(instrument)
        if tally is not None:
            tally.filled(order.side, remaining(order), ended=True)
        if self._funds is not None:
            self._funds.ended(order)
        self._recount(order.status, "CANCELED")
        order.status = "CANCELED"
        order.updated_at = now
        self._book(instrument).remove(order)

    def trading_state(self) -> TradingState:
        return self._trading

    def set_trading_state(
        self, state: TradingState, *, cancel_open: bool = False, only_stricter: bool = False
    ) -> StateChange:
        with self._lock:
            before = self._trading
            if only_stricter and STRICTNESS[state.state] <= STRICTNESS[before.state]:
                return StateChange(before, before, [])
            self._trading = state
            canceled: list[tuple[Order, str]] = []
            if cancel_open:
                for book in self._books.values():
                    for order in book.orders():
                        canceled.append((order, order.status))
                        self._cancel_open(order, state.updated_at)
                canceled.sort(key=lambda pair: pair[0].accepted_at)
            return StateChange(before, state, canceled)

    def open_account(self, start: dict[str, Decimal], assets: set[str], costs: Costs) -> None:
        with self._lock:
            if self._funds is None:
                holdings = {
                    asset: Holding(start.get(asset, ZERO), start.get(asset, ZERO)) for asset in assets | set(start)
                }
                self._funds = Funds(Account(holdings, costs), {})

    def balances(self) -> dict[str, Holding]:
        with self._lock:
            if self._funds is None:
                return {}
            return {asset: replace(held) for asset, held in self._funds.account.holdings.items()}

    def _exposure(self, instrument: Instrument) -> Exposure:
        """The instrument's exposure, kept up to date from the first time a check asks
        (the checks only read it)."""
        tally = self._open.get(instrument)
        if tally is None:
            held = self._held.get(instrument)
            tally = self._open[instrument] = Exposure(position=ZERO if held is None else as_decimal(held.qty))
            for order in self._book(instrument).orders():
                tally.opened(order.side, remaining(order))
        return tally

    def positions(self) -> list[PositionView]:
        with self._lock:
            return [
                PositionView(exchange, symbol, position, self._quotes.get((exchange, symbol)))
                for (exchange, symbol), position in sorted(self._held.items())
            ]

    def close(self) -> None:
        pass  # nothing to release: the orders go with the process

    def _book(self, instrument: Instrument) -> Book:
        book = self._books.get(instrument)
        if book is None:
            book = self._books[instrument] = Book()
        return book

    def _fill(
        self,
        *,
        instrument: Instrument,
        quote: Quote,
        orders: list[tuple[Order, bool]],
        match: Matcher,
        now: int,
    ) -> list[Execution]:
        """Run the model over `orders` and apply its fills; the lock is held."""
        executions, self._quotes[instrument] = execute(quote, orders, match, now, self._funds)
        for execution in executions:
            self._recount(execution.before, execution.after)
            fill = execution.fill
            self._held[instrument] = apply_fill(
                self._held.get(instrument, Position()), execution.order.side, fill.qty, fill.price, fill.fee
            )
        tally = self._open.get(instrument)
        if tally is not None:  # the controls' copy of the position, as an exact decimal
            for execution in executions:
                tally.arrived(execution.order.side, execution.fill.qty, ZERO, still_open=False)
        return executions


def remaining(order: Order) -> Decimal:
    """What is left of an order to fill, exactly."""
    return EXACT.subtract(order.exact_qty, order.filled_qty)


def rests_passively(order: Order, quote: Quote | None) -> bool:
    """Whether an order left open on arrival rests as passive: only a LIMIT that a quote
    came and did not reach. Otherwise it still wants to take (no quote yet, or the
    quote's size ran out)."""
    if quote is None or order.limit_price is None:
        return False
    return not reaches(quote, order)


def _working(ref: int, order: Order, taker: bool) -> Working:
    return Working(
        ref=ref,
        side=order.side,  # type: ignore[arg-type]
        type=order.type,  # type: ignore[arg-type]
        limit_price=None if order.limit_price is None else exact(order.limit_price),
        remaining=remaining(order),
        taker=taker,
    )


def takes_on_arrival(order: Order, quote: Quote, match: Matcher) -> bool:
    """Whether an arriving order is matched against the quote: always, except a FOK
    order that the quote cannot fill whole (it then fills nothing)."""
    if order.time_in_force != "FOK":
        return True
    with localcontext(EXACT):
        filled = sum((fill.qty for fill in match(quote, [_working(0, order, True)])), ZERO)
        return filled == remaining(order)


def expire_unfilled(order: Order, now: int) -> str | None:
    """After matching on arrival: an IOC or FOK order still open expires (what it filled
    stays filled). Returns its status before, or None if it did not expire."""
    if order.time_in_force == "GTC" or not order.is_open:
        return None
    before = order.status
    order.status = "EXPIRED"
    order.updated_at = now
    return before


class Funds:
    """The paper account as fills see it: what each order reserved (its reserve price:
    the limit for a LIMIT BUY, `reserve_prices` by order number for a MARKET BUY), and
    the moves a fill or an end makes."""

    def __init__(self, account: Account, reserve_prices: dict[int, Decimal]) -> None:
        self.account = account
        self.reserve_prices = reserve_prices

    def price_of(self, order: Order) -> Decimal | None:
        if order.side == "SELL":
            return None
        if order.limit_price is not None:
            return exact(order.limit_price)
        return self.reserve_prices[order.number]

    def admit(self, order: Order, quote: Quote | None) -> None:
        """Reserve what a new order needs, or refuse it (INSUFFICIENT_BALANCE, NO_QUOTE)."""
        price = self.account.reserve_price(order, quote)
        self.account.reserve(order, order.exact_qty, price)
        if order.side == "BUY" and order.limit_price is None:
            assert price is not None
            self.reserve_prices[order.number] = price

    def afford(self, order: Order, qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """How much of a fill the account pays for (only a MARKET BUY can cost more than
        it reserved: the ask may have risen since)."""
        if order.side == "SELL" or order.limit_price is not None:
            return qty
        reserved_at = self.price_of(order) or ZERO
        return self.account.affordable(
            order.symbol, qty, price, fee, remaining=remaining(order), reserve_price=reserved_at
        )

    def filled(self, order: Order, fill: "StoredFill") -> None:
        """After a fill was applied to `order`: move the balances, release its part of
        the reservation, and the rest of it if the order has ended."""
        price = self.price_of(order)
        # An order that ended gives up the rest of its reservation too (none if filled).
        released = fill.qty if order.is_open else EXACT.add(fill.qty, remaining(order))
        self.account.release(order.side, order.symbol, released, price)
        self.account.settle(order.side, order.symbol, fill.qty, fill.price, fill.fee)
        if not order.is_open:
            self.reserve_prices.pop(order.number, None)

    def ended(self, order: Order, price: Decimal | None = None) -> None:
        """`order` ended (filled, canceled, expired): what it still reserved is free."""
        price = self.price_of(order) if price is None else price
        self.account.release(order.side, order.symbol, remaining(order), price)
        self.reserve_prices.pop(order.number, None)


# Why a MARKET BUY's remainder is canceled when its fill is cut to the balance.
BALANCE_CUT = "the paper balance covers only part of this fill: the rest of the order is canceled"


def execute(
    quote: Quote, orders: list[tuple[Order, bool]], match: Matcher, now: int, funds: Funds | None = None
) -> tuple[list[Execution], Quote]:
    """Run the model over `orders` (each with whether it takes), oldest first, and apply
    its fills to them (and to `funds`, one after another, so each sees what the one
    before spent). A MARKET BUY that would cost more than the account holds fills what
    it covers and is canceled. Returns the executions and the quote with what they took
    from its sizes gone: that is not there for the next order. Every store fills this
    way."""
    with localcontext(EXACT):  # remaining and filled quantities: no rounding
        working = [_working(index, order, taker) for index, (order, taker) in enumerate(orders)]
        executions = []
        used = {"BUY": ZERO, "SELL": ZERO}
        for fill in match(quote, working):
            order = orders[fill.ref][0]
            qty, fee = fill.qty, fill.fee
            if funds is not None:
                qty = funds.afford(order, qty, fill.price, fee)
                if qty <= 0:  # not even a sliver: the order waits, reserved as it was
                    continue
                if qty != fill.qty:
                    fee = fee * qty / fill.qty
            stored = StoredFill(
                number=new_number(), qty=qty, price=fill.price, fee=fee, liquidity=fill.liquidity, ts=now
            )
            before = order.status
            order.filled_qty += qty
            order.status = "FILLED" if order.filled_qty == order.exact_qty else "PARTIALLY_FILLED"
            if qty < fill.qty:
                order.status = "CANCELED"
            order.updated_at = now
            if order.fills is None:
                order.fills = []
            order.fills.append(stored)
            used[order.side] += qty
            if funds is not None:
                funds.filled(order, stored)
            executions.append(Execution(order, stored, before, order.status))
        left = Quote(
            quote.bid,
            quote.ask,
            None if quote.bid_size is None else quote.bid_size - used["SELL"],
            None if quote.ask_size is None else quote.ask_size - used["BUY"],
        )
    return executions, left
