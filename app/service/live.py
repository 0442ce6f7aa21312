"""Live orders, the service's side: the store's outbox read and marked for the live
executor (app.venues.live), the exchanges' reports applied and published like every
other change, cancels asked for, and what each exchange is (paper, live-sandbox, live)."""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from app.core.engine import ExchangeReport
from app.core.events import Event
from app.core.exchange_funds import FundsReading
from app.core.vocabulary import CancelReason, LiveState
from app.ops.metrics import LiveSample
from app.service.calls import StoreCalls
from app.store.sql import SqlStore
from app.store.sql_live import Expected, LiveOrder, SharedStatus

Mode = Literal["paper", "live-sandbox", "live"]
PAPER: Mode = "paper"
LIVE_SANDBOX: Mode = "live-sandbox"
LIVE: Mode = "live"


def exchange_modes(allowed: frozenset[str], live: frozenset[str], real_money: frozenset[str]) -> dict[str, Mode]:
    """Each allowlisted exchange's mode: `paper`, `live-sandbox` (sent to the exchange's
    sandbox or testnet, or to LIVE_URL_<EXCHANGE>) or `live` (real money)."""
    return {
        exchange: LIVE if exchange in real_money else LIVE_SANDBOX if exchange in live else PAPER
        for exchange in sorted(allowed)
    }


@dataclass
class ExchangeStatus:
    """What /capabilities and /metrics show of one live exchange."""

    exchange: str
    mode: Mode
    reachable: bool | None = None  # None: not asked yet
    last_error: str | None = None
    # Open orders at the exchange this service does not know (client order ids, or the
    # exchange's ids when they have none): reported, never touched.
    unknown_open_orders: list[str] = field(default_factory=list)
    executor: str | None = None  # the process (host:pid) executing its orders


class LiveOrdersLeft(Exception):
    """The store holds open orders that this process would treat as what they are not:
    live orders of an exchange it treats as paper (it would fill or cancel them here
    while their exchange holds them), or paper orders of an exchange it treats as live
    (they would never fill). It must not start."""


def check_live_orders_left(store: SqlStore, live: frozenset[str]) -> None:
    """LiveOrdersLeft if the store has unfinished live orders of an exchange not in
    `live`, or open paper orders of one in it."""
    left = sorted(store.unfinished_live_exchanges() - live)
    if left:
        raise LiveOrdersLeft(
            f"the store holds live orders not final yet on {', '.join(left)}, which LIVE_EXCHANGES does not name: "
            "start with it live until they are final (they must not be filled or canceled here as paper)"
        )
    paper = sorted(store.open_paper_exchanges(live))
    if paper:
        raise LiveOrdersLeft(
            f"the store holds open paper orders on {', '.join(paper)}, which LIVE_EXCHANGES names: cancel them, "
            "or keep it paper until they are final (as live, nothing would ever fill them)"
        )


class LiveOrders:
    """The outbox of a SQL store, for the live executors, and their wake-ups."""

    def __init__(
        self,
        store: SqlStore,
        calls: StoreCalls,
        clock: Callable[[], int],
        publish: Callable[[list[Event]], None],
        modes: dict[str, Mode],
        *,
        reads_balances: bool = False,
    ) -> None:
        self._store = store
        # Balances apply (PAPER_BALANCES): each executor reads its exchange's account for
        # intake's check of live orders.
        self.reads_balances = reads_balances
        self._calls = calls
        self._clock = clock
        self._publish = publish
        self.exchanges = sorted(exchange for exchange, mode in modes.items() if mode != PAPER)
        self.status = {exchange: ExchangeStatus(exchange, modes[exchange]) for exchange in self.exchanges}
        self._wake = {exchange: asyncio.Event() for exchange in self.exchanges}
        # What this process last kept in the store of each exchange it executes.
        self._shared: dict[str, tuple[bool | None, str | None, tuple[str, ...], str | None]] = {}

    def samples(self) -> list[LiveSample]:
        return [
            LiveSample(status.exchange, status.reachable, len(status.unknown_open_orders))
            for status in self.status.values()
        ]

    def wake(self, exchange: str) -> None:
        """Something of `exchange` is waiting to go out (an order stored, a cancel asked)."""
        event = self._wake.get(exchange)
        if event is not None:
            event.set()

    async def wait(self, exchange: str, seconds: float) -> None:
        """Until woken for `exchange`, or `seconds` have passed."""
        event = self._wake[exchange]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def unfinished(self, exchange: str) -> list[LiveOrder]:
        return await self._calls(self._store.live_orders, exchange)

    async def find(self, order_id: str) -> LiveOrder | None:
        return await self._calls(self._store.live_order, order_id)

    async def mark(
        self,
        live: LiveOrder,
        state: LiveState,
        *,
        expect: Expected,
        attempt: bool = False,
        exchange_order_id: str | None = None,
    ) -> bool:
        """Move `live`'s sending on if its row is still as `expect` says; whether it moved."""
        return await self._calls(
            self._store.mark_live,
            live.order.order_id,
            state,
            expect=expect,
            now=self._clock(),
            attempt=attempt,
            exchange_order_id=exchange_order_id,
        )

    async def apply(
        self,
        live: LiveOrder,
        report: ExchangeReport,
        exchange_order_id: str | None,
        expect: Expected | None = None,
    ) -> list[Event]:
        """Apply what the exchange reports of `live` (raises ExchangeReportRefused if it
        cannot be true; nothing if its row is no longer as `expect` says) and publish
        its events."""
        events = await self._calls.bounded(
            self._store.apply_report(live, report, self._clock(), exchange_order_id, expect)
        )
        self._publish(events)
        return events

    async def ask_cancel(self, order_id: str, reason: CancelReason) -> LiveOrder | None:
        live = await self._calls(self._store.ask_cancel, order_id, reason, self._clock())
        if live is not None:
            self.wake(live.order.exchange)
        return live

    async def share(self, exchange: str) -> None:
        """Keep what this process (executing `exchange`'s orders) saw of it in the store,
        for every process to show: when it changed since this process last kept it."""
        status = self.status[exchange]
        seen = (status.reachable, status.last_error, tuple(status.unknown_open_orders), status.executor)
        if self._shared.get(exchange) == seen:
            return
        shared = SharedStatus(exchange, *seen, updated_at=self._clock())
        await self._calls(self._store.keep_live_status, shared)
        self._shared[exchange] = seen

    async def follow(self, exchange: str) -> None:
        """Show what the process executing `exchange`'s orders last kept of it."""
        self._shared.pop(exchange, None)  # holding it again later, this process keeps its view anew
        shared = await self._calls(self._store.live_status, exchange)
        if shared is not None:
            status = self.status[exchange]
            status.reachable, status.last_error = shared.reachable, shared.last_error
            status.unknown_open_orders = list(shared.unknown_open_orders)
            status.executor = shared.executor

    async def keep_balances(self, exchange: str, reading: FundsReading) -> None:
        """Keep `exchange`'s account as just read: live intents are checked against it."""
        await self._calls(self._store.keep_exchange_balances, exchange, reading)

    async def known(self, client_order_ids: list[str]) -> set[str]:
        """Those of `client_order_ids` that are orders of this store not final here."""
        return await self._calls(self._store.known_client_ids, client_order_ids)
