"""Live execution end to end: the real service (uvicorn, SQLite) sends orders through
the real ccxt to a local Binance spot emulator (harness/fake_binance_spot.py, which
checks every private call's signature and keeps client order ids unique), and what the
exchange does reaches the order, its fills, the journal and /capabilities."""

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.venues.ccxt_exchange import OPTIONS
from app.venues.ccxt_venue import LIVE_OPTIONS
from app.venues.live import QUIET_SECONDS
from app.venues.urls import rebase
from harness.fake_binance_spot import FakeBinanceSpot, running_spot
from harness.fake_venue import until
from tests.event_stream import STREAM, stream
from tests.payloads import URL, intent
from tests.uvicorn_server import ROOT, Server, running_server

BTC = "BTC/USDT"


def live_env(tmp_path: Path, spot: FakeBinanceSpot, **extra: str) -> dict[str, str]:
    return {
        "ALLOWED_EXCHANGES": "binance,okx",
        "ALLOWED_SYMBOLS": "BTC/USDT,ETH/USDT",
        "STORAGE_URL": f"sqlite:///{tmp_path / 'live.db'}",
        "LIVE_EXCHANGES": "binance",
        "LIVE_URL_BINANCE": spot.base_url,
        "LIVE_BINANCE_API_KEY": spot.api_key,
        "LIVE_BINANCE_SECRET": spot.secret,
        **extra,
    }


@contextmanager
def live_server(tmp_path: Path, spot: FakeBinanceSpot, **extra: str) -> Iterator[Server]:
    with running_server(tmp_path, live_env(tmp_path, spot, **extra)) as server:
        yield server


def post(server: Server, key: str, **fields: Any) -> dict[str, Any]:
    status, order = server.request("POST", URL, intent(idempotency_key=key, **fields))
    assert status == 201, order
    return dict(order)


def get(server: Server, order_id: str) -> dict[str, Any]:
    status, order = server.request("GET", f"/execution/orders/{order_id}")
    assert status == 200, order
    return dict(order)


def status_of(server: Server, order_id: str) -> str:
    return str(get(server, order_id)["status"])


def funded(spot: FakeBinanceSpot) -> None:
    spot.set_price(BTC, 99, 100)
    spot.set_balance("USDT", 100_000)
    spot.set_balance("BTC", 10)


