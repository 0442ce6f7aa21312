"""The real exchanges: ccxt's (its `pro` module has the websocket `watch_*` methods).
Imported here only, in the feeds' own process (app.venues.feed_process): the import
costs about a second and 80 MB, which the service itself never pays."""

import importlib
from typing import Any, cast

from app.venues.feed_runner import Exchange, UnknownExchange
from app.venues.urls import rebase

# Per exchange, what ccxt is told beyond its defaults: markets are read from the spot
# API only (futures, swaps and options are not instruments this service fills, and a
# failure to read them would stop the whole feed).
OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}},
    "okx": {"fetchMarkets": {"types": ["spot"]}},
}


def ccxt_exchange(exchange_id: str, base_url: str | None) -> Exchange:
    """ccxt's exchange of that id, its rate limiter on; with `base_url`, every address
    it uses on that scheme, host and port (MARKET_DATA_URL_<EXCHANGE>)."""
    pro = importlib.import_module("ccxt.pro")
    if exchange_id not in pro.exchanges:
        raise UnknownExchange(f"ccxt has no exchange {exchange_id!r}")
    exchange = getattr(pro, exchange_id)({"enableRateLimit": True, "options": OPTIONS.get(exchange_id, {})})
    if base_url is not None:
        exchange.urls["api"] = rebase(exchange.urls["api"], base_url)
    return cast(Exchange, exchange)
