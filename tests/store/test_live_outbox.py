"""Live orders in the SQL stores: an order for a live exchange is stored with its outbox
row in one step (its client order id derived from its idempotency key), market data
never fills it, and what the exchange reports moves it once per trade, whatever is
reported twice; the kill switch asks its exchange to cancel it. SQLite and PostgreSQL
alike (live execution needs a SQL store)."""

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.controls import TradingState
from app.core.engine import ExchangeFill, ExchangeReport, ExchangeReportRefused, Policy
from app.core.errors import IntentRefused
from app.core.events import Event, OrderCanceled, OrderFilled, OrderRejected, TradingStateChanged
from app.core.exchange_funds import FundsReading
from app.core.ids import client_order_id
from app.core.journal import EntryFilter, EventType
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Quote
from app.core.vocabulary import CancelReason, Liquidity, LiveState, OrderStatus, OrderType, Side, TimeInForce
from app.core.vocabulary import TradingStateName as Name
from app.store.ids import new_number
from app.store.sql import SqlStore
from app.store.sql_live import Expected, LiveOrder, SharedStatus
from tests.conftest import open_test_store

LIVE = Policy(live=frozenset({"binance"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    store = open_test_store(request.param, tmp_path, request)
    assert isinstance(store, SqlStore)
    yield store
    store.close()


def admit(
    store: SqlStore,
    key: str,
    *,
    exchange: str = "binance",
    qty: float = 1.0,
    limit: float | None = 100.0,
    now: int = 1,
) -> Order:
    kind = OrderKind(
        exchange, "BTC/USDT", Side.BUY, OrderType.MARKET if limit is None else OrderType.LIMIT, TimeInForce.GTC
    )
    new = Order(number=new_number(), idempotency_key=key, kind=kind, terms=OrderTerms.of(qty, limit, 1, None))
    order, created, _ = asyncio.run(store.admit(new, LIVE, now))
    assert created
    return order


def live(store: SqlStore, order: Order) -> LiveOrder:
    found = store.live_order(order.order_id)
    assert found is not None
    return found


def trade(trade_id: str, qty: str, price: str = "100", fee: str = "0.01") -> ExchangeFill:
    return ExchangeFill(trade_id, Decimal(qty), Decimal(price), Decimal(fee), Liquidity.MAKER, 5)


def report(
    store: SqlStore,
    order: Order,
    found: ExchangeReport,
    now: int = 10,
    exchange_id: str | None = "77",
    *,
    expect: Expected | None = None,
) -> list[Event]:
    """Applied as the service applies it: on the store's loop (PostgreSQL then batches
    in a pipeline, which a report must not use)."""

    async def apply() -> list[Event]:
        async with store.serve():
            return await store.apply_report(live(store, order), found, now, exchange_id, expect)

    return asyncio.run(apply())


def test_a_live_order_is_stored_with_its_outbox_row_and_market_data_never_fills_it(sql_store: SqlStore) -> None:
    order = admit(sql_store, "k-1")
    paper = admit(sql_store, "k-2", exchange="okx")
    found = live(sql_store, order)
    assert (found.client_order_id, found.state, found.attempts, found.exchange_order_id, found.cancel) == (
        client_order_id(sql_store.journal_id, "k-1"),
        LiveState.PENDING,
        0,
        None,
        None,
    )
    assert found.client_order_id.isalnum()
    assert len(found.client_order_id) == 32
    assert sql_store.live_order(paper.order_id) is None
    assert [each.order.order_id for each in sql_store.live_orders("binance")] == [order.order_id]
    assert sql_store.live_orders("okx") == []

    crossing = Quote(Decimal(90), Decimal(95), Decimal(10), Decimal(10))
    assert asyncio.run(sql_store.add_quote(("binance", "BTC/USDT"), crossing, LIVE, 2)) == []
    assert sql_store.get(order.order_id).status == OrderStatus.NEW  # type: ignore[union-attr]


def test_each_exchange_trade_fills_once_however_often_it_is_reported(sql_store: SqlStore) -> None:
    order = admit(sql_store, "k-1", qty=1.0)
    events = report(sql_store, order, ExchangeReport([trade("t1", "0.4")]))
    assert [type(event) for event in events] == [OrderFilled]
    held = live(sql_store, order)
    assert (held.state, held.exchange_order_id, held.order.status, held.order.filled_qty) == (
        LiveState.HELD,
        "77",
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.4"),
    )
    # Reported again with the next trade (and that one twice): only t2 is new.
    events = report(sql_store, order, ExchangeReport([trade("t1", "0.4"), trade("t2", "0.6"), trade("t2", "0.6")]))
    assert [type(event) for event in events] == [OrderFilled]
    done = live(sql_store, order)
    assert (done.state, done.order.status, done.order.filled_qty) == (LiveState.DONE, OrderStatus.FILLED, Decimal(1))
    assert [fill.provenance.source for fill in done.order.fills if fill.provenance] == ["exchange", "exchange"]
    assert sql_store.live_orders("binance") == []
    [position] = sql_store.positions()
    assert (position.position.qty, position.position.fees) == (Decimal(1), Decimal("0.02"))
    assert report(sql_store, order, ExchangeReport([trade("t2", "0.6")])) == []  # done: nothing more
    page = sql_store.read_journal(0, 10, EntryFilter())
    assert [entry.type for entry in page.entries] == [EventType.NEW, EventType.PARTIAL_FILL, EventType.FILL]


def test_a_report_that_cannot_be_true_changes_nothing(sql_store: SqlStore) -> None:
    order = admit(sql_store, "k-1", qty=1.0)
    with pytest.raises(ExchangeReportRefused):
        report(sql_store, order, ExchangeReport([trade("t1", "0.5"), trade("t2", "0.7")]))
    kept = live(sql_store, order)
    assert (kept.state, kept.order.status, kept.order.fills) == (LiveState.PENDING, OrderStatus.NEW, [])
    # Nothing of it was kept: t1 reported alone later still fills.
    report(sql_store, order, ExchangeReport([trade("t1", "0.5")]))
    assert live(sql_store, order).order.filled_qty == Decimal("0.5")


def test_a_rejection_ends_the_order_with_the_exchange_s_reason(sql_store: SqlStore) -> None:
    order = admit(sql_store, "k-1")
    reason = "Account has insufficient balance for requested action."
    [event] = report(sql_store, order, ExchangeReport([], OrderStatus.REJECTED, reason), exchange_id=None)
    assert isinstance(event, OrderRejected)
    ended = live(sql_store, order)
    assert (ended.state, ended.order.status) == (LiveState.DONE, OrderStatus.REJECTED)
    [entry] = sql_store.read_journal(1, 10, EntryFilter()).entries
    assert (entry.type, entry.detail, entry.order.status) == (EventType.REJECTED, reason, OrderStatus.REJECTED)  # type: ignore[union-attr]
    assert sql_store.count_by_status() == {OrderStatus.REJECTED: 1}


def test_a_cancel_asked_for_ends_with_its_reason_once_the_exchange_confirms(sql_store: SqlStore) -> None:
    order = admit(sql_store, "k-1")
    asked = sql_store.ask_cancel(order.order_id, CancelReason.REQUESTED, 3)
    assert asked is not None
    assert (asked.cancel, asked.order.status) == (CancelReason.REQUESTED, OrderStatus.NEW)  # open until confirmed
    assert sql_store.ask_cancel("paper-nope", CancelReason.REQUESTED, 3) is None
    [event] = report(sql_store, order, ExchangeReport([trade("t1", "0.25")], OrderStatus.CANCELED))[1:]
    assert isinstance(event, OrderCanceled)
    assert event.reason == CancelReason.REQUESTED
    ended = live(sql_store, order)
    assert (ended.state, ended.order.status, ended.order.filled_qty) == (
        LiveState.DONE,
        OrderStatus.CANCELED,
        Decimal("0.25"),
    )


def test_the_kill_switch_asks_the_exchange_to_cancel_live_orders(sql_store: SqlStore) -> None:
    held = admit(sql_store, "k-1")
    paper = admit(sql_store, "k-2", exchange="okx")
    change = sql_store.set_trading_state(
        TradingState(Name.HALTED, "stop", 5), cancel_open=True, live=frozenset({"binance"})
    )
    assert [type(event) for event in change.events] == [TradingStateChanged, OrderCanceled]
    assert sql_store.get(paper.order_id).status == OrderStatus.CANCELED  # type: ignore[union-attr]
    asked = live(sql_store, held)
    assert (asked.order.status, asked.cancel) == (OrderStatus.NEW, CancelReason.KILL_SWITCH)
    [event] = report(sql_store, held, ExchangeReport([], OrderStatus.CANCELED))
    assert isinstance(event, OrderCanceled)
    assert event.reason == CancelReason.KILL_SWITCH


def test_each_step_is_a_compare_and_set(sql_store: SqlStore) -> None:
    """Of two processes (or a step and a cancel), exactly one moves an order on."""
    order = admit(sql_store, "k-1")
    pending = Expected(LiveState.PENDING, 0, no_cancel=True)
    assert sql_store.mark_live(order.order_id, LiveState.SENT, expect=pending, now=2, attempt=True)
    assert not sql_store.mark_live(order.order_id, LiveState.SENT, expect=pending, now=3, attempt=True)
    sent = live(sql_store, order)
    assert (sent.state, sent.attempts, sent.updated_at) == (LiveState.SENT, 1, 2)
    # Nothing reached the exchange: back to pending; then a cancel, and no send may start.
    assert sql_store.mark_live(order.order_id, LiveState.PENDING, expect=Expected.of(sent), now=4)
    sql_store.ask_cancel(order.order_id, CancelReason.REQUESTED, 5)
    again = Expected(LiveState.PENDING, 1, no_cancel=True)
    assert not sql_store.mark_live(order.order_id, LiveState.SENT, expect=again, now=6, attempt=True)
    # An end that expects the row as it no longer is changes nothing; as it is, it ends it.
    ended = ExchangeReport([], OrderStatus.CANCELED, "canceled before it was sent")
    assert report(sql_store, order, ended, expect=Expected(LiveState.PENDING, 0)) == []
    assert live(sql_store, order).order.status == OrderStatus.NEW
    [event] = report(sql_store, order, ended, expect=Expected.of(live(sql_store, order)))
    assert isinstance(event, OrderCanceled)
    assert (event.reason, live(sql_store, order).state) == (CancelReason.REQUESTED, LiveState.DONE)
    assert not sql_store.mark_live(order.order_id, LiveState.SENT, expect=Expected(LiveState.PENDING, 1), now=7)
    assert sql_store.known_client_ids([live(sql_store, order).client_order_id]) == set()  # final: not known as open


def test_trade_ids_are_the_exchange_s_per_symbol(sql_store: SqlStore) -> None:
    """Binance numbers each symbol's trades: trade 1 of BTC/USDT is not trade 1 of ETH/USDT."""
    btc = admit(sql_store, "k-1")
    kind = OrderKind("binance", "ETH/USDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC)
    new = Order(number=new_number(), idempotency_key="k-2", kind=kind, terms=OrderTerms.of(1.0, 10.0, 1, None))
    eth, _, _ = asyncio.run(sql_store.admit(new, LIVE, 1))
    report(sql_store, btc, ExchangeReport([trade("1", "1")]))
    report(sql_store, eth, ExchangeReport([trade("1", "1", price="10")]))
    assert (live(sql_store, btc).order.status, live(sql_store, eth).order.status) == (
        OrderStatus.FILLED,
        OrderStatus.FILLED,
    )


def test_a_report_and_intents_in_one_batch(sql_store: SqlStore) -> None:
    """A report committed in the same batch as intents (one on the loop)."""
    held = admit(sql_store, "k-1")
    kind = OrderKind("binance", "BTC/USDT", Side.SELL, OrderType.LIMIT, TimeInForce.GTC)
    new = Order(number=new_number(), idempotency_key="k-2", kind=kind, terms=OrderTerms.of(1.0, 120.0, 2, None))

    async def together() -> tuple[Any, list[Event]]:
        async with sql_store.serve():
            return await asyncio.gather(
                sql_store.admit(new, LIVE, 2),
                sql_store.apply_report(live(sql_store, held), ExchangeReport([trade("t1", "1")]), 3, "77"),
            )

    admitted, events = asyncio.run(together())
    assert admitted.created
    assert [type(event) for event in events] == [OrderFilled]
    assert live(sql_store, held).state == LiveState.DONE
    assert live(sql_store, new).state == LiveState.PENDING


def test_with_balances_on_intake_checks_the_exchange_account(sql_store: SqlStore) -> None:
    """An order for a live exchange must fit in what its account had free when last read,
    less the claims of the orders the reading cannot show: stored and not answered for
    yet, or answered for after (or just before: clocks differ) the reading was asked for."""
    sql_store.open_account({"USDT": Decimal(0)}, {"USDT", "BTC"}, LIVE)  # the paper account pays nothing here
    s = 1_000_000  # a second, in the clock's microseconds

    def refused(key: str, now: int) -> str:
        with pytest.raises(IntentRefused) as refusal:
            admit(sql_store, key, now=now)
        return refusal.value.code

    def read(usdt: int, at: int) -> None:
        sql_store.keep_exchange_balances("binance", FundsReading({"USDT": Decimal(usdt)}, taken_at=at))

    assert refused("k-0", 1 * s) == "EXCHANGE_BALANCE_UNKNOWN"
    read(250, 100 * s)
    first, second = admit(sql_store, "k-1", now=101 * s), admit(sql_store, "k-2", now=101 * s)  # 100 USDT each
    assert refused("k-3", 101 * s) == "INSUFFICIENT_BALANCE"  # 50 left
    assert sql_store.balances()["USDT"].reserved == 0  # not the paper account's
    assert refused("k-3", 161 * s) == "EXCHANGE_BALANCE_UNKNOWN"  # a reading 61 s old checks nothing

    # The exchange answered for the first before a reading was asked for: the reading counts it.
    sent = Expected(LiveState.SENT, 1)
    sql_store.mark_live(
        first.order_id, LiveState.SENT, expect=Expected(LiveState.PENDING, 0), now=150 * s, attempt=True
    )
    assert sql_store.mark_live(first.order_id, LiveState.HELD, expect=sent, now=160 * s)
    read(150, 200 * s)
    assert refused("k-3", 201 * s) == "INSUFFICIENT_BALANCE"  # 150 less the second's 100
    # Answered for after the reading: still on its way as far as that reading knows.
    sql_store.mark_live(
        second.order_id, LiveState.SENT, expect=Expected(LiveState.PENDING, 0), now=210 * s, attempt=True
    )
    report(sql_store, second, ExchangeReport([trade("t1", "1", fee="0")]), now=220 * s, exchange_id="78")
    assert live(sql_store, second).state == LiveState.DONE
    assert refused("k-3", 221 * s) == "INSUFFICIENT_BALANCE"
    # A reading asked for a second after that may still miss it (another process's clock).
    read(150, 221 * s)
    assert refused("k-3", 222 * s) == "INSUFFICIENT_BALANCE"
    # The next reading shows what it spent; an older one arriving late is not kept.
    read(150, 300 * s)
    read(0, 250 * s)
    assert sql_store.exchange_balances("binance") == FundsReading({"USDT": Decimal(150)}, taken_at=300 * s)
    third = admit(sql_store, "k-3", now=301 * s)
    # An order that ends without reaching the exchange claims nothing more.
    ended = ExchangeReport([], OrderStatus.REJECTED, "not sent")
    report(sql_store, third, ended, now=310 * s, exchange_id=None, expect=Expected.of(live(sql_store, third)))
    admit(sql_store, "k-4", now=311 * s)
    assert refused("k-5", 311 * s) == "INSUFFICIENT_BALANCE"


def test_balances_turned_on_leave_live_orders_out_of_the_paper_account(sql_store: SqlStore) -> None:
    """A live order open when PAPER_BALANCES is turned on reserves nothing of the paper
    account (its exchange's account pays for it); while it is on its way, its cost is
    unknown: live intents wait (EXCHANGE_BALANCE_UNKNOWN) until the exchange has
    answered for it and a reading shows it."""
    s = 1_000_000
    placed = admit(sql_store, "k-1")
    sql_store.open_account({"USDT": Decimal(10)}, {"USDT", "BTC"}, LIVE)
    assert sql_store.balances()["USDT"].reserved == 0
    sql_store.keep_exchange_balances("binance", FundsReading({"USDT": Decimal(1000)}, taken_at=10 * s))
    with pytest.raises(IntentRefused) as refusal:
        admit(sql_store, "k-2", now=11 * s)
    assert "1 order(s) placed while balances were off" in refusal.value.detail
    sql_store.mark_live(
        placed.order_id, LiveState.SENT, expect=Expected(LiveState.PENDING, 0), now=12 * s, attempt=True
    )
    sql_store.mark_live(placed.order_id, LiveState.HELD, expect=Expected(LiveState.SENT, 1), now=13 * s)
    sql_store.keep_exchange_balances("binance", FundsReading({"USDT": Decimal(900)}, taken_at=20 * s))
    admit(sql_store, "k-2", now=21 * s)


def test_the_executor_s_view_of_its_exchange_is_kept_for_every_process(sql_store: SqlStore) -> None:
    assert sql_store.live_status("binance") is None
    seen = SharedStatus("binance", False, "NetworkError: no route", ("by-hand-1",), "host:12", 5)
    sql_store.keep_live_status(seen)
    assert sql_store.live_status("binance") == seen
    back = SharedStatus("binance", True, None, (), "host:13", 9)  # another process took over
    sql_store.keep_live_status(back)
    assert sql_store.live_status("binance") == back
    assert sql_store.live_status("okx") is None


def test_open_paper_orders_are_told_from_live_ones(sql_store: SqlStore) -> None:
    admit(sql_store, "k-1")  # live: it has its outbox row
    assert sql_store.open_paper_exchanges(frozenset({"binance", "okx"})) == set()
    kind = OrderKind("okx", "BTC/USDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC)
    new = Order(number=new_number(), idempotency_key="k-2", kind=kind, terms=OrderTerms.of(1.0, 90.0, 1, None))
    asyncio.run(sql_store.admit(new, Policy(), 1))  # paper, resting
    assert sql_store.open_paper_exchanges(frozenset({"binance", "okx"})) == {"okx"}
    assert sql_store.open_paper_exchanges(frozenset({"binance"})) == set()
    assert sql_store.open_paper_exchanges(frozenset()) == set()
