"""The ccxt adapter: the sandbox (testnet) unless real money is allowed, every address on
LIVE_URL_<EXCHANGE> when it is given, the credentials and the timeout handed to ccxt,
its rate limiter on; an order's trades read page after page, and only when it has filled
more than is applied here."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from app.core.engine import apply_exchange_fills
from app.core.order import Order, OrderKind, OrderTerms
from app.core.vocabulary import OrderStatus, OrderType, Side, TimeInForce
from app.venues.ccxt_venue import CcxtVenue
from app.venues.feed_runner import UnknownExchange
from harness.fake_binance_spot import running_spot
from tests.core.factories import counter, make_instrument


def urls(venue: CcxtVenue) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for each in value.values():
                walk(each)
        elif isinstance(value, str):
            found.append(value)

    walk(venue.exchange.urls["api"])
    return found


def connect(**fields: Any) -> CcxtVenue:
    return CcxtVenue.connect(
        "binance", "key", "secret", **{"sandbox": True, "base_url": None, "timeout_ms": 1500, **fields}
    )


@pytest.fixture
def closing() -> Any:
    opened: list[CcxtVenue] = []
    yield opened
    for venue in opened:
        asyncio.run(venue.close())


def test_the_sandbox_unless_real_money(closing: list[CcxtVenue]) -> None:
    sandbox = connect()
    real = connect(sandbox=False)
    closing += [sandbox, real]
    assert "https://testnet.binance.vision/api/v3" in urls(sandbox)
    assert not any("api.binance.com" in url for url in urls(sandbox))
    assert "https://api.binance.com/api/v3" in urls(real)
    assert not any("testnet" in url for url in urls(real))
    for venue in (sandbox, real):
        assert (venue.exchange.apiKey, venue.exchange.secret, venue.exchange.timeout) == ("key", "secret", 1500)
        assert venue.exchange.enableRateLimit


def test_a_base_url_replaces_every_address_and_the_sandbox_switch(closing: list[CcxtVenue]) -> None:
    venue = connect(base_url="http://127.0.0.1:9")
    closing.append(venue)
    assert urls(venue)
    assert all(url.startswith(("http://127.0.0.1:9/", "ws://127.0.0.1:9/")) for url in urls(venue))
    assert "http://127.0.0.1:9/api/v3" in urls(venue)


def test_an_exchange_without_a_sandbox_is_refused_unless_real_money_or_a_url(closing: list[CcxtVenue]) -> None:
    with pytest.raises(
        UnknownExchange, match="LIVE_EXCHANGES: ccxt's upbit has no sandbox; trade it with LIVE_URL_UPBIT"
    ):
        CcxtVenue.connect("upbit", "key", "secret", sandbox=True, base_url=None, timeout_ms=1000)
    closing.append(CcxtVenue.connect("upbit", "key", "secret", sandbox=False, base_url=None, timeout_ms=1000))
    closing.append(
        CcxtVenue.connect("upbit", "key", "secret", sandbox=True, base_url="http://127.0.0.1:9", timeout_ms=1000)
    )


def test_an_order_s_trades_are_read_page_after_page_and_only_when_it_filled_more() -> None:
    """Through the real ccxt against the Binance emulator, its trades paged two at a time:
    every trade of an order filled five times is read; once they are all applied here, a
    look reads the order alone."""
    kind = OrderKind("binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC)
    order = Order(number=1, idempotency_key="k-1", kind=kind, terms=OrderTerms.of(1.0, 90.0, 1, None))
    client_id = "pe" + "0" * 30
    with running_spot() as spot:
        spot.set_price("BTC/USDT", 99, 100)
        spot.set_balance("USDT", 1000)

        async def scenario() -> None:
            connected = CcxtVenue.connect(
                "binance", spot.api_key, spot.secret, sandbox=True, base_url=spot.base_url, timeout_ms=5000
            )
            venue = CcxtVenue(connected.exchange, trade_paging=("fromId", 2))
            try:
                await venue.send(order, client_id)
                for _ in range(5):
                    spot.fill(client_id, "0.2")
                seen = await venue.look(order, client_id)
                assert seen is not None
                assert [fill.qty for fill in seen.report.fills] == [Decimal("0.2")] * 5
                assert len({fill.trade_id for fill in seen.report.fills}) == 5
                assert sum(1 for each in spot.requests if each == "GET /api/v3/myTrades") == 3  # 2 + 2 + 1
                apply_exchange_fills(make_instrument(), order, seen.report.fills, now=1, new_id=counter())
                assert order.status == OrderStatus.FILLED
                again = await venue.look(order, client_id)
                assert again is not None
                assert again.report.fills == []
                assert sum(1 for each in spot.requests if each == "GET /api/v3/myTrades") == 3
            finally:
                await connected.close()

        asyncio.run(scenario())
