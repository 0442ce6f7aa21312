"""Which market data the core takes, and which it fills against.

Market data carries the time it describes (`ts`, microseconds; the time it arrived when
its sender gave none). Data older than the instrument's latest is refused (a late
packet must not replace a newer book), and with a maximum age set, data already that
old on arrival is refused and an instrument whose latest data has grown that old fills
nothing until fresh data comes.
"""

from app.core.errors import FutureMarketData, MarketDataRefused

# How far ahead of the service's clock a stamp may be (clocks of different machines
# differ a little); further ahead, it would make every later update out of order.
FUTURE_TOLERANCE_US = 5_000_000


def check_arrival(latest: int | None, ts: int, now: int, max_age: int | None) -> None:
    """Refuse data stamped `ts` arriving at `now` after data stamped `latest` (None: the
    instrument has none), with at most `max_age` (None: any age) allowed."""
    if ts - now > FUTURE_TOLERANCE_US:
        raise FutureMarketData(
            f"Market data stamped {(ts - now) / 1e6:.3f} s ahead of the service's clock (more than "
            f"{FUTURE_TOLERANCE_US / 1e6:.0f} s) is refused: it would make every later update out of order",
        )
    if latest is not None and ts < latest:
        raise MarketDataRefused(
            "OUT_OF_ORDER",
            f"Market data stamped {(latest - ts) / 1e3:.3f} ms before the instrument's latest is refused; "
            "nothing was changed",
        )
    if max_age is not None and now - ts > max_age:
        raise MarketDataRefused(
            "STALE_MARKET_DATA",
            f"Market data {(now - ts) / 1e3:.3f} ms old on arrival is refused (MAX_QUOTE_AGE_MS="
            f"{max_age // 1000}); nothing was changed",
        )


def is_fresh(ts: int | None, now: int, max_age: int | None) -> bool:
    """Whether data stamped `ts` may still be filled against at `now`."""
    return max_age is None or (ts is not None and now - ts <= max_age)
