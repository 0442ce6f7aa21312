"""PAPER_BALANCES: reservations, fills' flows, releases, INSUFFICIENT_BALANCE, MARKET
fills cut to the balance, exact under racing intents, on every store."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.service.settings import load_settings
from tests.conftest import URL, intent
from tests.server.test_durability import worker_pids
from tests.uvicorn_server import all_orders, race_limit_orders, running_server, server_get
from tests.web.test_fills import ORDERS, fills, order, quote, read
from tests.web.test_trading_state import set_state

BALANCES = "/execution/balances"


def held(client: TestClient) -> dict[str, dict[str, float]]:
    response = client.get(BALANCES)
    assert response.status_code == 200
    return {item.pop("asset"): item for item in response.json()["items"]}


def dec(number: float) -> Decimal:
    return Decimal(repr(number))


@pytest.fixture
def funded(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    def build(balances: str = "USDT=1000,BTC=2", **settings: Any) -> TestClient:
        return make_client(paper_balances=balances, **settings)

    return build


def test_off_by_default(client: TestClient) -> None:
    assert client.get(BALANCES).json() == {"items": []}
    assert "paper_balances" not in client.get("/capabilities").json()["features"]


def test_starting_balances_and_the_assets_of_every_symbol(funded: Callable[..., TestClient]) -> None:
    client = funded()
    assert held(client) == {
        "BTC": {"total": 2.0, "reserved": 0.0, "free": 2.0},
        "ETH": {"total": 0.0, "reserved": 0.0, "free": 0.0},
        "SOL": {"total": 0.0, "reserved": 0.0, "free": 0.0},
        "USDT": {"total": 1000.0, "reserved": 0.0, "free": 1000.0},
    }
    assert "paper_balances" in client.get("/capabilities").json()["features"]


def test_open_orders_reserve_and_a_cancel_releases(funded: Callable[..., TestClient]) -> None:
    client = funded(taker_fee_bps="10", maker_fee_bps="20")
    buy = order(client, "buy", type="LIMIT", limit_price=90.0, qty=5.0)  # 5 x 90 x (1 + 0.002): highest fee
    sell = order(client, "sell", side="SELL", type="LIMIT", limit_price=200.0, qty=1.5)
    balances = held(client)
    assert balances["USDT"] == {"total": 1000.0, "reserved": 450.9, "free": 549.1}
    assert balances["BTC"] == {"total": 2.0, "reserved": 1.5, "free": 0.5}
    client.post(f"{ORDERS}/{buy}/cancel")
    client.post(f"{ORDERS}/{sell}/cancel")
    assert held(client)["USDT"]["reserved"] == 0
    assert held(client)["BTC"]["reserved"] == 0


def test_not_enough_free_balance_is_refused(
    funded: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = funded()
    order(client, "most", type="LIMIT", limit_price=100.0, qty=9.0)  # 900 of 1000
    response = client.post(URL, json=intent(idempotency_key="more", type="LIMIT", limit_price=100.0, qty=1.5))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "BUY 1.5 BTC/USDT needs 150 USDT; 100 USDT is free",
        "code": "INSUFFICIENT_BALANCE",
    }
    # No shorting: a SELL needs the base asset.
    response = client.post(URL, json=intent(idempotency_key="short", side="SELL", qty=2.5))
    assert (response.status_code, response.json()["code"]) == (400, "INSUFFICIENT_BALANCE")
    assert [r.fields["code"] for r in caplog.records if r.getMessage() == "Order intent rejected"] == [  # type: ignore[attr-defined]
        "INSUFFICIENT_BALANCE",
        "INSUFFICIENT_BALANCE",
    ]
    assert client.get(ORDERS, params={"idempotency_key": "more"}).json()["items"] == []
    order(client, "exact", type="LIMIT", limit_price=100.0, qty=1.0)  # the last 100 fits exactly
    assert held(client)["USDT"]["free"] == 0


def test_fills_move_balances_and_release_their_reservation(funded: Callable[..., TestClient]) -> None:
    client = funded(taker_fee_bps="10")
    buy = order(client, "buy", type="LIMIT", limit_price=100.0, qty=2.0)  # reserves 200.2
    quote(client, 94, 95, ask_size=0.5)  # fills 0.5 at 95 (taker: it never rested passively)
    assert read(client, buy)["status"] == "PARTIALLY_FILLED"
    balances = held(client)
    assert balances["BTC"]["total"] == 2.5
    assert balances["USDT"]["total"] == pytest.approx(1000 - 47.5 - 0.0475)
    assert balances["USDT"]["reserved"] == pytest.approx(1.5 * 100 * 1.001)  # what is left of the order
    sell = order(client, "sell", side="SELL", qty=1.0)  # at the bid, 94, less the fee
    assert read(client, sell)["status"] == "FILLED"
    balances = held(client)
    assert balances["BTC"] == {"total": 1.5, "reserved": 0.0, "free": 1.5}
    assert balances["USDT"]["total"] == pytest.approx(1000 - 47.5 - 0.0475 + 94 - 0.094)


def test_ioc_expiry_releases_the_rest(funded: Callable[..., TestClient]) -> None:
    client = funded()
    quote(client, 99, 100, ask_size=1.0)
    ioc = order(client, "ioc", type="LIMIT", limit_price=100.0, qty=3.0, time_in_force="IOC")
    assert read(client, ioc)["status"] == "EXPIRED"
    assert held(client)["USDT"] == {"total": 900.0, "reserved": 0.0, "free": 900.0}
    assert held(client)["BTC"]["total"] == 3.0


def test_a_market_buy_needs_a_quote_and_reserves_at_the_ask(funded: Callable[..., TestClient]) -> None:
    client = funded(slippage_bps="100")
    response = client.post(URL, json=intent(idempotency_key="blind", qty=1.0))
    assert (response.status_code, response.json()["code"]) == (400, "NO_QUOTE")
    quote(client, 99, 100, ask_size=0.5)
    market = order(client, "market", qty=2.0)  # 0.5 fills at 101; 1.5 rests reserved at 101
    assert read(client, market)["status"] == "PARTIALLY_FILLED"
    assert held(client)["USDT"]["reserved"] == pytest.approx(1.5 * 101)
    assert held(client)["USDT"]["total"] == pytest.approx(1000 - 0.5 * 101)


def test_a_market_buy_the_balance_cannot_cover_fills_what_it_covers_and_is_canceled(
    funded: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = funded("USDT=1000,BTC=0")
    quote(client, 99, 100, ask_size=1.0)
    market = order(client, "market", qty=9.0)  # 1 fills at 100, 8 rest reserved at 100: 800
    assert held(client)["USDT"] == {"total": 900.0, "reserved": 800.0, "free": 100.0}
    quote(client, 124, 125)  # 8 at 125 would cost 1000; 900 covers 7.2
    body = read(client, market)
    assert (body["status"], body["filled_qty"]) == ("CANCELED", 8.2)
    assert held(client)["USDT"] == {"total": 0.0, "reserved": 0.0, "free": 0.0}
    assert held(client)["BTC"]["total"] == 8.2
    assert [f["qty"] for f in fills(client, market)] == [1.0, 7.2]
    [line] = [r for r in caplog.records if r.getMessage() == "Order canceled"]
    assert "balance covers only part" in line.fields["reason"]  # type: ignore[attr-defined]
    assert line.fields["previous_status"] == "PARTIALLY_FILLED"  # type: ignore[attr-defined]


def test_cancel_open_orders_releases_everything(funded: Callable[..., TestClient]) -> None:
    client = funded()
    order(client, "a", type="LIMIT", limit_price=90.0, qty=3.0)
    order(client, "b", side="SELL", type="LIMIT", limit_price=200.0, qty=1.0)
    set_state(client, "HALTED", cancel_open_orders=True)
    balances = held(client)
    assert (balances["USDT"]["reserved"], balances["BTC"]["reserved"]) == (0, 0)


def test_total_is_the_start_plus_the_fills_flows(funded: Callable[..., TestClient]) -> None:
    client = funded(taker_fee_bps="7", maker_fee_bps="3")
    order(client, "rest", type="LIMIT", limit_price=99.3, qty=1.3)
    quote(client, 100.1, 100.5, bid_size=0.7)
    order(client, "sell", side="SELL", qty=1.1)
    quote(client, 98, 99.1)
    flows = {"BTC": Decimal(2), "USDT": Decimal(1000)}
    for item in client.get(ORDERS).json()["items"]:
        for fill in fills(client, item["order_id"]):
            qty, cost = dec(fill["qty"]), dec(fill["qty"]) * dec(fill["price"])
            sign = 1 if item["side"] == "BUY" else -1
            flows["BTC"] += sign * qty
            flows["USDT"] -= sign * cost + dec(fill["fee"])
    balances = held(client)
    assert balances["BTC"]["total"] == float(flows["BTC"])
    assert balances["USDT"]["total"] == float(flows["USDT"])


def test_racing_intents_never_spend_the_same_balance_twice(funded: Callable[..., TestClient]) -> None:
    client = funded("USDT=500")
    racers = 16
    barrier = threading.Barrier(racers)

    def post(n: int) -> int:
        barrier.wait()
        body = intent(idempotency_key=f"race-{n}", type="LIMIT", limit_price=100.0, qty=1.0)
        return client.post(URL, json=body).status_code

    with ThreadPoolExecutor(racers) as pool:
        assert Counter(pool.map(post, range(racers))) == {201: 5, 400: racers - 5}
    assert held(client)["USDT"] == {"total": 500.0, "reserved": 500.0, "free": 0.0}


@pytest.mark.parametrize(
    ("value", "words"),
    [("USDT", "ASSET=AMOUNT"), ("USDT=-1", ">= 0"), ("USDT=lots", "decimal"), ("USDT=1,USDT=2", "twice")],
)
def test_bad_balances_stop_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, words: str
) -> None:
    monkeypatch.setenv("ALLOWED_SYMBOLS", "BTC/USDT")
    monkeypatch.setenv("PAPER_BALANCES", value)
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "PAPER_BALANCES" in err
    assert words in err


def test_balances_need_base_quote_symbols(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALLOWED_SYMBOLS", "BTCUSDT")
    monkeypatch.setenv("PAPER_BALANCES", "USDT=1")
    with pytest.raises(SystemExit):
        load_settings()
    assert "'BTCUSDT' is not BASE/QUOTE" in capsys.readouterr().err


def test_two_workers_never_spend_the_same_balance_twice(storage_url: str, tmp_path: Path) -> None:
    env = {"STORAGE_URL": storage_url, "PAPER_BALANCES": "USDT=700,BTC=0"}
    with running_server(tmp_path, env, "--workers", "2") as server:
        worker_pids(server, 2)
        assert race_limit_orders(server, 24) == {201: 7, 400: 17}  # 7 x 100 = 700
        assert len(all_orders(server_get(server))) == 7
        status, body = server.request("GET", BALANCES)
        usdt = next(item for item in body["items"] if item["asset"] == "USDT")
        assert (status, usdt["reserved"], usdt["free"]) == (200, 700.0, 0.0)
