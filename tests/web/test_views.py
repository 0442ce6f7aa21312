"""What the views render: enum members as their plain text, and pages that the web
layer hands out unvalidated (json_answer) still match the models the document shows."""

from fastapi.testclient import TestClient

from app.core.vocabulary import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from app.web.schemas import OrderFillPage, OrderPage
from app.web.views import TEXT
from tests.conftest import URL, intent


def test_every_member_an_order_view_shows_has_its_plain_text() -> None:
    members = [member for vocabulary in (OrderStatus, Side, OrderType, TimeInForce, Liquidity) for member in vocabulary]
    assert set(TEXT) == set(members)
    for member in members:
        assert type(TEXT[member]) is str
        assert TEXT[member] == member.value


def test_pages_match_their_documented_models(client: TestClient) -> None:
    order_id = client.post(URL, json=intent(idempotency_key="k", qty=2)).json()["order_id"]
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99, "ask": 100, "ask_size": 1}
    client.post("/execution/market-data/quotes", json=quote)
    page = client.get("/execution/orders", params={"limit": 1}).json()
    assert OrderPage.model_validate(page).model_dump(mode="json") == page
    fills = client.get(f"/execution/orders/{order_id}/fills").json()
    assert len(fills["items"]) == 1
    assert OrderFillPage.model_validate(fills).model_dump(mode="json") == fills
