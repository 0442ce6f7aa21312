"""Market data times through HTTP: `ts_utc` older than the instrument's latest is a
409 OUT_OF_ORDER, data older than MAX_QUOTE_AGE_MS a 409 STALE_MARKET_DATA, data
stamped ahead of the clock a 400, and with MAX_QUOTE_AGE_MS orders fill nothing
against stale data while /capabilities names the instrument."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import URL, intent
from tests.web.test_fills import QUOTES, order, read


def stamped(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def post_quote(client: TestClient, bid: float, ask: float, **extra: Any) -> Any:
    return client.post(QUOTES, json={"exchange": "binance", "symbol": "BTC/USDT", "bid": bid, "ask": ask, **extra})


def test_a_quote_older_than_the_latest_is_a_409_and_changes_nothing(client: TestClient) -> None:
    assert post_quote(client, 99, 100, ts_utc="2026-01-15T10:30:00Z").status_code == 200
    late = post_quote(client, 50, 51, ts_utc="2026-01-15T10:29:59.999Z")
    assert late.status_code == 409
    assert late.json()["code"] == "OUT_OF_ORDER"
    assert "nothing was changed" in late.json()["detail"]
    # An offset is converted: 11:30 at +01:00 is the same instant as the latest, taken.
    assert post_quote(client, 99, 100, ts_utc="2026-01-15T11:30:00+01:00").status_code == 200
    # A quote without ts_utc is stamped when it arrives: later than any of these.
    assert post_quote(client, 99, 100).status_code == 200
    assert post_quote(client, 50, 51, ts_utc="2026-01-15T10:30:00Z").json()["code"] == "OUT_OF_ORDER"
    filled = read(client, order(client, "after-late"))
    assert (filled["status"], filled["avg_fill_price"]) == ("FILLED", 100.0)


def test_data_stamped_well_ahead_of_the_clock_is_a_400(client: TestClient) -> None:
    ahead = post_quote(client, 99, 100, ts_utc=stamped(-60))
    assert (ahead.status_code, ahead.json()["code"]) == (400, "FUTURE_MARKET_DATA")
    assert post_quote(client, 99, 100, ts_utc=stamped(-1)).status_code == 200  # clocks differ a little


def test_with_a_maximum_age_stale_data_is_refused_and_fills_nothing(make_client: Callable[..., TestClient]) -> None:
    # Taken while no maximum age applied: a quote an hour old.
    assert post_quote(make_client(), 99, 100, ts_utc=stamped(3600)).status_code == 200
    client = make_client(max_quote_age_ms="1000")
    capabilities = client.get("/capabilities").json()
    assert "max_quote_age" in capabilities["features"]
    assert capabilities["stale_market_data"] == ["binance:BTC/USDT"]
    assert capabilities["status"] == "ok"  # intents are still taken: they wait
    refused = post_quote(client, 99, 100, ts_utc=stamped(5))
    assert (refused.status_code, refused.json()["code"]) == (409, "STALE_MARKET_DATA")
    waiting = order(client, "waits")
    assert read(client, waiting)["status"] == "NEW"
    expired = client.post(URL, json=intent(idempotency_key="ioc", time_in_force="IOC"))
    assert (expired.status_code, read(client, expired.json()["order_id"])["status"]) == (201, "EXPIRED")
    # Fresh data: the waiting order fills, and nothing is stale any more.
    fills = post_quote(client, 100, 101).json()["items"]
    assert [(fill["order_id"], fill["price"]) for fill in fills] == [(waiting, 101.0)]
    assert client.get("/capabilities").json()["stale_market_data"] == []


@pytest.mark.parametrize("value", ["0", "-5", "x", "86400001"])
def test_max_quote_age_ms_out_of_range_stops_start_up(make_client: Callable[..., TestClient], value: str) -> None:
    with pytest.raises(ValueError, match="max_quote_age_ms"):
        make_client(max_quote_age_ms=value)


def test_a_refused_quote_is_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    post_quote(client, 99, 100, ts_utc="2026-01-15T10:30:00Z")
    post_quote(client, 99, 100, ts_utc="2026-01-15T10:00:00Z")
    refused = [record for record in caplog.records if record.getMessage() == "Market data refused"]
    assert [(r.levelname, r.reason, r.symbol) for r in refused] == [("WARNING", "OUT_OF_ORDER", "BTC/USDT")]  # type: ignore[attr-defined]
