"""Settings read from the environment once, at start-up."""

import logging
import os
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.rules import InstrumentRules
from app.core.values import Instrument
from app.core.vocabulary import TradingStateName
from app.ops.logs import LogFormat
from app.service.instruments import RulesFileError, load_rules
from app.store.memory import DEFAULT_EVENTS_RETAIN

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# The in-memory store's cap when MAX_ORDERS is unset: about 450 MB of orders.
DEFAULT_MEMORY_MAX_ORDERS = 1_000_000
MIN_TOKEN_LENGTH = 16
BasisPoints = Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)]


def check_base(base: str) -> str:
    """`base` if it is only scheme://host[:port], http or https (what replaces an
    exchange's addresses, their paths kept); else ValueError saying why."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{base!r} is not an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{base!r} must be only scheme://host[:port]: the exchange's paths are kept")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"{base!r}: {error}") from None
    return base


def urls_by_exchange(environment: Mapping[str, str], prefix: str) -> dict[str, str]:
    """`<prefix><EXCHANGE>` variables (MARKET_DATA_URL_, LIVE_URL_): exchange id (lower
    case) -> base URL."""
    return {name[len(prefix) :].lower(): value for name, value in environment.items() if name.startswith(prefix)}


# A live exchange's credentials: LIVE_<EXCHANGE>_API_KEY and LIVE_<EXCHANGE>_SECRET, or
# files named by the same names with _FILE appended (container secrets).
_CREDENTIALS = {"_API_KEY": "api_key", "_SECRET": "secret"}


def live_credentials(environment: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each exchange's credentials from the environment (values, or files' contents);
    ValueError naming the variable if one is given twice or a file cannot be read. The
    messages never hold a value."""
    found: dict[str, dict[str, str]] = {}
    for name, value in sorted(environment.items()):
        if not name.startswith("LIVE_") or name.startswith("LIVE_URL_"):
            continue
        from_file = name.endswith("_FILE")
        stem = name.removesuffix("_FILE")
        suffix = next((end for end in _CREDENTIALS if stem.endswith(end)), None)
        if suffix is None or len(stem) <= len("LIVE_") + len(suffix):
            continue
        exchange = stem[len("LIVE_") : -len(suffix)].lower()
        key = _CREDENTIALS[suffix]
        if key in found.get(exchange, {}):
            raise ValueError(f"{stem} and {stem}_FILE are both set: set one")
        text = value
        if from_file:
            try:
                text = Path(value).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"{name}: the file cannot be read ({type(error).__name__})") from None
        found.setdefault(exchange, {})[key] = text
    return found


