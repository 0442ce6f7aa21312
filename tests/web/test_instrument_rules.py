"""INSTRUMENTS_FILE rules and risk limits, exact and atomic, on every store; and
MAX_INTENTS_PER_SECOND."""

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.service.rate_limit import TokenBucket
from app.service.settings import load_settings
from harness.servers import ROOT
from tests.conftest import URL, intent, make_settings
from tests.documents import blocks
from tests.server.test_durability import worker_pids
from tests.uvicorn_server import all_orders, race_limit_orders, running_server, server_get
from tests.web.test_fills import order, quote
from tests.web.test_trading_state import set_state

BTC = "binance:BTC/USDT"


def rules_file(tmp_path: Path, rules: dict[str, Any], suffix: str = ".json") -> str:
    path = tmp_path / f"rules{suffix}"
    path.write_text(json.dumps(rules))
    return str(path)


@pytest.fixture
def ruled(make_client: Callable[..., TestClient], tmp_path: Path) -> Callable[..., TestClient]:
    """A client whose BTC/USDT on binance has the given rules."""

    def build(**rules: Any) -> TestClient:
        return make_client(instruments_file=rules_file(tmp_path, {BTC: rules}))

    return build


KEYS = itertools.count()


def refused(client: TestClient, **fields: Any) -> tuple[int, str | None, str]:
    response = client.post(URL, json=intent(idempotency_key=f"refused-{next(KEYS)}", **fields))
    body = response.json()
    return response.status_code, body.get("code"), body.get("detail", "")


LIMIT = {"type": "LIMIT", "limit_price": 100.0}


@pytest.mark.parametrize(
    ("rules", "fields", "code", "words"),
    [
        ({"tick_size": "0.01"}, {"type": "LIMIT", "limit_price": 100.005}, "TICK_SIZE", "tick_size 0.01"),
        ({"lot_size": 0.001}, {"qty": 0.0015}, "LOT_SIZE", "lot_size 0.001"),
        ({"min_qty": 0.01}, {"qty": 0.005}, "MIN_QTY", "min_qty 0.01"),
        ({"max_qty": "2"}, {"qty": 2.5}, "MAX_QTY", "max_qty 2"),
        ({"min_notional": 10}, {**LIMIT, "qty": 0.05}, "MIN_NOTIONAL", "min_notional 10"),
        ({"max_notional": 1000}, {**LIMIT, "qty": 10.5}, "MAX_NOTIONAL", "max_notional 1000"),
        ({"min_notional": 10}, {"qty": 1.0}, "NO_QUOTE", "No quote"),
    ],
)
def test_each_rule_refuses_with_its_code(
    *,
    ruled: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    rules: dict[str, Any],
    fields: dict[str, Any],
    code: str,
    words: str,
) -> None:
    client = ruled(**rules)
    status, got, detail = refused(client, **fields)
    assert (status, got) == (400, code), detail
    assert words in detail
    assert BTC in detail or code == "NO_QUOTE"
    [line] = [r for r in caplog.records if r.getMessage() == "Order intent rejected"]
    assert line.levelname == "WARNING"
    assert line.fields["code"] == code  # type: ignore[attr-defined]
    assert f'execution_order_intents_total{{outcome="rejected",reason="{code}"}} 1.0' in client.get("/metrics").text
    assert client.get("/execution/orders").json()["items"] == []


def test_checks_are_exact_decimals(ruled: Callable[..., TestClient]) -> None:
    client = ruled(tick_size="0.1", lot_size="0.1", min_notional="0.3")
    # 0.3 % 0.1 is 0.09999999999999998 in binary floats; as decimals it is 0.
    order(client, "a", qty=0.3, type="LIMIT", limit_price=1.1)
    order(client, "b", qty=0.7, type="LIMIT", limit_price=0.5)  # notional 0.35
    assert refused(client, qty=0.30000000000000004)[1] == "LOT_SIZE"
    assert refused(client, qty=0.1, type="LIMIT", limit_price=2.9)[1] == "MIN_NOTIONAL"  # 0.29


def test_market_notional_uses_the_side_it_would_take(ruled: Callable[..., TestClient]) -> None:
    client = ruled(min_notional=100, max_notional=1000)
    quote(client, 90, 110)
    order(client, "buy", qty=1.0)  # 1 x ask 110
    assert refused(client, qty=1.0, side="SELL")[1] == "MIN_NOTIONAL"  # 1 x bid 90
    assert refused(client, qty=9.5)[1] == "MAX_NOTIONAL"  # 9.5 x 110 = 1045


