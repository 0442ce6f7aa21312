"""Random sequences of intents, quotes and cancels, with the invariants checked after
every step, through HTTP: quantities in range, legal transitions only, an order's
filled quantity the sum of its fills, positions the sum of fills, no fill worse than
its limit."""

import json
import shutil
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.main import create_app
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.conftest import URL, intent, make_settings

LEGAL = {
    "NEW": {"NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"},
    "PARTIALLY_FILLED": {"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"},
    "FILLED": {"FILLED"},
    "CANCELED": {"CANCELED"},
    "EXPIRED": {"EXPIRED"},
}
quantities = st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2])
# 99.1, 99.3 and 100.1 have no exact binary form: the stores must compare them alike.
prices = st.sampled_from([95, 97.5, 99, 99.1, 99.3, 100, 100.1, 100.5, 101, 103, 105])
sizes = st.none() | st.sampled_from([0.1, 0.2, 0.3, 0.6, 1, 2.5])
times_in_force = st.sampled_from(["GTC", "GTC", "IOC", "FOK"])


def dec(number: float) -> Decimal:
    return Decimal(repr(number))


def intent_body(key: str, side: str, qty: float, limit: float | None, tif: str) -> dict[str, Any]:
    """An intent for the BTC/USDT book: MARKET, or LIMIT at `limit`."""
    body = intent(idempotency_key=key, side=side, qty=qty, time_in_force=tif)
    if limit is not None:
        body |= {"type": "LIMIT", "limit_price": limit}
    return body


def quote_body(bid: float, spread: float, bid_size: float | None, ask_size: float | None) -> dict[str, Any]:
    """A BTC/USDT quote; a size left None is left out."""
    body: dict[str, Any] = {"exchange": "binance", "symbol": "BTC/USDT", "bid": bid, "ask": bid + spread}
    sizes = {"bid_size": bid_size, "ask_size": ask_size}
    return body | {name: size for name, size in sizes.items() if size is not None}