def parse_allowlist(value: object) -> object:
    """Split a comma-separated list, strip entries and drop empty ones."""
    if isinstance(value, str):
        return frozenset(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """The service's configuration; field names are the spec's variable names."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # NoDecode: the value is a comma-separated list, not JSON.
    allowed_symbols: Annotated[frozenset[str], NoDecode] = frozenset()
    allowed_exchanges: Annotated[frozenset[str], NoDecode] = frozenset()
    service_name: str = Field(default="execution", min_length=1, max_length=64, pattern=r"^[\w.\-]+$")
    service_version: str = Field(default="0.1.0", min_length=1, max_length=64)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    # Bearer token every endpoint but /healthz, /capabilities and /metrics requires;
    # unset or empty: no access control (paper mode has no secrets of its own).
    execution_api_token: SecretStr | None = None
    # Orders the store takes at most (unset: 1,000,000 for memory, no cap for SQL).
    max_orders: PositiveInt | None = None
    # Paper execution costs, in basis points (1 bp = 0.01 %).
    # Below 100 %: a MARKET sell must never fill at a price of 0.
    slippage_bps: Annotated[Decimal, Field(ge=0, lt=10_000, allow_inf_nan=False)] = Decimal(0)
    taker_fee_bps: BasisPoints = Decimal(0)
    maker_fee_bps: BasisPoints = Decimal(0)
    # Where orders live: memory:// (this process only), sqlite:///PATH, postgresql://...
    storage_url: str = "memory://"
    # The longest a request waits for a database (milliseconds) before it is answered
    # 503: the database's own timeouts cannot fire while it does not answer at all.
    store_timeout_ms: Annotated[int, Field(ge=1, le=600_000)] = 5_000
    # The oldest market data orders fill against, and that is taken at all (ms; unset:
    # any age).
    max_quote_age_ms: Annotated[int, Field(ge=1, le=86_400_000)] | None = None
    # How long an order takes to reach the venue: it fills only against market data
    # stamped at least this long after its acceptance (ms; 0: at once).
    latency_ms: Annotated[int, Field(ge=0, le=60_000)] = 0
    # Bounds on slow and oversized requests, applied by the HTTP protocol the container
    # runs (app.web.connections): from a request's first byte to its last, and the
    # size of its header block.
    request_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 10_000
    max_header_bytes: Annotated[int, Field(ge=4_096, le=16_777_216)] = 65_536
    # Trading controls, all off when unset.
    # The trading state at start-up: it makes the stored state stricter, never looser.
    trading_state: TradingStateName | None = None
    # Rules per "EXCHANGE:SYMBOL" (tick and lot sizes, quantity and notional bounds,
    # open orders, position), from a .json or .toml file; read at start-up.
    instruments_file: str | None = None
    # Intents per second this process takes, and how many it takes at once after a
    # quiet spell (default: one second's worth).
    max_intents_per_second: PositiveFloat | None = None
    max_intents_burst: PositiveInt | None = None
    # A paper account, "USDT=100000,BTC=0.5": orders reserve and fills move balances.
    # NoDecode: the value is a comma-separated list, not JSON.
    paper_balances: Annotated[dict[str, Decimal] | None, NoDecode] = None
    # The event journal: how many events the memory store keeps (SQL stores keep all);
    # how far (in events) a stream subscriber may fall behind before it is disconnected
    # to resume; the longest a stream stays silent (it then sends a heartbeat).
    events_retain: Annotated[int, Field(ge=1, le=10_000_000)] = DEFAULT_EVENTS_RETAIN
    events_queue: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    events_heartbeat_seconds: Annotated[float, Field(gt=0, le=15)] = 15.0
    # Exchanges whose public books and trades of every allowlisted symbol are followed
    # through ccxt (in the feeds' own process) and fed to the fill model; each must be
    # allowlisted. Empty: none.
    market_data_feeds: Annotated[frozenset[str], NoDecode] = frozenset()
    # MARKET_DATA_URL_<EXCHANGE>: the scheme, host and port that replace those of every
    # address of that exchange's feed (load_settings reads them from the environment).
    market_data_urls: dict[str, str] = Field(default_factory=dict)

    # Live execution, off when LIVE_EXCHANGES is empty: orders for these exchanges (each
    # allowlisted) are sent to the exchange through ccxt, on its sandbox or testnet
    # unless the exchange is also in LIVE_REAL_MONEY. Needs a SQL store.
    live_exchanges: Annotated[frozenset[str], NoDecode] = frozenset()
    live_real_money: Annotated[frozenset[str], NoDecode] = frozenset()
    # LIVE_URL_<EXCHANGE> (scheme, host and port of every address ccxt uses for it; the
    # sandbox switch then does not apply) and the credentials, read by load_settings.
    live_urls: dict[str, str] = Field(default_factory=dict)
    live_credentials: dict[str, dict[str, SecretStr]] = Field(default_factory=dict, repr=False)
    # How long a call to a live exchange waits for its answer (ms); past it, whether the
    # call took effect is unknown, and the order is looked up by its client order id.
    live_timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 10_000

    _split = field_validator(
        "allowed_symbols",
        "allowed_exchanges",
        "market_data_feeds",
        "live_exchanges",
        "live_real_money",
        mode="before",
    )(parse_allowlist)

    @field_validator("market_data_feeds", mode="after")
    @classmethod
    def _allowlisted_feeds(cls, value: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        missing = sorted(value - info.data.get("allowed_exchanges", frozenset()))
        if missing:
            raise ValueError(f"{', '.join(missing)} not in ALLOWED_EXCHANGES: a feed is for an allowlisted exchange")
        return value

    @field_validator("market_data_urls", mode="after")
    @classmethod
    def _urls_of_feeds(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for exchange, base in value.items():
            if exchange not in info.data.get("market_data_feeds", frozenset()):
                raise ValueError(f"MARKET_DATA_URL_{exchange.upper()} is set but {exchange} has no feed")
            check_base(base)
        return value

    @model_validator(mode="after")
    def _live_is_safe(self) -> "Settings":
        """Live execution's settings hold together, or start-up stops naming what is wrong
        (never a credential's value)."""
        live = self.live_exchanges
        if not live:
            named = sorted(set(self.live_real_money) | set(self.live_urls) | set(self.live_credentials))
            if named:
                raise ValueError(f"live settings are given for {', '.join(named)} but LIVE_EXCHANGES is empty")
            return self
        missing = sorted(live - self.allowed_exchanges)
        if missing:
            raise ValueError(f"LIVE_EXCHANGES: {', '.join(missing)} not in ALLOWED_EXCHANGES")
        if self.storage_url == "memory://":
            raise ValueError(
                "LIVE_EXCHANGES needs a SQL store (STORAGE_URL=sqlite:///PATH or postgresql://...): a crash must "
                "not forget an order that the exchange holds"
            )
        for what, names in (("LIVE_REAL_MONEY", self.live_real_money), ("LIVE_URL_<EXCHANGE>", self.live_urls)):
            stray = sorted(set(names) - live)
            if stray:
                raise ValueError(f"{what} names {', '.join(stray)}, which is not in LIVE_EXCHANGES")
        for base in self.live_urls.values():
            check_base(base)
        for exchange in sorted(live):
            given = self.live_credentials.get(exchange, {})
            for key, variable in (("api_key", "API_KEY"), ("secret", "SECRET")):
                if not given.get(key, SecretStr("")).get_secret_value():
                    name = f"LIVE_{exchange.upper()}_{variable}"
                    raise ValueError(f"{name} (or {name}_FILE) is required for a live exchange")
        return self

    @field_validator("service_name")
    @classmethod
    def _not_a_server_logger(cls, value: str) -> str:
        # The name is also the logger's: uvicorn's loggers, or the root, would capture
        # or silence the service's lines.
        if value.lower() == "root" or value.lower().split(".")[0] == "uvicorn":
            raise ValueError(f"{value!r} is a logger name the server uses; choose another")
        return value

    @field_validator("storage_url", mode="before")
    @classmethod
    def _known_store(cls, value: object) -> object:
        # The message never repeats the value: a PostgreSQL URL may carry a password.
        if not isinstance(value, str):
            return value
        text = value.strip() or "memory://"
        scheme, separator, rest = text.partition("://")
        scheme = scheme.lower()
        if text == "memory://":
            return text
        if scheme == "sqlite" and separator and rest.startswith("/") and rest not in ("/", "/:memory:"):
            return text
        if scheme in ("postgresql", "postgresql+psycopg") and separator and rest:
            return text
        raise ValueError(
            "must be memory://, sqlite:///PATH/TO/orders.db or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )

    @field_validator("execution_api_token", mode="before")
    @classmethod
    def _usable_token(cls, value: object) -> object:
        # The messages never repeat the value: it is a secret.
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        if len(value) < MIN_TOKEN_LENGTH or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces (value not shown)"
            )
        return value

    @field_validator("instruments_file", mode="after")
    @classmethod
    def _usable_rules(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Read now, so that a bad file stops start-up with its reason.
        if value is not None:
            try:
                load_rules(value, info.data.get("allowed_exchanges", ()), info.data.get("allowed_symbols", ()))
            except RulesFileError as error:
                raise ValueError(str(error)) from None
        return value

    def instrument_rules(self) -> dict[Instrument, InstrumentRules]:
        """The rules INSTRUMENTS_FILE holds (none without one)."""
        if self.instruments_file is None:
            return {}
        return load_rules(self.instruments_file, self.allowed_exchanges, self.allowed_symbols)

    @field_validator("paper_balances", mode="before")
    @classmethod
    def _parse_balances(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        balances: dict[str, object] = {}
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            asset, equals, amount = (piece.strip() for piece in entry.partition("="))
            if not equals or not asset or not amount or not asset.isprintable() or " " in asset:
                raise ValueError(f"{entry!r} is not ASSET=AMOUNT (like USDT=100000,BTC=0.5)")
            if asset in balances:
                raise ValueError(f"{asset} is given twice")
            balances[asset] = amount
        return balances or None

    @field_validator("paper_balances", mode="after")
    @classmethod
    def _balances_usable(cls, value: dict[str, Decimal] | None, info: ValidationInfo) -> dict[str, Decimal] | None:
        if value is None:
            return None
        for asset, amount in value.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"{asset}: the amount must be a finite number >= 0")
        # Every symbol names the assets an order moves: BASE/QUOTE.
        for symbol in sorted(info.data.get("allowed_symbols", ())):
            base, slash, quote = symbol.partition("/")
            if not slash or not base or not quote:
                raise ValueError(f"allowlisted symbol {symbol!r} is not BASE/QUOTE, which paper balances need")
        return value

    @field_validator("trading_state", mode="before")
    @classmethod
    def _upper_state(cls, value: object) -> object:
        return value.strip().upper() or None if isinstance(value, str) else value

    @field_validator("instruments_file", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _normal_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @property
    def api_token(self) -> str | None:
        return None if self.execution_api_token is None else self.execution_api_token.get_secret_value()

    def order_cap(self, store_name: str) -> int | None:
        """The most orders the store may hold: MAX_ORDERS, or the memory store's default."""
        if self.max_orders is not None:
            return self.max_orders
        return DEFAULT_MEMORY_MAX_ORDERS if store_name == "memory" else None

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def load_settings() -> Settings:
    """Read Settings from the environment, or stop start-up with one clear line."""
    try:
        credentials = live_credentials(os.environ)
    except ValueError as error:  # a credential given twice, or a file that cannot be read
        print(f"execution: invalid configuration: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        return Settings(
            market_data_urls=urls_by_exchange(os.environ, "MARKET_DATA_URL_"),
            live_urls=urls_by_exchange(os.environ, "LIVE_URL_"),
            live_credentials=credentials,
        )
    except ValidationError as exc:
        # (A check across settings has no field: its message says which.)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            else error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        print(f"execution: invalid configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
