"""What every store offers the service: the store interface and the values it answers
with. A store loads an instrument's state under its lock, calls the core, and persists
what the core's events describe."""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Protocol, TypeVar

from app.core.balances import Holding
from app.core.controls import TradingState
from app.core.engine import Policy
from app.core.events import Event, OrderCanceled
from app.core.journal import EntryFilter
from app.core.order import Order, StoredFill
from app.core.positions import Position
from app.core.values import Instrument, Quote, Trade
from app.core.vocabulary import FillSource, OrderStatus, Side
from app.store.journal import JournalPage

T = TypeVar("T")


@dataclass(frozen=True)
class PositionView:
    exchange: str
    symbol: str
    position: Position
    quote: Quote | None


class Admission(NamedTuple):
    """What storing an intent's order did: the order stored (or the one that owns its
    key), whether it was created, and the events admitting it caused."""

    order: Order
    created: bool
    events: list[Event]


class StateChange(NamedTuple):
    """What setting the trading state did: the state before, and the events (none if
    the state did not change: a start-up state that is not stricter)."""

    before: TradingState
    events: list[Event]


@dataclass(frozen=True)
class OrderFilter:
    """What a listing keeps; a field left None keeps every order."""

    statuses: frozenset[OrderStatus] | None = None  # any of these
    exchange: str | None = None
    symbol: str | None = None
    side: Side | None = None
    idempotency_key: str | None = None

    def keeps(self, order: Order) -> bool:
        return self.keeps_kind(order.exchange, order.symbol, order.side, order.status) and (
            self.idempotency_key is None or order.idempotency_key == self.idempotency_key
        )

    def keeps_kind(self, exchange: str, symbol: str, side: Side, status: OrderStatus) -> bool:
        """Whether orders of this exchange, symbol, side and status are kept (by every
        field but the key)."""
        return (
            (self.statuses is None or status in self.statuses)
            and (self.exchange is None or exchange == self.exchange)
            and (self.symbol is None or symbol == self.symbol)
            and (self.side is None or side == self.side)
        )

    @property
    def keeps_all(self) -> bool:
        return self == _EVERY_ORDER


_EVERY_ORDER = OrderFilter()