def test_a_market_order_is_sent_once_and_filled_by_the_exchange(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            order = post(server, "m-1", exchange="binance", symbol=BTC, side="BUY", type="MARKET", qty=0.5)
            assert order["status"] == "NEW"  # the 201 is the spec's: the order as accepted
            until(lambda: status_of(server, order["order_id"]) == "FILLED", "the exchange fills it")
            [placed] = spot.orders()
            assert (placed.side, placed.type, placed.status) == ("BUY", "MARKET", "FILLED")
            status, page = server.request("GET", f"/execution/orders/{order['order_id']}/fills")
            assert status == 200
            [fill] = page["items"]
            assert (fill["qty"], fill["price"], fill["provenance"]["source"]) == (0.5, 100.0, "exchange")
            assert Decimal(str(fill["fee"])) == Decimal("0.05")  # 0.0005 BTC at 100
            status, caps = server.request("GET", "/capabilities")
            assert caps["exchanges"] == {"binance": "live-sandbox", "okx": "paper"}
            assert "live_execution" in caps["features"]
            [binance] = caps["live_exchanges"]
            assert (binance["exchange"], binance["mode"], binance["unknown_open_orders"]) == (
                "binance",
                "live-sandbox",
                [],
            )
            log = server.log()
    assert spot.bad_signatures == 0
    assert spot.api_key not in log
    assert spot.secret not in log


def events_of(server: Server, order_id: str) -> list[dict[str, Any]]:
    status, page = server.request("GET", f"/execution/events?order_id={order_id}")
    assert status == 200, page
    return list(page["items"])


def test_a_limit_order_rests_fills_in_part_and_is_canceled_at_the_exchange(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            order = limit(server, "l-1", 90.0)
            until(lambda: spot.orders() and spot.orders()[0].status == "NEW", "the exchange holds it")
            [held] = spot.orders()
            spot.restart()  # its connections dropped, its orders kept
            spot.fill(held.client_order_id, "0.25")
            until(lambda: status_of(server, order["order_id"]) == "PARTIALLY_FILLED", "its partial fill reaches it")
            status, canceled = server.request("POST", f"/execution/orders/{order['order_id']}/cancel")
            assert status == 200, canceled
            assert (canceled["status"], canceled["filled_qty"]) == ("CANCELED", 0.25)
            assert spot.order(held.client_order_id).status == "CANCELED"
            status, again = server.request("POST", f"/execution/orders/{order['order_id']}/cancel")
            assert (status, again["code"]) == (409, "ORDER_NOT_CANCELABLE")
            kinds = [(event["type"], event["reason"]) for event in events_of(server, order["order_id"])]
            assert kinds == [("new", None), ("partial_fill", None), ("canceled", "requested")]


def test_an_order_the_exchange_refuses_ends_rejected_with_its_reason(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        spot.set_balance("USDT", 10)  # not enough for 1 BTC at 100
        with live_server(tmp_path, spot) as server:
            order = post(server, "r-1", exchange="binance", symbol=BTC, side="BUY", type="MARKET", qty=1.0)
            until(lambda: status_of(server, order["order_id"]) == "REJECTED", "the exchange refuses it")
            [rejected] = [event for event in events_of(server, order["order_id"]) if event["type"] == "rejected"]
            assert "insufficient balance" in rejected["detail"]
            assert rejected["order"]["status"] == "REJECTED"
            assert spot.orders() == []
            _, listed = server.request("GET", "/execution/orders?status=REJECTED")
            assert [item["order_id"] for item in listed["items"]] == [order["order_id"]]
            assert "Order rejected by the exchange" in server.log()


def test_the_kill_switch_cancels_live_orders_at_the_exchange_and_paper_ones_here(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            live = limit(server, "k-1", 150.0, side="SELL")
            paper = limit(server, "k-2", 150.0, side="SELL", exchange="okx")
            until(lambda: spot.orders() and spot.orders()[0].status == "NEW", "the exchange holds the live one")
            status, state = server.request(
                "PUT", "/execution/trading-state", {"state": "HALTED", "reason": "drill", "cancel_open_orders": True}
            )
            assert status == 200, state
            assert status_of(server, paper["order_id"]) == "CANCELED"  # at once
            until(lambda: status_of(server, live["order_id"]) == "CANCELED", "the exchange cancels the live one")
            assert [each.status for each in spot.orders()] == ["CANCELED"]
            [canceled] = [event for event in events_of(server, live["order_id"]) if event["type"] == "canceled"]
            assert canceled["reason"] == "kill_switch"
            status, refused = server.request(
                "POST", URL, intent(idempotency_key="k-3", exchange="binance", symbol=BTC, type="MARKET", qty=0.1)
            )
            assert (status, refused["code"]) == (400, "TRADING_HALTED")
            assert len(spot.orders()) == 1


def one_order_each(spot: FakeBinanceSpot, server: Server, orders: list[dict[str, Any]]) -> None:
    """Each intent is exactly one order at the exchange, FILLED here, and the exchange
    holds no order this service does not know."""
    for order in orders:
        until(lambda order=order: status_of(server, order["order_id"]) == "FILLED", "the exchange fills it", 20)
    placed = spot.orders()
    assert len(placed) == len(orders)
    assert len({each.client_order_id for each in placed}) == len(orders)
    assert all(each.status == "FILLED" for each in placed)
    for order in orders:
        _, page = server.request("GET", f"/execution/orders/{order['order_id']}/fills")
        assert sum(fill["qty"] for fill in page["items"]) == order["qty"]  # each trade applied once
    _, caps = server.request("GET", "/capabilities")
    assert caps["live_exchanges"][0]["unknown_open_orders"] == []


def limit(
    server: Server, key: str, price: float, *, side: str = "BUY", qty: float = 1.0, exchange: str = "binance"
) -> dict[str, Any]:
    return post(server, key, exchange=exchange, symbol=BTC, side=side, type="LIMIT", qty=qty, limit_price=price)


def market_buy(server: Server, key: str, qty: float = 0.1) -> dict[str, Any]:
    return post(server, key, exchange="binance", symbol=BTC, side="BUY", type="MARKET", qty=qty)


@pytest.mark.parametrize("fault", ["answer lost", "timeout", "429", "ban"])
def test_a_fault_while_sending_never_makes_two_orders(tmp_path: Path, fault: str) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot, LIVE_TIMEOUT_MS="1000") as server:
            if fault == "answer lost":
                spot.lose_next_answer("POST /api/v3/order")
            elif fault == "timeout":
                spot.delay_next(2.5, "POST /api/v3/order")  # placed at once, answered after ccxt gave up
            elif fault == "ban":
                spot.ban(2)
            else:
                spot.fail_next(429, times=2, match="POST /api/v3/order")
            order = market_buy(server, "f-1")
            one_order_each(spot, server, [order])
            log = server.log()
    assert spot.bad_signatures == 0
    sends = spot.requests.count("POST /api/v3/order")
    if fault in ("answer lost", "timeout"):
        # Placed, its answer never read: found by its client order id, never sent again.
        assert "Live order: no answer from the exchange" in log
        assert sends == 1
    else:
        # "Slow down" says nothing was done: sent again once the pause is over.
        assert "Live exchange asks to slow down" in log
        assert sends == (3 if fault == "429" else 1)


def test_an_unanswered_send_the_exchange_never_got_is_not_sent_again(tmp_path: Path) -> None:
    """A 503 says nothing certain: the order is looked up, never sent again (the
    exchange frees a client order id once its order ends, so a resend could make a
    second order); not found once QUIET_SECONDS have passed, it ends REJECTED."""
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            spot.fail_next(503, match="POST /api/v3/order")
            order = market_buy(server, "u-1")
            until(lambda: status_of(server, order["order_id"]) == "REJECTED", "it ends unsent", QUIET_SECONDS + 10)
            [rejected] = [event for event in events_of(server, order["order_id"]) if event["type"] == "rejected"]
            assert "the exchange had not received it" in rejected["detail"]
        assert spot.orders() == []
        assert spot.requests.count("POST /api/v3/order") == 1


def test_an_exchange_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            spot.stop_listening()
            order = market_buy(server, "d-1")
            until(
                lambda: server.request("GET", "/capabilities")[1]["live_exchanges"][0]["reachable"] is False,
                "the exchange is seen away",
            )
            assert status_of(server, order["order_id"]) == "NEW"
            spot.start_listening()
            one_order_each(spot, server, [order])
            until(
                lambda: server.request("GET", "/capabilities")[1]["live_exchanges"][0]["reachable"] is True,
                "the exchange is seen back",
            )


def test_kill_9_between_sending_and_the_answer_then_a_restart(tmp_path: Path) -> None:
    """The exchange has placed the order, the service is killed before the answer: the
    restarted service finds it by its client order id and sends nothing more."""
    with running_spot() as spot:
        funded(spot)
        spot.delay_next(5, "POST /api/v3/order")
        with live_server(tmp_path, spot) as server:
            order = market_buy(server, "9-1")
            until(lambda: len(spot.orders()) == 1, "the exchange has placed it")
            server.process.kill()
            server.process.wait(10)
        with live_server(tmp_path, spot) as again:
            one_order_each(spot, again, [order])


def test_kill_9_between_storing_and_sending_then_a_restart(tmp_path: Path) -> None:
    """Orders stored and not yet sent when the service is killed (the executor is backing
    off after the exchange was away): after the restart each is one order at the exchange."""
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            spot.stop_listening()  # the first is stored and tried, never sent
            first = market_buy(server, "s-0")
            until(lambda: "Live exchange did not answer" in server.log(), "a send is tried")
            spot.start_listening()
            rushed = [market_buy(server, f"s-{n}") for n in range(1, 6)]
            server.process.kill()  # right after the 201s
            server.process.wait(10)
        assert len(spot.orders()) < 6  # killed before every order stored was sent
        with live_server(tmp_path, spot) as again:
            one_order_each(spot, again, [first, *rushed])


def test_open_orders_at_the_exchange_this_service_does_not_know_are_reported_and_left_alone(
    tmp_path: Path,
) -> None:
    async def place_by_hand(spot: FakeBinanceSpot) -> None:
        ccxt = importlib.import_module("ccxt.async_support")
        exchange = ccxt.binance(
            {
                "apiKey": spot.api_key,
                "secret": spot.secret,
                "options": {**OPTIONS["binance"], **LIVE_OPTIONS["binance"]},
            }
        )
        exchange.urls["api"] = rebase(exchange.urls["api"], spot.base_url)
        try:
            await exchange.create_order(BTC, "limit", "buy", 1, 50, {"clientOrderId": "by-hand-1"})
        finally:
            await exchange.close()

    with running_spot() as spot:
        funded(spot)
        asyncio.run(place_by_hand(spot))
        with live_server(tmp_path, spot) as server:
            until(
                lambda: (
                    server.request("GET", "/capabilities")[1]["live_exchanges"][0]["unknown_open_orders"]
                    == ["by-hand-1"]
                ),
                "the foreign order is reported",
            )
            _, _, metrics = server.fetch("GET", "/metrics")
            assert 'execution_live_unknown_open_orders{exchange="binance"} 1.0' in metrics.decode()
            assert 'execution_live_exchange_up{exchange="binance"} 1.0' in metrics.decode()
            log = server.log()
        assert spot.order("by-hand-1").status == "NEW"
    assert "Open order at the exchange that this service does not know" in log


def test_an_ioc_the_exchange_cannot_fill_expires_and_a_crossing_limit_fills(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            ioc = post(
                server,
                "i-1",
                exchange="binance",
                symbol=BTC,
                side="BUY",
                type="LIMIT",
                qty=1.0,
                limit_price=90.0,
                time_in_force="IOC",
            )
            crossing = limit(server, "i-2", 95.0, side="SELL", qty=0.5)
            until(lambda: status_of(server, ioc["order_id"]) == "EXPIRED", "the exchange expires it")
            until(lambda: status_of(server, crossing["order_id"]) == "FILLED", "the exchange fills it")
            assert [(each.time_in_force, each.status) for each in spot.orders()] == [
                ("IOC", "EXPIRED"),
                ("GTC", "FILLED"),
            ]
            _, page = server.request("GET", f"/execution/orders/{crossing['order_id']}/fills")
            [fill] = page["items"]
            assert (fill["price"], fill["qty"], fill["fee"]) == (99.0, 0.5, 0.0495)  # at the bid; 0.1% of 49.5 USDT
            _, positions = server.request("GET", "/execution/positions")
            assert [(each["exchange"], each["qty"]) for each in positions["items"]] == [("binance", -0.5)]


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql"], indirect=True)
def test_two_replicas_send_each_order_once_and_one_takes_over_when_the_other_dies(
    tmp_path: Path, storage_url: str
) -> None:
    """Two processes on one store: one (under a lease) sends every live order, whichever
    process took the intent; killed, the other takes the sending over within seconds."""
    with running_spot() as spot:
        funded(spot)
        env = live_env(tmp_path, spot, STORAGE_URL=storage_url)
        with running_server(tmp_path, env) as first, running_server(tmp_path, env) as second:
            orders = [market_buy(server, f"r-{n}") for n, server in enumerate([first, second, first, second])]
            one_order_each(spot, second, orders)
            # Every process shows what the one executing the orders saw, and which one it is.
            until(
                lambda: all(
                    server.request("GET", "/capabilities")[1]["live_exchanges"][0]["reachable"] is True
                    for server in (first, second)
                ),
                "both processes show the exchange reachable",
            )
            views = [server.request("GET", "/capabilities")[1]["live_exchanges"][0] for server in (first, second)]
            assert views[0]["executor"] == views[1]["executor"]
            holder = next(
                server for server in (first, second) if views[0]["executor"].endswith(f":{server.process.pid}")
            )
            survivor = second if holder is first else first
            holder.process.kill()
            holder.process.wait(10)
            later = market_buy(survivor, "r-after")
            until(lambda: status_of(survivor, later["order_id"]) == "FILLED", "the survivor sends it", 20)
            executor = survivor.request("GET", "/capabilities")[1]["live_exchanges"][0]["executor"]
            assert executor.endswith(f":{survivor.process.pid}")
            assert len(spot.orders()) == len(orders) + 1


def test_a_process_that_would_treat_open_live_orders_as_paper_refuses_to_start(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        env = live_env(tmp_path, spot)
        with live_server(tmp_path, spot) as server:
            order = limit(server, "p-1", 90.0)
            until(lambda: len(spot.orders()) == 1, "the exchange holds it")
        paper = {key: value for key, value in env.items() if not key.startswith("LIVE_")}
        started = subprocess.run(
            [sys.executable, "-c", "import app.main"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", **paper},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert started.returncode == 2
        assert started.stderr.splitlines() == [
            "execution: cannot start: the store holds live orders not final yet on binance, which LIVE_EXCHANGES "
            "does not name: start with it live until they are final (they must not be filled or canceled here as "
            "paper)"
        ]
        with live_server(tmp_path, spot) as again:  # live again: it is followed as before
            spot.fill(spot.orders()[0].client_order_id, "1")
            until(lambda: status_of(again, order["order_id"]) == "FILLED", "its fill reaches it")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"type": "MARKET", "qty": 0.123456789}, "qty 0.123456789 is not a multiple of BTC/USDT's quantity step"),
        ({"type": "LIMIT", "qty": 0.1, "limit_price": 90.005}, "limit_price 90.005 is not a multiple of BTC/USDT's"),
    ],
)
def test_an_order_off_the_exchange_s_steps_is_rejected_not_rounded(
    tmp_path: Path, fields: dict[str, Any], detail: str
) -> None:
    """ccxt would round it (the quantity down, the price to the nearest tick): the order
    at the exchange would not be the one asked for."""
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot) as server:
            order = post(server, "s-1", exchange="binance", symbol=BTC, side="BUY", **fields)
            until(lambda: status_of(server, order["order_id"]) == "REJECTED", "it is refused")
            [rejected] = [event for event in events_of(server, order["order_id"]) if event["type"] == "rejected"]
            assert detail in rejected["detail"]
        assert spot.orders() == []


def test_with_balances_an_intent_must_fit_in_the_exchange_account(tmp_path: Path) -> None:
    """PAPER_BALANCES on: a live intent is checked against the exchange account's free
    balance as the executor last read it, less the orders on their way there."""
    with running_spot() as spot:
        funded(spot)
        spot.set_balance("USDT", 1000)
        env = {"PAPER_BALANCES": "USDT=0,BTC=0", "TAKER_FEE_BPS": "10"}
        with live_server(tmp_path, spot, **env) as server:

            def buy(key: str, qty: float) -> tuple[int, dict[str, Any]]:
                fields = {"exchange": "binance", "symbol": BTC, "side": "BUY", "type": "LIMIT", "limit_price": 90.0}
                status, body = server.request("POST", URL, intent(idempotency_key=key, qty=qty, **fields))
                return status, dict(body)

            def first_read() -> bool:
                status, body = buy("b-1", 5.0)  # 450.45 USDT with its fee
                assert status == 201 or (status, body["code"]) == (503, "EXCHANGE_BALANCE_UNKNOWN"), body
                return status == 201

            until(first_read, "the executor reads the exchange's account")
            status, refused = buy("b-2", 7.0)  # 630.63 of the 549.55 left
            assert (status, refused["code"]) == (400, "INSUFFICIENT_BALANCE"), refused
            assert "549.55 USDT is free at binance" in refused["detail"]
            assert buy("b-3", 5.0)[0] == 201  # 99.1 left, whatever the exchange has read or not
            assert buy("b-4", 6.0)[0] == 400
            until(lambda: len([o for o in spot.orders() if o.status == "NEW"]) == 2, "the exchange holds both")
            first, _ = spot.orders()
            spot.expire(first.client_order_id)  # 450 USDT free again at the exchange
            # A reading after that frees it here too: 550 free, 540.54 needed.
            until(lambda: buy("b-4", 6.0)[0] in (200, 201), "the next reading shows what the exchange freed")
            status, balances = server.request("GET", "/execution/balances")
            assert {b["asset"]: b["reserved"] for b in balances["items"]} == {"BTC": 0, "ETH": 0, "USDT": 0}
    assert spot.bad_signatures == 0


@pytest.mark.parametrize("fault", ["503", "answer lost", "timeout"])
def test_faults_while_following_and_canceling_lose_and_double_nothing(tmp_path: Path, fault: str) -> None:
    """A fault on the order's look-up and on its cancel (not only on its send): the
    cancel answers 202 while the exchange has not confirmed it, then the order ends
    CANCELED with what it filled, one order at the exchange."""

    def inject(match: str, times: int) -> None:
        if fault == "503":
            spot.fail_next(503, times=times, match=match)
        elif fault == "answer lost":
            spot.lose_next_answer(match, times=times)
        else:
            spot.delay_next(2.5, match, times=times)

    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot, LIVE_TIMEOUT_MS="1000") as server:
            order = limit(server, "f-1", 90.0)
            until(lambda: spot.orders() and spot.orders()[0].status == "NEW", "the exchange holds it")
            [held] = spot.orders()
            inject("GET /api/v3/order", 2)
            spot.fill(held.client_order_id, "0.5")
            until(lambda: status_of(server, order["order_id"]) == "PARTIALLY_FILLED", "its fill arrives")
            inject("DELETE /api/v3/order", 1)
            # Look-ups fail for longer than the cancel waits (5 s): a 503 or a lost answer
            # about a second each, a timeout about two.
            inject("GET /api/v3/order", 5 if fault == "timeout" else 10)
            status, answer = server.request("POST", f"/execution/orders/{order['order_id']}/cancel")
            assert (status, answer["status"]) == (202, "PARTIALLY_FILLED"), answer
            until(lambda: status_of(server, order["order_id"]) == "CANCELED", "the exchange's cancel arrives", 30)
            assert get(server, order["order_id"])["filled_qty"] == 0.5
            [placed] = spot.orders()
            assert placed.status == "CANCELED"


def test_credentials_the_exchange_refuses_are_shown_as_an_error_never_as_themselves(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot, LIVE_BINANCE_SECRET="wrong-secret-4711") as server:
            order = market_buy(server, "c-1")
            until(
                lambda: server.request("GET", "/capabilities")[1]["live_exchanges"][0]["last_error"] is not None,
                "the refusal is shown",
            )
            _, _, caps = server.fetch("GET", "/capabilities")
            live = server.request("GET", "/capabilities")[1]["live_exchanges"][0]
            assert live["reachable"] is False
            assert "the exchange refused the request" in live["last_error"]
            assert status_of(server, order["order_id"]) == "NEW"  # waiting to be sent, not lost
            log = server.log()
        assert spot.orders() == []
    for shown in (caps.decode(), log):
        assert "wrong-secret-4711" not in shown
        assert spot.api_key not in shown


def test_each_exchange_s_mode_is_logged_and_real_money_warned(tmp_path: Path) -> None:
    with running_spot() as spot:
        funded(spot)
        with live_server(tmp_path, spot, LIVE_REAL_MONEY="binance") as server:
            _, caps = server.request("GET", "/capabilities")
            assert caps["exchanges"] == {"binance": "live", "okx": "paper"}
            # A live order's 201 is a paper order's: the same fields.
            live = limit(server, "m-1", 1)
            paper = limit(server, "m-2", 1, exchange="okx")
            assert sorted(live) == sorted(paper)
            assert (live["status"], live["filled_qty"]) == ("NEW", 0.0)
            lines = [line for line in server.log().splitlines() if "Exchange mode" in line]
    assert len(lines) == 2
    [real] = [line for line in lines if '"exchange": "binance"' in line]
    assert " - WARNING - " in real
    assert '"mode": "live"' in real
    [kept] = [line for line in lines if '"exchange": "okx"' in line]
    assert " - INFO - " in kept
    assert '"mode": "paper"' in kept


def test_what_the_exchange_does_reaches_the_event_stream(tmp_path: Path) -> None:
    """A bot following the stream sees a live order's life as it sees a paper one's."""
    with running_spot() as spot:
        funded(spot)
        spot.set_balance("USDT", 50)  # enough for the limit below, not for 1 BTC at market
        with live_server(tmp_path, spot) as server, stream(server, f"{STREAM}?after=0") as events:
            resting = limit(server, "e-1", 90.0, qty=0.5)
            until(lambda: bool(spot.orders()), "the exchange holds it")
            spot.fill(spot.orders()[0].client_order_id, "0.1")
            until(lambda: status_of(server, resting["order_id"]) == "PARTIALLY_FILLED", "its fill arrives")
            status, _ = server.request("POST", f"/execution/orders/{resting['order_id']}/cancel")
            assert status == 200
            refused = market_buy(server, "e-2", qty=1.0)
            got = [(m["event"], m["data"]["order"]["order_id"]) for m in events.events(5)]
    assert got == [
        ("new", resting["order_id"]),
        ("partial_fill", resting["order_id"]),
        ("canceled", resting["order_id"]),
        ("new", refused["order_id"]),
        ("rejected", refused["order_id"]),
    ]
