"""What the service knows of the market data feeds that run beside it (app.venues):
which exchanges and symbols they follow, which symbols an exchange does not list, and
how fresh each instrument's data is. The feeds fill this in; /capabilities and
/metrics read it."""

from dataclasses import dataclass, field

from app.ops.metrics import FeedSample


@dataclass
class InstrumentFeed:
    """One instrument's feed, as its loops update it."""

    exchange: str
    symbol: str
    received_at: float | None = None  # wall time (seconds) of the latest data taken
    books: int = 0  # books received
    trades: int = 0  # trades received
    refused: int = 0  # taken by neither (out of order, stale, a store failure)
    reconnects: int = 0
    held: bool = False  # whether this process runs it (processes sharing a store take turns)

    @property
    def instrument(self) -> str:
        return f"{self.exchange}:{self.symbol}"


@dataclass
class ExchangeFeed:
    """One exchange's feed: the symbols it follows, those the exchange does not list."""

    exchange: str
    instruments: list[InstrumentFeed] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    markets_loaded: bool = False


@dataclass
class MarketFeeds:
    """Every feed this process runs (none: an empty list)."""

    exchanges: list[ExchangeFeed] = field(default_factory=list)

    def instruments(self) -> list[InstrumentFeed]:
        return [instrument for exchange in self.exchanges for instrument in exchange.instruments]

    def samples(self, now: float) -> list[FeedSample]:
        """Every instrument's feed for a scrape at wall time `now`."""
        return [
            FeedSample(
                feed.exchange,
                feed.symbol,
                None if feed.received_at is None else max(0.0, now - feed.received_at),
                feed.books,
                feed.trades,
                feed.refused,
                feed.reconnects,
            )
            for feed in self.instruments()
        ]
