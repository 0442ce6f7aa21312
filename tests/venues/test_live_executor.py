"""The live executor's rules that the emulator cannot reach in a test's time, with a
stand-in venue (in memory) and a real SQLite store: an order the exchange held and no
longer knows ends EXPIRED once LOST_SECONDS have passed; one marked sent that never
reached the exchange ends REJECTED once QUIET_SECONDS have passed, never sent again;
nothing is marked sent before the exchange's markets are read; and (when balances
apply) the exchange's account is read on each pass that is due, a failed reading
leaving the orders' steps to go on."""

import asyncio
import contextlib
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.core.engine import ExchangeReport
from app.core.order import Order
from app.core.vocabulary import LiveState, OrderStatus, OrderType, Side, TimeInForce
from app.ops.logs import EventLog, configure_logging
from app.service.orders import OrderRequest, OrderService
from app.store.sql import SqlStore
from app.store.sql_live import Expected
from app.venues.live import LiveExecutor
from app.venues.venue import Busy, Foreign, Seen, Unknown, VenueError
from tests.conftest import make_settings

KEYS = {"binance": {"api_key": SecretStr("key"), "secret": SecretStr("secret")}}


class StandIn:
    """A venue in memory: it holds what it is sent, forgets what a test tells it to, and
    reads balances (or fails to) as told."""

    def __init__(self) -> None:
        self.held: dict[str, Seen] = {}
        self.sent: list[str] = []
        self.free = {"USDT": Decimal(1000)}
        self.balance_error: VenueError | None = None
        self.balance_reads = 0
        self.prepare_error: VenueError | None = None

    async def prepare(self, order: Order) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error

    async def send(self, order: Order, client_order_id: str) -> str | None:
        self.sent.append(client_order_id)
        exchange_id = str(len(self.sent))
        self.held[client_order_id] = Seen(exchange_id, ExchangeReport([], None, None))
        return exchange_id

    async def look(self, order: Order, client_order_id: str) -> Seen | None:
        return self.held.get(client_order_id)

    async def cancel(self, order: Order, client_order_id: str) -> None:
        return None

    async def open_orders(self, symbols: list[str]) -> list[Foreign]:
        return []

    async def balances(self) -> dict[str, Decimal]:
        if self.balance_error is not None:
            raise self.balance_error
        self.balance_reads += 1
        return dict(self.free)

    async def close(self) -> None:
        return None


def live_service(tmp_path: Path, **fields: object) -> OrderService:
    settings = make_settings(
        allowed_exchanges="binance",
        allowed_symbols="BTC/USDT",
        storage_url=f"sqlite:///{tmp_path / 'live.db'}",
        live_exchanges="binance",
        live_credentials=KEYS,
        **fields,
    )
    events = EventLog(configure_logging("execution", logging.INFO, "text"))
    return OrderService(settings, SqlStore(settings.storage_url), events)


def executor(service: OrderService, venue: StandIn, **timings: float) -> LiveExecutor:
    assert service.live is not None
    events = EventLog(configure_logging("execution", logging.INFO, "text"))
    return LiveExecutor(service, service.live, "binance", venue, events=events, symbols=["BTC/USDT"], **timings)