class OrderStore(Protocol):
    name: str  # "memory", "sqlite" or "postgresql": what /capabilities and /healthz report
    blocking: bool  # True if calls may wait on I/O: the service then asks `quick`, else `wait_for`
    # Names the journal its seqs number: the same in every process sharing the store, and
    # a new one whenever numbering starts again at 1 (a memory store's at each start).
    journal_id: str

    async def admit(self, order: Order, policy: Policy, now: int, cap: int | None = None) -> Admission:
        """Store `order` unless its idempotency key is taken, as the core admits it
        (vetted, reserved, matched against its instrument's latest quote; what is left
        rests). One atomic step. Raises StoreFull if a new order would make more than
        `cap` orders, and IntentRefused if a control refuses it (after the key check: a
        retry of an accepted intent always gets its order).

        The one async operation: it is the hot path, and each store keeps it off the
        event loop its own way (a moment's lock; a group commit)."""
        ...

    def quick(self, call: str, *args: object) -> bool:
        """Whether the call named `call` with these arguments answers at once, without
        waiting on a lock, the network or another process (a blocking store's quick
        calls are made on the event loop; the others in a thread, within a deadline)."""
        ...

    def serve(self) -> AbstractAsyncContextManager[None]:
        """While the service runs on the current event loop (its lifespan): a store may
        make what belongs to that loop (asynchronous connections) and close it at the
        end."""
        ...

    async def wait_for(self, call: Callable[[], T]) -> T:
        """Make a call that is not `quick` (a blocking store's): it may wait, and runs to
        its end even if its caller stops waiting for it."""
        ...

    def get(self, order_id: str) -> Order | None: ...

    def get_by_key(self, idempotency_key: str) -> Order | None: ...

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        """Up to `limit` orders that `keep` accepts, newest first, from just below
        position `before` (None: from the newest). Also returns the position to go on
        from, or None when no older order that `keep` accepts is left (the last page
        says so itself). Positions never move: a new order takes the next one, so
        paging is stable while orders arrive."""
        ...

    def count(self) -> int: ...

    def held(self) -> int:
        """What counts against the store's cap (MAX_ORDERS): its orders (the memory
        store: its orders and their fills, one each)."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many orders have each status (statuses with none may be left out)."""
        ...

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
        """Keep `quote` as the instrument's latest and fill the resting orders it
        reaches, oldest first. One atomic step (a SQL store shares its transaction with
        the intents and quotes that arrive meanwhile, as `admit` does). A store whose
        fills count against `cap` (the memory store) raises StoreFull, and changes
        nothing, if the fills the quote could make would take it past `cap` and its
        reserve for fills. `ts` is the time the quote describes (None: `now`); data
        out of order or stale raises MarketDataRefused and changes nothing. `source`
        says what the quote came as (a book with depth is a quote with deeper levels),
        for the provenance of its fills."""
        ...

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
        """Apply a print on the tape (`engine.apply_trade`) to the passive orders it
        meets, as one atomic step; refused (MarketDataRefused, StoreFull), changing
        nothing, as a quote is."""
        ...

    def cancel(self, order_id: str, now: int) -> tuple[Order, OrderCanceled | None] | None:
        """Cancel an open order: it, and the cancel (None if it was not open: the order
        keeps its status). None if there is no such order."""
        ...

    def positions(self) -> list[PositionView]: ...

    def market_data_times(self) -> dict[Instrument, int | None]:
        """The time each instrument's latest market data describes (microseconds; None
        if not known: a quote a SQL store kept before it recorded times)."""
        ...

    def trading_state(self) -> TradingState: ...

    def claim_feeds(self, holder: str, instruments: Sequence[Instrument], now: int, ttl: int) -> set[Instrument]:
        """Of `instruments`, those whose market data feed `holder` runs until `now + ttl`
        (microseconds): each one it held already, or nobody held, or whose lease has
        lapsed. One step; every process sharing the store sees the same holders."""
        ...

    def release_feeds(self, holder: str, instruments: Sequence[Instrument]) -> None:
        """Give up `holder`'s leases of `instruments` (a process stopping: another may
        take them at once)."""
        ...

    def set_trading_state(
        self,
        state: TradingState,
        *,
        cancel_open: bool = False,
        only_stricter: bool = False,
        live: frozenset[str] = frozenset(),
    ) -> StateChange:
        """Record `state` (with `only_stricter`: only if it refuses more than the one
        recorded) and, with `cancel_open`, cancel every open order in the same step;
        the open orders of `live` exchanges are not canceled here but their cancel is
        asked for at their exchange (SQL stores). Shared by every process using the
        store."""
        ...

    def open_account(self, start: dict[str, Decimal], assets: set[str], policy: Policy) -> None:
        """Turn the paper account on: each asset of `assets` and `start` holds its
        `start` amount (0 if none). A store that already has an account (a database
        opened again) keeps its balances. Open orders that hold no reservation get one
        now; raises AccountMismatch if the balances cannot cover them."""
        ...

    def balances(self) -> dict[str, Holding]:
        """The account's holdings by asset (empty when it is off)."""
        ...

    def read_journal(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        """Up to `limit` journal entries with seq > `after` that `keep` accepts, oldest
        first, and the journal's bounds as they were read. Every step that changes an
        order, a position, a balance or the trading state appends its events, numbered
        1, 2, 3, ... in commit order with no gaps, in that same atomic step."""
        ...

    def journal_head(self) -> int:
        """The newest seq committed (0: none yet), in every process sharing the store."""
        ...

    def order_fills(self, order_id: str, after: int, limit: int) -> tuple[Order, list[StoredFill], bool] | None:
        """The order, up to `limit` of its fills whose seq is > `after`, oldest first,
        and whether more of its fills follow them; None if there is no such order. The
        order is there to name the fills (its id, instrument and side): a SQL store
        reads it without its fills, which may be many."""
        ...

    def fills_after(self, after: int, limit: int) -> list[tuple[Order, StoredFill]]:
        """Up to `limit` fills whose event's seq is > `after`, oldest first, each with
        its order."""
        ...

    def follow(self) -> AsyncIterator[int]:
        """The journal's head each time another process sharing the store may have moved
        it (never, for a store no other process shares). Runs until cancelled."""
        ...

    def close(self) -> None: ...
