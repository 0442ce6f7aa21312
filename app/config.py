"""Settings read from the environment once, at start-up."""

import logging
import sys
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
BasisPoints = Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)]


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
    # Paper execution costs, in basis points (1 bp = 0.01 %).
    # Below 100 %: a MARKET sell must never fill at a price of 0.
    slippage_bps: Annotated[Decimal, Field(ge=0, lt=10_000, allow_inf_nan=False)] = Decimal(0)
    taker_fee_bps: BasisPoints = Decimal(0)
    maker_fee_bps: BasisPoints = Decimal(0)
    # Where orders live: memory:// (this process only), sqlite:///PATH, postgresql://...
    storage_url: str = "memory://"

    _split = field_validator("allowed_symbols", "allowed_exchanges", mode="before")(parse_allowlist)

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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def load_settings() -> Settings:
    """Read Settings from the environment, or stop start-up with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        print(f"execution: invalid configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
