"""Live execution's settings: off by default; on, each exchange allowlisted, with its
credentials (values or files), a SQL store, the sandbox unless LIVE_REAL_MONEY names
it; anything else stops start-up with one line that never shows a credential."""

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.service.live import exchange_modes
from app.service.settings import Settings, live_credentials, urls_by_exchange
from tests.uvicorn_server import ROOT

KEYS = {"binance": {"api_key": SecretStr("key-123"), "secret": SecretStr("secret-456")}}
SQLITE = "sqlite:////tmp/orders.db"


def settings(**fields: object) -> Settings:
    base: dict[str, object] = {
        "allowed_exchanges": "binance,okx",
        "allowed_symbols": "BTC/USDT",
        "storage_url": SQLITE,
        "live_exchanges": "binance",
        "live_credentials": KEYS,
    }
    return Settings(**{**base, **fields})


def test_live_is_off_by_default_and_every_exchange_is_paper() -> None:
    plain = Settings(allowed_exchanges="binance,okx")
    assert plain.live_exchanges == frozenset()
    assert exchange_modes(plain.allowed_exchanges, plain.live_exchanges, plain.live_real_money) == {
        "binance": "paper",
        "okx": "paper",
    }


def test_the_sandbox_unless_real_money_is_named() -> None:
    sandbox = settings()
    assert exchange_modes(sandbox.allowed_exchanges, sandbox.live_exchanges, sandbox.live_real_money) == {
        "binance": "live-sandbox",
        "okx": "paper",
    }
    real = settings(live_real_money="binance")
    assert exchange_modes(real.allowed_exchanges, real.live_exchanges, real.live_real_money)["binance"] == "live"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"storage_url": "memory://"}, "LIVE_EXCHANGES needs a SQL store"),
        ({"live_exchanges": "kraken"}, "LIVE_EXCHANGES: kraken not in ALLOWED_EXCHANGES"),
        ({"live_real_money": "okx"}, "LIVE_REAL_MONEY names okx, which is not in LIVE_EXCHANGES"),
        ({"live_urls": {"okx": "http://127.0.0.1:9"}}, "LIVE_URL_<EXCHANGE> names okx"),
        ({"live_urls": {"binance": "http://127.0.0.1:9/api"}}, "must be only scheme://host[:port]"),
        ({"live_credentials": {}}, "LIVE_BINANCE_API_KEY (or LIVE_BINANCE_API_KEY_FILE) is required"),
        (
            {"live_credentials": {"binance": {"api_key": SecretStr("k")}}},
            "LIVE_BINANCE_SECRET (or LIVE_BINANCE_SECRET_FILE) is required",
        ),
        ({"live_exchanges": "", "live_real_money": "binance"}, "LIVE_EXCHANGES is empty"),
    ],
)
def test_settings_that_do_not_hold_together_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        settings(**fields)


def test_credentials_from_values_or_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    environment = {
        "LIVE_BINANCE_API_KEY": "k",
        "LIVE_BINANCE_SECRET_FILE": str(secret),
        "LIVE_EXCHANGES": "binance",  # not a credential
        "LIVE_URL_BINANCE": "http://127.0.0.1:1",
        "LIVE_API_KEY": "no exchange named",
    }
    assert live_credentials(environment) == {"binance": {"api_key": "k", "secret": "from-a-file"}}
    assert urls_by_exchange(environment, "LIVE_URL_") == {"binance": "http://127.0.0.1:1"}
    with pytest.raises(ValueError, match="LIVE_BINANCE_SECRET and LIVE_BINANCE_SECRET_FILE are both set"):
        live_credentials({"LIVE_BINANCE_SECRET": "a", "LIVE_BINANCE_SECRET_FILE": str(secret)})
    with pytest.raises(ValueError, match="LIVE_BINANCE_SECRET_FILE: the file cannot be read"):
        live_credentials({"LIVE_BINANCE_SECRET_FILE": str(tmp_path / "missing")})


def test_credentials_are_never_shown() -> None:
    shown = repr(settings()) + str(settings().model_dump())
    assert "key-123" not in shown
    assert "secret-456" not in shown


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ALLOWED_EXCHANGES": "binance", "ALLOWED_SYMBOLS": "BTC/USDT", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_live_with_the_memory_store_refuses_to_start_with_one_line() -> None:
    started = start({"LIVE_EXCHANGES": "binance", "LIVE_BINANCE_API_KEY": "k", "LIVE_BINANCE_SECRET": "s3cr3t-value"})
    assert started.returncode == 2
    [line] = started.stderr.splitlines()
    assert line.startswith("execution: invalid configuration: ")
    assert "LIVE_EXCHANGES needs a SQL store" in line
    assert "s3cr3t-value" not in line


def test_an_exchange_ccxt_does_not_have_refuses_to_start(tmp_path: Path) -> None:
    started = start(
        {
            "ALLOWED_EXCHANGES": "nosuchexchange",
            "LIVE_EXCHANGES": "nosuchexchange",
            "STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}",
            "LIVE_NOSUCHEXCHANGE_API_KEY": "k",
            "LIVE_NOSUCHEXCHANGE_SECRET": "s",
        }
    )
    assert started.returncode == 2
    assert started.stderr.splitlines() == [
        "execution: invalid configuration: LIVE_EXCHANGES: ccxt has no exchange 'nosuchexchange'"
    ]
