"""Settings come from the environment, are parsed once, and bad values stop start-up."""

import pytest

from app.service.settings import Settings, load_settings


def test_allowlists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_SYMBOLS", "BTC/USDT, ETH/USDT ,,SOL/USDT")
    monkeypatch.setenv("ALLOWED_EXCHANGES", "binance,coinbase")
    settings = Settings()
    assert settings.allowed_symbols == frozenset({"BTC/USDT", "ETH/USDT", "SOL/USDT"})
    assert settings.allowed_exchanges == frozenset({"binance", "coinbase"})


def test_unset_allowlists_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOWED_SYMBOLS", raising=False)
    monkeypatch.delenv("ALLOWED_EXCHANGES", raising=False)
    settings = Settings()
    assert settings.allowed_symbols == frozenset()
    assert settings.allowed_exchanges == frozenset()


def test_a_json_looking_allowlist_is_still_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_SYMBOLS", '["BTC/USDT"]')
    assert Settings().allowed_symbols == frozenset({'["BTC/USDT"]'})


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVICE_NAME", "SERVICE_VERSION", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.service_name, settings.service_version, settings.log_level) == ("execution", "0.1.0", "INFO")
    monkeypatch.setenv("SERVICE_NAME", "exec-2")
    monkeypatch.setenv("SERVICE_VERSION", "9.9.9")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings()
    assert (settings.service_name, settings.service_version, settings.log_level) == ("exec-2", "9.9.9", "DEBUG")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "LOUD"),
        ("SERVICE_NAME", ""),
        ("SERVICE_NAME", "a b"),
        ("SERVICE_NAME", "uvicorn.access"),
        ("SERVICE_NAME", "root"),
        ("SLIPPAGE_BPS", "10000"),
        ("TAKER_FEE_BPS", "-1"),
        ("MAKER_FEE_BPS", "NaN"),
        ("STORE_TIMEOUT_MS", "0"),
        ("REQUEST_TIMEOUT_MS", "soon"),
        ("MAX_HEADER_BYTES", "100"),
    ],
)
def test_invalid_configuration_stops_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("execution: invalid configuration: ")
    assert name in err


def test_market_data_feeds_and_their_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_EXCHANGES", "binance,okx,coinbase")
    monkeypatch.setenv("MARKET_DATA_FEEDS", "binance, okx")
    monkeypatch.setenv("MARKET_DATA_URL_BINANCE", "http://127.0.0.1:9000")
    settings = load_settings()
    assert settings.market_data_feeds == frozenset({"binance", "okx"})
    assert settings.market_data_urls == {"binance": "http://127.0.0.1:9000"}
    monkeypatch.delenv("MARKET_DATA_FEEDS")
    monkeypatch.delenv("MARKET_DATA_URL_BINANCE")
    assert (load_settings().market_data_feeds, load_settings().market_data_urls) == (frozenset(), {})


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"MARKET_DATA_FEEDS": "kraken"}, "MARKET_DATA_FEEDS: Value error, kraken not in ALLOWED_EXCHANGES"),
        ({"MARKET_DATA_URL_BINANCE": "http://127.0.0.1:9000"}, "MARKET_DATA_URL_BINANCE is set but binance has no"),
        ({"MARKET_DATA_FEEDS": "binance", "MARKET_DATA_URL_BINANCE": "http://h/api"}, "must be only scheme://host"),
    ],
)
def test_a_feed_setting_that_cannot_work_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], said: str
) -> None:
    monkeypatch.setenv("ALLOWED_EXCHANGES", "binance")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert said in err
