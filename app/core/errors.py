"""The errors every layer raises for a client to act on: a `detail` for people and a
stable `code` for machines. Which HTTP status each maps to is the web layer's business
(`app.web.errors`)."""

from typing import Any


class ServiceError(Exception):
    """An error a client can act on. `code` names the kind (bots branch on it, not on
    the text; metrics label refusals by it); `extra` holds further fields of the
    answer's body."""

    code = "ERROR"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class IntentRefused(ServiceError):
    """A trading control refused the intent: the trading state, an instrument rule, a
    risk limit or the paper balance. `code` names which."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class FundsUnknown(IntentRefused):
    """What a live exchange's account has free is not known well enough to check an
    intent against it (never read, read too long ago, or orders of unknown cost on their
    way to it): a retry later may pass."""

    code = "EXCHANGE_BALANCE_UNKNOWN"

    def __init__(self, detail: str) -> None:
        super().__init__(self.code, detail)


class AccountMismatch(ServiceError):
    """The paper account cannot be turned on over the orders a store holds."""

    code = "ACCOUNT_MISMATCH"


class MarketDataRefused(ServiceError):
    """Market data the service does not take, for what it says against what the service
    holds: older than the instrument's latest (`OUT_OF_ORDER`), or older than
    `MAX_QUOTE_AGE_MS` on arrival (`STALE_MARKET_DATA`)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class FutureMarketData(MarketDataRefused):
    """Market data stamped further ahead of the service's clock than clocks differ."""

    code = "FUTURE_MARKET_DATA"

    def __init__(self, detail: str) -> None:
        super().__init__(self.code, detail)
