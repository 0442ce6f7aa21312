"""MARKET_DATA_URL_<EXCHANGE>: every address of the exchange on another scheme, host and
port, its path kept; websockets stay websockets."""

import pytest

from app.service.settings import check_base
from app.venues.urls import rebase

BINANCE_LIKE = {
    "public": "https://api.binance.com/api/v3",
    "sapi": "https://api.binance.com/sapi/v1?x=1",
    "ws": {"spot": "wss://stream.binance.com:9443/ws", "ws-api": {"spot": "wss://ws-api.binance.com:443/ws-api/v3"}},
    "rateLimit": 50,
}


def test_every_address_keeps_its_path_on_the_new_host() -> None:
    assert rebase(BINANCE_LIKE, "http://127.0.0.1:9000") == {
        "public": "http://127.0.0.1:9000/api/v3",
        "sapi": "http://127.0.0.1:9000/sapi/v1?x=1",
        "ws": {"spot": "ws://127.0.0.1:9000/ws", "ws-api": {"spot": "ws://127.0.0.1:9000/ws-api/v3"}},
        "rateLimit": 50,
    }


def test_https_makes_secure_websockets_and_the_default_port_stays_implicit() -> None:
    rebased = rebase(BINANCE_LIKE, "https://testnet.example")
    assert rebased["public"] == "https://testnet.example/api/v3"
    assert rebased["ws"]["spot"] == "wss://testnet.example/ws"


def test_a_single_address_and_non_addresses() -> None:
    assert rebase("https://www.okx.com", "http://127.0.0.1:1") == "http://127.0.0.1:1"
    assert rebase(None, "http://127.0.0.1:1") is None
    assert rebase("not an address", "http://127.0.0.1:1") == "not an address"


@pytest.mark.parametrize(
    "base",
    ["ftp://host", "127.0.0.1:9000", "http://", "http://host/path", "http://host?q=1", "http://u:p@host", "http://h:x"],
)
def test_a_base_that_is_not_only_scheme_host_and_port_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match=r"http|scheme|port"):
        check_base(base)


@pytest.mark.parametrize("base", ["http://127.0.0.1:9000", "https://testnet.example", "http://[::1]:80/"])
def test_good_bases(base: str) -> None:
    assert check_base(base) == base
