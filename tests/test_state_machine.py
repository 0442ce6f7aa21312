"""Random sequences of intents, quotes and cancels, with the invariants checked after
every step, through HTTP: quantities in range, legal transitions only, an order's
filled quantity the sum of its fills, positions the sum of fills, no fill worse than
its limit."""

from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.main import create_app
from tests.conftest import URL, intent, make_settings

LEGAL = {
    "NEW": {"NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED"},
    "PARTIALLY_FILLED": {"PARTIALLY_FILLED", "FILLED", "CANCELED"},
    "FILLED": {"FILLED"},
    "CANCELED": {"CANCELED"},
}
quantities = st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2])
prices = st.sampled_from([95, 97.5, 99, 100, 100.5, 101, 103, 105])
sizes = st.none() | st.sampled_from([0.1, 0.2, 0.3, 0.6, 1, 2.5])


def dec(number: float) -> Decimal:
    return Decimal(repr(number))


class TradingSession(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        app = create_app(make_settings(log_level="ERROR", taker_fee_bps="5", maker_fee_bps="1", slippage_bps="3"))
        self.client = TestClient(app)
        self.order_ids: list[str] = []
        self.last_status: dict[str, str] = {}
        self.keys = 0

    @rule(side=st.sampled_from(["BUY", "SELL"]), qty=quantities, limit=st.none() | prices)
    def submit(self, side: str, qty: float, limit: float | None) -> None:
        self.keys += 1
        body = intent(idempotency_key=f"k{self.keys}", side=side, qty=qty)
        if limit is not None:
            body |= {"type": "LIMIT", "limit_price": limit}
        response = self.client.post(URL, json=body)
        assert response.status_code == 201, response.text
        self.order_ids.append(response.json()["order_id"])

    @rule(bid=prices, spread=st.sampled_from([0, 0.5, 2]), bid_size=sizes, ask_size=sizes)
    def quote(self, bid: float, spread: float, bid_size: float | None, ask_size: float | None) -> None:
        body: dict[str, Any] = {"exchange": "binance", "symbol": "BTC/USDT", "bid": bid, "ask": bid + spread}
        if bid_size is not None:
            body["bid_size"] = bid_size
        if ask_size is not None:
            body["ask_size"] = ask_size
        response = self.client.post("/execution/market-data/quotes", json=body)
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
