"""The ccxt adapter's set-up: the sandbox (testnet) unless real money is allowed, every
address on LIVE_URL_<EXCHANGE> when it is given, the credentials and the timeout handed
to ccxt, its rate limiter on."""

import asyncio
from typing import Any

import pytest

from app.venues.ccxt_venue import CcxtVenue
from app.venues.feed_runner import UnknownExchange


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
