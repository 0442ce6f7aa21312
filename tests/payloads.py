"""Request bodies the tests send (no imports from the rest of the tests: any helper may use these)."""

from typing import Any

URL = "/execution/order-intents"


def intent(**overrides: Any) -> dict[str, Any]:
    """A valid MARKET intent; override any field (None values are sent as null)."""
    body: dict[str, Any] = {
        "idempotency_key": "key-1",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.01,
        "type": "MARKET",
        "limit_price": None,
        "client_ts_utc": None,
    }
    body.update(overrides)
    return body
