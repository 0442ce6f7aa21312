"""A process must not start over open orders it would take for what they are not: paper
orders of an exchange it treats as live would never fill (the reverse, live orders of
an exchange it treats as paper, is tested end to end in tests/venues/test_live_binance)."""

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.core.vocabulary import OrderType, Side, TimeInForce
from app.ops.logs import EventLog, configure_logging
from app.service.live import LiveOrdersLeft
from app.service.orders import OrderRequest, OrderService
from app.service.settings import Settings
from app.store.sql import SqlStore
from tests.conftest import make_settings

KEYS = {"binance": {"api_key": SecretStr("key"), "secret": SecretStr("secret")}}


def service_on(settings: Settings) -> OrderService:
    events = EventLog(configure_logging("execution", logging.INFO, "text"))
    return OrderService(settings, SqlStore(settings.storage_url), events)


def test_open_paper_orders_of_an_exchange_turned_live_stop_start_up(tmp_path: Path) -> None:
    paper = make_settings(
        allowed_exchanges="binance,okx", allowed_symbols="BTC/USDT", storage_url=f"sqlite:///{tmp_path / 'o.db'}"
    )
    live = paper.model_copy(update={"live_exchanges": frozenset({"binance"}), "live_credentials": KEYS})
    service = service_on(paper)
    intent = OrderRequest("k-1", "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, 1.0, 90.0, TimeInForce.GTC, None)
    resting = asyncio.run(service.submit(intent))  # no quote: it rests, open
    asyncio.run(service.submit(dataclasses.replace(intent, idempotency_key="k-2", exchange="okx")))  # no matter
    service.store.close()

    store = SqlStore(live.storage_url)
    with pytest.raises(LiveOrdersLeft) as refused:
        OrderService(live, store, EventLog(configure_logging("execution", logging.INFO, "text")))
    store.close()  # (its writer thread must not outlive the test)
    assert str(refused.value) == (
        "the store holds open paper orders on binance, which LIVE_EXCHANGES names: cancel them, "
        "or keep it paper until they are final (as live, nothing would ever fill them)"
    )
    service = service_on(paper)
    asyncio.run(service.cancel(resting.order_id))
    service.store.close()
    service_on(live).store.close()  # nothing left open on binance: it starts
