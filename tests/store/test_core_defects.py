"""Defects an outside test found in the trading rules, now fixed in the core: each is
proved here on every store (the same answers from memory, SQLite and PostgreSQL)."""

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.engine import Policy
from app.core.errors import AccountMismatch
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Costs, Quote, exact
from app.core.vocabulary import OrderType, Side
from app.main import create_app
from app.store.base import OrderStore
from app.store.ids import new_number
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.conftest import URL, intent, make_settings

BTC = ("binance", "BTC/USDT")
QUOTES = "/execution/market-data/quotes"
STATE = "/execution/trading-state"
LIMIT_BUY = {"type": "LIMIT", "limit_price": 100.0}


def test_one_key_sent_many_times_while_halted_is_refused_alike_on_every_store(
    store: OrderStore, make_client: Any
) -> None:
    """Every racer gets the control's 400 (TRADING_HALTED), whichever store: none a 503."""
    client: TestClient = make_client(trading_state="HALTED")
    racers = 12
    barrier = threading.Barrier(racers)

    def post(n: int) -> tuple[int, str | None]:
        barrier.wait()
        response = client.post(URL, json=intent(idempotency_key="same", qty=n + 1))
        return response.status_code, response.json().get("code")

    with ThreadPoolExecutor(max_workers=racers) as pool:
        answers = list(pool.map(post, range(racers)))
    assert answers == [(400, "TRADING_HALTED")] * racers
    assert client.get("/execution/orders").json()["items"] == []


def test_one_key_refused_by_a_limit_then_sent_again_is_vetted_again(
    store: OrderStore, make_client: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"binance:BTC/USDT": {"max_qty": 1}}')
    client: TestClient = make_client(instruments_file=str(rules))
    first = client.post(URL, json=intent(idempotency_key="k", qty=2))
    assert (first.status_code, first.json()["code"]) == (400, "MAX_QTY")
    assert client.post(URL, json=intent(idempotency_key="k", qty=1)).status_code == 201


def test_a_long_history_of_partial_closes_keeps_a_position_small_and_exact(make_client: Any) -> None:
    """Buy, then sell part, hundreds of times with 8-decimal quantities: every fill
    stays a 201/200 (the SQL stores once failed to write the growing fraction), the
    position is the sum of its fills, and closing it leaves no residue."""
    client: TestClient = make_client()
    bought = sold = 0
    for n in range(150):
        client.post(QUOTES, json={"exchange": "binance", "symbol": "BTC/USDT", "bid": 100 + n % 7, "ask": 101 + n % 7})
        buy = client.post(URL, json=intent(idempotency_key=f"b{n}", qty=0.12345678))
        sell = client.post(URL, json=intent(idempotency_key=f"s{n}", qty=0.03333333, side="SELL"))
        assert (buy.status_code, sell.status_code) == (201, 201)
        bought += 12345678
        sold += 3333333
    [position] = client.get("/execution/positions").json()["items"]
    assert position["qty"] == pytest.approx((bought - sold) / 1e8, abs=1e-9)
    client.put(STATE, json={"state": "REDUCING"})
    flat = client.post(URL, json=intent(idempotency_key="flat", qty=round((bought - sold) / 1e8, 8), side="SELL"))
    assert flat.status_code == 201, flat.text
    [position] = client.get("/execution/positions").json()["items"]
    assert position["qty"] == 0.0
    assert position["avg_entry_price"] is None