def test_rules_apply_only_to_their_instrument(ruled: Callable[..., TestClient]) -> None:
    client = ruled(max_qty=1)
    assert refused(client, qty=5.0)[1] == "MAX_QTY"
    order(client, "eth", qty=5.0, symbol="ETH/USDT")
    order(client, "coinbase", qty=5.0, exchange="coinbase")


def test_max_open_orders_counts_resting_orders(ruled: Callable[..., TestClient]) -> None:
    client = ruled(max_open_orders=2)
    first = order(client, "r1", **LIMIT)
    order(client, "r2", side="SELL", type="LIMIT", limit_price=200.0)
    status, code, detail = refused(client, **LIMIT)
    assert (status, code) == (400, "MAX_OPEN_ORDERS")
    assert "has 2 open orders; max_open_orders is 2" in detail
    assert client.post(f"/execution/orders/{first}/cancel").status_code == 200
    order(client, "r3", **LIMIT)
    quote(client, 99, 100)  # fills r3 (the first order, r1, was canceled): one left open
    order(client, "r4", **LIMIT, qty=0.5)


def test_max_position_counts_open_orders_on_the_same_side(ruled: Callable[..., TestClient]) -> None:
    client = ruled(max_position=1)
    quote(client, 99, 100)
    order(client, "filled", qty=0.5)  # long 0.5
    order(client, "resting", type="LIMIT", limit_price=90.0, qty=0.3)  # 0.8 if it fills
    status, code, detail = refused(client, qty=0.3)
    assert (status, code) == (400, "MAX_POSITION")
    assert "would be 1.1; max_position is 1" in detail
    order(client, "fits", qty=0.2)  # exactly 1
    order(client, "sell", side="SELL", qty=1.7)  # filled 0.7 - 1.7: short 1 exactly
    assert refused(client, side="SELL", qty=0.1)[1] == "MAX_POSITION"


def test_order_of_checks(ruled: Callable[..., TestClient]) -> None:
    client = ruled(tick_size=1, lot_size=1, max_open_orders=1)
    order(client, "open", type="LIMIT", limit_price=90.0, qty=1.0)
    bad_everything = {"type": "LIMIT", "limit_price": 90.5, "qty": 0.5}
    assert refused(client, **bad_everything)[1] == "TICK_SIZE"
    assert refused(client, **{**bad_everything, "limit_price": 90.0})[1] == "LOT_SIZE"
    assert refused(client, **{**bad_everything, "limit_price": 90.0, "qty": 1.0})[1] == "MAX_OPEN_ORDERS"
    set_state(client, "HALTED")
    assert refused(client, **bad_everything)[1] == "TRADING_HALTED"
    assert refused(client, **bad_everything, symbol="DOGE/USDT")[1] == "SYMBOL_NOT_ALLOWED"
    assert client.post(URL, json=intent(idempotency_key="open")).status_code == 409


def test_features_name_the_rules(ruled: Callable[..., TestClient]) -> None:
    assert "instrument_rules" in ruled(max_qty=1).get("/capabilities").json()["features"]


@pytest.mark.parametrize(
    ("limit", "rules"), [("max_open_orders", {"max_open_orders": 5}), ("max_position", {"max_position": 5})]
)
def test_racing_intents_never_pass_a_limit_together(
    ruled: Callable[..., TestClient], limit: str, rules: dict[str, Any]
) -> None:
    client = ruled(**rules)
    racers = 16
    barrier = threading.Barrier(racers)

    def post(n: int) -> int:
        barrier.wait()
        return client.post(URL, json=intent(idempotency_key=f"race-{n}", **LIMIT, qty=1.0)).status_code

    with ThreadPoolExecutor(racers) as pool:
        statuses = Counter(pool.map(post, range(racers)))
    assert statuses == {201: 5, 400: racers - 5}, limit


