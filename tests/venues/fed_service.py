"""The service with a market data feed, seen from outside: started against a fake
exchange (harness/fake_binance.py, harness/fake_okx.py), and read over HTTP. Shared by
the tests that run the real ccxt."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from tests.payloads import URL, intent
from tests.uvicorn_server import Server, running_server


class FakeExchange(Protocol):
    @property
    def base_url(self) -> str: ...

    @property
    def symbols(self) -> list[str]: ...

    def wait_for_subscribers(self, symbol: str, kind: str, timeout: float = 10.0) -> None: ...


def feed_env(exchange: str, fake: FakeExchange, symbols: str, **extra: str) -> dict[str, str]:
    return {
        "ALLOWED_EXCHANGES": exchange,
        "ALLOWED_SYMBOLS": symbols,
        "MARKET_DATA_FEEDS": exchange,
        f"MARKET_DATA_URL_{exchange.upper()}": fake.base_url,
        "STORAGE_URL": "memory://",  # this process alone: every feed is its own
        **extra,
    }


@contextmanager
def fed_server(
    tmp_path: Path, exchange: str, fake: FakeExchange, symbols: str, streams: Iterable[str], **env: str
) -> Iterator[Server]:
    """The service, once its feed has subscribed to `streams` of every allowlisted
    symbol the fake lists."""
    with running_server(tmp_path, feed_env(exchange, fake, symbols, **env)) as server:
        for symbol in set(symbols.split(",")) & set(fake.symbols):
            for kind in streams:
                fake.wait_for_subscribers(symbol, kind)
        yield server


def sample(server: Server, name: str, exchange: str, symbol: str, **labels: str) -> float | None:
    """One sample of /metrics for `exchange`'s feed of `symbol`; None if absent."""
    wanted = {"exchange": exchange, "symbol": symbol, **labels}
    _, _, body = server.fetch("GET", "/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for found in family.samples:
            if found.name == name and found.labels == wanted:
                return float(found.value)
    return None


def post_limit_buy(
    server: Server, key: str, price: float, qty: float, symbol: str = "BTC/USDT", *, exchange: str = "binance"
) -> dict[str, Any]:
    body = intent(idempotency_key=key, exchange=exchange, symbol=symbol, type="LIMIT", limit_price=price, qty=qty)
    status, order = server.request("POST", URL, body)
    assert status == 201, order
    return dict(order)


def order_status(server: Server, order_id: str) -> str:
    status, order = server.request("GET", f"/execution/orders/{order_id}")
    assert status == 200, order
    return str(order["status"])


def fills(server: Server, order_id: str) -> list[tuple[float, float, str, float | None]]:
    """An order's fills: quantity, price, source, and the price of the level it met."""
    status, body = server.request("GET", f"/execution/orders/{order_id}/fills")
    assert status == 200, body
    return [
        (fill["qty"], fill["price"], fill["provenance"]["source"], fill["provenance"].get("level_price"))
        for fill in body["items"]
    ]


def capabilities(server: Server) -> dict[str, Any]:
    status, body = server.request("GET", "/capabilities")
    assert status == 200, body
    return dict(body)