def _sql(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orders.db'}"


def test_balances_switched_on_over_open_orders_reserve_for_them(tmp_path: Path) -> None:
    """Orders placed while balances were off get their reservation when the account is
    turned on; a cancel then releases exactly it (it once answered 500 and left
    `reserved` negative)."""
    url = _sql(tmp_path)
    with TestClient(create_app(make_settings(storage_url=url))) as client:
        order_id = client.post(URL, json=intent(idempotency_key="a", qty=2, **LIMIT_BUY)).json()["order_id"]
    with TestClient(create_app(make_settings(storage_url=url, paper_balances="USDT=1000,BTC=0"))) as client:
        usdt = next(b for b in client.get("/execution/balances").json()["items"] if b["asset"] == "USDT")
        assert (usdt["total"], usdt["reserved"], usdt["free"]) == (1000.0, 200.0, 800.0)
        assert client.post(f"/execution/orders/{order_id}/cancel").status_code == 200
        usdt = next(b for b in client.get("/execution/balances").json()["items"] if b["asset"] == "USDT")
        assert (usdt["reserved"], usdt["free"]) == (0.0, 1000.0)


def test_balances_that_cannot_cover_the_open_orders_stop_start_up(tmp_path: Path) -> None:
    url = _sql(tmp_path)
    with TestClient(create_app(make_settings(storage_url=url))) as client:
        client.post(URL, json=intent(idempotency_key="a", qty=2, **LIMIT_BUY))
    with pytest.raises(AccountMismatch, match="open orders hold 200 USDT but the account has 100"):
        create_app(make_settings(storage_url=url, paper_balances="USDT=100,BTC=0"))


def test_a_reservation_is_kept_with_its_order_when_fees_change(tmp_path: Path) -> None:
    """Reserved under one fee rate, released after a restart with another: exactly what
    was reserved comes back, by cancel, by fill and by the kill switch."""
    url = _sql(tmp_path)
    balances = "USDT=10000,BTC=0"
    with TestClient(create_app(make_settings(storage_url=url, paper_balances=balances))) as client:
        ids = [
            client.post(URL, json=intent(idempotency_key=f"k{n}", qty=1, **LIMIT_BUY)).json()["order_id"]
            for n in range(3)
        ]
    fees = {"taker_fee_bps": "50", "maker_fee_bps": "50"}
    with TestClient(create_app(make_settings(storage_url=url, paper_balances=balances, **fees))) as client:
        assert client.post(f"/execution/orders/{ids[0]}/cancel").status_code == 200
        quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 99.5, "ask_size": 1.0}
        assert client.post(QUOTES, json=quote).status_code == 200
        halted = client.put(STATE, json={"state": "HALTED", "cancel_open_orders": True})
        assert halted.status_code == 200
        assert client.get(STATE).json()["state"] == "HALTED"
        held = {b["asset"]: b for b in client.get("/execution/balances").json()["items"]}
    assert held["USDT"]["reserved"] == 0.0
    assert held["USDT"]["free"] == held["USDT"]["total"]
    # One fill: a waiting order takes the ask, with the new 50 bps taker fee.
    assert held["USDT"]["total"] == pytest.approx(10000 - 99.5 * 1.005)
    assert held["BTC"]["total"] == 1.0


def test_the_reservation_is_stored_with_the_order(tmp_path: Path) -> None:
    store = SqlStore(_sql(tmp_path))
    with TestClient(create_app(make_settings(paper_balances="USDT=1000", taker_fee_bps="10"), store)) as client:
        client.post(URL, json=intent(idempotency_key="a", qty=2, **LIMIT_BUY))
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT reserve_unit, reserved FROM orders").one()
    store.close()
    assert (Decimal(row.reserve_unit), Decimal(row.reserved)) == (Decimal("100.1"), Decimal("200.2"))


def test_a_balance_cut_at_long_prices_never_takes_the_balance_below_zero() -> None:
    """A resting MARKET BUY, then an ask far above what it reserved at, with long-digit
    prices: the fill is cut to what the balance covers, and `total` never goes below
    zero. (Rounding the divisor down with the quotient made about one case in six
    overspend by a few 1e-15.)"""
    rng = random.Random(3)
    costs = Policy(Costs(Decimal(13), Decimal(13), Decimal(0)))
    for _ in range(300):
        store = InMemoryStore()
        store.open_account({"USDT": exact(round(rng.uniform(1000, 5000), 2))}, {"BTC", "USDT"}, costs)
        asyncio.run(store.add_quote(BTC, Quote(exact(99.0), exact(100.0), exact(1e-6), exact(1e-6)), costs, 1))
        kind = OrderKind(*BTC, Side.BUY, OrderType.MARKET)
        order = Order(number=new_number(), idempotency_key="k", kind=kind, terms=OrderTerms.of(9.0, None, 1, None))
        asyncio.run(store.admit(order, costs, 1))
        ask = round(rng.uniform(200, 99999), rng.randint(3, 10))
        asyncio.run(store.add_quote(BTC, Quote(exact(99.0), exact(ask)), costs, 2))
        usdt = store.balances()["USDT"]
        assert usdt.total >= 0, (ask, usdt)
        assert usdt.free >= 0, (ask, usdt)