@pytest.mark.parametrize(
    ("content", "suffix", "words"),
    [
        ('{"binance:BTC/USDT": {"tick_size": 0}}', ".json", "greater than or equal to 1E-18"),
        ('{"binance:BTC/USDT": {"min_qty": 0}}', ".json", "greater than 0"),
        ('{"binance:BTC/USDT": {"tick": 1}}', ".json", "tick"),
        ('{"binance:BTC/USDT": {"min_qty": 2, "max_qty": 1}}', ".json", "min_qty 2 is above max_qty 1"),
        ('{"kraken:BTC/USDT": {"max_qty": 1}}', ".json", "not an allowlisted"),
        ('{"BTC/USDT": {"max_qty": 1}}', ".json", "EXCHANGE:SYMBOL"),
        ('{"binance:BTC/USDT": {"max_open_orders": 1.5}}', ".json", "max_open_orders"),
        ("{not json", ".json", "not valid JSON"),
        ('["binance:BTC/USDT"]\nmax_qty = "x"', ".toml", "max_qty"),
        ("max_qty = 1", ".yaml", ".json or .toml"),
    ],
)
def test_a_bad_rules_file_stops_start_up_with_one_line(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    suffix: str,
    words: str,
) -> None:
    path = tmp_path / f"rules{suffix}"
    path.write_text(content)
    monkeypatch.setenv("ALLOWED_EXCHANGES", "binance")
    monkeypatch.setenv("ALLOWED_SYMBOLS", "BTC/USDT")
    monkeypatch.setenv("INSTRUMENTS_FILE", str(path))
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "INSTRUMENTS_FILE" in err
    assert words in err


def test_a_missing_rules_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be read"):
        make_settings(instruments_file=str(tmp_path / "absent.json"))


def test_toml_rules(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('["binance:BTC/USDT"]\ntick_size = "0.5"\nmax_qty = 2\n')
    client = make_client(instruments_file=str(path))
    assert refused(client, type="LIMIT", limit_price=100.25)[1] == "TICK_SIZE"
    assert refused(client, qty=3.0)[1] == "MAX_QTY"
    order(client, "ok", type="LIMIT", limit_price=100.5)


def test_the_documented_toml_file_holds_the_rules_it_shows(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    """docs/trading-controls.md's rules.toml, as written there, gives the refusals its
    JSON twin gives in the session beside it."""
    (shown,) = blocks("toml", [ROOT / "docs" / "trading-controls.md"])
    path = tmp_path / "rules.toml"
    path.write_text(shown.text)
    client = make_client(instruments_file=str(path))
    assert refused(client, type="LIMIT", limit_price=50000.005)[1] == "TICK_SIZE"
    assert refused(client, type="LIMIT", limit_price=50000.0, qty=0.0001)[1] == "LOT_SIZE"
    assert refused(client, type="LIMIT", limit_price=900.0, qty=0.001)[1] == "MIN_NOTIONAL"
    assert refused(client, type="LIMIT", limit_price=50000.0, qty=3.0)[1] == "MAX_POSITION"
    order(client, "fits", type="LIMIT", limit_price=50000.01, qty=0.01)


# -- the rate limit ---------------------------------------------------------------------


def test_beyond_the_rate_intents_get_429_with_retry_after(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(max_intents_per_second=0.01, max_intents_burst=3)
    assert [client.post(URL, json=intent(idempotency_key=f"r{n}")).status_code for n in range(3)] == [201] * 3
    response = client.post(URL, json=intent(idempotency_key="r3"))
    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert response.headers["Retry-After"] == "100"
    [line] = [r for r in caplog.records if r.getMessage() == "Order intent rejected"]
    assert line.fields["code"] == "RATE_LIMITED"  # type: ignore[attr-defined]
    assert "rate_limit" in client.get("/capabilities").json()["features"]
    assert client.get("/execution/orders").status_code == 200  # reads are not limited


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [None, None]
    assert bucket.take() == 1
    now[0] += 0.1  # one token back
    assert bucket.take() is None
    assert bucket.take() == 1
    now[0] += 60  # never more than the burst
    assert [bucket.take(), bucket.take(), bucket.take()] == [None, None, 1]


# -- two workers on a shared store -----------------------------------------------------


@pytest.mark.parametrize("limit", ["max_open_orders", "max_position"])
def test_two_workers_hold_a_limit_exactly(storage_url: str, tmp_path: Path, limit: str) -> None:
    path = rules_file(tmp_path, {BTC: {limit: 7}})  # 7 orders of 1 each fit either
    env = {"STORAGE_URL": storage_url, "INSTRUMENTS_FILE": path}
    with running_server(tmp_path, env, "--workers", "2") as server:
        worker_pids(server, 2)
        assert race_limit_orders(server, 24) == {201: 7, 400: 17}
        assert len(all_orders(server_get(server))) == 7
