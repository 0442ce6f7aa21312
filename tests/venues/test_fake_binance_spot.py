"""The Binance spot emulator (harness/fake_binance_spot.py) driven by the real ccxt
(ccxt.async_support.binance, keys set, pointed at it as the service points ccxt at an
exchange): orders placed, resting, filled in part, found and cancelled by client order
id, refused with the exception classes ccxt gives Binance's errors, and the faults a live
service meets (a lost answer, a late one, throttling, an outage, a restart)."""

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from app.venues.ccxt_exchange import OPTIONS
from app.venues.urls import rebase
from harness.fake_binance_spot import CCXT_OPTIONS, FakeBinanceSpot, running_spot

BTC = "BTC/USDT"
Script = Callable[[Any], Awaitable[None]]


def ccxt_async() -> Any:
    # Imported here, as the service does (app.venues.ccxt_exchange): ccxt is untyped, and heavy.
    return importlib.import_module("ccxt.async_support")


def trade(fake: FakeBinanceSpot, script: Script, *, secret: str | None = None, timeout_ms: int = 3000) -> None:
    """Run `script` with a ccxt binance on the emulator, its markets loaded. No client-side
    rate limiting: the emulator does not count weights, and the tests stay quick."""

    async def run() -> None:
        exchange = ccxt_async().binance(
            {
                "apiKey": fake.api_key,
                "secret": fake.secret if secret is None else secret,
                "timeout": timeout_ms,
                "enableRateLimit": False,
                "options": OPTIONS["binance"] | CCXT_OPTIONS,
            }
        )
        exchange.urls["api"] = rebase(exchange.urls["api"], fake.base_url)
        try:
            await exchange.load_markets()
            await script(exchange)
        finally:
            await exchange.close()

    asyncio.run(run())


def by_client_id(client_order_id: str) -> dict[str, str]:
    return {"clientOrderId": client_order_id}


async def market_buy(exchange: Any, client_order_id: str, qty: float = 0.1) -> Any:
    return await exchange.create_order(BTC, "market", "buy", qty, None, by_client_id(client_order_id))


@pytest.fixture
def fake() -> Iterator[FakeBinanceSpot]:
    with running_spot() as started:
        started.set_price(BTC, bid=99, ask=100)
        started.set_balance("USDT", 1000)
        yield started


