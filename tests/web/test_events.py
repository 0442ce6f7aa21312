"""The event journal through HTTP and the WebSocket (test client, every store): each
event type with its fields, pages, filters, resume, 410, fills, and the API token. The
Server-Sent Events stream runs in a real server: tests/server/test_event_stream.py."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from app.store.memory import InMemoryStore
from tests.conftest import URL, intent, make_settings
from tests.web.test_operations import TOKEN

EVENTS = "/execution/events"
FILLS = "/execution/fills"
QUOTES = "/execution/market-data/quotes"
WS = "/execution/events/ws"
STATE = "/execution/trading-state"


def limit_intent(key: str, side: str, qty: float, price: float) -> dict[str, Any]:
    return intent(idempotency_key=key, side=side, qty=qty, type="LIMIT", limit_price=price)


def session(client: TestClient) -> dict[str, str]:
    """Accepted, filled in parts and whole, canceled by request and by the kill switch;
    the order ids by name."""
    ids = {}
    ids["buy"] = client.post(URL, json=limit_intent("buy", "BUY", 2.0, 100.0)).json()["order_id"]
    client.post(QUOTES, json={"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 100.0, "ask_size": 0.5})
    ids["sell"] = client.post(URL, json=limit_intent("sell", "SELL", 0.25, 99.0)).json()["order_id"]
    ids["far"] = client.post(URL, json=limit_intent("far", "SELL", 1.0, 500.0)).json()["order_id"]
    assert client.post(f"/execution/orders/{ids['far']}/cancel").status_code == 200
    response = client.put(STATE, json={"state": "HALTED", "reason": "drill", "cancel_open_orders": True})
    assert response.status_code == 200, response.text
    return ids


def events(client: TestClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"{EVENTS}?limit=1000{query}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_each_event_type_with_its_fields(client: TestClient) -> None:
    ids = session(client)
    items = events(client)
    assert [(item["seq"], item["type"]) for item in items] == [
        (1, "new"),
        (2, "partial_fill"),
        (3, "new"),
        (4, "fill"),
        (5, "new"),
        (6, "canceled"),
        (7, "trading_state"),
        (8, "canceled"),
    ]
    new, partial, _, fill, _, canceled, state, kill = items
    assert set(new) == {"seq", "type", "ts_utc", "order", "fill", "position", "reason", "detail", "trading_state"}
    # The order right after each event: NEW, then partly filled; GET shows it as it is now.
    assert (new["order"]["order_id"], new["order"]["status"], new["order"]["filled_qty"]) == (ids["buy"], "NEW", 0.0)
    assert (new["fill"], new["position"], new["reason"], new["trading_state"]) == (None, None, None, None)
    assert (partial["order"]["status"], partial["order"]["filled_qty"]) == ("PARTIALLY_FILLED", 0.5)
    assert partial["order"]["avg_fill_price"] == 100.0
    assert partial["fill"] == {
        "seq": 2,
        "fill_id": partial["fill"]["fill_id"],
        "order_id": ids["buy"],
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.5,
        "price": 100.0,
        "fee": 0.0,
        "liquidity": "TAKER",
        "ts_utc": partial["ts_utc"],
        # The quote that came filled it: its ask, the 0.5 offered there, no costs set.
        "provenance": {
            "source": "quote",
            "ts_utc": partial["ts_utc"],
            "level_price": 100.0,
            "level_size": 0.5,
            "slippage_bps": 0.0,
            "fee_bps": 0.0,
            "queue_ahead": None,
        },
    }
    # The SELL filled as it arrived, at that quote's bid (no size given: unlimited).
    assert fill["fill"]["provenance"] == {
        "source": "arrival",
        "ts_utc": partial["ts_utc"],
        "level_price": 99.0,
        "level_size": None,
        "slippage_bps": 0.0,
        "fee_bps": 0.0,
        "queue_ahead": None,
    }
    assert partial["position"] == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "qty": 0.5,
        "avg_entry_price": 100.0,
        "realized_pnl": 0.0,
        "fees": 0.0,
    }
    assert (fill["order"]["order_id"], fill["order"]["status"], fill["position"]["qty"]) == (
        ids["sell"],
        "FILLED",
        0.25,
    )
    assert (canceled["order"]["order_id"], canceled["reason"], canceled["detail"]) == (ids["far"], "requested", None)
    assert state["order"] is None
    assert state["trading_state"] == {
        "state": "HALTED",
        "reason": "drill",
        "updated_ts_utc": state["ts_utc"],
        "previous_state": "ACTIVE",
        "canceled_orders": 1,
    }
    assert (kill["order"]["order_id"], kill["order"]["status"], kill["reason"]) == (
        ids["buy"],
        "CANCELED",
        "kill_switch",
    )
    assert kill["order"]["filled_qty"] == 0.5
    assert client.get(f"/execution/orders/{ids['buy']}").json() == kill["order"]


def test_pages_follow_next_after_and_filters_narrow(client: TestClient) -> None:
    ids = session(client)
    first = client.get(f"{EVENTS}?limit=3").json()
    assert ([item["seq"] for item in first["items"]], first["next_after"]) == ([1, 2, 3], 3)
    rest = client.get(f"{EVENTS}?after=3").json()
    assert ([item["seq"] for item in rest["items"]], rest["next_after"]) == ([4, 5, 6, 7, 8], 8)
    assert client.get(f"{EVENTS}?after=8").json() == {"items": [], "next_after": 8}
    assert [item["seq"] for item in events(client, "&types=fill,partial_fill")] == [2, 4]
    assert [item["seq"] for item in events(client, f"&order_id={ids['buy']}")] == [1, 2, 7, 8]
    assert [item["seq"] for item in events(client, "&symbol=ETH/USDT")] == [7]
    assert [item["seq"] for item in events(client, "&exchange=binance&types=canceled")] == [6, 8]


@pytest.mark.parametrize(
    ("query", "what"),
    [
        ("types=fills", "types"),
        ("types=", "types"),
        ("types=new,,bogus", "types"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("symbol=", "symbol"),
        ("afterr=1", "afterr"),
        ("after=1&after=2", "after"),
    ],
)
def test_bad_queries_are_400_with_a_code(client: TestClient, query: str, what: str) -> None:
    response = client.get(f"{EVENTS}?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert what in response.json()["detail"]


def test_history_no_longer_kept_is_410_naming_the_oldest_seq() -> None:
    store = InMemoryStore(events_retain=3)
    with TestClient(create_app(make_settings(), store)) as client:
        for n in range(5):
            assert client.post(URL, json=limit_intent(f"k{n}", "BUY", 1.0, 10.0)).status_code == 201
        assert [item["seq"] for item in events(client, "&after=2")] == [3, 4, 5]
        for query in ("", "?after=0", "?after=1"):
            response = client.get(f"{EVENTS}{query}")
            assert response.status_code == 410, query
            assert response.json()["code"] == "EVENTS_EXPIRED"
            assert (response.json()["oldest_seq"], response.json()["newest_seq"]) == (3, 5)
        # Beyond the newest: a journal that started over (a memory store restarted).
        response = client.get(f"{EVENTS}?after=6")
        assert (response.status_code, response.json()["code"]) == (410, "EVENTS_EXPIRED")
        assert "numbers from 1 again" in response.json()["detail"]


def test_fills_of_the_account_and_of_an_order_name_their_seq_and_instrument(client: TestClient) -> None:
    ids = session(client)
    page = client.get(FILLS).json()
    assert [(fill["seq"], fill["order_id"], fill["side"], fill["qty"]) for fill in page["items"]] == [
        (2, ids["buy"], "BUY", 0.5),
        (4, ids["sell"], "SELL", 0.25),
    ]
    assert page["next_after"] == 4
    assert client.get(f"{FILLS}?after=2&limit=1").json()["items"][0]["seq"] == 4
    assert client.get(f"{FILLS}?after=4").json() == {"items": [], "next_after": 4}
    assert client.get(f"/execution/orders/{ids['buy']}/fills").json()["items"] == page["items"][:1]
    assert client.get(f"{FILLS}?limit=0").status_code == 400
    # A cursor beyond the newest seq (a journal that started over) is not an empty page.
    response = client.get(f"{FILLS}?after=99")
    assert (response.status_code, response.json()["code"], response.json()["newest_seq"]) == (410, "EVENTS_EXPIRED", 8)


# -- the WebSocket --------------------------------------------------------------------------


def test_a_websocket_resumes_from_its_first_message_with_filters(client: TestClient) -> None:
    session(client)
    with client.websocket_connect(WS) as socket:
        socket.send_text(json.dumps({"after": 1, "types": ["fill", "partial_fill", "canceled"]}))
        got = [json.loads(socket.receive_text()) for _ in range(4)]
    assert [(item["seq"], item["type"]) for item in got] == [
        (2, "partial_fill"),
        (4, "fill"),
        (6, "canceled"),
        (8, "canceled"),
    ]
    assert got == [item for item in events(client) if item["seq"] in (2, 4, 6, 8)]


def test_a_websocket_resumes_from_the_query_and_then_follows_new_events(client: TestClient) -> None:
    session(client)
    client.put(STATE, json={"state": "ACTIVE"})
    with client.websocket_connect(f"{WS}?after=7") as socket:
        assert json.loads(socket.receive_text())["seq"] == 8
        assert json.loads(socket.receive_text())["seq"] == 9  # the state change back to ACTIVE
        client.post(URL, json=limit_intent("later", "BUY", 1.0, 10.0))
        later = json.loads(socket.receive_text())
    assert (later["seq"], later["type"], later["order"]["idempotency_key"]) == (10, "new", "later")


def test_a_websocket_without_a_first_message_starts_at_the_head_when_it_connected(client: TestClient) -> None:
    session(client)
    client.put(STATE, json={"state": "ACTIVE"})
    with client.websocket_connect(WS) as socket:
        response = client.post(URL, json=limit_intent("next", "BUY", 1.0, 10.0))  # while it waits for a first message
        assert response.status_code == 201
        first = json.loads(socket.receive_text())
    assert (first["seq"], first["type"]) == (10, "new")


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        '{"after": -1}',
        '{"after": "3"}',
        '{"types": ["fills"]}',
        '{"types": []}',
        '{"after": 1, "extra": true}',
        "[1, 2]",
        '{"after": 99}',  # beyond the newest: 410's body, as a message
    ],
)
def test_a_bad_first_message_gets_an_error_then_a_policy_violation_close(client: TestClient, message: str) -> None:
    session(client)
    with client.websocket_connect(WS) as socket:
        socket.send_text(message)
        error = json.loads(socket.receive_text())
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
    assert error["code"] in ("VALIDATION_ERROR", "EVENTS_EXPIRED")
    assert error["detail"]
    assert closed.value.code == 1008


def test_a_message_once_streaming_is_refused(client: TestClient) -> None:
    with client.websocket_connect(f"{WS}?after=0") as socket:
        socket.send_text('{"after": 0}')
        error = json.loads(socket.receive_text())
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
    assert (error["code"], closed.value.code) == ("VALIDATION_ERROR", 1008)


def test_a_bad_websocket_query_is_refused(client: TestClient) -> None:
    for query in ("after=x", "types=bogus", "limit=3"):
        with client.websocket_connect(f"{WS}?{query}") as socket:
            assert json.loads(socket.receive_text())["code"] == "VALIDATION_ERROR"
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_text()
        assert closed.value.code == 1008, query


# -- the API token --------------------------------------------------------------------------


def test_the_journal_needs_the_token_and_streams_take_it_in_the_query(make_client: Callable[..., TestClient]) -> None:
    guarded = make_client(execution_api_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.post(URL, json=intent(), headers=auth).status_code == 201
    for path in (EVENTS, FILLS, "/execution/events/stream"):
        assert guarded.get(path).status_code == 401, path
    assert guarded.get(EVENTS, headers=auth).status_code == 200
    # Only the streams take it in the query: a page does not.
    assert guarded.get(f"{EVENTS}?access_token={TOKEN}").status_code == 401
    for query in ("", "?access_token=wrong-token-0123456789"):
        with pytest.raises(WebSocketDisconnect) as refused, guarded.websocket_connect(f"{WS}{query}"):
            pass
        assert refused.value.code == 1008
    with guarded.websocket_connect(f"{WS}?after=0&access_token={TOKEN}") as socket:
        assert json.loads(socket.receive_text())["type"] == "new"
    with guarded.websocket_connect(f"{WS}?after=0", headers=auth) as socket:
        assert json.loads(socket.receive_text())["seq"] == 1


def test_the_documented_event_has_the_keys_a_real_one_has(make_client: Callable[..., TestClient]) -> None:
    """docs/events.md's example: every key of a real partial fill, at every level, and
    the values the example's session gives (a taker fee of 10 bp)."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "events.md"
    shown = json.loads(docs.read_text().split("```json\n", 1)[1].split("```", 1)[0])
    client = make_client(taker_fee_bps="10")
    client.post(URL, json=limit_intent("buy", "BUY", 1.0, 100.0))
    client.post(QUOTES, json={"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 100.0, "ask_size": 0.5})
    real = events(client)[1]
    assert set(shown) == set(real)
    for key in ("fill", "position"):
        assert set(shown[key]) == set(real[key])
        assert _without_ids_and_times(shown[key]) == _without_ids_and_times(real[key])
    assert (shown["seq"], shown["type"], shown["order"]["status"], shown["order"]["filled_qty"]) == (
        real["seq"],
        real["type"],
        real["order"]["status"],
        real["order"]["filled_qty"],
    )


def _without_ids_and_times(view: dict[str, Any]) -> dict[str, Any]:
    """A view's values but its ids and times (also those of the views inside it)."""
    return {
        key: _without_ids_and_times(value) if isinstance(value, dict) else value
        for key, value in view.items()
        if "id" not in key and key != "ts_utc"
    }