class TradingSession(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        app = create_app(make_settings(log_level="ERROR", taker_fee_bps="5", maker_fee_bps="1", slippage_bps="3"))
        self.client = TestClient(app)
        self.order_ids: list[str] = []
        self.last_status: dict[str, str] = {}
        self.keys = 0

    @rule(side=st.sampled_from(["BUY", "SELL"]), qty=quantities, limit=st.none() | prices, tif=times_in_force)
    def submit(self, side: str, qty: float, limit: float | None, tif: str) -> None:
        self.keys += 1
        response = self.client.post(URL, json=intent_body(f"k{self.keys}", side, qty, limit, tif))
        assert response.status_code == 201, response.text
        self.order_ids.append(response.json()["order_id"])

    @rule(bid=prices, spread=st.sampled_from([0, 0.5, 2]), bid_size=sizes, ask_size=sizes)
    def quote(self, bid: float, spread: float, bid_size: float | None, ask_size: float | None) -> None:
        response = self.client.post("/execution/market-data/quotes", json=quote_body(bid, spread, bid_size, ask_size))
        assert response.status_code == 200, response.text

    @precondition(lambda self: self.order_ids)
    @rule(pick=st.integers(min_value=0))
    def cancel(self, pick: int) -> None:
        order_id = self.order_ids[pick % len(self.order_ids)]
        response = self.client.post(f"/execution/orders/{order_id}/cancel")
        assert response.status_code in (200, 409), response.text

    @invariant()
    def books_balance(self) -> None:
        orders = self.client.get("/execution/orders", params={"limit": 1000}).json()["items"]
        assert len(orders) == len(self.order_ids)
        net, fees = Decimal(0), Decimal(0)
        for order in orders:
            qty, filled = dec(order["qty"]), dec(order["filled_qty"])
            assert Decimal(0) <= filled <= qty
            status = order["status"]
            assert status in LEGAL[self.last_status.get(order["order_id"], "NEW")]
            self.last_status[order["order_id"]] = status
            assert (status == "FILLED") == (filled == qty)
            if status == "NEW":
                assert filled == 0
            if order["time_in_force"] != "GTC":  # never rests: ended on arrival
                assert status in ("FILLED", "EXPIRED")
            if order["time_in_force"] == "FOK":  # all or nothing
                assert filled in (0, qty)
            fills = self.client.get(f"/execution/orders/{order['order_id']}/fills").json()["items"]
            assert sum((dec(f["qty"]) for f in fills), Decimal(0)) == filled
            for fill in fills:
                if order["type"] == "LIMIT":
                    worse = (
                        fill["price"] > order["limit_price"]
                        if order["side"] == "BUY"
                        else (fill["price"] < order["limit_price"])
                    )
                    assert not worse, (order, fill)
                net += dec(fill["qty"]) if order["side"] == "BUY" else -dec(fill["qty"])
                fees += dec(fill["fee"])
        positions = self.client.get("/execution/positions").json()["items"]
        held = Decimal(0) if not positions else dec(positions[0]["qty"])
        paid = Decimal(0) if not positions else dec(positions[0]["fees"])
        assert held == net
        assert abs(paid - fees) <= Decimal("1e-9")  # fees are JSON numbers: compare to float precision


TradingSession.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_trading_session = TradingSession.TestCase


def _normalized(body: Any, index_of: dict[str, int]) -> Any:
    """An answer with ids as positions in submission order and times left out: what
    must be the same whichever store gave it."""
    if isinstance(body, list):
        return [_normalized(item, index_of) for item in body]
    if isinstance(body, str):
        for order_id, index in index_of.items():
            body = body.replace(order_id, f"#{index}")
        return body
    if not isinstance(body, dict):
        return body
    return {
        key: _normalized(value, index_of)
        for key, value in body.items()
        if key not in {"fill_id", "accepted_ts_utc", "updated_ts_utc", "ts_utc", "generated_at", "timestamp"}
    }


MAX_POSITION = Decimal(2)
MAX_OPEN_ORDERS = 4


def write_rules(folder: Path) -> str:
    path = folder / "rules.json"
    rules = {"max_position": str(MAX_POSITION), "max_open_orders": MAX_OPEN_ORDERS, "lot_size": "0.1"}
    path.write_text(json.dumps({"binance:BTC/USDT": rules}))
    return str(path)


START = {"USDT": Decimal(400), "BTC": Decimal(3)}
BUY_FEE_FACTOR = 1 + Decimal(5) / 10_000  # TAKER_FEE_BPS=5, the highest fee rate


class ControlledSession(RuleBasedStateMachine):
    """Random intents, quotes, cancels and kill-switch changes with a position limit, an
    open-order limit and a paper account: no fill takes the position past its limit,
    open orders never exceed theirs, HALTED admits nothing, REDUCING admits only
    intents that bring the position (with the open orders on their side) closer to
    zero, no free balance goes below zero, reserved is exactly what open orders still
    need, and each total is its start plus the fills' flows."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="controls-"))
        config = make_settings(
            log_level="ERROR",
            instruments_file=write_rules(self.folder),
            taker_fee_bps="5",
            paper_balances=",".join(f"{asset}={amount}" for asset, amount in START.items()),
        )
        self.client = TestClient(create_app(config))
        self.keys = 0
        self.state = "ACTIVE"
        self.ask: Decimal | None = None  # the latest quote's ask: what a MARKET BUY reserves at
        self.reserved_at: dict[str, Decimal] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def exposure(self, side: str) -> Decimal:
        """The position with the open orders on `side` as filled, read through the API."""
        positions = self.client.get("/execution/positions").json()["items"]
        held = Decimal(0) if not positions else dec(positions[0]["qty"])
        for order in self.open_orders():
            if order["side"] == side:
                left = dec(order["qty"]) - dec(order["filled_qty"])
                held += left if side == "BUY" else -left
        return held

    def open_orders(self) -> list[dict[str, Any]]:
        orders = self.client.get("/execution/orders", params={"limit": 1000}).json()["items"]
        return [order for order in orders if order["status"] in ("NEW", "PARTIALLY_FILLED")]

    @rule(side=st.sampled_from(["BUY", "SELL"]), qty=quantities, limit=st.none() | prices, tif=times_in_force)
    def submit(self, side: str, qty: float, limit: float | None, tif: str) -> None:
        self.keys += 1
        before = self.exposure(side)
        response = self.client.post(URL, json=intent_body(f"k{self.keys}", side, qty, limit, tif))
        assert response.status_code in (201, 400), response.text
        code = response.json().get("code")
        if self.state == "HALTED":
            assert code == "TRADING_HALTED"
        if response.status_code == 201 and self.state == "REDUCING":
            after = before + (dec(qty) if side == "BUY" else -dec(qty))
            assert abs(after) < abs(before), (before, after)
            assert after == 0 or (after > 0) == (before > 0), (before, after)
        if response.status_code == 201 and side == "BUY":
            price = self.ask if limit is None else dec(limit)
            assert price is not None  # a MARKET BUY with no quote is refused (NO_QUOTE)
            self.reserved_at[response.json()["order_id"]] = price
        elif response.status_code == 400:
            assert code in (
                "TRADING_HALTED",
                "REDUCE_ONLY",
                "MAX_POSITION",
                "MAX_OPEN_ORDERS",
                "LOT_SIZE",
                "INSUFFICIENT_BALANCE",
                "NO_QUOTE",
            ), code

    @rule(bid=prices, spread=st.sampled_from([0, 0.5, 2]), bid_size=sizes, ask_size=sizes)
    def quote(self, bid: float, spread: float, bid_size: float | None, ask_size: float | None) -> None:
        body = quote_body(bid, spread, bid_size, ask_size)
        assert self.client.post("/execution/market-data/quotes", json=body).status_code == 200
        self.ask = dec(body["ask"])

    @rule(state=st.sampled_from(["ACTIVE", "REDUCING", "HALTED"]), cancel=st.booleans())
    def set_state(self, state: str, cancel: bool) -> None:
        response = self.client.put("/execution/trading-state", json={"state": state, "cancel_open_orders": cancel})
        assert response.status_code == 200
        self.state = state
        if cancel:
            assert self.open_orders() == []

    @rule(pick=st.integers(min_value=0))
    def cancel(self, pick: int) -> None:
        open_orders = self.open_orders()
        if open_orders:
            order_id = open_orders[pick % len(open_orders)]["order_id"]
            assert self.client.post(f"/execution/orders/{order_id}/cancel").status_code == 200

    @invariant()
    def limits_hold(self) -> None:
        positions = self.client.get("/execution/positions").json()["items"]
        held = Decimal(0) if not positions else dec(positions[0]["qty"])
        assert abs(held) <= MAX_POSITION
        # Long with every open BUY filled, or short with every open SELL: within the limit.
        assert self.exposure("BUY") <= MAX_POSITION
        assert self.exposure("SELL") >= -MAX_POSITION
        assert len(self.open_orders()) <= MAX_OPEN_ORDERS

    @invariant()
    def balances_add_up(self) -> None:
        items = self.client.get("/execution/balances").json()["items"]
        balances = {item["asset"]: item for item in items}
        needed = {"USDT": Decimal(0), "BTC": Decimal(0)}
        flows = dict(START)
        orders = self.client.get("/execution/orders", params={"limit": 1000}).json()["items"]
        for order in orders:
            left = dec(order["qty"]) - dec(order["filled_qty"])
            if order["status"] in ("NEW", "PARTIALLY_FILLED"):
                if order["side"] == "BUY":
                    needed["USDT"] += left * self.reserved_at[order["order_id"]] * BUY_FEE_FACTOR
                else:
                    needed["BTC"] += left
            for fill in self.client.get(f"/execution/orders/{order['order_id']}/fills").json()["items"]:
                sign = 1 if order["side"] == "BUY" else -1
                flows["BTC"] += sign * dec(fill["qty"])
                flows["USDT"] -= sign * dec(fill["qty"]) * dec(fill["price"]) + dec(fill["fee"])
        for asset in ("USDT", "BTC"):
            assert balances[asset]["free"] >= 0, balances
            assert balances[asset]["reserved"] == float(needed[asset]), (asset, balances, needed)
            assert balances[asset]["total"] == float(flows[asset]), (asset, balances, flows)


ControlledSession.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_controls_hold_their_limits = ControlledSession.TestCase


class TwinSessions(RuleBasedStateMachine):
    """The same random steps against the in-memory store and the SQL store (SQLite):
    every answer is the same, ids and times aside. The in-memory store's fills are
    proved above; this proves the SQL store's against them."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="twin-"))
        self.sql_store = SqlStore(f"sqlite:///{self.folder / 'orders.db'}")
        config = make_settings(
            log_level="ERROR",
            taker_fee_bps="5",
            maker_fee_bps="1",
            slippage_bps="3",
            instruments_file=write_rules(self.folder),
            paper_balances="USDT=400,BTC=3",
        )
        self.clients = [TestClient(create_app(config, InMemoryStore())), TestClient(create_app(config, self.sql_store))]
        self.index_of: list[dict[str, int]] = [{}, {}]
        self.order_ids: list[list[str]] = [[], []]

    def teardown(self) -> None:
        self.sql_store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def both(self, method: str, path: Callable[[int], str], body: Any = None) -> Any:
        answers = []
        for side, client in enumerate(self.clients):
            response = client.request(method, path(side), json=body)
            answers.append((response.status_code, _normalized(response.json(), self.index_of[side])))
        assert answers[0] == answers[1]
        return answers[0]

    @rule(side=st.sampled_from(["BUY", "SELL"]), qty=quantities, limit=st.none() | prices, tif=times_in_force)
    def submit(self, side: str, qty: float, limit: float | None, tif: str) -> None:
        body = intent_body(f"k{len(self.order_ids[0])}", side, qty, limit, tif)
        answers = [client.post(URL, json=body) for client in self.clients]
        assert [a.status_code for a in answers] == [answers[0].status_code] * 2, [a.text for a in answers]
        if answers[0].status_code != 201:  # refused by a control, alike
            assert answers[0].json() == answers[1].json()
            return
        for n, response in enumerate(answers):
            self.index_of[n][response.json()["order_id"]] = len(self.order_ids[n])
            self.order_ids[n].append(response.json()["order_id"])

    @rule(bid=prices, spread=st.sampled_from([0, 0.5, 2]), bid_size=sizes, ask_size=sizes)
    def quote(self, bid: float, spread: float, bid_size: float | None, ask_size: float | None) -> None:
        body = quote_body(bid, spread, bid_size, ask_size)
        assert self.both("POST", lambda _: "/execution/market-data/quotes", body)[0] == 200

    @rule(state=st.sampled_from(["ACTIVE", "ACTIVE", "REDUCING", "HALTED"]), cancel=st.booleans())
    def set_state(self, state: str, cancel: bool) -> None:
        body = {"state": state, "reason": "twin", "cancel_open_orders": cancel}
        assert self.both("PUT", lambda _: "/execution/trading-state", body)[0] == 200

    @precondition(lambda self: self.order_ids[0])
    @rule(pick=st.integers(min_value=0))
    def cancel(self, pick: int) -> None:
        n = pick % len(self.order_ids[0])
        self.both("POST", lambda side: f"/execution/orders/{self.order_ids[side][n]}/cancel")

    @invariant()
    def same_orders_fills_and_positions(self) -> None:
        self.both("GET", lambda _: "/execution/orders?limit=1000")
        self.both("GET", lambda _: "/execution/positions")
        self.both("GET", lambda _: "/execution/balances")
        for n in range(len(self.order_ids[0])):
            self.both("GET", lambda side, n=n: f"/execution/orders/{self.order_ids[side][n]}/fills")


TwinSessions.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
test_sql_store_answers_as_the_memory_store_does = TwinSessions.TestCase