def test_a_market_buy_fills_at_the_ask_with_its_fee_and_moves_the_balance(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        assert sorted(exchange.markets) == ["BTC/USDT", "ETH/USDT"]
        order = await market_buy(exchange, "buy-1")
        assert (order["clientOrderId"], order["status"], order["filled"], order["average"], order["cost"]) == (
            "buy-1",
            "closed",
            0.1,
            100.0,
            10.0,
        )
        assert order["fee"] == {"currency": "BTC", "cost": 0.0001}  # 0.1% of what a buy receives
        [fill] = order["trades"]
        [made] = await asyncio.to_thread(fake.trades)
        assert fill["id"] == str(made.trade_id)
        balance = await exchange.fetch_balance()
        assert (balance["USDT"]["free"], balance["BTC"]["free"]) == (990.0, 0.0999)

        sold = await exchange.create_order(BTC, "market", "sell", 0.06, None, by_client_id("sell-1"))
        assert (sold["status"], sold["average"], sold["fee"]) == ("closed", 99.0, {"currency": "USDT", "cost": 0.00594})
        balance = await exchange.fetch_balance()
        assert (balance["USDT"]["free"], balance["BTC"]["free"]) == (995.93406, 0.0399)

    trade(fake, script)
    assert fake.requests == [
        "GET /api/v3/exchangeInfo",  # load_markets reads nothing else (CCXT_OPTIONS)
        "POST /api/v3/order",
        "GET /api/v3/account",
        "POST /api/v3/order",
        "GET /api/v3/account",
    ]
    assert (fake.signed_requests, fake.bad_signatures) == (4, 0)
    assert fake.balance("USDT") == (Decimal("995.93406"), Decimal(0))


def test_a_resting_limit_order_is_found_filled_in_part_and_cancelled_by_client_id(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        placed = await exchange.create_order(BTC, "limit", "buy", 0.2, 90, by_client_id("rest-1"))
        assert (placed["status"], placed["filled"]) == ("open", 0.0)
        assert (await exchange.fetch_balance())["USDT"] == {"free": 982.0, "used": 18.0, "total": 1000.0}
        [listed] = await exchange.fetch_open_orders(BTC)
        assert (listed["id"], listed["clientOrderId"]) == (placed["id"], "rest-1")
        found = await exchange.fetch_order(None, BTC, by_client_id("rest-1"))
        assert (found["id"], found["info"]["status"]) == (placed["id"], "NEW")
        by_orig = await exchange.fetch_order(None, BTC, {"origClientOrderId": "rest-1"})  # Binance's own name
        assert by_orig["id"] == placed["id"]

        filled = await asyncio.to_thread(fake.fill, "rest-1", "0.05")
        found = await exchange.fetch_order(placed["id"], BTC)  # by exchange id too
        assert (found["info"]["status"], found["filled"], found["remaining"]) == ("PARTIALLY_FILLED", 0.05, 0.15)
        [mine] = await exchange.fetch_my_trades(BTC)
        assert (mine["id"], mine["order"], mine["price"], mine["amount"]) == (
            str(filled.trade_id),
            placed["id"],
            90.0,
            0.05,
        )
        assert (mine["takerOrMaker"], mine["fee"]) == ("maker", {"currency": "BTC", "cost": 0.00005})

        cancelled = await exchange.cancel_order(None, BTC, by_client_id("rest-1"))
        assert (cancelled["status"], cancelled["filled"]) == ("canceled", 0.05)
        # Binance names the cancel in clientOrderId; the order's own id is origClientOrderId.
        assert cancelled["info"]["origClientOrderId"] == "rest-1"
        assert cancelled["clientOrderId"] != "rest-1"
        assert (await exchange.fetch_order(None, BTC, by_client_id("rest-1")))["info"]["status"] == "CANCELED"
        assert await exchange.fetch_open_orders(BTC) == []
        assert (await exchange.fetch_balance())["USDT"] == {"free": 995.5, "used": 0.0, "total": 995.5}

    trade(fake, script)
    [order] = fake.orders()
    assert (order.client_order_id, order.status, order.executed_qty) == ("rest-1", "CANCELED", Decimal("0.05"))


def test_orders_that_fill_or_end_at_once_and_one_the_exchange_expires(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        crossing = await exchange.create_order(BTC, "limit", "buy", 0.1, 101, by_client_id("cross-1"))
        assert (crossing["status"], crossing["average"]) == ("closed", 100.0)  # at the ask, not its own price
        spent = await exchange.create_market_buy_order_with_cost(BTC, 25, by_client_id("cost-1"))  # quoteOrderQty
        assert (spent["status"], spent["filled"], spent["cost"]) == ("closed", 0.25, 25.0)
        for time_in_force in ("IOC", "FOK"):
            params = by_client_id(f"{time_in_force}-1") | {"timeInForce": time_in_force}
            unfilled = await exchange.create_order(BTC, "limit", "buy", 0.1, 95, params)
            assert (unfilled["status"], unfilled["filled"]) == ("expired", 0.0)
        await exchange.create_order(BTC, "limit", "buy", 0.1, 95, by_client_id("gtc-1"))
        await asyncio.to_thread(fake.expire, "gtc-1")
        assert (await exchange.fetch_order(None, BTC, by_client_id("gtc-1")))["status"] == "expired"
        assert (await exchange.fetch_balance())["USDT"]["used"] == 0.0

    trade(fake, script)
    assert [(each.client_order_id, each.status) for each in fake.orders()] == [
        ("cross-1", "FILLED"),
        ("cost-1", "FILLED"),
        ("IOC-1", "EXPIRED"),
        ("FOK-1", "EXPIRED"),
        ("gtc-1", "EXPIRED"),
    ]


def test_a_client_order_id_is_taken_for_good(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        await market_buy(exchange, "once-1")  # filled: ended
        await exchange.create_order(BTC, "limit", "buy", 0.1, 90, by_client_id("once-2"))  # resting
        for taken in ("once-1", "once-2"):
            with pytest.raises(ccxt.InvalidOrder) as refused:
                await market_buy(exchange, taken)
            assert refused.type is ccxt.InvalidOrder  # not a subclass: Binance's -2010, not DuplicateOrderId
            assert "Duplicate order sent." in str(refused.value)

    trade(fake, script)
    assert [each.client_order_id for each in fake.orders()] == ["once-1", "once-2"]


def test_refusals_create_nothing_and_map_to_ccxt_exceptions(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        with pytest.raises(ccxt.InsufficientFunds):
            await market_buy(exchange, "big-1", qty=20)  # 2000 USDT at the ask
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order(BTC, "limit", "sell", 0.1, 120, by_client_id("sell-1"))  # no BTC
        with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
            await market_buy(exchange, "small-1", qty=0.01)  # 1 USDT, under the 5 minimum
        with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
            await exchange.privatePostOrder(
                {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.100001"}
            )
        with pytest.raises(ccxt.BadSymbol):
            await exchange.privateGetOpenOrders({"symbol": "DOGEUSDT"})
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await exchange.fetch_order(None, BTC, by_client_id("never"))
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await exchange.cancel_order("424242", BTC)
        # The refused ids are not taken.
        assert (await market_buy(exchange, "small-1"))["status"] == "closed"
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await exchange.cancel_order(None, BTC, by_client_id("small-1"))  # ended: nothing to cancel

    trade(fake, script)
    assert [each.client_order_id for each in fake.orders()] == ["small-1"]


def test_a_wrong_secret_a_wrong_key_or_a_stale_timestamp_is_refused(fake: FakeBinanceSpot) -> None:
    ccxt = ccxt_async()

    async def signed_wrongly(exchange: Any) -> None:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await market_buy(exchange, "forged-1")

    trade(fake, signed_wrongly, secret="not-the-secret")
    assert (fake.bad_signatures, fake.signed_requests, fake.orders()) == (1, 0, [])

    async def unknown_key(exchange: Any) -> None:
        exchange.apiKey = "someone-else"
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await exchange.fetch_balance()
        # Once ccxt has been let in, it reads -2015 as a temporary ban (its workaround).
        exchange.apiKey = fake.api_key
        await exchange.fetch_balance()
        exchange.apiKey = "someone-else"
        with pytest.raises(ccxt.DDoSProtection, match="-2015"):
            await exchange.fetch_balance()

    trade(fake, unknown_key)

    async def out_of_window(exchange: Any) -> None:
        await asyncio.to_thread(fake.shift_clock, -5000)  # the request is ahead of the exchange
        with pytest.raises(ccxt.InvalidNonce, match="ahead of the server's time"):
            await market_buy(exchange, "early-1")
        await asyncio.to_thread(fake.shift_clock, 15000)  # beyond ccxt's recvWindow of 10 s
        with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
            await market_buy(exchange, "late-1")

    trade(fake, out_of_window)
    assert fake.orders() == []


def test_a_lost_answer_leaves_the_order_placed_and_its_client_id_finds_it(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        await asyncio.to_thread(fake.lose_next_answer, "POST /api/v3/order")
        with pytest.raises(ccxt.NetworkError) as lost:
            await market_buy(exchange, "lost-1")
        assert lost.type is ccxt.ExchangeNotAvailable  # aiohttp's ServerDisconnectedError
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await market_buy(exchange, "lost-1")  # the resend: refused, not a second order
        found = await exchange.fetch_order(None, BTC, by_client_id("lost-1"))
        assert (found["status"], found["filled"]) == ("closed", 0.1)

        # aiohttp sends a GET (or DELETE) once more by itself when a kept-alive connection
        # ends unanswered: one lost answer to a query goes unnoticed.
        await asyncio.to_thread(fake.lose_next_answer, "GET /api/v3/order")
        assert (await exchange.fetch_order(None, BTC, by_client_id("lost-1")))["status"] == "closed"

    trade(fake, script)
    assert [(each.client_order_id, each.status) for each in fake.orders()] == [("lost-1", "FILLED")]
    assert fake.requests.count("GET /api/v3/order") == 3


def test_throttling_and_an_outage_answer_without_processing(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        await asyncio.to_thread(fake.fail_next, 429, match="POST")
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):  # ccxt's binance: 418 and 429 alike
            await market_buy(exchange, "throttled-1")
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.to_thread(fake.fail_next, 503, times=2)
        for _ in range(2):
            with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
                await market_buy(exchange, "unavailable-1")
        await asyncio.to_thread(fake.ban, 0.3)
        with pytest.raises(ccxt.DDoSProtection, match="banned until"):
            await exchange.fetch_balance()
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.sleep(0.4)
        assert (await asyncio.to_thread(fake.orders)) == []
        # Nothing of it was placed: the same client ids go through now.
        for client_order_id in ("throttled-1", "unavailable-1"):
            assert (await market_buy(exchange, client_order_id))["status"] == "closed"

    trade(fake, script)
    assert len(fake.orders()) == 2


def test_an_answer_later_than_ccxt_waits_is_a_timeout_after_the_order_was_placed(fake: FakeBinanceSpot) -> None:
    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        await asyncio.to_thread(fake.delay_next, 1.0, "POST /api/v3/order")
        with pytest.raises(ccxt.RequestTimeout):
            await market_buy(exchange, "slow-1")
        assert (await exchange.fetch_order(None, BTC, by_client_id("slow-1")))["status"] == "closed"

    trade(fake, script, timeout_ms=400)
    assert [each.client_order_id for each in fake.orders()] == ["slow-1"]


def test_a_restarted_exchange_keeps_its_orders_trades_balances_and_client_ids(fake: FakeBinanceSpot) -> None:
    port = fake.port

    async def script(exchange: Any) -> None:
        ccxt = ccxt_async()
        await market_buy(exchange, "before-1")
        await exchange.create_order(BTC, "limit", "buy", 0.2, 90, by_client_id("before-2"))
        await asyncio.to_thread(fake.fill, "before-2", "0.1")
        orders, trades = await asyncio.to_thread(fake.orders), await asyncio.to_thread(fake.trades)
        balance = await exchange.fetch_balance()

        await asyncio.to_thread(fake.stop_listening)
        with pytest.raises(ccxt.ExchangeNotAvailable):  # the connection refused
            await market_buy(exchange, "during-1")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await exchange.fetch_order(None, BTC, by_client_id("before-2"))
        await asyncio.to_thread(fake.start_listening)

        assert fake.port == port
        assert (await asyncio.to_thread(fake.orders), await asyncio.to_thread(fake.trades)) == (orders, trades)
        assert (await exchange.fetch_balance())["total"] == balance["total"]
        found = await exchange.fetch_order(None, BTC, by_client_id("before-2"))
        assert (found["info"]["status"], found["filled"]) == ("PARTIALLY_FILLED", 0.1)
        assert [each["id"] for each in await exchange.fetch_my_trades(BTC)] == [str(t.trade_id) for t in trades]
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await market_buy(exchange, "before-1")

        await asyncio.to_thread(fake.restart)  # at once: the same, on the same port
        assert fake.port == port
        cancelled = await exchange.cancel_order(None, BTC, by_client_id("before-2"))
        assert cancelled["status"] == "canceled"

    trade(fake, script)
    assert [(each.client_order_id, each.status) for each in fake.orders()] == [
        ("before-1", "FILLED"),
        ("before-2", "CANCELED"),
    ]