def buy(key: str, qty: float = 1.0) -> OrderRequest:
    return OrderRequest(key, "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, qty, 100.0, TimeInForce.GTC, None)


def live_state(service: OrderService, order: Order) -> tuple[LiveState, OrderStatus]:
    assert isinstance(service.store, SqlStore)
    found = service.store.live_order(order.order_id)
    assert found is not None
    return found.state, found.order.status


def test_a_held_order_the_exchange_no_longer_knows_ends_expired_after_lost_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = live_service(tmp_path)
    venue = StandIn()
    patient, quick = executor(service, venue), executor(service, venue, lost_seconds=0)

    async def scenario() -> None:
        order = await service.submit(buy("k-1"))
        await patient.run_pass()
        assert live_state(service, order) == (LiveState.HELD, OrderStatus.NEW)
        venue.held.clear()  # the exchange lost it
        await patient.run_pass()  # not found, yet for less than 60 s: it waits
        assert live_state(service, order) == (LiveState.HELD, OrderStatus.NEW)
        await quick.run_pass()
        assert live_state(service, order) == (LiveState.DONE, OrderStatus.EXPIRED)
        assert len(venue.sent) == 1  # never sent again
        [ended] = [r for r in caplog.records if r.getMessage() == "Live order ended EXPIRED"]
        assert ended.fields["why"] == "lost at the exchange: not found for 0 s"

    asyncio.run(scenario())
    service.store.close()


def test_with_balances_each_pass_that_is_due_reads_the_exchange_account(tmp_path: Path) -> None:
    service = live_service(tmp_path, paper_balances="USDT=0,BTC=0")
    assert isinstance(service.store, SqlStore)
    venue = StandIn()
    runner = executor(service, venue, balance_seconds=0)

    async def scenario() -> None:
        assert isinstance(service.store, SqlStore)
        before = service.clock()
        await runner.run_pass()
        reading = service.store.exchange_balances("binance")
        assert reading is not None
        assert (reading.free, reading.taken_at >= before) == ({"USDT": Decimal(1000)}, True)
        order = await service.submit(buy("k-1", qty=4.0))  # 400 of the 1,000 read
        # A reading that fails leaves the orders' steps to go on, and the last reading kept.
        venue.balance_error = Unknown("TimeoutError: no answer")
        await runner.run_pass()
        assert live_state(service, order) == (LiveState.HELD, OrderStatus.NEW)
        assert runner.status.last_error == "TimeoutError: no answer"
        assert service.store.exchange_balances("binance") == reading
        # "Slow down" ends the pass before any order moves.
        second = await service.submit(buy("k-2", qty=5.0))
        venue.balance_error = Busy("429", retry_after=1)
        with pytest.raises(Busy):
            await runner.run_pass()
        assert live_state(service, second) == (LiveState.PENDING, OrderStatus.NEW)
        venue.balance_error, venue.free = None, {"USDT": Decimal(600)}  # what the exchange locked for the first
        await runner.run_pass()
        assert venue.balance_reads == 2
        assert live_state(service, second) == (LiveState.HELD, OrderStatus.NEW)

    asyncio.run(scenario())
    service.store.close()


def test_an_order_marked_sent_that_never_reached_the_exchange_ends_rejected_unsent(tmp_path: Path) -> None:
    """As after a kill -9 between marking an order sent and its request leaving: the
    exchange has no such order; once QUIET_SECONDS have passed it ends REJECTED, and it
    is never sent."""
    service = live_service(tmp_path)
    assert isinstance(service.store, SqlStore)
    venue = StandIn()
    patient, quick = executor(service, venue), executor(service, venue, quiet_seconds=0)

    async def scenario() -> None:
        assert isinstance(service.store, SqlStore)
        order = await service.submit(buy("k-1"))
        pending = Expected(LiveState.PENDING, 0, no_cancel=True)
        assert service.store.mark_live(
            order.order_id, LiveState.SENT, expect=pending, now=service.clock(), attempt=True
        )
        await patient.run_pass()  # within QUIET_SECONDS: the send may still take effect
        assert live_state(service, order) == (LiveState.SENT, OrderStatus.NEW)
        await quick.run_pass()
        assert live_state(service, order) == (LiveState.DONE, OrderStatus.REJECTED)
        assert venue.sent == []

    asyncio.run(scenario())
    service.store.close()


def test_nothing_is_marked_sent_before_the_exchange_s_markets_are_read(tmp_path: Path) -> None:
    """A failure while getting ready to send (markets not loaded: a timeout) leaves the
    order waiting to be sent, not sent-and-unknown: it is sent once the exchange answers."""
    service = live_service(tmp_path)
    venue = StandIn()
    runner = executor(service, venue)

    async def scenario() -> None:
        order = await service.submit(buy("k-1"))
        venue.prepare_error = Unknown("RequestTimeout: exchangeInfo")
        with contextlib.suppress(Unknown):
            await runner.run_pass()
        assert live_state(service, order) == (LiveState.PENDING, OrderStatus.NEW)
        venue.prepare_error = None
        await runner.run_pass()
        assert live_state(service, order) == (LiveState.HELD, OrderStatus.NEW)
        assert len(venue.sent) == 1

    asyncio.run(scenario())
    service.store.close()
