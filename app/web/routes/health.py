"""Probes, the capabilities a bot checks before trading, and the metrics page."""

from dataclasses import asdict
from enum import Enum

from fastapi import APIRouter, Response

from app.ops.clock import iso_z, now_micros
from app.ops.metrics import CONTENT_TYPE
from app.service.orders import OrderService
from app.web.responses import STORE_DOWN
from app.web.schemas import Capabilities, Health, LiveExchange, MarketDataFeed

TAGS: list[str | Enum] = ["service"]


def add_routes(routes: APIRouter, service: OrderService) -> None:
    store_name = service.store.name

    @routes.get("/healthz", response_model=Health, tags=TAGS)
    async def get_health() -> Health:
        """A liveness probe: the process answers (no database round trip). Needs no token."""
        # Cheap on purpose: no database round trip, just which store this process uses.
        return Health(status="ok", timestamp=iso_z(now_micros()), store=store_name)

    @routes.head("/healthz", include_in_schema=False)
    async def healthz_head() -> Response:
        return Response(media_type="application/json")  # some probes only send HEAD

    @routes.get("/capabilities", response_model=Capabilities, tags=TAGS)
    async def get_capabilities() -> Capabilities:
        """What this service offers, and whether it can take orders now (`degraded`, with
        the reason, when it cannot). Needs no token."""
        info = await service.capabilities()
        return Capabilities(
            service=info.service,
            version=info.version,
            status="degraded" if info.status == "degraded" else "ok",
            features=info.features,
            store=info.store,
            degraded_reason=info.degraded_reason,
            generated_at=info.generated_at,
            stale_market_data=info.stale_market_data,
            market_data_feeds=[
                MarketDataFeed(
                    exchange=feed.exchange,
                    symbols=[instrument.symbol for instrument in feed.instruments],
                    unlisted=list(feed.unlisted),
                    markets_loaded=feed.markets_loaded,
                )
                for feed in info.market_data_feeds
            ],
            exchanges=info.exchange_modes,
            live_exchanges=[LiveExchange(**asdict(live)) for live in info.live_exchanges],
        )

    @routes.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
            **STORE_DOWN,
        },
        tags=TAGS,
    )
    async def get_metrics() -> Response:
        """Counters and gauges in Prometheus' text format, for a scraper. Needs no token."""
        return Response(await service.metrics_text(), media_type=CONTENT_TYPE)
